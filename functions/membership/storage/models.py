"""Item types of the single table. Each model owns its key construction.

PK                 SK                          item
MEMBER#<id>        MEMBER                      the member: profile, tier, balances, growth months, check-in calendar
MEMBER#<id>        HOLD#<holdId>               an open hold
MEMBER#<id>        LOT#<expiresAt>#<lotId>     a live points lot (sorted soonest-expiring first)
MEMBER#<id>        ENTRY#<asset>#<entryId>     an immutable ledger entry (newest last)
MEMBER#<id>        RECORD#HOLD#<holdId>        a closed hold, kept out of the live range
MEMBER#<id>        ORDER#<orderId>             a paid order's settlement (for refunds)
MEMBER#<id>        COUPON#<couponId>           a coupon (storage/coupons.py, with templates)
PHONE#<e164>       PHONE                       phone uniqueness
SUBJECT#<sub>      SUBJECT                     one member per JWT subject
SOURCE#<key>       SOURCE                      guard: the effect of <key> happened (+ outbox)
MEMBER#<id>        TAG#<tag>                   a tag the member carries (storage/tags.py)
PROGRAM            CURRENT                     the program's rules
MEMBER#<id>        CONSENT#<at>#<purpose>#<n>  a consent statement (storage/consents.py)

A posting reads the live range of a member's partition in one query:
SK BETWEEN 'HOLD#' AND 'MEMBER' returns open holds, live lots and the member item.
"""
from __future__ import annotations

import json

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
)
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection

from membership.domain import calendar
from membership.domain.aggregates import OrderStats
from membership.domain.ledger import Entry, HeldCoupon, Hold, Lot, LotTake
from membership.domain.members import Member, PaidPlanState
from membership.domain.tag_rules import TagMark
from membership.storage.table import TableModel

LIVE_RANGE = ("HOLD#", "MEMBER")


def member_pk(member_id: str) -> str:
    return f"MEMBER#{member_id}"


class TimeAttribute(UnicodeAttribute):
    """UTC instants as fixed-width ISO strings, so they sort and compare as text."""

    def serialize(self, value):
        return calendar.iso(value)

    def deserialize(self, value):
        return calendar.parse_iso(value)


class LotTakeMap(MapAttribute):
    lot_id = UnicodeAttribute(attr_name="l")
    expires_at = TimeAttribute(attr_name="x")
    amount = NumberAttribute(attr_name="a")


def _takes_to_storage(takes: tuple[LotTake, ...]) -> list[LotTakeMap]:
    return [LotTakeMap(lot_id=t.lot_id, expires_at=t.expires_at, amount=t.amount) for t in takes]


def _takes_from_storage(items) -> tuple[LotTake, ...]:
    return tuple(LotTake(lot_id=t.lot_id, expires_at=t.expires_at, amount=int(t.amount))
                 for t in items or [])


class HeldCouponMap(MapAttribute):
    coupon_id = UnicodeAttribute(attr_name="c")
    template_id = UnicodeAttribute(attr_name="t")
    shard = NumberAttribute(attr_name="s")


class PaidPlanMap(MapAttribute):
    plan_id = UnicodeAttribute()
    started_at = TimeAttribute()
    ends_at = TimeAttribute()


