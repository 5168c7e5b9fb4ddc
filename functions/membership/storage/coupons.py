"""Coupon templates, their stock shards, members' coupons and per-member counters.

PK                      SK                        item
COUPONTPL#<templateId>  TEMPLATE                  the template's spec and version
COUPONTPL#<templateId>  SHARD#<nn>                a stock shard: stock, remaining, issued,
                                                  redeemed, paused (a copy of the template's)
MEMBER#<id>             COUPON#<couponId>         a member's coupon (terms copied at issue)
MEMBER#<id>             COUPONCOUNT#<templateId>  how many of a template the member was issued

One Query of the template's partition reads the template and every shard. A claim is one
TransactWriteItems: the coupon (must not exist), one shard (`remaining > 0`, not paused),
the member's counter (below `perMemberLimit`), the member (must exist) and the guard.
Coupons sort before `HOLD#`, outside the ledger's live range: a posting never reads them.
"""
from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pynamodb.attributes import BooleanAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from membership.domain.coupons import (
    Coupon,
    CouponInUse,
    CouponLimitReached,
    CouponTemplateExists,
    CouponTemplateNotFound,
    CouponTerms,
    Shard,
    Template,
    TemplateSpec,
    issue,
    issued_event,
    pick_shard,
    stock_split,
)
from membership.domain.ledger import CouponMove, OutboundEvent, PayloadMismatch, Posting
from membership.domain.member_status import FROZEN, MemberFrozen
from membership.errors import DomainError, MemberNotFound, Unavailable
from membership.storage.ledger import RETRYABLE_CODES, ExtraItem, read_guard
from membership.storage.models import GuardItem, MemberItem, TimeAttribute, member_pk
from membership.storage.table import Retry, TableModel, connection, with_retries


def template_pk(template_id: str) -> str:
    return f"COUPONTPL#{template_id}"


class CouponTemplateItem(TableModel):
    document = UnicodeAttribute()  # the spec as JSON (stock: the figure at creation)
    created_at = TimeAttribute(attr_name="createdAt")
    version = NumberAttribute(default=0)
    shards = NumberAttribute()

    @staticmethod
    def key(template_id: str) -> tuple[str, str]:
        return template_pk(template_id), "TEMPLATE"

    @classmethod
    def from_domain(cls, t: Template) -> CouponTemplateItem:
        return cls(*cls.key(t.template_id), document=t.spec.model_dump_json(by_alias=True),
                   created_at=t.created_at, version=t.version, shards=t.shards)

    def to_domain(self) -> Template:
        return Template(spec=TemplateSpec.model_validate_json(self.document),
                        created_at=self.created_at, version=int(self.version),
                        shards=int(self.shards))


class CouponShardItem(TableModel):
    stock = NumberAttribute()
    remaining = NumberAttribute()
    issued = NumberAttribute(default=0)
    redeemed = NumberAttribute(default=0)
    paused = BooleanAttribute(default=False)

    @staticmethod
    def key(template_id: str, index: int) -> tuple[str, str]:
        return template_pk(template_id), f"SHARD#{index:02d}"

    def to_domain(self) -> Shard:
        return Shard(index=int(self.SK.removeprefix("SHARD#")), stock=int(self.stock),
                     remaining=int(self.remaining), issued=int(self.issued or 0),
                     redeemed=int(self.redeemed or 0), paused=bool(self.paused))


