"""Writing postings: one conditional TransactWriteItems per posting, guarded by its source.

`post()` reads the member's live range (one query), lets the caller build a posting with
the pure ledger rules, and commits it. The guard item `SOURCE#<key>` makes the same
source apply at most once, forever; a replay returns the first result.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pynamodb.exceptions import TransactWriteError
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from membership.domain import calendar
from membership.domain.ledger import (
    Entry,
    EntryAlreadyReversed,
    Hold,
    LedgerState,
    PayloadMismatch,
    Posting,
    PostingTooLarge,
)
from membership.errors import DomainError, MemberClosed, MemberNotFound, Unavailable
from membership.storage import usage
from membership.storage.models import (
    LIVE_RANGE,
    EntryItem,
    GuardItem,
    HoldItem,
    LotItem,
    MemberItem,
    member_pk,
)
from membership.storage.table import Retry, connection, with_retries
from membership.storage.tags import index_changes

MAX_TRANSACTION_ITEMS = 100
RETRYABLE_CODES = {
    "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded",
    "ThrottlingException", "ProvisionedThroughputExceededException",
    "RequestLimitExceeded", "InternalServerError", "TransactionInProgressException",
}


@dataclass(frozen=True)
class Outcome:
    """What a posting answered: the first answer again when the source was already applied."""

    result: dict
    replayed: bool
    posting: Posting | None = None


@dataclass
class ExtraItem:
    """An item outside the ledger written in the same transaction (e.g. a uniqueness item)."""

    model: Model
    condition: object | None
    on_condition_failed: Callable[[], Exception]
    actions: list | None = None  # an UpdateItem (e.g. counters' ADD) instead of a put
    delete: bool = False  # delete the item instead of writing it (account closure)


def read_live_range(member_id: str) -> LedgerState:
    """One query over the live range, decoding each row by its sort key."""
    low, high = LIVE_RANGE
    conn = MemberItem._get_connection()
    member, lots, holds = None, [], []
    last_key = None
    while True:
        page = conn.query(
            member_pk(member_id), range_key_condition=MemberItem.SK.between(low, high),
            consistent_read=True, exclusive_start_key=last_key,
        )
        for raw in page.get("Items", []):
            sk = raw["SK"]["S"]
            if sk == "MEMBER":
                member = MemberItem.from_raw_data(raw).to_domain()
            elif sk.startswith("LOT#"):
                lots.append(LotItem.from_raw_data(raw).to_domain())
            elif sk.startswith("HOLD#"):
                holds.append(HoldItem.from_raw_data(raw).to_domain())
        last_key = page.get("LastEvaluatedKey")
        if not last_key:
            break
    if member is None:
        raise MemberNotFound(f"member {member_id} has not signed up")
    if member.status == "closed":  # domain/privacy.py: nothing posts to a closed account
        raise MemberClosed(f"member {member_id} closed the account", memberId=member_id)
    return LedgerState(member=member, lots=tuple(lots), holds=tuple(holds))


def read_guard(source_key: str) -> GuardItem | None:
    try:
        return GuardItem.get(*GuardItem.key(source_key), consistent_read=True)
    except GuardItem.DoesNotExist:
        return None


def _event_payload(posting: Posting) -> list[dict] | None:
    if not posting.events:
        return None
    return [{"detailType": e.detail_type, "detail": json.dumps(e.detail, sort_keys=True)}
            for e in posting.events]


def commit(posting: Posting, *, new_member: bool = False,
           extra: tuple[ExtraItem, ...] = (), payload_hash: str | None = None) -> Posting:
    """Write a posting as one TransactWriteItems; raises Retry or a domain error.

    Returns the posting as written: a gift pack's coupons (`coupon_issues`) are resolved
    against their templates' stock here, and what was or was not issued joins its result.
    """
    if posting.coupon_issues:
        from membership.storage.coupons import resolve_issues

        posting, issued = resolve_issues(posting)
        extra = (*issued, *extra)
    plan: list[tuple[str, Callable[[], Exception] | None]] = []
    # pynamodb sends every delete, then every put, then every update: cancellation reasons
    # come in that order, so each kind keeps its own plan, joined in that order below.
    delete_plan: list[tuple[str, Callable[[], Exception] | None]] = []
    update_plan: list[tuple[str, Callable[[], Exception] | None]] = []
    now = posting.created_at
    t = TransactWrite(connection=connection())
    if new_member:
        t.save(MemberItem.from_domain(posting.member), condition=MemberItem.PK.does_not_exist())
        plan.append(("member_new", None))
    else:
        # Only the fields this posting changed: a profile edit between our read and this
        # commit (it does not move the version) is kept, not overwritten.
        t.update(MemberItem(*MemberItem.key(posting.member.member_id)),
                 actions=MemberItem.changed_actions(posting.member_before, posting.member),
                 condition=MemberItem.version == posting.member_before.version)
        update_plan.append(("member", None))
    # Members per tier move in the same transaction (storage.usage); pynamodb sends the
    # updates in the order they were added, after every put.
    for change in usage.tier_changes(None if new_member else posting.member_before.tier_id,
                                     posting.member.tier_id, posting.member.member_id):
        change.add_to(t)
        update_plan.append(("usage", usage.stale_program_error))
    guard = GuardItem(*GuardItem.key(posting.source_key), source_type=posting.source_type,
                      member_id=posting.member.member_id, created_at=now,
                      result=json.dumps(posting.result, sort_keys=True, default=str),
                      outbox=_event_payload(posting),
                      payload_hash=payload_hash or posting.payload_hash)
    t.save(guard, condition=GuardItem.PK.does_not_exist())
    plan.append(("guard", None))
    for key in posting.extra_guards:
        t.save(GuardItem(*GuardItem.key(key), source_type="guard",
                         member_id=posting.member.member_id, created_at=now),
               condition=GuardItem.PK.does_not_exist())
        plan.append(("extra_guard", lambda k=key: EntryAlreadyReversed(f"{k} already applied")))
    for entry in posting.entries:
        t.save(EntryItem.from_domain(entry), condition=EntryItem.PK.does_not_exist())
        plan.append(("entry", None))
    for change in posting.lots:
        if change.before is None:
            t.save(LotItem.from_domain(change.after), condition=LotItem.PK.does_not_exist())
            plan.append(("lot", None))
        elif change.after is None:
            t.delete(LotItem.from_domain(change.before),
                     condition=LotItem.version == change.before.version)
            delete_plan.append(("lot", None))
        else:
            t.save(LotItem.from_domain(change.after),
                   condition=LotItem.version == change.before.version)
            plan.append(("lot", None))
    for change in posting.holds:
        if change.before is None:
            t.save(HoldItem.from_domain(change.after), condition=HoldItem.PK.does_not_exist())
            plan.append(("hold", None))
        else:
            # Closing a hold moves it out of the live range: delete it, keep its record.
            t.delete(HoldItem.from_domain(change.before),
                     condition=HoldItem.version == change.before.version)
            delete_plan.append(("hold", None))
            t.save(HoldItem.from_domain(change.after), condition=HoldItem.PK.does_not_exist())
            plan.append(("hold_record", None))
    if posting.coupons:
        from membership.storage.coupons import move_items

        extra = (*(i for move in posting.coupons
                   for i in move_items(posting.member.member_id, move, now)), *extra)
    if posting.points_issued:
        # Breakage's points issued, counted here for every capability that credits points:
        # on the month's counter shard the posting already writes, if any (docs/metrics.md).
        from membership.storage.metrics import with_points_issued

        extra = with_points_issued(extra, posting.points_issued, posting.member.member_id)
    for item in extra:
        if item.actions is not None:
            t.update(item.model, actions=item.actions, condition=item.condition)
            update_plan.append(("extra", item.on_condition_failed))
            continue
        if item.delete:
            t.delete(item.model, condition=item.condition)
            delete_plan.append(("extra", item.on_condition_failed))
            continue
        t.save(item.model, condition=item.condition)
        plan.append(("extra", item.on_condition_failed))
    # The tag index follows the member's tags in the same transaction (storage/tags.py).
    for kind, item in index_changes(posting.member_before, posting.member):
        if kind == "delete":
            t.delete(item)
            delete_plan.append(("tag", None))
        else:
            t.save(item)
            plan.append(("tag", None))
    plan = delete_plan + plan + update_plan
    if len(plan) > MAX_TRANSACTION_ITEMS:
        raise PostingTooLarge(f"{len(plan)} items do not fit one transaction", items=len(plan))
    try:
        t._commit()
    except TransactWriteError as exc:
        raise _translate(exc, plan, posting) from None
    return posting


class AlreadyApplied(Exception):
    """The guard exists: this source was applied before."""


def _translate(exc: TransactWriteError, plan, posting: Posting) -> Exception:
    code = exc.cause_response_code
    if code != "TransactionCanceledException":
        if code in RETRYABLE_CODES:
            return Retry()
        return exc
    reasons = exc.cancellation_reasons or []
    codes = [(r.code if r else None) for r in reasons]
    if any(c in RETRYABLE_CODES for c in codes if c):
        return Retry()
    for (kind, on_failed), reason in zip(plan, codes):
        if reason != "ConditionalCheckFailed":
            continue
        if kind == "guard":
            return AlreadyApplied()
        if on_failed is not None:
            return on_failed()
        if kind == "member_new":
            return AlreadyApplied()
    # A version moved under us: read again and rebuild.
    return Retry()


def _replayed(guard: GuardItem, payload_hash: str | None) -> Outcome:
    """The first answer again, if this is the same request; another payload is an error."""
    if payload_hash and guard.payload_hash and guard.payload_hash != payload_hash:
        raise PayloadMismatch(
            f"{guard.PK.removeprefix('SOURCE#')} was applied with another payload; "
            "this delivery is not a replay and changes nothing",
            source_key=guard.PK.removeprefix("SOURCE#"))
    return Outcome(result=guard.result_dict(), replayed=True)


def post(member_id: str, source_key: str, build: Callable[[LedgerState], Posting],
         extra: Callable[[Posting], tuple[ExtraItem, ...]] | None = None, *,
         payload_hash: str | None = None) -> Outcome:
    """Read, build, commit, with bounded jittered retries on conflicts.

    `extra(posting)` names items outside the ledger that commit in the same transaction.
    `payload_hash` (domain.ledger.payload_hash of the request) is kept on the guard: a
    later delivery of the same source with another payload raises PayloadMismatch.
    """

    def attempt() -> Outcome:
        try:
            state = read_live_range(member_id)
            posting = build(state)
        except DomainError:
            # A failure to build may only mean the source was applied already.
            guard = read_guard(source_key)
            if guard is not None:
                return _replayed(guard, payload_hash)
            raise
        try:
            posting = commit(posting, extra=extra(posting) if extra else (),
                             payload_hash=payload_hash)
        except PostingTooLarge:
            # Many small lots: merge lots that share an expiry, then build again.
            if not _consolidate_lots(state):
                raise
            raise Retry() from None
        except AlreadyApplied:
            guard = read_guard(source_key)
            if guard is None:
                return Outcome(result={}, replayed=True)
            return _replayed(guard, payload_hash)
        return Outcome(result=posting.result, replayed=False, posting=posting)

    return with_retries(attempt, lambda: Unavailable(
        "the member's ledger stayed busy; try again", source_key=source_key))


def _consolidate_lots(state: LedgerState) -> bool:
    """A value-neutral posting that merges same-expiry lots; False when none can merge."""
    from membership.domain.ledger import PostingBuilder
    from membership.storage.program import load_program

    now = now_utc()
    member = state.member
    builder = PostingBuilder(
        state, load_program(), source_key=f"consolidate:{member.member_id}:{member.version}",
        source_type="consolidation", reason="lot_consolidation", actor="system", now=now)
    if builder.consolidate_lots() == 0:
        return False
    try:
        commit(builder.build())
    except AlreadyApplied:
        pass
    return True


def read_hold(member_id: str, hold_id: str) -> Hold | None:
    """A hold as it is now: open (live range) or closed (its record); None if never held."""
    for closed in (False, True):
        try:
            return HoldItem.get(*HoldItem.key(member_id, hold_id, closed=closed),
                                consistent_read=True).to_domain()
        except HoldItem.DoesNotExist:
            continue
    return None


def entries_page(member_id: str, asset: str, limit: int,
                 cursor: dict | None = None) -> tuple[list[Entry], dict | None]:
    """A member's entries of one asset, newest first."""
    prefix = f"ENTRY#{asset}#"
    results = EntryItem.query(
        member_pk(member_id), EntryItem.SK.startswith(prefix), scan_index_forward=False,
        limit=limit, last_evaluated_key=cursor, page_size=limit,
    )
    entries = [item.to_domain() for item in results]
    return entries, results.last_evaluated_key


def all_entries(member_id: str) -> list[Entry]:
    return [item.to_domain() for item in EntryItem.query(
        member_pk(member_id), EntryItem.SK.startswith("ENTRY#"), consistent_read=True)]


def growth_entries(member_id: str) -> list[Entry]:
    """A member's growth entries, oldest first (the portrait's tier history)."""
    return [item.to_domain() for item in EntryItem.query(
        member_pk(member_id), EntryItem.SK.startswith("ENTRY#growth#"))]


def all_lots(member_id: str) -> list:
    return [item.to_domain() for item in LotItem.query(
        member_pk(member_id), LotItem.SK.startswith("LOT#"), consistent_read=True)]


def all_holds(member_id: str) -> list:
    return [item.to_domain() for item in HoldItem.query(
        member_pk(member_id), HoldItem.SK.startswith("HOLD#"), consistent_read=True)]


def now_utc() -> datetime:
    return calendar.utc(datetime.now().astimezone())
