"""Reading everything held about a member, consent records, and closure's transaction.

The member's partition is read with one paged query (DynamoDB returns at most 1 MB a
page): a member with 10,000 entries is a few pages, decoded by sort key. Top-up records
live in their own partitions and are read by the ids the ledger names (BatchGetItem).
"""
from __future__ import annotations

import json
from dataclasses import replace

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from membership.domain.calendar import parse_iso
from membership.domain.ledger import Entry, LedgerState, LotTake, PostingTooLarge
from membership.domain.privacy import (
    COUPONS_IN_CLOSURE,
    MemberData,
    Removal,
    close_account,
    closure_source_key,
    ensure_closable,
    forfeit_batch,
    unused_coupons,
)
from membership.domain.topups import topup_id_for
from membership.errors import MemberClosed, MemberNotFound, Unavailable
from membership.storage.admin_members import AUDIT_PREFIX, AuditItem
from membership.storage.consents import ConsentItem
from membership.storage.ledger import (
    RETRYABLE_CODES,
    ExtraItem,
    Outcome,
    post,
    read_live_range,
)
from membership.storage.models import (
    HoldItem,
    LotItem,
    MemberItem,
    PhoneItem,
    SubjectItem,
    member_pk,
)
from membership.storage.table import Retry, connection, with_retries


def plain(value: dict):
    """A DynamoDB attribute value as plain JSON (for item kinds no part decodes yet)."""
    (kind, inner), = value.items()
    if kind in ("S", "BOOL"):
        return inner
    if kind == "N":
        return int(inner) if inner.lstrip("-").isdigit() else inner
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: plain(v) for k, v in inner.items()}
    if kind == "L":
        return [plain(v) for v in inner]
    if kind in ("SS", "NS"):
        return sorted(inner)
    return None  # binary: nothing of ours stores it


# Items per query page; None: DynamoDB's 1 MB pages (tests page smaller).
PAGE_LIMIT: int | None = None


def entry_from_raw(raw: dict) -> Entry:
    """An entry straight from the wire format: a long ledger decodes in a fraction of the
    time a model instance per item takes (these items are our own, written validated)."""
    def text(name: str) -> str | None:
        value = raw.get(name)
        return None if value is None else value["S"]

    lots = tuple(LotTake.model_construct(lot_id=t["M"]["l"]["S"],
                                         expires_at=parse_iso(t["M"]["x"]["S"]),
                                         amount=int(t["M"]["a"]["N"]))
                 for t in raw.get("lots", {}).get("L", ()))
    return Entry.model_construct(
        entry_id=raw["entryId"]["S"], member_id=raw["memberId"]["S"],
        asset=raw["asset"]["S"], bucket=raw["bucket"]["S"], amount=int(raw["amount"]["N"]),
        balance_after=int(raw["after"]["N"]), source_type=raw["sourceType"]["S"],
        source_key=raw["sourceKey"]["S"], reason=raw["reason"]["S"], actor=raw["actor"]["S"],
        created_at=parse_iso(raw["createdAt"]["S"]),
        effective_at=parse_iso(raw["effectiveAt"]["S"]), reverses=text("reverses"),
        hold_id=text("holdId"), lot_id=text("lotId"), lots=lots)


def _pages(member_id: str, entries: bool):
    """The partition's items, page by page; without the ledger entries when not wanted
    (two ranges: before `ENTRY#` and after every `ENTRY#...` key)."""
    conn = MemberItem._get_connection()
    ranges = [None] if entries else [MemberItem.SK < "ENTRY#", MemberItem.SK > "ENTRY$"]
    for condition in ranges:
        last_key = None
        while True:
            page = conn.query(member_pk(member_id), range_key_condition=condition,
                              consistent_read=True, exclusive_start_key=last_key,
                              limit=PAGE_LIMIT)
            yield page.get("Items", [])
            last_key = page.get("LastEvaluatedKey")
            if not last_key:
                break


