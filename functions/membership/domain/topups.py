"""Top-ups (储值) and their refunds, as pure rules over the ledger builder.

A top-up credits the amount paid to the principal bucket and the offer's bonus to the
bonus bucket, tracked apart, and leaves a `TopupRecord` so that a refund can find what
it gave. A refund returns principal only while the member still holds it, and claws
back the top-up's bonus in proportion to the principal refunded, as far as the bonus
balance still holds it; the share already spent (or held) becomes bonus debt, which every
later bonus credit pays first (see docs/topups.md and docs/money.md).
"""
from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from membership.domain import calendar
from membership.domain.ledger import PostingBuilder
from membership.domain.members import ApiModel, Member, is_stored_value_member, omit_default
from membership.domain.program import Program, TopupOffer, TopupRules
from membership.errors import Conflict, DomainError, InvalidRequest, NotFound

# Wide enough for every provider's transaction ids, narrow enough to be a key.
Reference = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:\-]+$", min_length=1,
                                             max_length=128)]
PaymentChannel = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]+$", min_length=1,
                                                  max_length=32)]
# A single payment above 10 million yuan is not a membership top-up.
MAX_FEN = 1_000_000_000


# ---- errors -------------------------------------------------------------------------

class TopupBelowMinimum(InvalidRequest):
    code = "topup_below_minimum"


class TopupAboveMaximum(InvalidRequest):
    code = "topup_above_maximum"


class DailyTopupLimitExceeded(InvalidRequest):
    code = "daily_topup_limit_exceeded"


class PaymentNotVerified(InvalidRequest):
    code = "payment_not_verified"


class PaymentProviderNotConfigured(PaymentNotVerified):
    """A deployment that names no payment provider verifies nothing (fails closed)."""

    code = "payment_provider_not_configured"


class PaymentAmountMismatch(InvalidRequest):
    code = "payment_amount_mismatch"


class PaymentReferenceUsed(Conflict):
    """The reference was credited already, to another member or for another amount."""

    code = "payment_reference_used"


class IdempotencyKeyReused(InvalidRequest):
    code = "idempotency_key_reused"


class TopupNotFound(NotFound):
    code = "topup_not_found"


# ---- wire models --------------------------------------------------------------------

class TopupRequest(ApiModel):
    amount: StrictInt = Field(gt=0, le=MAX_FEN, description="Amount paid, integer fen")
    payment_reference: Reference = Field(
        alias="paymentReference", description="The payment provider's transaction id")
    channel: PaymentChannel = Field(description="Payment channel, e.g. wechat_pay, alipay")


class BalanceOut(ApiModel):
    principal: int
    bonus: int
    total: int


class TopupResponse(ApiModel):
    topup_id: str = Field(alias="topupId")
    principal: int
    bonus: int
    balance: BalanceOut
    stored_value_member: bool = Field(alias="storedValueMember")
    payment_reference: str = Field(alias="paymentReference")
    channel: str
    credited_at: str = Field(alias="creditedAt")


class RefundRequest(ApiModel):
    refund_reference: Reference = Field(
        alias="refundReference", description="The payment provider's refund id")
    # Absent means the whole unrefunded principal; an explicit null is refused, so a
    # client that lost its amount does not refund everything by accident.
    amount: StrictInt = Field(
        default=None, gt=0, le=MAX_FEN, json_schema_extra=omit_default,
        description="Principal to refund, fen; the whole unrefunded principal when absent")
    reason: Annotated[str, StringConstraints(max_length=256)] | None = None


class RefundResponse(ApiModel):
    topup_id: str = Field(alias="topupId")
    refund_reference: str = Field(alias="refundReference")
    principal: int = Field(description="Principal returned to the payer, fen")
    bonus_clawed_back: int = Field(alias="bonusClawedBack")
    bonus_forgiven: int = Field(
        alias="bonusForgiven",
        description="Bonus share already spent or held, not taken back now: it is recorded "
                    "as bonus debt, which later bonus credits pay first")
    bonus_debt: int = Field(alias="bonusDebt", default=0,
                            description="The member's outstanding bonus debt after this refund")
    balance: BalanceOut
    topup: dict = Field(description="The top-up's totals after this refund")
    refunded_at: str = Field(alias="refundedAt")


# ---- the top-up record --------------------------------------------------------------

class TopupRecord(BaseModel):
    """What a top-up gave, and how much of it was refunded since."""

    model_config = ConfigDict(frozen=True)

    topup_id: str
    member_id: str
    payment_reference: str
    channel: str
    principal: int
    bonus: int
    created_at: datetime
    refunded_principal: int = 0
    clawed_back_bonus: int = 0
    forgiven_bonus: int = 0
    refunds: tuple[str, ...] = ()
    version: int = 0

    @property
    def refundable_principal(self) -> int:
        return self.principal - self.refunded_principal

    def totals(self) -> dict:
        return {"principal": self.principal, "bonus": self.bonus,
                "refundedPrincipal": self.refunded_principal,
                "clawedBackBonus": self.clawed_back_bonus,
                "forgivenBonus": self.forgiven_bonus}


