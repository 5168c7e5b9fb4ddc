"""Paid-plan subscriptions and their terms, in the member's partition.

PK             SK                                 item
MEMBER#<id>    SUBSCRIPTION#<planId>              the member's run of a plan: autoRenew, term count
MEMBER#<id>    SUBSCRIPTION#<planId>#TERM#<nnnn>  one term: price, payment, dates, benefits used

Both sort after `MEMBER`, outside the live range a posting reads, and one Query with the
prefix `SUBSCRIPTION#` returns a member's whole paid-plan history. A purchase writes its
term and the subscription item as extra items of the ledger posting that debits the balance
(if paid from it) and moves the member's `paid_plan`: one TransactWriteItems. The
subscription item's `terms` count is the version that serialises two purchases.

The subscription item's `counted` says whether the member is counted in the plan's usage
counter (`USAGE#plan#<planId>`, storage/usage.py): the program's PUT refuses to remove a
plan someone has an active run of (domain/plan_usage.py has the rules). The first
purchase of a run adds 1 and sets it; an extension finds it set and adds nothing.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

from pynamodb.attributes import BooleanAttribute, NumberAttribute, UnicodeAttribute

from membership.domain.ledger import LedgerState, Posting
from membership.domain.plan_usage import counter_move
from membership.domain.subscriptions import BenefitsUsed, Purchase, TermRecord
from membership.storage import usage
from membership.storage.ledger import ExtraItem, Outcome
from membership.storage.ledger import post as ledger_post
from membership.storage.models import GuardItem, TimeAttribute, member_pk
from membership.storage.table import Retry, TableModel

PREFIX = "SUBSCRIPTION#"
PROGRAM_ID = "default"  # B2B2C later: items record the program they belong to


class SubscriptionItem(TableModel):
    member_id = UnicodeAttribute(attr_name="memberId")
    plan_id = UnicodeAttribute(attr_name="planId")
    subscription_id = UnicodeAttribute(attr_name="subscriptionId")
    program_id = UnicodeAttribute(attr_name="programId", default=PROGRAM_ID)
    auto_renew = BooleanAttribute(attr_name="autoRenew", default=False)
    terms = NumberAttribute(default=0)
    # True: counted in the plan's usage counter (an active run); None: written before the
    # counter existed, not counted yet (domain/plan_usage.py).
    counted = BooleanAttribute(null=True)
    created_at = TimeAttribute(attr_name="createdAt")
    updated_at = TimeAttribute(attr_name="updatedAt")
    # The daily schedule (storage/subscription_schedule.py): what it did, as JSON, its
    # visit count, and the sparse GSI1 keys of the next local date it owes something.
    schedule = UnicodeAttribute(null=True)
    visits = NumberAttribute(default=0)
    GSI1PK = UnicodeAttribute(null=True)
    GSI1SK = UnicodeAttribute(null=True)

    @staticmethod
    def key(member_id: str, plan_id: str) -> tuple[str, str]:
        return member_pk(member_id), f"{PREFIX}{plan_id}"


class TermItem(TableModel):
    term_id = UnicodeAttribute(attr_name="termId")
    member_id = UnicodeAttribute(attr_name="memberId")
    plan_id = UnicodeAttribute(attr_name="planId")
    subscription_id = UnicodeAttribute(attr_name="subscriptionId")
    program_id = UnicodeAttribute(attr_name="programId", default=PROGRAM_ID)
    seq = NumberAttribute()
    term = UnicodeAttribute()
    price = NumberAttribute()
    paid_with = UnicodeAttribute(attr_name="paidWith")
    payment_reference = UnicodeAttribute(attr_name="paymentReference", null=True)
    channel = UnicodeAttribute(null=True)
    paid_principal = NumberAttribute(attr_name="paidP", default=0)
    paid_bonus = NumberAttribute(attr_name="paidB", default=0)
    paid_at = TimeAttribute(attr_name="paidAt")
    starts_at = TimeAttribute(attr_name="startsAt")
    ends_at = TimeAttribute(attr_name="endsAt")
    anchor = UnicodeAttribute()  # YYYY-MM-DD, program time zone
    months_from_anchor = NumberAttribute(attr_name="months", default=0)
    extended = BooleanAttribute(default=False)
    refunded_at = TimeAttribute(attr_name="refundedAt", null=True)
    # Benefits used in this term (checkout and the refund rule read them).
    coupon_discount = NumberAttribute(attr_name="usedCoupons", default=0)
    bonus_points = NumberAttribute(attr_name="usedBonusPts", default=0)
    plan_discount = NumberAttribute(attr_name="usedPlanDiscount", default=0)
    # An operator's refund of this term (domain/subscription_refunds.py).
    refund_id = UnicodeAttribute(attr_name="refundId", null=True)
    refund_amount = NumberAttribute(attr_name="refundAmount", null=True)
    refund_reason = UnicodeAttribute(attr_name="refundReason", null=True)

    @staticmethod
    def key(member_id: str, plan_id: str, seq: int) -> tuple[str, str]:
        return member_pk(member_id), f"{PREFIX}{plan_id}#TERM#{seq:04d}"

    @classmethod
    def from_domain(cls, p: Purchase) -> TermItem:
        r = p.record
        return cls(*cls.key(p.member_id, r.plan_id, p.seq), term_id=r.term_id,
                   member_id=p.member_id, plan_id=r.plan_id, subscription_id=p.subscription_id,
                   seq=p.seq, term=r.term, price=r.price, paid_with=p.paid_with,
                   payment_reference=p.payment_reference, channel=p.channel,
                   paid_principal=p.paid_principal, paid_bonus=p.paid_bonus, paid_at=r.paid_at,
                   starts_at=r.starts_at, ends_at=r.ends_at, anchor=r.anchor.isoformat(),
                   months_from_anchor=r.months_from_anchor, extended=p.extended,
                   refunded_at=r.refunded_at, coupon_discount=p.benefits.coupon_discount,
                   bonus_points=p.benefits.bonus_points, plan_discount=p.benefits.plan_discount)

    def to_domain(self) -> Purchase:
        record = TermRecord(
            term_id=self.term_id, plan_id=self.plan_id, term=self.term, price=int(self.price),
            paid_at=self.paid_at, starts_at=self.starts_at, ends_at=self.ends_at,
            anchor=date.fromisoformat(self.anchor),
            months_from_anchor=int(self.months_from_anchor or 0), refunded_at=self.refunded_at)
        return Purchase(
            record=record, member_id=self.member_id, subscription_id=self.subscription_id,
            seq=int(self.seq), paid_with=self.paid_with,
            payment_reference=self.payment_reference, channel=self.channel,
            paid_principal=int(self.paid_principal or 0), paid_bonus=int(self.paid_bonus or 0),
            extended=bool(self.extended), benefits=BenefitsUsed(
                coupon_discount=int(self.coupon_discount or 0),
                bonus_points=int(self.bonus_points or 0),
                plan_discount=int(self.plan_discount or 0)))


class PaymentReferenceTaken(Exception):
    """The payment reference was used by a top-up (or another purchase) already."""


def read(member_id: str, *, consistent: bool = True
         ) -> tuple[dict[str, SubscriptionItem], dict[str, list[Purchase]]]:
    """A member's subscriptions by plan, and each plan's terms (oldest first): one Query."""
    subscriptions: dict[str, SubscriptionItem] = {}
    terms: dict[str, list[Purchase]] = {}
    conn = SubscriptionItem._get_connection()
    last_key = None
    while True:
        page = conn.query(member_pk(member_id),
                          range_key_condition=SubscriptionItem.SK.startswith(PREFIX),
                          consistent_read=consistent, exclusive_start_key=last_key)
        for raw in page.get("Items", []):
            if "#TERM#" in raw["SK"]["S"]:
                purchase = TermItem.from_raw_data(raw).to_domain()
                terms.setdefault(purchase.record.plan_id, []).append(purchase)
            else:
                item = SubscriptionItem.from_raw_data(raw)
                subscriptions[item.plan_id] = item
        last_key = page.get("LastEvaluatedKey")
        if not last_key:
            break
    for plan_terms in terms.values():
        plan_terms.sort(key=lambda p: p.seq)
    return subscriptions, terms


def counted_is(value: bool | None):
    """The condition that the subscription's `counted` flag is still what was read."""
    if value is None:
        return SubscriptionItem.counted.does_not_exist()
    return SubscriptionItem.counted == value


