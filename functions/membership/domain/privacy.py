"""Privacy (PIPL): what a member's copy holds, and what closing the account does.

Personal data (phone, nickname, birthday, gender, the login subject) lives on the member
item and the phone's and subject's uniqueness items only; every other item and event
carries the member id alone (docs/privacy.md).

Every capability that holds something of a member registers a `PrivacyPart` in `PARTS`:
the export section it contributes, what blocks closure while it remains (stored value, an
open hold, an active paid term), the member fields it erases, the ledger legs it posts
(points forfeited) and the items it removes. Closure is then one posting built from every
part, so a capability added later (coupons, tags, PLUS) adds a part, not a branch here.
The rules are pure: storage/privacy.py reads the member's data and commits the result.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from pydantic import Field

from membership.domain import calendar
from membership.domain.aggregates import OrderStats
from membership.domain.checkins import CheckinLog
from membership.domain.consents import ConsentRecord
from membership.domain.ledger import Entry, Hold, Lot, PostingBuilder
from membership.domain.member_status import FROZEN, MemberFrozen
from membership.domain.members import ApiModel, Member
from membership.errors import Conflict, MemberClosed

CLOSED = "closed"
CLOSURE_SOURCE_TYPE = "closure"
CLOSURE_REASON = "account_closed"
# Every lot expires before this: closure forfeits what remains of each.
_END_OF_TIME = datetime(9999, 1, 1, tzinfo=UTC)
# Fields of the member item that identify a person; closure removes every one of them.
PERSONAL_FIELDS = ("subject", "phone", "nickname", "birthday", "gender", "store_id",
                   "referral_code")


def closure_source_key(member_id: str) -> str:
    return f"closure:{member_id}"


class AccountNotEmpty(Conflict):
    """`details.remaining` lists what must be paid out, refunded or settled first."""

    code = "account_not_empty"


def ensure_open(member: Member) -> Member:
    if member.status == CLOSED:
        raise MemberClosed(f"member {member.member_id} closed the account",
                           memberId=member.member_id)
    return member


class Remaining(ApiModel):
    """One thing that keeps the account from closing, and how the brand clears it."""

    kind: Literal["stored_value", "open_hold", "paid_term"] | str
    capability: str
    id: str | None = Field(default=None, description="hold id, plan id, ...")
    amount: int | None = Field(default=None, description="fen for stored value, else points")
    principal: int | None = None
    bonus: int | None = None
    points: int | None = None
    until: str | None = Field(default=None, description="when it ends on its own, if it does")
    how: str = Field(description="What settles it before closing")


@dataclass(frozen=True)
class MemberData:
    """Everything held about a member, decoded (storage/privacy.read_member_data)."""

    member: Member
    entries: tuple[Entry, ...] = ()
    lots: tuple[Lot, ...] = ()
    holds: tuple[Hold, ...] = ()  # open and closed
    orders: tuple[dict, ...] = ()  # order settlements, as stored (JSON)
    topups: tuple[dict, ...] = ()
    consents: tuple[ConsentRecord, ...] = ()
    audit: tuple[dict, ...] = ()  # operators' actions on the member (AUDIT# items)
    # Items of kinds no part decodes yet, by the first segment of their sort key: a
    # capability that stores in the member's partition is in the copy from day one.
    other: dict[str, list[dict]] = field(default_factory=dict)


@dataclass(frozen=True)
class Removal:
    """An item closure deletes: `phone` / `subject` by value, `own` by its sort key in the
    member's partition (storage/privacy.py turns these into keys)."""

    kind: Literal["phone", "subject", "own"]
    key: str


def _nothing(*_args) -> list:
    return []


def _no_fields(_member: Member, _now: datetime) -> dict:
    return {}


def _no_legs(_builder: PostingBuilder) -> dict:
    return {}


@dataclass(frozen=True)
class PrivacyPart:
    capability: str
    # What stays after closure and why (docs/privacy.md, the member.closed event).
    kept: str
    exports: Callable[[MemberData, str], dict] = lambda _data, _tz: {}
    blockers: Callable[[MemberData, datetime], list[Remaining]] = _nothing
    erases: Callable[[Member, datetime], dict] = _no_fields
    legs: Callable[[PostingBuilder], dict] = _no_legs
    removes: Callable[[MemberData], list[Removal]] = _nothing
    erased: tuple[str, ...] = ()  # wire names of what `erases` removes, for the answer