class MemberItem(TableModel):
    member_id = UnicodeAttribute(attr_name="memberId")
    # Personal data: removed when the account is closed (domain/privacy.py).
    subject = UnicodeAttribute(null=True)
    phone = UnicodeAttribute(null=True)
    nickname = UnicodeAttribute(null=True)
    channel = UnicodeAttribute()
    store_id = UnicodeAttribute(attr_name="storeId", null=True)
    referral_code = UnicodeAttribute(attr_name="referralCode", null=True)
    created_at = TimeAttribute(attr_name="createdAt")
    updated_at = TimeAttribute(attr_name="updatedAt")
    tier_id = UnicodeAttribute(attr_name="tier")
    tier_since = TimeAttribute(attr_name="tierSince")
    version = NumberAttribute()
    balance_principal = NumberAttribute(attr_name="balP")
    balance_bonus = NumberAttribute(attr_name="balB")
    points_available = NumberAttribute(attr_name="ptsA")
    points_pending = NumberAttribute(attr_name="ptsP")
    points_next_expiry_at = TimeAttribute(attr_name="ptsNextAt", null=True)
    points_next_expiry_amount = NumberAttribute(attr_name="ptsNext", default=0)
    growth_months = MapAttribute(attr_name="growth", default=dict)
    paid_plan = PaidPlanMap(attr_name="plan", null=True)
    topup_total = NumberAttribute(attr_name="topupTotal", default=0)
    topup_day = UnicodeAttribute(attr_name="topupDay", null=True)
    topup_day_amount = NumberAttribute(attr_name="topupDayAmt", default=0)
    settled_period = UnicodeAttribute(attr_name="settled", null=True)
    status = UnicodeAttribute(default="active")
    closed_at = TimeAttribute(attr_name="closedAt", null=True)
    retain_until = TimeAttribute(attr_name="retainUntil", null=True)
    birthday = UnicodeAttribute(null=True)
    gender = UnicodeAttribute(null=True)
    marketing_consent = BooleanAttribute(attr_name="mktConsent", default=True)
    marketing_consent_at = TimeAttribute(attr_name="mktConsentAt", null=True)
    status_reason = UnicodeAttribute(attr_name="statusReason", null=True)
    status_changed_at = TimeAttribute(attr_name="statusChangedAt", null=True)
    # Check-in calendar: month -> days mask | make-up mask << 32 (domain/checkins.py).
    checkin_months = MapAttribute(attr_name="ci", default=dict)
    checkin_since = UnicodeAttribute(attr_name="ciSince", null=True)
    checkin_carry = NumberAttribute(attr_name="ciCarry", default=0)
    points_debt = NumberAttribute(attr_name="ptsDebt", default=0)
    bonus_debt = NumberAttribute(attr_name="balBDebt", default=0)
    tier_gifts = MapAttribute(attr_name="tierGifts", default=dict)
    birthday_gift_year = NumberAttribute(attr_name="bdayGiftYear", null=True)
    # Order aggregates and tags as JSON (domain/aggregates.py, domain/tags.py).
    order_stats = UnicodeAttribute(attr_name="ordStats", null=True)
    tags = UnicodeAttribute(null=True)

    @staticmethod
    def key(member_id: str) -> tuple[str, str]:
        return member_pk(member_id), "MEMBER"

    @classmethod
    def from_domain(cls, m: Member) -> MemberItem:
        pk, sk = cls.key(m.member_id)
        plan = None
        if m.paid_plan is not None:
            plan = PaidPlanMap(plan_id=m.paid_plan.plan_id, started_at=m.paid_plan.started_at,
                               ends_at=m.paid_plan.ends_at)
        fields = m.model_dump(exclude={"paid_plan", "growth_months", "checkin_months",
                                       "tier_gifts", "order_stats", "tags"})
        growth = {k: v for k, v in m.growth_months.items() if v}
        checkins = {k: v for k, v in m.checkin_months.items() if v}
        return cls(pk, sk, paid_plan=plan, growth_months=growth, checkin_months=checkins,
                   tier_gifts=dict(m.tier_gifts), order_stats=stats_json(m.order_stats),
                   tags=tags_json(m.tags), **fields)

    @classmethod
    def changed_actions(cls, before: Member, after: Member) -> list:
        """UpdateItem actions for the fields `after` changed: nothing else is written, so
        a profile edit that landed since `before` was read is kept (docs/money.md)."""
        item = cls.from_domain(after)
        actions = []
        for name in Member.model_fields:
            if getattr(before, name) == getattr(after, name):
                continue
            attribute = getattr(cls, name)
            value = getattr(item, name)
            if value is None:
                actions.append(attribute.remove())
            elif isinstance(value, MapAttribute) and not isinstance(value, PaidPlanMap):
                actions.append(attribute.set(value.as_dict()))
            else:
                actions.append(attribute.set(value))
        return actions

    def to_domain(self) -> Member:
        plan = None
        if self.paid_plan is not None:
            plan = PaidPlanState(plan_id=self.paid_plan.plan_id,
                                 started_at=self.paid_plan.started_at,
                                 ends_at=self.paid_plan.ends_at)
        growth = self.growth_months.as_dict() if isinstance(
            self.growth_months, MapAttribute) else dict(self.growth_months or {})
        checkins = self.checkin_months.as_dict() if isinstance(
            self.checkin_months, MapAttribute) else dict(self.checkin_months or {})
        return Member(
            member_id=self.member_id, subject=self.subject, phone=self.phone,
            # Items whose nickname a `null` edit removed (before that was refused) stay readable;
            # a closed account's is erased (domain/privacy.py).
            nickname=self.nickname if self.status == "closed" else self.nickname or "",
            channel=self.channel, store_id=self.store_id,
            referral_code=self.referral_code, created_at=self.created_at,
            updated_at=self.updated_at, tier_id=self.tier_id, tier_since=self.tier_since,
            version=int(self.version), balance_principal=int(self.balance_principal),
            balance_bonus=int(self.balance_bonus), points_available=int(self.points_available),
            points_pending=int(self.points_pending),
            points_next_expiry_at=self.points_next_expiry_at,
            points_next_expiry_amount=int(self.points_next_expiry_amount or 0),
            growth_months={k: int(v) for k, v in growth.items()}, paid_plan=plan,
            topup_total=int(self.topup_total or 0), topup_day=self.topup_day,
            topup_day_amount=int(self.topup_day_amount or 0), settled_period=self.settled_period,
            status=self.status or "active", status_reason=self.status_reason,
            status_changed_at=self.status_changed_at,
            checkin_months={k: int(v) for k, v in checkins.items()},
            checkin_since=self.checkin_since, checkin_carry=int(self.checkin_carry or 0),
            points_debt=int(self.points_debt or 0), bonus_debt=int(self.bonus_debt or 0),
            tier_gifts=_plain_map(self.tier_gifts),
            birthday_gift_year=(int(self.birthday_gift_year)
                                if self.birthday_gift_year is not None else None),
            order_stats=stats_from_json(self.order_stats), tags=tags_from_json(self.tags),
            closed_at=self.closed_at, retain_until=self.retain_until,
            birthday=self.birthday, gender=self.gender,
            marketing_consent=self.marketing_consent is not False,
            marketing_consent_at=self.marketing_consent_at,
        )