def plan_usage_extra(member_id: str, plan_id: str, delta: int, *, fenced: bool) -> ExtraItem:
    """The plan's usage counter moved, in the member's shard. A fenced +1 (a run that starts
    now) is refused on a plan the program has just removed: the stale-program error."""
    item, actions, condition = usage.UsageChange(usage.PLAN, plan_id, member_id, delta,
                                                 fenced=fenced).update()
    return ExtraItem(model=item, actions=actions, condition=condition,
                     on_condition_failed=usage.stale_program_error)


def usage_extras(member_id: str, plan_id: str, counted: bool | None, active: bool,
                 now: datetime) -> tuple[ExtraItem, ...]:
    """The flag set to `active` (conditional on the flag read) and the counter moved by the
    difference, for a write that only observes the run (a refund, a visit, closure): it
    starts no use, so it is not fenced. Nothing when the flag already says so."""
    if counted is not None and bool(counted) == active:
        return ()
    extras = [ExtraItem(model=SubscriptionItem(*SubscriptionItem.key(member_id, plan_id)),
                        actions=[SubscriptionItem.counted.set(active),
                                 SubscriptionItem.updated_at.set(now)],
                        condition=SubscriptionItem.PK.exists() & counted_is(counted),
                        on_condition_failed=Retry)]
    delta = counter_move(counted, active)
    if delta:
        extras.append(plan_usage_extra(member_id, plan_id, delta, fenced=False))
    return tuple(extras)


