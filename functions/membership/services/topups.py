"""Top-ups and their refunds: verify the payment, post to the ledger, answer once.

Two guards, for two different retries:
- the payment reference is the source key of the posting (`topup:<reference>`): the same
  payment credits at most once, forever, whatever key or route carries it;
- the Idempotency-Key record (scoped to route and caller, kept for a day) answers a
  retried request with its first answer, and refuses the key with another body.
Both are written in the posting's one transaction.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from membership.config import get_settings
from membership.domain.ledger import LedgerState, PostingBuilder
from membership.domain.member_status import ensure_may_spend
from membership.domain.members import member_id_for
from membership.domain.topups import (
    IdempotencyKeyReused,
    PaymentAmountMismatch,
    PaymentReferenceUsed,
    RefundRequest,
    TopupNotFound,
    TopupRequest,
    apply_refund,
    apply_topup,
    refund_source_key,
    topup_id_for,
    topup_source_key,
)
from membership.errors import Conflict, DomainError
from membership.services.payments import PaymentClaim, verifier
from membership.storage import topups as store
from membership.storage.program import load_program

TOPUP_SCOPE = "topup"
REFUND_SCOPE = "topup-refund"


class RefundReferenceUsed(Conflict):
    code = "refund_reference_used"


class RefundAlreadyCovered(Conflict):
    """The provider's refunded total is already applied: nothing is left to refund."""

    code = "refund_already_covered"


@dataclass(frozen=True)
class Answer:
    body: dict
    replayed: bool


@dataclass(frozen=True)
class IdempotencyKey:
    scope: str
    caller: str
    key: str
    body_hash: str


def _now() -> datetime:
    return datetime.now(UTC)


def _public(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "memberId"}


def _known_answer(key: IdempotencyKey | None, now: datetime) -> Answer | None:
    """The first answer to this key, or None when the key is new."""
    if key is None:
        return None
    item = store.read_key(key.scope, key.caller, key.key, now)
    if item is None:
        return None
    if item.body_hash != key.body_hash:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used with another request body; use a new key")
    return Answer(body=item.result_dict(), replayed=True)


def _key_extras(key: IdempotencyKey | None, result: dict, source_key: str, now: datetime):
    if key is None:
        return ()
    return (store.key_extra(key.scope, key.caller, key.key, key.body_hash, result, source_key,
                            now, get_settings().idempotency_ttl_seconds),)


def _post_once(member_id: str, source_key: str, key: IdempotencyKey | None, build,
               now: datetime):
    """Post, and settle the race where another request commits under our key first."""
    try:
        return store.post(member_id, source_key, build)
    except store.IdempotencyKeyTaken:
        answer = _known_answer(key, now)
        if answer is None:  # the winner's key expired already: the race is long over
            raise
        return answer
    except DomainError:
        # A refused request may be a retry whose first attempt changed the state it checks.
        answer = _known_answer(key, now)
        if answer is not None:
            return answer
        raise


def top_up(subject: str, idempotency_key: str, request: TopupRequest,
           now: datetime | None = None) -> Answer:
    """Credit a verified payment: principal plus the offer's bonus, in one transaction."""
    now = now or _now()
    member_id = member_id_for(subject)
    body = request.model_dump(mode="json", by_alias=True)
    key = IdempotencyKey(TOPUP_SCOPE, member_id, idempotency_key, store.body_hash(body))
    known = _known_answer(key, now)
    if known is not None:
        return Answer(_public(known.body), True)

    payment = verifier().verify(PaymentClaim(
        member_id=member_id, reference=request.payment_reference, amount=request.amount,
        channel=request.channel))
    if payment.amount != request.amount:
        raise PaymentAmountMismatch(
            "the provider captured another amount for this payment",
            claimed=request.amount, captured=payment.amount)
    return _credit(member_id, request, key, now)


def credit_payment(member_id: str, request: TopupRequest, now: datetime | None = None
                   ) -> Answer:
    """Credit a payment the provider notified (signature checked by the caller): the same
    posting and source key as the member's own call, so whichever comes first credits and
    the other replays it."""
    return _credit(member_id, request, None, now or _now())