class CouponItem(TableModel):
    coupon_id = UnicodeAttribute(attr_name="couponId")
    member_id = UnicodeAttribute(attr_name="memberId")
    template_id = UnicodeAttribute(attr_name="templateId")
    terms = UnicodeAttribute()  # JSON of CouponTerms
    shard = NumberAttribute()
    source = UnicodeAttribute()
    status = UnicodeAttribute()
    issued_at = TimeAttribute(attr_name="issuedAt")
    valid_from = TimeAttribute(attr_name="validFrom")
    valid_until = TimeAttribute(attr_name="validUntil")
    order_id = UnicodeAttribute(attr_name="orderId", null=True)
    used_at = TimeAttribute(attr_name="usedAt", null=True)
    program_id = UnicodeAttribute(attr_name="programId", default="default")
    version = NumberAttribute(default=0)

    @staticmethod
    def key(member_id: str, coupon_id: str) -> tuple[str, str]:
        return member_pk(member_id), f"COUPON#{coupon_id}"

    @classmethod
    def from_domain(cls, c: Coupon) -> CouponItem:
        fields = c.model_dump(exclude={"terms"})
        return cls(*cls.key(c.member_id, c.coupon_id),
                   terms=c.terms.model_dump_json(by_alias=True), **fields)

    def to_domain(self) -> Coupon:
        return Coupon(
            coupon_id=self.coupon_id, member_id=self.member_id, template_id=self.template_id,
            terms=CouponTerms.model_validate_json(self.terms), shard=int(self.shard),
            source=self.source, status=self.status, issued_at=self.issued_at,
            valid_from=self.valid_from, valid_until=self.valid_until, order_id=self.order_id,
            used_at=self.used_at, version=int(self.version))


class CouponCountItem(TableModel):
    issued = NumberAttribute(default=0)

    @staticmethod
    def key(member_id: str, template_id: str) -> tuple[str, str]:
        return member_pk(member_id), f"COUPONCOUNT#{template_id}"


# ---- templates ----------------------------------------------------------------------

def read_template(template_id: str) -> tuple[Template, list[Shard]]:
    """The template and its shards: one strongly consistent Query."""
    conn = CouponTemplateItem._get_connection()
    template, shards, last = None, [], None
    while True:
        page = conn.query(template_pk(template_id), consistent_read=True,
                          exclusive_start_key=last)
        for raw in page.get("Items", []):
            sk = raw["SK"]["S"]
            if sk == "TEMPLATE":
                template = CouponTemplateItem.from_raw_data(raw).to_domain()
            elif sk.startswith("SHARD#"):
                shards.append(CouponShardItem.from_raw_data(raw).to_domain())
        last = page.get("LastEvaluatedKey")
        if not last:
            break
    if template is None:
        raise CouponTemplateNotFound(f"no coupon template {template_id}",
                                     templateId=template_id)
    return template, sorted(shards, key=lambda s: s.index)


def create_template(template: Template) -> None:
    """The template and its shards, in one transaction; refused if the id is taken."""
    t = TransactWrite(connection=connection())
    t.save(CouponTemplateItem.from_domain(template),
           condition=CouponTemplateItem.PK.does_not_exist())
    for index, stock in enumerate(stock_split(template.spec.stock, template.shards)):
        t.save(CouponShardItem(*CouponShardItem.key(template.template_id, index), stock=stock,
                               remaining=stock, issued=0, redeemed=0,
                               paused=template.spec.paused),
               condition=CouponShardItem.PK.does_not_exist())
    try:
        t._commit()
    except TransactWriteError as exc:
        codes = [r.code if r else None for r in exc.cancellation_reasons or []]
        if "ConditionalCheckFailed" in codes:
            raise CouponTemplateExists(f"coupon template {template.template_id} exists",
                                       templateId=template.template_id) from None
        raise Unavailable("the coupon template could not be written; try again") from None