# ---- the parts of what exists today -----------------------------------------------------

def _wire(instant: datetime | None, tz: str) -> str | None:
    return None if instant is None else calendar.wire(instant, tz)


def _export_profile(data: MemberData, tz: str) -> dict:
    m = data.member
    return {"profile": {
        "memberId": m.member_id, "phone": m.phone, "nickname": m.nickname,
        "birthday": m.birthday, "gender": m.gender, "channel": m.channel,
        "storeId": m.store_id, "referralCode": m.referral_code, "status": m.status,
        "createdAt": _wire(m.created_at, tz), "updatedAt": _wire(m.updated_at, tz),
        "tier": m.tier_id, "tierSince": _wire(m.tier_since, tz),
    }}


# Transaction records are kept at least three years from the transaction (E-Commerce Law
# Art. 31); nothing posts after closure, so three years from closure covers every one.
RETENTION_YEARS = 3


def retained_until(closed_at: datetime) -> datetime:
    """`closed_at` plus three calendar years (29 February closes on 1 March)."""
    try:
        return closed_at.replace(year=closed_at.year + RETENTION_YEARS)
    except ValueError:
        return closed_at.replace(year=closed_at.year + RETENTION_YEARS, month=3, day=1)


def _erase_profile(member: Member, now: datetime) -> dict:
    return dict.fromkeys(PERSONAL_FIELDS) | {"status": CLOSED, "closed_at": now,
                                             "retain_until": retained_until(now)}


def _remove_identity(data: MemberData) -> list[Removal]:
    m = data.member
    removals = []
    if m.phone:
        removals.append(Removal(kind="phone", key=m.phone))
    if m.subject:
        removals.append(Removal(kind="subject", key=m.subject))
    return removals


def _entry_view(e: Entry, tz: str) -> dict:
    view = {"entryId": e.entry_id, "bucket": e.bucket, "amount": e.amount,
            "balanceAfter": e.balance_after, "sourceType": e.source_type,
            "sourceKey": e.source_key, "reason": e.reason, "actor": e.actor,
            "createdAt": calendar.wire(e.created_at, tz)}
    if e.effective_at != e.created_at:
        view["effectiveAt"] = calendar.wire(e.effective_at, tz)
    for name, value in (("reverses", e.reverses), ("holdId", e.hold_id), ("lotId", e.lot_id)):
        if value is not None:
            view[name] = value
    return view


def _export_ledger(data: MemberData, tz: str) -> dict:
    m = data.member
    ledger: dict[str, list[dict]] = {"balance": [], "points": [], "growth": []}
    for e in data.entries:
        ledger.setdefault(e.asset, []).append(_entry_view(e, tz))
    return {
        "assets": {
            "balance": {"principal": m.balance_principal, "bonus": m.balance_bonus},
            "points": {"available": m.points_available, "pending": m.points_pending},
            "debts": {"points": m.points_debt, "bonus": m.bonus_debt},
            "growthByMonth": dict(sorted(m.growth_months.items())),
            "tierGifts": dict(m.tier_gifts),
        },
        "ledger": ledger,
        "lots": [{"lotId": lot.lot_id, "amount": lot.amount, "remaining": lot.remaining,
                  "pending": lot.pending, "earnedAt": calendar.wire(lot.earned_at, tz),
                  "availableAt": _wire(lot.available_at, tz),
                  "expiresAt": calendar.wire(lot.expires_at, tz)} for lot in data.lots],
        "holds": [{"holdId": h.hold_id, "status": h.status, "principal": h.principal,
                   "bonus": h.bonus, "points": h.points,
                   "createdAt": calendar.wire(h.created_at, tz),
                   "expiresAt": calendar.wire(h.expires_at, tz), "closedBy": h.closed_by}
                  for h in data.holds],
        "orders": list(data.orders),
        # Payments: each top-up (paid in the app or at WeChat Pay / Alipay, its channel
        # and reference) with what was refunded of it, and the refund postings.
        "topups": list(data.topups),
        "topupRefunds": postings_of(data.entries, "topup_refund", tz),
    }