def purchase_extras(purchase: Purchase, existing: SubscriptionItem | None, now: datetime,
                    payment_guard: str | None, due_keys: tuple[str, str] | None = None
                    ) -> tuple[ExtraItem, ...]:
    """The term, the subscription item (its `terms` count moves from what was read), the
    plan's usage counter when this term starts a run, and the payment reference's
    cross-capability guard. `due_keys`: the schedule's GSI1 keys of the next date the
    subscription owes something (storage/subscription_schedule.py)."""
    extras = [ExtraItem(model=TermItem.from_domain(purchase),
                        condition=TermItem.PK.does_not_exist(), on_condition_failed=Retry)]
    member_id, plan_id = purchase.member_id, purchase.record.plan_id
    key = SubscriptionItem.key(member_id, plan_id)
    counted = existing.counted if existing is not None else False
    if existing is None:
        item = SubscriptionItem(*key, member_id=member_id, plan_id=plan_id,
                                subscription_id=purchase.subscription_id, auto_renew=False,
                                terms=purchase.seq, counted=True, created_at=now,
                                updated_at=now)
        if due_keys is not None:
            item.GSI1PK, item.GSI1SK = due_keys
        extras.append(ExtraItem(model=item, condition=SubscriptionItem.PK.does_not_exist(),
                                on_condition_failed=Retry))
    else:
        # The flag read is part of the condition: a visit that counted the run down
        # meanwhile makes this purchase read again and count it up.
        extras.append(ExtraItem(
            model=SubscriptionItem(*key),
            actions=[SubscriptionItem.terms.set(purchase.seq),
                     SubscriptionItem.updated_at.set(now),
                     *([] if counted else [SubscriptionItem.counted.set(True)]),
                     *([SubscriptionItem.GSI1PK.set(due_keys[0]),
                        SubscriptionItem.GSI1SK.set(due_keys[1])] if due_keys else [])],
            condition=(SubscriptionItem.terms == int(existing.terms)) & counted_is(counted),
            on_condition_failed=Retry))
    if counter_move(counted, True):
        extras.append(plan_usage_extra(member_id, plan_id, +1, fenced=True))
    if payment_guard is not None:
        extras.append(ExtraItem(
            model=GuardItem(*GuardItem.key(payment_guard), source_type="payment_reference",
                            member_id=purchase.member_id, created_at=now),
            condition=GuardItem.PK.does_not_exist(), on_condition_failed=PaymentReferenceTaken))
    return tuple(extras)