def stats_json(stats: OrderStats) -> str:
    return stats.model_dump_json()


def stats_from_json(text: str | None) -> OrderStats:
    # A member item from before aggregates existed: incomplete until the backfill.
    return OrderStats.model_validate_json(text) if text else OrderStats()


def tags_json(tags: dict[str, TagMark]) -> str | None:
    if not tags:
        return None
    return json.dumps({t: {"s": m.source, "at": calendar.iso(m.since)}
                       for t, m in sorted(tags.items())}, separators=(",", ":"))


def tags_from_json(text: str | None) -> dict[str, TagMark]:
    if not text:
        return {}
    return {t: TagMark(source=v["s"], since=calendar.parse_iso(v["at"]))
            for t, v in json.loads(text).items()}


def _plain_map(value) -> dict:
    if isinstance(value, MapAttribute):
        return value.as_dict()
    return dict(value or {})


class PhoneItem(TableModel):
    member_id = UnicodeAttribute(attr_name="memberId")
    subject = UnicodeAttribute()

    @staticmethod
    def key(e164: str) -> tuple[str, str]:
        return f"PHONE#{e164}", "PHONE"


class SubjectItem(TableModel):
    member_id = UnicodeAttribute(attr_name="memberId")

    @staticmethod
    def key(subject: str) -> tuple[str, str]:
        return f"SUBJECT#{subject}", "SUBJECT"


class GuardItem(TableModel):
    """The effect of a source happened: written once, in the effect's own transaction."""

    source_type = UnicodeAttribute(attr_name="sourceType")
    member_id = UnicodeAttribute(attr_name="memberId", null=True)
    created_at = TimeAttribute(attr_name="createdAt")
    result = UnicodeAttribute(null=True)  # JSON: what the first request was answered
    outbox = ListAttribute(null=True)  # events to publish: [{"detailType", "detail"}]
    payload_hash = UnicodeAttribute(attr_name="payload", null=True)  # what the source asked

    @staticmethod
    def key(source_key: str) -> tuple[str, str]:
        return f"SOURCE#{source_key}", "SOURCE"

    def result_dict(self) -> dict:
        return json.loads(self.result) if self.result else {}