def _stored_value(data: MemberData, _now: datetime) -> list[Remaining]:
    m = data.member
    total = m.balance_principal + m.balance_bonus
    if not total:
        return []
    return [Remaining(
        kind="stored_value", capability="stored_value", amount=total,
        principal=m.balance_principal, bonus=m.balance_bonus,
        how="The member spends it, or the brand refunds the top-ups "
            "(POST /v1/admin/topups/{topupId}/refunds), which also claws back their bonus; "
            "bonus left after that is removed by an operator's adjustment")]


def _open_holds(data: MemberData, _now: datetime) -> list[Remaining]:
    return [Remaining(
        kind="open_hold", capability="checkout", id=h.hold_id, points=h.points,
        amount=h.principal + h.bonus, principal=h.principal, bonus=h.bonus,
        until=calendar.iso(h.expires_at),
        how="The order system pays or cancels the order; an unpaid hold also lapses "
            "at its expiry")
        for h in data.holds if h.status == "held"]


def _forfeit_points(builder: PostingBuilder) -> dict:
    """Every lot's remaining points go by an entry (reason account_closed); pending lots
    leave the live range too, so no sweep touches the closed member again."""
    forfeited = sum(lot.remaining for lot in builder.live_lots())
    builder.expire_lots(_END_OF_TIME, reason=CLOSURE_REASON)
    for lot in builder.live_lots():
        if lot.pending:
            builder.release_pending(lot.lot_id, reason=CLOSURE_REASON)
    return {"forfeitedPoints": forfeited}


def _paid_term(data: MemberData, now: datetime) -> list[Remaining]:
    plan = data.member.paid_plan
    if plan is None or plan.ends_at <= now:
        return []
    return [Remaining(
        kind="paid_term", capability="paid_plan", id=plan.plan_id,
        until=calendar.iso(plan.ends_at),
        how="The brand refunds the term (pro rata, docs/privacy.md), or the member closes "
            "the account after it ends")]


def _export_paid_plan(data: MemberData, tz: str) -> dict:
    plan = data.member.paid_plan
    return {"subscriptions": [] if plan is None else [{
        "planId": plan.plan_id, "startedAt": calendar.wire(plan.started_at, tz),
        "endsAt": calendar.wire(plan.ends_at, tz)}]}


def postings_of(entries, source_type: str, tz: str) -> list[dict]:
    """The postings of one source type, oldest first: what each gave or took, by asset
    and bucket, from its entries (the entries themselves are in `ledger`)."""
    by_key: dict[str, dict] = {}
    for e in sorted(entries, key=lambda e: (e.created_at, e.entry_id)):
        if e.source_type != source_type:
            continue
        posting = by_key.setdefault(e.source_key, {
            "sourceKey": e.source_key, "reason": e.reason, "actor": e.actor,
            "at": calendar.wire(e.created_at, tz), "amounts": {}})
        name = e.asset if e.bucket in (e.asset, "available") else f"{e.asset}.{e.bucket}"
        posting["amounts"][name] = posting["amounts"].get(name, 0) + e.amount
    return list(by_key.values())


def _export_checkins(data: MemberData, tz: str) -> dict:
    log = CheckinLog.of(data.member)
    months = {}
    for month, word in sorted(log.months.items()):
        days = [d for d in range(1, 32) if word >> (d - 1) & 1]
        made_up = [d for d in days if word >> (32 + d - 1) & 1]
        months[month] = {"days": days, "madeUp": made_up}
    return {
        "checkins": {"months": months, "streakCarriedIn": log.carry,
                     # every check-in and make-up as posted, with its points and growth
                     "postings": postings_of(data.entries, "checkin", tz)},
        "taskCompletions": postings_of(data.entries, "task", tz),
    }


def _export_operations(data: MemberData, tz: str) -> dict:
    """What operators did to the member: adjustments, grants received, status changes.
    The operator's free-text reason is the member's to see (Art. 45); so is who acted."""
    return {
        "adjustments": postings_of(data.entries, "adjustment", tz),
        "grantsReceived": postings_of(data.entries, "grant", tz),
        "operatorActions": [
            {"action": a["action"], "actor": a["actor"], "at": calendar.wire(a["at"], tz),
             "reason": a.get("reason"), "details": a.get("details") or {}}
            for a in data.audit],
    }