def _credit(member_id: str, request: TopupRequest, key: IdempotencyKey | None,
            now: datetime) -> Answer:
    program = load_program()
    source_key = topup_source_key(request.payment_reference)

    def build(state: LedgerState):
        ensure_may_spend(state.member, "topup")
        builder = PostingBuilder(state, program, source_key=source_key, source_type="topup",
                                 reason="topup", actor=f"member:{member_id}", now=now)
        record = apply_topup(builder, program, amount=request.amount,
                             payment_reference=request.payment_reference,
                             channel=request.channel)
        posting = builder.build()
        return posting, (store.new_topup_extra(record),
                         *_key_extras(key, posting.result, source_key, now))

    outcome = _post_once(member_id, source_key, key, build, now)
    if isinstance(outcome, Answer):
        return Answer(_public(outcome.body), True)
    result = outcome.result
    if outcome.replayed and (result.get("memberId") != member_id
                             or result.get("principal") != request.amount
                             or result.get("channel") != request.channel):
        raise PaymentReferenceUsed("this payment reference was credited already",
                                   paymentReference=request.payment_reference)
    return Answer(_public(result), outcome.replayed)


def refund(topup_id: str, request: RefundRequest, *, actor: str,
           idempotency: tuple[str, str] | None = None, now: datetime | None = None,
           refunded_total: int | None = None) -> Answer:
    """Return a top-up's principal (if the member still holds it) and claw back its bonus.

    `idempotency` is (caller, Idempotency-Key) for the admin route; payment notices carry
    their refund reference, which is the source key and needs no other guard.
    `refunded_total`, instead of an amount, refunds what brings the top-up's refunded
    principal up to that total (a provider that reports totals); nothing when it is there.
    """
    now = now or _now()
    key = None
    if idempotency is not None:
        body = request.model_dump(mode="json", by_alias=True) | {"topupId": topup_id}
        key = IdempotencyKey(REFUND_SCOPE, idempotency[0], idempotency[1],
                             store.body_hash(body))
        known = _known_answer(key, now)
        if known is not None:
            return Answer(_public(known.body), True)
    first = store.get_topup(topup_id)
    if first is None:
        raise TopupNotFound(f"no top-up {topup_id}", topupId=topup_id)
    program = load_program()
    source_key = refund_source_key(request.refund_reference)

    unread = [first]

    def build(state: LedgerState):
        # Fresh per retry: a concurrent refund of this top-up is what makes a commit retry.
        record = unread.pop() if unread else store.get_topup(topup_id)
        amount = request.amount
        if refunded_total is not None:
            amount = refunded_total - record.refunded_principal
            if amount <= 0:
                raise RefundAlreadyCovered("the provider's refunded total is applied already",
                                           topupId=topup_id, refundedTotal=refunded_total)
        builder = PostingBuilder(state, program, source_key=source_key,
                                 source_type="topup_refund", reason="topup_refund",
                                 actor=actor, now=now)
        updated = apply_refund(builder, program, record, amount=amount,
                               refund_reference=request.refund_reference)
        posting = builder.build()
        return posting, (store.updated_topup_extra(updated, record.version),
                         *_key_extras(key, posting.result, source_key, now))

    outcome = _post_once(first.member_id, source_key, key, build, now)
    if isinstance(outcome, Answer):
        return Answer(_public(outcome.body), True)
    if outcome.replayed and outcome.result.get("topupId") != topup_id:
        raise RefundReferenceUsed("this refund reference was applied to another top-up",
                                  refundReference=request.refund_reference)
    if (outcome.replayed and request.amount is not None
            and outcome.result.get("principal") != request.amount):
        # Same reference, other amount: another refund, never a silent replay.
        raise RefundReferenceUsed("this refund reference was applied for another amount",
                                  refundReference=request.refund_reference,
                                  appliedPrincipal=outcome.result.get("principal"),
                                  requested=request.amount)
    return Answer(_public(outcome.result), outcome.replayed)


def refund_payment(payment_reference: str, request: RefundRequest,
                   now: datetime | None = None, refunded_total: int | None = None) -> Answer:
    """A provider's refund notice: the top-up is found by its payment reference."""
    try:
        return refund(topup_id_for(payment_reference), request, actor="payment_provider",
                      now=now, refunded_total=refunded_total)
    except RefundAlreadyCovered as covered:
        return Answer({"topupId": topup_id_for(payment_reference),
                       "refundReference": request.refund_reference, "principal": 0,
                       **covered.details}, True)