class EntryItem(TableModel):
    entry_id = UnicodeAttribute(attr_name="entryId")
    member_id = UnicodeAttribute(attr_name="memberId")
    asset = UnicodeAttribute()
    bucket = UnicodeAttribute()
    amount = NumberAttribute()
    balance_after = NumberAttribute(attr_name="after")
    source_type = UnicodeAttribute(attr_name="sourceType")
    source_key = UnicodeAttribute(attr_name="sourceKey")
    reason = UnicodeAttribute()
    actor = UnicodeAttribute()
    created_at = TimeAttribute(attr_name="createdAt")
    effective_at = TimeAttribute(attr_name="effectiveAt")
    reverses = UnicodeAttribute(null=True)
    hold_id = UnicodeAttribute(attr_name="holdId", null=True)
    lot_id = UnicodeAttribute(attr_name="lotId", null=True)
    lots = ListAttribute(of=LotTakeMap, null=True)

    @staticmethod
    def key(member_id: str, asset: str, entry_id: str) -> tuple[str, str]:
        return member_pk(member_id), f"ENTRY#{asset}#{entry_id}"

    @classmethod
    def from_domain(cls, e: Entry) -> EntryItem:
        pk, sk = cls.key(e.member_id, e.asset, e.entry_id)
        fields = e.model_dump(exclude={"lots"})
        return cls(pk, sk, lots=_takes_to_storage(e.lots) or None, **fields)

    def to_domain(self) -> Entry:
        return Entry(
            entry_id=self.entry_id, member_id=self.member_id, asset=self.asset,
            bucket=self.bucket, amount=int(self.amount), balance_after=int(self.balance_after),
            source_type=self.source_type, source_key=self.source_key, reason=self.reason,
            actor=self.actor, created_at=self.created_at, effective_at=self.effective_at,
            reverses=self.reverses, hold_id=self.hold_id, lot_id=self.lot_id,
            lots=_takes_from_storage(self.lots),
        )


class LotItem(TableModel):
    lot_id = UnicodeAttribute(attr_name="lotId")
    member_id = UnicodeAttribute(attr_name="memberId")
    amount = NumberAttribute()
    remaining = NumberAttribute()
    earned_at = TimeAttribute(attr_name="earnedAt")
    available_at = TimeAttribute(attr_name="availableAt", null=True)
    expires_at = TimeAttribute(attr_name="expiresAt")
    pending = BooleanAttribute(default=False)
    source_key = UnicodeAttribute(attr_name="sourceKey")
    version = NumberAttribute(default=0)

    @staticmethod
    def key(member_id: str, expires_at, lot_id: str) -> tuple[str, str]:
        return member_pk(member_id), f"LOT#{calendar.iso(expires_at)}#{lot_id}"

    # Sparse index of pending lots by the time they become available (return window).
    GSI1PK = UnicodeAttribute(null=True)
    GSI1SK = UnicodeAttribute(null=True)

    @classmethod
    def from_domain(cls, lot: Lot) -> LotItem:
        pk, sk = cls.key(lot.member_id, lot.expires_at, lot.lot_id)
        item = cls(pk, sk, **lot.model_dump())
        if lot.pending and lot.available_at is not None:
            item.GSI1PK = f"{DUE_PENDING}#{hash_shard(lot.member_id)}"
            item.GSI1SK = f"{calendar.iso(lot.available_at)}#{lot.member_id}#{lot.lot_id}"
        return item

    def to_domain(self) -> Lot:
        return Lot(
            lot_id=self.lot_id, member_id=self.member_id, amount=int(self.amount),
            remaining=int(self.remaining), earned_at=self.earned_at,
            available_at=self.available_at, expires_at=self.expires_at,
            pending=bool(self.pending), source_key=self.source_key, version=int(self.version),
        )