def payment_used(payment_guard: str) -> bool:
    try:
        GuardItem.get(*GuardItem.key(payment_guard), consistent_read=True)
    except GuardItem.DoesNotExist:
        return False
    return True


def set_auto_renew(member_id: str, plan_id: str, auto_renew: bool, now: datetime) -> bool:
    """False when the member has no subscription of that plan."""
    item = SubscriptionItem(*SubscriptionItem.key(member_id, plan_id))
    try:
        item.update(actions=[SubscriptionItem.auto_renew.set(auto_renew),
                             SubscriptionItem.updated_at.set(now)],
                    condition=SubscriptionItem.PK.exists())
    except Exception as exc:  # pynamodb's UpdateError wraps the conditional failure
        if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
            return False
        raise
    return True


Build = Callable[[LedgerState], tuple[Posting, tuple[ExtraItem, ...]]]


def post(member_id: str, source_key: str, build: Build, *,
         payload_hash: str | None = None) -> Outcome:
    """The ledger's post, with the purchase's own items committed in the same transaction."""
    built: dict[int, tuple[ExtraItem, ...]] = {}

    def build_posting(state: LedgerState) -> Posting:
        posting, extra = build(state)
        built[id(posting)] = extra
        return posting

    return ledger_post(member_id, source_key, build_posting,
                       extra=lambda posting: built.pop(id(posting)), payload_hash=payload_hash)


def add_benefits_used(term: Purchase, *, coupon_discount: int = 0, bonus_points: int = 0,
                      plan_discount: int = 0) -> tuple[ExtraItem, ...]:
    """The term's benefits-used counters moved (ADD; negative to undo), as an extra item of
    the order posting that used (or gave back) them. Nothing to write: no item."""
    return add_term_counters(term.member_id, term.record.plan_id, term.seq,
                             coupon_discount=coupon_discount, bonus_points=bonus_points,
                             plan_discount=plan_discount)


def add_term_counters(member_id: str, plan_id: str, seq: int, *, coupon_discount: int = 0,
                      bonus_points: int = 0, plan_discount: int = 0) -> tuple[ExtraItem, ...]:
    actions = [attr.add(amount) for attr, amount in (
        (TermItem.coupon_discount, coupon_discount), (TermItem.bonus_points, bonus_points),
        (TermItem.plan_discount, plan_discount)) if amount]
    if not actions:
        return ()
    return (ExtraItem(model=TermItem(*TermItem.key(member_id, plan_id, seq)),
                      actions=actions, condition=TermItem.PK.exists(),
                      on_condition_failed=Retry),)


def refund_extra(refund) -> ExtraItem:
    """The refunded term ends at once: `refundedAt` and the refund's reference, amount and
    reason, in the refund's posting; a term refunded meanwhile makes the posting retry."""
    p = refund.purchase
    return ExtraItem(
        model=TermItem(*TermItem.key(p.member_id, p.record.plan_id, p.seq)),
        actions=[TermItem.refunded_at.set(refund.refunded_at),
                 TermItem.refund_id.set(refund.refund_id),
                 TermItem.refund_amount.set(refund.amount),
                 TermItem.refund_reason.set(refund.reason)],
        condition=TermItem.PK.exists() & TermItem.refunded_at.does_not_exist(),
        on_condition_failed=Retry)


def subscription_exists(member_id: str, plan_id: str) -> bool:
    try:
        SubscriptionItem.get(*SubscriptionItem.key(member_id, plan_id), consistent_read=True)
    except SubscriptionItem.DoesNotExist:
        return False
    return True