def _erase_checkins(_member: Member, _now: datetime) -> dict:
    return {"checkin_months": {}, "checkin_since": None, "checkin_carry": 0}


def _export_consents(data: MemberData, tz: str) -> dict:
    m = data.member
    return {"consents": {
        "marketing": {"granted": m.marketing_consent,
                      "since": calendar.wire(m.marketing_consent_at or m.created_at, tz)},
        "history": [{"purpose": c.purpose, "granted": c.granted,
                     "at": calendar.wire(c.at, tz), "source": c.source}
                    for c in data.consents],
    }}


def _export_tags(data: MemberData, tz: str) -> dict:
    m = data.member
    return {
        "tags": [{"tag": tag, "source": mark.source, "since": calendar.wire(mark.since, tz)}
                 for tag, mark in sorted(m.tags.items())],
        "orderAggregates": m.order_stats.model_dump(mode="json", by_alias=True),
    }


def _erase_tags(_member: Member, _now: datetime) -> dict:
    # The posting's commit deletes the tag index items with them (storage/ledger.py).
    return {"tags": {}, "order_stats": OrderStats()}


# Coupons closure removes in its own transaction; more go first in batches of this size.
COUPONS_IN_CLOSURE = 30


def unused_coupons(data: MemberData) -> list[Removal]:
    """The member's coupons never used (available, or expired unused): closure deletes
    them. Used ones are transaction records and stay; a held one is an open hold, which
    blocks closure until its order settles."""
    return [Removal(kind="own", key=c["SK"]) for c in data.other.get("coupon", ())
            if c.get("status") == "available"]


def _remove_unused_coupons(data: MemberData) -> list[Removal]:
    return unused_coupons(data)[:COUPONS_IN_CLOSURE]


def _withdraw_marketing(_member: Member, now: datetime) -> dict:
    return {"marketing_consent": False, "marketing_consent_at": now}


PARTS: list[PrivacyPart] = [
    PrivacyPart(
        capability="profile",
        kept="the member item keeps ids, tier, balances, debts, growth and dates",
        exports=_export_profile, erases=_erase_profile, removes=_remove_identity,
        erased=("phone", "nickname", "birthday", "gender", "storeId", "referralCode",
                "subject")),
    PrivacyPart(
        capability="stored_value",
        kept="ledger entries, top-up records and order settlements (transaction records, "
             "E-Commerce Law Art. 31)",
        exports=_export_ledger, blockers=_stored_value),
    PrivacyPart(capability="checkout", kept="closed hold records", blockers=_open_holds),
    PrivacyPart(capability="points", kept="the forfeiting entries", legs=_forfeit_points),
    PrivacyPart(capability="paid_plan", kept="the last term's dates",
                exports=_export_paid_plan, blockers=_paid_term),
    PrivacyPart(capability="checkins", kept="check-in entries in the ledger",
                exports=_export_checkins, erases=_erase_checkins, erased=("checkins",)),
    PrivacyPart(capability="operators",
                kept="adjustment and grant entries, the operators' audit records",
                exports=_export_operations),
    PrivacyPart(capability="consents", kept="consent records (evidence)",
                exports=_export_consents, erases=_withdraw_marketing),
    PrivacyPart(capability="tags",
                kept="nothing: tags, their segment index items and the order aggregates "
                     "(a shopping profile) go; the orders themselves stay in the ledger",
                exports=_export_tags, erases=_erase_tags, erased=("tags", "orderAggregates")),
    PrivacyPart(capability="coupons",
                kept="used coupons (part of their orders' records); unused ones are deleted, "
                     "their template's issued count stays (they were issued)",
                removes=_remove_unused_coupons, erased=("unusedCoupons",)),
]


def register(part: PrivacyPart) -> PrivacyPart:
    """A capability's part: `register(PrivacyPart(...))` at import of its privacy module."""
    PARTS[:] = [p for p in PARTS if p.capability != part.capability] + [part]
    return part


# ---- export ---------------------------------------------------------------------------

EXPORT_FORMAT = "membership.export/1"


