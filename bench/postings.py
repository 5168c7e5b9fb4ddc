"""Ledger postings, one kind at a time, straight through `storage.ledger.post`.

Each posting is measured on a member prepared outside the counted window, so the figures
are the posting's own: its read calls (the member's live range), its single write call,
the items in that transaction and the capacity DynamoDB Local reports.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench.operations import BenchContext, CallStats, operation

LEDGER = ("membership.storage.ledger",)


def _post(member_id: str, key: str, legs) -> None:
    from membership.services.ledger import post_legs

    post_legs(member_id, key, legs, source_type="bench", reason="bench")


def _member(ctx: BenchContext, principal: int = 100_000, points: int = 0) -> str:
    from membership.domain.members import member_id_for

    member_id = member_id_for(ctx.signed_up_member())
    if principal:
        _post(member_id, ctx.unique("fund"), lambda b: b.credit_balance("principal", principal))
    if points:
        _post(member_id, ctx.unique("earn"), lambda b: b.credit_points(points, lot_id="bench"))
    return member_id


def _measure(ctx: BenchContext, kind: str, member_id: str, legs) -> CallStats:
    with ctx.count() as calls:
        _post(member_id, ctx.unique(kind), legs)
    ctx.check(f"DynamoDB write calls per {kind} posting", calls.writes, "==", 1)
    return calls


@operation("posting: credit balance", requires=LEDGER)
def credit(ctx: BenchContext) -> CallStats:
    return _measure(
        ctx, "credit", _member(ctx, principal=0), lambda b: b.credit_balance("principal", 5_000)
    )


@operation("posting: debit balance", requires=LEDGER)
def debit(ctx: BenchContext) -> CallStats:
    return _measure(ctx, "debit", _member(ctx), lambda b: b.debit_balance(3_000))


@operation("posting: earn points (new lot)", requires=LEDGER)
def earn(ctx: BenchContext) -> CallStats:
    return _measure(
        ctx, "earn", _member(ctx, principal=0), lambda b: b.credit_points(120, lot_id="earned")
    )


@operation("posting: spend points", requires=LEDGER)
def spend(ctx: BenchContext) -> CallStats:
    return _measure(
        ctx, "spend", _member(ctx, principal=0, points=500), lambda b: b.debit_points(150)
    )


def _held(ctx: BenchContext) -> str:
    member_id = _member(ctx, points=500)
    _post(
        member_id,
        ctx.unique("hold"),
        lambda b: b.place_hold(
            "H1", points=100, balance=2_000, expires_at=datetime.now(UTC) + timedelta(minutes=30)
        ),
    )
    return member_id


@operation("posting: hold (balance + points)", requires=LEDGER)
def hold(ctx: BenchContext) -> CallStats:
    return _measure(
        ctx,
        "hold",
        _member(ctx, points=500),
        lambda b: b.place_hold(
            "H1", points=100, balance=2_000, expires_at=datetime.now(UTC) + timedelta(minutes=30)
        ),
    )


@operation("posting: capture hold", requires=LEDGER)
def capture(ctx: BenchContext) -> CallStats:
    return _measure(ctx, "capture", _held(ctx), lambda b: b.capture_hold("H1"))


@operation("posting: release hold", requires=LEDGER)
def release(ctx: BenchContext) -> CallStats:
    return _measure(ctx, "release", _held(ctx), lambda b: b.release_hold("H1"))


@operation("posting: reversal", requires=LEDGER)
def reversal(ctx: BenchContext) -> CallStats:
    from membership.storage import ledger

    member_id = _member(ctx)
    entry = next(e for e in ledger.all_entries(member_id) if e.asset == "balance")
    return _measure(ctx, "reversal", member_id, lambda b: b.reverse(entry))