def update_template(before: Template, spec: TemplateSpec, shard_deltas: dict[int, int],
                    shards: list[Shard], pause_changed: bool) -> Template:
    """New spec (version-checked), stock deltas per shard (a cut only from remaining), and
    the paused flag copied onto every shard: one transaction."""
    after = before.model_copy(update={"spec": spec, "version": before.version + 1})
    t = TransactWrite(connection=connection())
    t.update(CouponTemplateItem(*CouponTemplateItem.key(before.template_id)),
             actions=[CouponTemplateItem.document.set(spec.model_dump_json(by_alias=True)),
                      CouponTemplateItem.version.set(after.version)],
             condition=CouponTemplateItem.version == before.version)
    for shard in shards:
        delta = shard_deltas.get(shard.index, 0)
        if not delta and not pause_changed:
            continue
        actions = []
        condition = CouponShardItem.PK.exists()
        if delta:
            actions += [CouponShardItem.stock.add(delta), CouponShardItem.remaining.add(delta)]
            if delta < 0:
                condition &= CouponShardItem.remaining >= -delta
        if pause_changed:
            actions.append(CouponShardItem.paused.set(spec.paused))
        t.update(CouponShardItem(*CouponShardItem.key(before.template_id, shard.index)),
                 actions=actions, condition=condition)
    try:
        t._commit()
    except TransactWriteError:
        # A claim took stock meanwhile or another edit moved the version: plan again.
        raise Retry() from None
    return after


# ---- claims -------------------------------------------------------------------------

@dataclass(frozen=True)
class ClaimOutcome:
    result: dict
    replayed: bool


def issue_items(coupons: list[Coupon], limit: int,
                on_limit: Callable[[], Exception] | None = None) -> tuple[ExtraItem, ...]:
    """The items that issue `coupons` (one template, one member): each coupon, each shard's
    decrement by what it gives (`remaining >= k`, not paused), and the member's counter
    (`issued + n <= perMemberLimit`). One update per item, so a transaction stays valid.

    Used by claims and by postings that issue coupons (gift packs): every issue keeps the
    stock and the per-member limit exact.
    """
    first = coupons[0]
    template_id, member_id, n = first.template_id, first.member_id, len(coupons)
    items = [ExtraItem(model=CouponItem.from_domain(c), condition=CouponItem.PK.does_not_exist(),
                       on_condition_failed=Retry) for c in coupons]
    per_shard: dict[int, int] = {}
    for c in coupons:
        per_shard[c.shard] = per_shard.get(c.shard, 0) + 1
    for index, k in sorted(per_shard.items()):
        items.append(ExtraItem(
            model=CouponShardItem(*CouponShardItem.key(template_id, index)),
            actions=[CouponShardItem.remaining.add(-k), CouponShardItem.issued.add(k)],
            condition=(CouponShardItem.remaining >= k) & (CouponShardItem.paused == False),  # noqa: E712
            on_condition_failed=lambda i=index: ShardEmpty(template_id, i)))
    items.append(ExtraItem(
        model=CouponCountItem(*CouponCountItem.key(member_id, template_id)),
        actions=[CouponCountItem.issued.add(n)],
        condition=_counter_condition(n, limit),
        on_condition_failed=on_limit or (lambda: CouponLimitReached(
            f"the member holds the most coupons of {template_id} allowed",
            templateId=template_id, perMemberLimit=limit))))
    return tuple(items)


def _counter_condition(n: int, limit: int):
    if n > limit:
        raise ValueError("more coupons than the per-member limit in one issue")
    return CouponCountItem.issued.does_not_exist() | (CouponCountItem.issued <= limit - n)


class ShardEmpty(Retry):
    """The shard chosen ran dry (or was paused) between the read and the write. A Retry:
    a posting issuing gift-pack or granted coupons is built again and sees the stock."""

    def __init__(self, template_id: str, index: int) -> None:
        super().__init__(f"{template_id} shard {index} is empty")
        self.template_id, self.index = template_id, index