def read_member_data(member_id: str, *, entries: bool = True) -> MemberData:
    """Every item of the member's partition, decoded, plus the top-ups its ledger names."""
    member = None
    entries_, lots, holds, orders, consents, audit = [], [], [], [], [], []
    other: dict[str, list[dict]] = {}
    for items in _pages(member_id, entries):
        for raw in items:
            sk = raw["SK"]["S"]
            if sk == "MEMBER":
                member = MemberItem.from_raw_data(raw).to_domain()
            elif sk.startswith("ENTRY#"):
                entries_.append(entry_from_raw(raw))
            elif sk.startswith("LOT#"):
                lots.append(LotItem.from_raw_data(raw).to_domain())
            elif sk.startswith(("HOLD#", "RECORD#HOLD#")):
                holds.append(HoldItem.from_raw_data(raw).to_domain())
            elif sk.startswith("ORDER#"):
                orders.append(json.loads(raw["document"]["S"]))
            elif sk.startswith("CONSENT#"):
                consents.append(ConsentItem.from_raw_data(raw).to_domain())
            elif sk.startswith(AUDIT_PREFIX):
                record = AuditItem.from_raw_data(raw)
                audit.append({"action": record.action, "actor": record.actor,
                              "at": record.at, "reason": record.reason,
                              "details": record.details_dict()})
            else:
                item = {k: plain(v) for k, v in raw.items() if k != "PK"}
                other.setdefault(sk.split("#", 1)[0].lower(), []).append(item)
    if member is None:
        raise MemberNotFound("no member for this subject; sign up first")
    return MemberData(member=member, entries=tuple(entries_), lots=tuple(lots),
                      holds=tuple(holds), orders=tuple(orders),
                      topups=tuple(_topups(entries_)), consents=tuple(consents),
                      audit=tuple(audit), other=other)


def _topups(entries) -> list[dict]:
    from membership.storage.topups import TopupItem

    ids = sorted({topup_id_for(e.source_key.removeprefix("topup:")) for e in entries
                  if e.source_type == "topup" and e.source_key.startswith("topup:")})
    found = [item.to_domain() for item in TopupItem.batch_get(
        [TopupItem.key(i) for i in ids], consistent_read=True)]
    return [{"topupId": r.topup_id, "paymentReference": r.payment_reference,
             "channel": r.channel, "createdAt": r.created_at.isoformat(), **r.totals(),
             "refunds": list(r.refunds)}
            for r in sorted(found, key=lambda r: r.created_at)]


# ---- closure --------------------------------------------------------------------------

def _removal_item(member_id: str, removal: Removal) -> ExtraItem:
    if removal.kind == "phone":
        model = PhoneItem(*PhoneItem.key(removal.key))
        condition = PhoneItem.PK.does_not_exist() | (PhoneItem.member_id == member_id)
    elif removal.kind == "subject":
        model = SubjectItem(*SubjectItem.key(removal.key))
        condition = SubjectItem.PK.does_not_exist() | (SubjectItem.member_id == member_id)
    else:
        model = MemberItem(member_pk(member_id), removal.key)
        condition = None
    return ExtraItem(model=model, condition=condition, delete=True,
                     on_condition_failed=lambda: MemberNotFound(
                         f"{removal.kind} belongs to another member"))


def close(member_id: str, data: MemberData, build_builder, build_batch_builder) -> Outcome:
    """Closure in one transaction; when it cannot fit (a member with many lots: each is an
    item and an entry), the points are forfeited first in batches of postings of their
    own, each checked as closure is (open, not frozen, nothing blocking), then closure
    commits what is left: the phone, subject, erasures and status in one transaction."""
    try:
        data = _remove_coupons_beyond_closure(member_id, data, build_builder)
    except MemberClosed:
        pass  # closed in the meantime: the posting below answers that closure again
    while True:
        try:
            return _close_once(member_id, data, build_builder)
        except PostingTooLarge:
            pass  # post() already merged what lots it could

        def batch(state: LedgerState):
            current = MemberData(member=state.member, lots=state.lots, holds=state.holds,
                                 consents=data.consents, other=data.other)
            builder = build_batch_builder(state)
            ensure_closable(current, builder.now)
            if not forfeit_batch(builder, current):
                raise PostingTooLarge("closure does not fit one transaction and has no "
                                      "points left to forfeit first", memberId=member_id)
            return builder.build()

        post(member_id, f"closure:{member_id}:forfeit", batch)


