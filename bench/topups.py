"""Top-ups and refunds through their real handlers: calls, items and capacity per request.

Measured on a member prepared outside the counted window. A top-up reads the key record
(GetItem) and the member's live range (Query), then writes one transaction: member,
guard + outbox, principal and bonus entries, the top-up record and the key record.
"""

from __future__ import annotations

from bench.operations import BenchContext, CallStats, operation

TOPUPS = "membership.handlers.topups.handler"
ADMIN_TOPUPS = "membership.handlers.admin_topups.handler"


def _top_up(
    ctx: BenchContext,
    sub: str,
    amount: int = 50_000,
    key: str | None = None,
    reference: str | None = None,
) -> tuple[dict, dict]:
    body = {
        "amount": amount,
        "paymentReference": reference or ctx.unique("test-bench"),
        "channel": "wechat_pay",
    }
    event = ctx.member_event(
        "POST",
        "/v1/members/me/topups",
        body,
        sub=sub,
        headers={"Idempotency-Key": key or ctx.unique("key")},
    )
    return event, ctx.expect_status(ctx.invoke(TOPUPS, event), 201)


@operation("top-up", requires=("membership.handlers.topups",), route="POST /v1/members/me/topups")
def topup(ctx: BenchContext) -> CallStats:
    sub = ctx.signed_up_member()
    with ctx.count() as first:
        _top_up(ctx, sub)
    ctx.first_calls(first)
    with ctx.count() as calls:
        _top_up(ctx, sub)
    ctx.check("DynamoDB write calls per top-up", calls.writes, "==", 1)
    ctx.check(
        "items written per top-up (member, guard, 2 entries, record, key)",
        calls.items_written,
        "<=",
        6,
    )
    return calls


@operation(
    "top-up replayed (same Idempotency-Key)",
    requires=("membership.handlers.topups",),
    route="POST /v1/members/me/topups",
)
def topup_replay(ctx: BenchContext) -> CallStats:
    sub = ctx.signed_up_member()
    event, _ = _top_up(ctx, sub)
    with ctx.count() as calls:
        ctx.expect_status(ctx.invoke(TOPUPS, event), 201)
    ctx.check("DynamoDB write calls per replayed top-up", calls.writes, "==", 0)
    return calls


@operation(
    "top-up refund",
    requires=("membership.handlers.admin_topups",),
    route="POST /v1/admin/topups/{topupId}/refunds",
)
def topup_refund(ctx: BenchContext) -> CallStats:
    sub = ctx.signed_up_member()
    _, credited = _top_up(ctx, sub)
    event = ctx.member_event(
        "POST",
        f"/v1/admin/topups/{credited['topupId']}/refunds",
        {"refundReference": ctx.unique("test-refund")},
        sub="bench-admin",
        scopes=["admin"],
        headers={"Idempotency-Key": ctx.unique("refund-key")},
    )
    with ctx.count() as calls:
        ctx.expect_status(ctx.invoke(ADMIN_TOPUPS, event), 201)
    ctx.check("DynamoDB write calls per top-up refund", calls.writes, "==", 1)
    return calls