def commit_claim(coupon: Coupon, limit: int, source_key: str, payload: str, result: dict,
                 events: list[dict]) -> None:
    """One TransactWriteItems: member check, guard, coupon, shard, counter."""
    t = TransactWrite(connection=connection())
    plan: list[tuple[str, Callable[[], Exception] | None]] = []
    # A frozen member may not claim (domain/member_status.py); checked in the transaction
    # so a freeze that lands between our read and commit still refuses the claim.
    t.condition_check(MemberItem, *MemberItem.key(coupon.member_id),
                      condition=MemberItem.PK.exists() & (
                          MemberItem.status.does_not_exist() | (MemberItem.status != FROZEN)))
    checks = [("member", lambda: _member_refusal(coupon.member_id))]
    t.save(GuardItem(*GuardItem.key(source_key), source_type="coupon.claim",
                     member_id=coupon.member_id, created_at=coupon.issued_at,
                     result=json.dumps(result, sort_keys=True, default=str),
                     outbox=[{"detailType": e["detailType"],
                              "detail": json.dumps(e["detail"], sort_keys=True)}
                             for e in events] or None,
                     payload_hash=payload),
           condition=GuardItem.PK.does_not_exist())
    puts: list[tuple[str, Callable[[], Exception] | None]] = [("guard", None)]
    updates: list[tuple[str, Callable[[], Exception] | None]] = []
    for item in issue_items([coupon], limit):
        if item.actions is not None:
            t.update(item.model, actions=item.actions, condition=item.condition)
            updates.append(("extra", item.on_condition_failed))
        else:
            t.save(item.model, condition=item.condition)
            puts.append(("extra", item.on_condition_failed))
    plan = checks + puts + updates
    try:
        t._commit()
    except TransactWriteError as exc:
        if exc.cause_response_code != "TransactionCanceledException":
            if exc.cause_response_code in RETRYABLE_CODES:
                raise Retry() from None
            raise
        codes = [r.code if r else None for r in exc.cancellation_reasons or []]
        if any(c in RETRYABLE_CODES for c in codes if c):
            raise Retry() from None
        for (kind, on_failed), code in zip(plan, codes):
            if code != "ConditionalCheckFailed":
                continue
            if kind == "guard":
                raise AlreadyClaimed() from None
            if on_failed is not None:
                raise on_failed() from None
        raise Retry() from None


def _member_refusal(member_id: str) -> Exception:
    """Why the member check failed: no member, or a frozen one."""
    try:
        item = MemberItem.get(*MemberItem.key(member_id), consistent_read=True)
    except MemberItem.DoesNotExist:
        return MemberNotFound("no member for this subject; sign up first")
    if item.status == FROZEN:
        return MemberFrozen(
            "this member is frozen: coupon claims are refused until an operator unfreezes "
            "the account", memberId=member_id, action="coupon_claim")
    return Retry()


class AlreadyClaimed(Exception):
    """The guard exists: this Idempotency-Key was used before."""


def claim(template_id: str, member_id: str, source_key: str, payload: str,
          check: Callable[[Template], None],
          make: Callable[[Template, list[Shard], Shard], tuple[Coupon, int, dict, list[dict]]],
          ) -> ClaimOutcome:
    """Read the template (one Query), pick a shard with stock, commit; retry on a conflict
    or a shard that ran dry (re-reading, so an empty template ends as out of stock)."""
    rng = random.Random()

    def attempt() -> ClaimOutcome:
        template, shards = read_template(template_id)
        try:
            check(template)
            shard = pick_shard(shards, rng.randrange(1 << 30))
        except DomainError:
            # A refusal may answer a retry whose first attempt took the last coupon.
            replay = _replay(source_key, payload)
            if replay is not None:
                return replay
            raise
        coupon, limit, result, events = make(template, shards, shard)
        try:
            commit_claim(coupon, limit, source_key, payload, result, events)
        except AlreadyClaimed:
            replay = _replay(source_key, payload)
            if replay is None:
                raise Retry() from None
            return replay
        except ShardEmpty:
            raise Retry() from None
        except (CouponLimitReached, MemberFrozen):
            # A claim made before the freeze is answered again, not refused.
            replay = _replay(source_key, payload)
            if replay is not None:
                return replay
            raise
        return ClaimOutcome(result=result, replayed=False)

    return with_retries(attempt, lambda: Unavailable(
        "coupon stock stayed busy; try again", templateId=template_id))