class HoldItem(TableModel):
    hold_id = UnicodeAttribute(attr_name="holdId")
    member_id = UnicodeAttribute(attr_name="memberId")
    source_key = UnicodeAttribute(attr_name="sourceKey")
    status = UnicodeAttribute()
    created_at = TimeAttribute(attr_name="createdAt")
    expires_at = TimeAttribute(attr_name="expiresAt")
    principal = NumberAttribute(default=0)
    bonus = NumberAttribute(default=0)
    points = NumberAttribute(default=0)
    lots = ListAttribute(of=LotTakeMap, null=True)
    closed_by = UnicodeAttribute(attr_name="closedBy", null=True)
    version = NumberAttribute(default=0)
    coupons = ListAttribute(of=HeldCouponMap, null=True)  # coupons the hold locks
    # Sparse index of open holds by expiry, so a sweep finds the ones that lapsed.
    GSI1PK = UnicodeAttribute(null=True)
    GSI1SK = UnicodeAttribute(null=True)

    @staticmethod
    def key(member_id: str, hold_id: str, *, closed: bool = False) -> tuple[str, str]:
        return member_pk(member_id), ("RECORD#HOLD#" if closed else "HOLD#") + hold_id

    @classmethod
    def from_domain(cls, h: Hold) -> HoldItem:
        closed = h.status != "held"
        pk, sk = cls.key(h.member_id, h.hold_id, closed=closed)
        coupons = [HeldCouponMap(coupon_id=c.coupon_id, template_id=c.template_id, shard=c.shard)
                   for c in h.coupons] or None
        item = cls(pk, sk, lots=_takes_to_storage(h.lots) or None, coupons=coupons,
                   **h.model_dump(exclude={"lots", "coupons"}))
        if not closed:
            item.GSI1PK = f"{DUE_HOLDS}#{hash_shard(h.member_id)}"
            item.GSI1SK = f"{calendar.iso(h.expires_at)}#{h.member_id}#{h.hold_id}"
        return item

    def to_domain(self) -> Hold:
        return Hold(
            hold_id=self.hold_id, member_id=self.member_id, source_key=self.source_key,
            status=self.status, created_at=self.created_at, expires_at=self.expires_at,
            principal=int(self.principal), bonus=int(self.bonus), points=int(self.points),
            lots=_takes_from_storage(self.lots), closed_by=self.closed_by,
            version=int(self.version),
            coupons=tuple(HeldCoupon(coupon_id=c.coupon_id, template_id=c.template_id,
                                     shard=int(c.shard)) for c in self.coupons or ()),
        )


class OrderItem(TableModel):
    """A paid order's settlement, line by line, as JSON; refunds advance it by version."""

    order_id = UnicodeAttribute(attr_name="orderId")
    member_id = UnicodeAttribute(attr_name="memberId")
    document = UnicodeAttribute()
    version = NumberAttribute(default=0)

    @staticmethod
    def key(member_id: str, order_id: str) -> tuple[str, str]:
        return member_pk(member_id), f"ORDER#{order_id}"


class ProgramItem(TableModel):
    document = UnicodeAttribute()
    updated_at = TimeAttribute(attr_name="updatedAt")
    version = NumberAttribute(default=0)
    updated_by = UnicodeAttribute(attr_name="updatedBy", null=True)  # operator's JWT sub

    @staticmethod
    def key() -> tuple[str, str]:
        return "PROGRAM", "CURRENT"


HOLD_SHARDS = 16
DUE_SHARDS = HOLD_SHARDS
DUE_HOLDS = "HOLDS"  # GSI1PK prefix: open holds by expiry
DUE_PENDING = "PENDING"  # GSI1PK prefix: pending lots by the end of their return window


def hash_shard(member_id: str, shards: int = HOLD_SHARDS) -> int:
    """A stable shard, so no single index partition takes every write."""
    return sum(member_id.encode()) % shards


class DueIndex(GlobalSecondaryIndex):
    """GSI1: work that falls due at a time, `GSI1SK` = `<dueAt>#<memberId>#<id>`."""

    class Meta:
        index_name = "GSI1"
        projection = KeysOnlyProjection()

    GSI1PK = UnicodeAttribute(hash_key=True)
    GSI1SK = UnicodeAttribute(range_key=True)


class DueItem(TableModel):
    """Any item in GSI1, read through its keys only (open holds, pending lots)."""

    GSI1PK = UnicodeAttribute(null=True)
    GSI1SK = UnicodeAttribute(null=True)
    due = DueIndex()

    def due_parts(self) -> tuple[str, str, str]:
        """(due at, member id, hold or lot id)"""
        due_at, member_id, item_id = self.GSI1SK.split("#", 2)
        return due_at, member_id, item_id