def topup_id_for(payment_reference: str) -> str:
    """Derived from the payment, so a replay names the same top-up and no index is needed."""
    digest = hashlib.sha256(f"topup:{payment_reference}".encode()).digest()[:15]
    return "T" + base64.b32encode(digest).decode()


def topup_source_key(payment_reference: str) -> str:
    return f"topup:{payment_reference}"


def refund_source_key(refund_reference: str) -> str:
    return f"topup-refund:{refund_reference}"


# ---- rules --------------------------------------------------------------------------

def offer_is_valid(offer: TopupOffer, at: datetime) -> bool:
    """Valid from `validFrom` (inclusive) until `validUntil` (exclusive); open ends allowed."""
    if offer.valid_from is not None and at < calendar.utc(offer.valid_from):
        return False
    return offer.valid_until is None or at < calendar.utc(offer.valid_until)


def best_offer(rules: TopupRules, amount: int, at: datetime) -> TopupOffer | None:
    """The highest valid offer the amount reaches; at one threshold, the larger bonus."""
    reached = [o for o in rules.offers if amount >= o.min_amount and offer_is_valid(o, at)]
    if not reached:
        return None
    return max(reached, key=lambda o: (o.min_amount, o.bonus))


def bonus_for(rules: TopupRules, amount: int, at: datetime) -> int:
    offer = best_offer(rules, amount, at)
    return offer.bonus if offer else 0


def topped_up_today(member: Member, day: str) -> int:
    return member.topup_day_amount if member.topup_day == day else 0


def check_limits(rules: TopupRules, member: Member, amount: int, at: datetime, tz: str) -> None:
    """Per top-up minimum and maximum, and the daily maximum on the program's calendar day."""
    if amount < rules.min_amount:
        raise TopupBelowMinimum(f"a top-up is at least {rules.min_amount} fen",
                                minimum=rules.min_amount, requested=amount)
    if amount > rules.max_amount:
        raise TopupAboveMaximum(f"a top-up is at most {rules.max_amount} fen",
                                maximum=rules.max_amount, requested=amount)
    day = calendar.day_of(at, tz)
    used = topped_up_today(member, day)
    if used + amount > rules.daily_max:
        raise DailyTopupLimitExceeded(
            f"top-ups are limited to {rules.daily_max} fen per day",
            dailyMax=rules.daily_max, toppedUpToday=used, remaining=rules.daily_max - used,
            requested=amount, day=day)


def balance_of(member: Member) -> BalanceOut:
    return BalanceOut(principal=member.balance_principal, bonus=member.balance_bonus,
                      total=member.balance_principal + member.balance_bonus)


def apply_topup(builder: PostingBuilder, program: Program, *, amount: int,
                payment_reference: str, channel: str) -> TopupRecord:
    """Credit principal and bonus, count the top-up, answer and announce it."""
    rules, tz, now = program.topup, program.time_zone, builder.now
    before = builder.member
    check_limits(rules, before, amount, now, tz)
    bonus = bonus_for(rules, amount, now)
    topup_id = topup_id_for(payment_reference)
    builder.credit_balance("principal", amount, reason="topup")
    if bonus:
        builder.credit_balance("bonus", bonus, reason="topup_bonus")
    day = calendar.day_of(now, tz)
    builder.set(topup_total=before.topup_total + amount, topup_day=day,
                topup_day_amount=topped_up_today(before, day) + amount)
    after = builder.member
    balance = balance_of(after)
    credited_at = calendar.wire(now, tz)
    builder.result = TopupResponse(
        topupId=topup_id, principal=amount, bonus=bonus, balance=balance,
        storedValueMember=is_stored_value_member(after, program),
        paymentReference=payment_reference, channel=channel, creditedAt=credited_at,
    ).model_dump(mode="json", by_alias=True) | {"memberId": after.member_id}
    builder.emit("topup.credited", {
        "memberId": after.member_id, "topupId": topup_id, "principal": amount, "bonus": bonus,
        "balance": balance.model_dump(), "paymentReference": payment_reference,
        "channel": channel, "occurredAt": credited_at,
    })
    return TopupRecord(topup_id=topup_id, member_id=after.member_id,
                       payment_reference=payment_reference, channel=channel,
                       principal=amount, bonus=bonus, created_at=now)


# ---- refunds ------------------------------------------------------------------------

class TopupAlreadyRefunded(Conflict):
    code = "topup_already_refunded"


class RefundExceedsTopup(InvalidRequest):
    code = "refund_exceeds_topup"


class TopupPrincipalSpent(Conflict):
    """The member no longer holds the principal to return: it was spent (or is held)."""

    code = "topup_principal_spent"


class RefundPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    principal: int
    bonus_clawed_back: int
    bonus_forgiven: int


def plan_refund(record: TopupRecord, member: Member, amount: int | None) -> RefundPlan:
    """How much principal goes back and how much of the top-up's bonus goes with it.

    "Unspent" principal: balances are fungible, so a top-up's principal counts as unspent
    while the member's principal balance still covers the refund. The bonus share follows
    the principal refunded in proportion (cumulatively, so partial refunds never round
    past the top-up's bonus); of that share, what the bonus balance no longer holds was
    spent and is forgiven.
    """
    refundable = record.refundable_principal
    if refundable == 0:
        raise TopupAlreadyRefunded(f"top-up {record.topup_id} was refunded in full",
                                   topupId=record.topup_id)
    principal = refundable if amount is None else amount
    if principal > refundable:
        raise RefundExceedsTopup(
            f"at most {refundable} fen of this top-up are left to refund",
            refundable=refundable, requested=principal)
    if member.balance_principal < principal:
        raise TopupPrincipalSpent(
            "the member has spent part of this top-up's principal; refund at most what is left",
            refundable=min(member.balance_principal, refundable), requested=principal,
            principalBalance=member.balance_principal)
    refunded_after = record.refunded_principal + principal
    share_after = record.bonus * refunded_after // record.principal
    if refunded_after == record.principal:
        share_after = record.bonus  # the last refund takes what rounding left
    share = share_after - record.clawed_back_bonus - record.forgiven_bonus
    clawed = min(share, member.balance_bonus)
    return RefundPlan(principal=principal, bonus_clawed_back=clawed,
                      bonus_forgiven=share - clawed)


def apply_refund(builder: PostingBuilder, program: Program, record: TopupRecord, *,
                 amount: int | None, refund_reference: str) -> TopupRecord:
    """Debit the refunded principal and the clawed-back bonus; returns the updated record."""
    tz, now = program.time_zone, builder.now
    if record.member_id != builder.member_id:
        raise ValueError("the record belongs to another member")
    plan = plan_refund(record, builder.member, amount)
    builder.debit_buckets(principal=plan.principal, reason="topup_refund")
    if plan.bonus_clawed_back:
        builder.debit_buckets(bonus=plan.bonus_clawed_back, reason="topup_bonus_clawback")
    if plan.bonus_forgiven:
        # Spent or held: owed back from the next bonus that reaches the member, so bonus
        # coming back from that hold or order never returns a refunded top-up's bonus.
        builder.record_bonus_debt(plan.bonus_forgiven, reason="topup_bonus_debt")
    before = builder.member
    # Cumulative top-ups count what the member keeps paid in: a refund takes its part back.
    builder.set(topup_total=max(before.topup_total - plan.principal, 0))
    updated = record.model_copy(update={
        "refunded_principal": record.refunded_principal + plan.principal,
        "clawed_back_bonus": record.clawed_back_bonus + plan.bonus_clawed_back,
        "forgiven_bonus": record.forgiven_bonus + plan.bonus_forgiven,
        "refunds": (*record.refunds, refund_reference),
        "version": record.version + 1,
    })
    after = builder.member
    balance = balance_of(after)
    refunded_at = calendar.wire(now, tz)
    builder.result = RefundResponse(
        topupId=record.topup_id, refundReference=refund_reference, principal=plan.principal,
        bonusClawedBack=plan.bonus_clawed_back, bonusForgiven=plan.bonus_forgiven,
        bonusDebt=after.bonus_debt,
        balance=balance, topup=updated.totals(), refundedAt=refunded_at,
    ).model_dump(mode="json", by_alias=True) | {"memberId": after.member_id}
    builder.emit("topup.refunded", {
        "memberId": after.member_id, "topupId": record.topup_id,
        "refundReference": refund_reference, "paymentReference": record.payment_reference,
        "principal": plan.principal, "bonusClawedBack": plan.bonus_clawed_back,
        "bonusForgiven": plan.bonus_forgiven, "balance": balance.model_dump(),
        "storedValueMember": is_stored_value_member(after, program), "occurredAt": refunded_at,
    })
    return updated


# ---- the Idempotency-Key header -----------------------------------------------------

class IdempotencyKeyRequired(DomainError):
    """400: the request is malformed without it (not a rule violation of its body)."""

    code = "idempotency_key_required"


IDEMPOTENCY_KEY_MAX = 255


def check_idempotency_key(value: str | None) -> str:
    """Writes that move money carry a client-chosen key of printable ASCII."""
    if not value or not value.strip():
        raise IdempotencyKeyRequired("this write needs an Idempotency-Key header")
    value = value.strip()
    if len(value) > IDEMPOTENCY_KEY_MAX or not value.isascii() or not value.isprintable():
        raise IdempotencyKeyRequired(
            f"an Idempotency-Key is 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters")
    return value