def _replay(source_key: str, payload: str) -> ClaimOutcome | None:
    guard = read_guard(source_key)
    if guard is None:
        return None
    if guard.payload_hash and guard.payload_hash != payload:
        raise PayloadMismatch("this Idempotency-Key was used to claim another template; "
                              "use a new key")
    return ClaimOutcome(result=guard.result_dict(), replayed=True)


# ---- members' coupons ---------------------------------------------------------------

def coupons_page(member_id: str, limit: int, cursor: dict | None, *,
                 status_filter=None) -> tuple[list[Coupon], dict | None]:
    """A page of the member's coupons, newest first; `status_filter` narrows them
    (a FilterExpression: a page may hold fewer than `limit`, the cursor goes on)."""
    kwargs = {}
    if status_filter is not None:
        kwargs["filter_condition"] = status_filter
    results = CouponItem.query(member_pk(member_id), CouponItem.SK.startswith("COUPON#"),
                               scan_index_forward=False, limit=limit, page_size=limit,
                               last_evaluated_key=cursor, **kwargs)
    coupons = [item.to_domain() for item in results]
    return coupons, results.last_evaluated_key


def member_coupons(member_id: str) -> list[Coupon]:
    """Every coupon a member holds that is not used (a checkout's one Query)."""
    return [item.to_domain() for item in CouponItem.query(
        member_pk(member_id), CouponItem.SK.startswith("COUPON#"), consistent_read=True,
        filter_condition=CouponItem.status != "used")]


def all_coupons(member_id: str) -> list[Coupon]:
    """Every coupon the member was ever issued (the operator's summary; one Query)."""
    return [item.to_domain() for item in CouponItem.query(
        member_pk(member_id), CouponItem.SK.startswith("COUPON#"))]


def get_coupon(member_id: str, coupon_id: str) -> Coupon | None:
    try:
        return CouponItem.get(*CouponItem.key(member_id, coupon_id),
                              consistent_read=True).to_domain()
    except CouponItem.DoesNotExist:
        return None


def get_coupons(member_id: str, coupon_ids: list[str]) -> dict[str, Coupon]:
    """The named coupons of a member (one BatchGetItem)."""
    if not coupon_ids:
        return {}
    keys = [CouponItem.key(member_id, cid) for cid in coupon_ids]
    return {item.coupon_id: item.to_domain()
            for item in CouponItem.batch_get(keys, consistent_read=True)}


def move_items(member_id: str, move: CouponMove, now: datetime) -> tuple[ExtraItem, ...]:
    """A posting's coupon move: the coupon's conditional update, and the template's
    redeemed count when a coupon becomes used (+1) or a used one comes back (-1)."""
    c = move.coupon
    actions = [CouponItem.status.set(move.to_status), CouponItem.version.add(1)]
    condition = CouponItem.status == move.from_status
    if move.from_status != "available":
        condition &= CouponItem.order_id == move.order_id
    if move.to_status == "available":
        actions += [CouponItem.order_id.remove(), CouponItem.used_at.remove()]
    else:
        actions.append(CouponItem.order_id.set(move.order_id))
    if move.to_status == "used":
        actions.append(CouponItem.used_at.set(now))
    if move.from_status == "available" and move.to_status == "held":
        on_failed = lambda: CouponInUse(  # noqa: E731
            f"coupon {c.coupon_id} is held or used by another order", couponId=c.coupon_id,
            reason="status")
    else:
        on_failed = lambda: CouponInUse(  # noqa: E731
            f"coupon {c.coupon_id} changed under this order", couponId=c.coupon_id,
            reason="status")
    items = [ExtraItem(model=CouponItem(*CouponItem.key(member_id, c.coupon_id)),
                       actions=actions, condition=condition & CouponItem.PK.exists(),
                       on_condition_failed=on_failed)]
    delta = (1 if move.to_status == "used" else 0) - (1 if move.from_status == "used" else 0)
    if delta:
        items.append(ExtraItem(
            model=CouponShardItem(*CouponShardItem.key(c.template_id, c.shard)),
            actions=[CouponShardItem.redeemed.add(delta)],
            condition=CouponShardItem.PK.exists(), on_condition_failed=Retry))
    return tuple(items)