def _remove_coupons_beyond_closure(member_id: str, data: MemberData,
                                   build_builder) -> MemberData:
    """Unused coupons beyond what closure's own transaction removes are deleted first, in
    transactions of COUPONS_IN_CLOSURE, each conditional on the coupon still unused and
    the member still closable (open, not frozen, nothing blocking), like the points'
    batches. Returns `data` without them.

    Why first: each coupon is one item, and the closure posting must stay within
    DynamoDB's 100 items a transaction. Why not postings (as the points' batches are): an
    unused coupon carries no value, so its deletion needs no entry and no guard, and the
    member's version is checked, not moved. A failed condition or a conflict is what the
    ledger makes of it (`_batch_failure`): read the member and check again, so a hold or a
    freeze that came in between is refused as closure itself refuses it."""
    surplus = unused_coupons(data)[COUPONS_IN_CLOSURE:]
    if not surplus:
        return data
    version: int | None = None  # the member's, last found closable

    def delete(batch: list[Removal]) -> None:
        nonlocal version
        if version is None:
            state = read_live_range(member_id)
            ensure_closable(MemberData(member=state.member, lots=state.lots,
                                       holds=state.holds, consents=data.consents,
                                       other=data.other),
                            build_builder(state).now)
            version = state.member.version
        t = TransactWrite(connection=connection())
        t.condition_check(MemberItem, *MemberItem.key(member_id),
                          condition=MemberItem.version == version)
        for removal in batch:
            t.delete(MemberItem(member_pk(member_id), removal.key),
                     condition=MemberItem.status == "available")
        try:
            t._commit()
        except TransactWriteError as exc:
            version = None  # a retry reads and checks the member again
            raise _batch_failure(exc) from None

    gone = set()
    for start in range(0, len(surplus), COUPONS_IN_CLOSURE):
        batch = surplus[start:start + COUPONS_IN_CLOSURE]
        with_retries(lambda b=batch: delete(b), lambda: Unavailable(
            "the account changed while closing; try again", memberId=member_id))
        gone.update(r.key for r in batch)
    other = {**data.other, "coupon": [c for c in data.other.get("coupon", ())
                                      if c["SK"] not in gone]}
    return replace(data, other=other)


def _batch_failure(exc: TransactWriteError) -> Exception:
    """storage/ledger.py's translation, for a transaction whose every item is checked
    against a version or a status and has no refusal of its own: a cancellation (a
    condition failed, or a conflict) or a throttle is a Retry; anything else is raised."""
    code = exc.cause_response_code
    if code == "TransactionCanceledException" or code in RETRYABLE_CODES:
        return Retry()
    return exc


def _close_once(member_id: str, data: MemberData, build_builder) -> Outcome:
    """One transaction: the closure posting (forfeits, erasures, status), the deletions of
    the phone, subject and each part's items, and the guard with `member.closed` in its
    outbox. `data` is the partition as read before (items of later capabilities); the
    member, lots and holds come from the posting's own consistent read."""
    removals: dict[str, tuple] = {}

    def build(state: LedgerState):
        current = MemberData(member=state.member, lots=state.lots, holds=state.holds,
                             entries=data.entries, orders=data.orders,
                             consents=data.consents, audit=data.audit,
                             other=data.other)
        builder = build_builder(state)
        ensure_closable(current, builder.now)
        plan = close_account(builder, current)
        removals["items"] = plan.removals
        return builder.build()

    def extra(_posting):
        return tuple(_removal_item(member_id, r) for r in removals["items"])

    return post(member_id, closure_source_key(member_id), build, extra)