def export_document(data: MemberData, tz: str, now: datetime) -> dict:
    document: dict = {"format": EXPORT_FORMAT, "exportedAt": calendar.wire(now, tz),
                      "timeZone": tz}
    for part in PARTS:
        document.update(part.exports(data, tz))
    document["otherRecords"] = {kind: list(items) for kind, items in sorted(data.other.items())}
    return document


# ---- closure --------------------------------------------------------------------------

def closure_blockers(data: MemberData, now: datetime) -> list[Remaining]:
    remaining: list[Remaining] = []
    for part in PARTS:
        remaining.extend(part.blockers(data, now))
    return remaining


def ensure_closable(data: MemberData, now: datetime) -> None:
    ensure_open(data.member)
    if data.member.status == FROZEN:
        # Under an operator's review: closing would erase the personal data and forfeit
        # the points the review is about, and could not be undone.
        raise MemberFrozen("this member is frozen: the account can be closed once an "
                           "operator unfreezes it", memberId=data.member.member_id,
                           action="account_closure")
    remaining = closure_blockers(data, now)
    if remaining:
        kinds = sorted({r.kind for r in remaining})
        raise AccountNotEmpty(
            f"the account still holds {', '.join(kinds)}: settle it first (docs/privacy.md)",
            remaining=[r.model_dump(mode="json", exclude_none=True) for r in remaining])


# Lots one forfeit batch may touch: each is an entry and a lot deletion, so a batch is at
# most 2 x 40 + member, guard and tier counters: well inside one transaction of 100.
FORFEIT_BATCH_LOTS = 40
CLOSURE_FORFEIT_SOURCE_TYPE = "closure_forfeit"


def closure_forfeit_source_key(member_id: str, version: int) -> str:
    """One batch per member version: a retry of a batch that committed finds its guard,
    and the next batch (built on the next version) has a key of its own."""
    return f"closure:{member_id}:forfeit:{version}"


def forfeit_batch(builder: PostingBuilder, data: MemberData,
                  limit: int = FORFEIT_BATCH_LOTS) -> int:
    """Closure too large for one transaction (many lots, each one item plus its entry):
    forfeit the points of up to `limit` lots, by the same entries closure would post, in
    a posting of its own. The caller checked `ensure_closable` on the same state, so a
    batch only runs for an account that may close; returns the lots it touched."""
    touched = 0
    for lot in builder.live_lots():
        if touched == limit:
            break
        if not lot.remaining and not lot.pending:
            continue
        builder.forfeit_lot(lot.lot_id, reason=CLOSURE_REASON)
        if lot.pending:
            builder.release_pending(lot.lot_id, reason=CLOSURE_REASON)
        touched += 1
    builder.result = {"memberId": builder.member_id, "forfeitedLots": touched}
    return touched


@dataclass(frozen=True)
class ClosurePlan:
    removals: tuple[Removal, ...]
    summary: dict


def close_account(builder: PostingBuilder, data: MemberData) -> ClosurePlan:
    """Apply every part's legs and erasures to the posting; what to delete beside it.

    The caller checked `ensure_closable` on the same state."""
    now = builder.now
    summary: dict = {"forfeitedPoints": 0}
    for part in PARTS:
        summary.update(part.legs(builder))
    changes: dict = {}
    for part in PARTS:
        changes.update(part.erases(builder.member, now))
    builder.set(**changes)
    removals: list[Removal] = []
    removed: dict[str, int] = {}
    for part in PARTS:
        mine = part.removes(data)
        removals.extend(mine)
        if mine:
            removed[part.capability] = len(mine)
    tz = builder.program.time_zone
    result = {
        "memberId": builder.member_id,
        "closedAt": calendar.wire(now, tz),
        "retainedUntil": calendar.wire(retained_until(now), tz),
        "forfeitedPoints": summary["forfeitedPoints"],
        "erased": [name for part in PARTS for name in part.erased],
        "removed": removed,
        "kept": {p.capability: p.kept for p in PARTS},
    }
    builder.result = result
    builder.emit("member.closed", {
        "memberId": builder.member_id, "forfeitedPoints": summary["forfeitedPoints"],
        "removed": removed, "occurredAt": calendar.wire(now, tz)})
    return ClosurePlan(removals=tuple(removals), summary=result)