def _issued_to(member_id: str, template_id: str) -> int:
    try:
        item = CouponCountItem.get(*CouponCountItem.key(member_id, template_id),
                                   consistent_read=True)
    except CouponCountItem.DoesNotExist:
        return 0
    return int(item.issued or 0)


def resolve_issues(posting: Posting) -> tuple[Posting, tuple[ExtraItem, ...]]:
    """A posting's gift-pack coupons against their templates (one Query each, and the
    member's counter): what can be issued becomes items of the posting's transaction; what
    cannot (template missing, paused, out of stock, the member at its limit) is reported
    in the result under `giftCoupons.notIssued` and counted by the metric
    GiftCouponsNotIssued, and never blocks the rest of the posting. A shard that runs dry
    before the commit fails its condition: the posting is built again and sees it."""
    from membership.observability import logger, metrics
    from membership.storage.program import load_program

    tz = load_program().time_zone
    member_id = posting.member.member_id
    now = posting.created_at
    items: list[ExtraItem] = []
    issued: list[Coupon] = []
    missed: list[dict] = []
    for n, grant in enumerate(posting.coupon_issues):
        try:
            template, shards = read_template(grant.template_id)
        except CouponTemplateNotFound:
            missed.append({"templateId": grant.template_id, "quantity": grant.quantity,
                           "reason": "template_not_found"})
            continue
        spec = template.spec
        room = spec.per_member_limit - _issued_to(member_id, grant.template_id)
        left = {s.index: (0 if s.paused else s.remaining) for s in shards}
        batch: list[Coupon] = []
        reason = None
        for i in range(grant.quantity):
            if spec.paused:
                reason = "paused"
                break
            if len(batch) >= room:
                reason = "limit_reached"
                break
            open_ = [index for index, r in sorted(left.items()) if r > 0]
            if not open_:
                reason = "out_of_stock"
                break
            # Deterministic per posting, spread over the shards.
            index = open_[(sum(posting.source_key.encode()) + n + i) % len(open_)]
            left[index] -= 1
            batch.append(issue(template, member_id, shard=index, source=grant.source,
                               source_key=f"{posting.source_key}#{n}#{i}", now=now, tz=tz))
        if reason is not None:
            missed.append({"templateId": grant.template_id,
                           "quantity": grant.quantity - len(batch), "reason": reason})
        if batch:
            items += issue_items(batch, spec.per_member_limit, on_limit=Retry)
            issued += batch
    if missed:
        logger.warning("gift-pack coupons not issued", extra={"missed": missed,
                                                             "source": posting.source_key})
        metrics.add_metric(name="GiftCouponsNotIssued", unit="Count",
                           value=sum(m["quantity"] for m in missed))
    events = [OutboundEvent(detail_type="coupon.issued", detail=issued_event(c, tz))
              for c in issued]
    result = {**posting.result, "giftCoupons": {
        "issued": [{"couponId": c.coupon_id, "templateId": c.template_id} for c in issued],
        "notIssued": missed}}
    return posting.model_copy(update={"events": (*posting.events, *events),
                                      "result": result}), tuple(items)


def seed_default_templates(now: datetime) -> list[str]:
    """Store the default program's templates that are not there yet; the ids written."""
    from membership.domain.coupons import default_templates

    written = []
    for spec in default_templates():
        try:
            create_template(Template(spec=spec, created_at=now))
        except CouponTemplateExists:
            continue
        written.append(spec.template_id)
    return written
