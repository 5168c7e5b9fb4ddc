"""Paid membership (PLUS): buy, extend or start the trial of a plan; read it; auto-renew.

A purchase is one ledger posting: the balance debit (when paid from stored value), the
member's `paid_plan`, the term record and the subscription item commit in one
transaction, guarded by a source key:
- paid by a provider: `subscription:payment:<reference>` (and the guard `topup:<reference>`,
  so one payment never buys a plan and tops up too);
- paid from balance: the member and the Idempotency-Key;
- a trial: the member and the plan, so a trial happens once, ever, whatever the race.
The Idempotency-Key record answers a retried request with its first answer and refuses
the key with another body (the same records as top-ups).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from membership.config import get_settings
from membership.domain.ledger import LedgerState, PostingBuilder
from membership.domain.members import member_id_for
from membership.domain.payments import PlanTerm, check_plan_term
from membership.domain.subscriptions import (
    AutoRenewRequest,
    PurchaseResponse,
    SubscriptionNotFound,
    SubscriptionRequest,
    SubscriptionView,
    TrialUsed,
    apply_purchase,
    plan_of,
    subscription_view,
    term_price,
)
from membership.domain.topups import (
    IdempotencyKeyReused,
    PaymentAmountMismatch,
    PaymentReferenceUsed,
    topup_source_key,
)
from membership.errors import DomainError
from membership.services.payments import PaymentClaim, PlanClaim, verifier
from membership.services.subscription_schedule import due_keys_after
from membership.storage import subscriptions as store
from membership.storage import topups as keys
from membership.storage.members import get_member
from membership.storage.metrics import plan_flow_add
from membership.storage.program import load_program

SCOPE = "subscription"


@dataclass(frozen=True)
class Answer:
    body: dict
    replayed: bool


def _now() -> datetime:
    return datetime.now(UTC)


def _public(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "memberId"}


def _source_key(member_id: str, request: SubscriptionRequest, idempotency_key: str) -> str:
    if request.term == "trial":
        return f"subscription:trial:{member_id}:{request.plan_id}"
    if request.payment_reference is not None:
        return f"subscription:payment:{request.payment_reference}"
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"subscription:balance:{member_id}:{digest}"


def _known(member_id: str, idempotency_key: str, digest: str, now: datetime) -> Answer | None:
    item = keys.read_key(SCOPE, member_id, idempotency_key, now)
    if item is None:
        return None
    if item.body_hash != digest:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used with another request body; use a new key")
    return Answer(_public(item.result_dict()), True)


def purchase(subject: str, idempotency_key: str, request: SubscriptionRequest,
             now: datetime | None = None) -> Answer:
    """Buy, extend or start a trial: one transaction, answered once per key."""
    now = now or _now()
    member_id = member_id_for(subject)
    body = request.model_dump(mode="json", by_alias=True)
    digest = keys.body_hash(body)
    known = _known(member_id, idempotency_key, digest, now)
    if known is not None:
        return known
    program = load_program()
    plan = plan_of(program, request.plan_id)
    bought_term = None
    if request.payment_reference is not None:
        price = term_price(plan, request.term)
        payment = verifier().verify(PaymentClaim(
            member_id=member_id, reference=request.payment_reference, amount=price,
            channel=request.channel, plan=PlanClaim(plan.id, request.term)))
        if payment.amount != price:
            raise PaymentAmountMismatch(
                "the provider captured another amount than the term's price",
                claimed=price, captured=payment.amount)
        bought_term = payment.plan_term
    return _post(member_id, program, plan, request, now, bought_term,
                 (idempotency_key, digest))


def purchase_notified(member_id: str, request: SubscriptionRequest, bought_term: PlanTerm,
                      now: datetime | None = None) -> Answer:
    """A plan payment the provider notified (authenticated and checked by the caller): the
    same posting and source key (`subscription:payment:<reference>`) as the member's own
    call, so whichever comes first buys the term and the other replays it."""
    program = load_program()
    return _post(member_id, program, plan_of(program, request.plan_id), request,
                 now or _now(), bought_term, None)


def _post(member_id: str, program, plan, request: SubscriptionRequest, now: datetime,
          bought_term: PlanTerm | None, key: tuple[str, str] | None) -> Answer:
    """The purchase posting; `key` is the member's (Idempotency-Key, body digest), None
    for a notification; `bought_term` the term a provider's payment was made for."""
    idempotency_key, digest = key if key is not None else (None, None)

    def known() -> Answer | None:
        return _known(member_id, idempotency_key, digest, now) if key is not None else None

    source_key = _source_key(member_id, request, idempotency_key)
    payment_guard = (topup_source_key(request.payment_reference)
                     if request.payment_reference is not None else None)

    def build(state: LedgerState):
        subscriptions, terms = store.read(member_id)
        builder = PostingBuilder(state, program, source_key=source_key,
                                 source_type="subscription", reason="plan_purchase",
                                 actor=f"member:{member_id}", now=now)
        bought = apply_purchase(builder, program, request, terms.get(plan.id, []))
        if bought_term is not None:
            check_plan_term(bought_term, bought.seq, request.payment_reference)
        posting = builder.build()
        existing = subscriptions.get(plan.id)
        due = due_keys_after(member_id, plan.id,
                             [*(p.record for p in terms.get(plan.id, [])), bought.record],
                             existing, now, program.time_zone)
        extras = store.purchase_extras(bought, existing, now, payment_guard, due_keys=due)
        counted = plan_flow_add(bought.record, [p.record for p in terms.get(plan.id, [])],
                                program.time_zone, member_id)  # docs/metrics.md
        if key is None:  # a provider's notification: no Idempotency-Key record
            return posting, (*extras, *counted)
        key_item = keys.key_extra(SCOPE, member_id, idempotency_key, digest, posting.result,
                                  source_key, now, get_settings().idempotency_ttl_seconds)
        return posting, (*extras, key_item, *counted)

    try:
        outcome = store.post(member_id, source_key, build)
    except keys.IdempotencyKeyTaken:
        answer = known()
        if answer is None:
            raise
        return answer
    except store.PaymentReferenceTaken:
        raise PaymentReferenceUsed("this payment reference was used already",
                                   paymentReference=request.payment_reference) from None
    except DomainError:
        # A refusal may be a retry whose first attempt changed what it checks.
        answer = known()
        if answer is not None:
            return answer
        raise
    result = outcome.result
    if outcome.replayed:
        answer = known()
        if answer is not None:  # this very request, committed by a concurrent attempt
            return answer
        same = (result.get("memberId") == member_id and result.get("planId") == request.plan_id
                and (result.get("term") or {}).get("term") == request.term)
        if request.term == "trial":
            # The trial's guard is per member and plan: another key found it taken.
            raise TrialUsed("a trial is once per member, and this member has had it",
                            planId=request.plan_id)
        if not same and request.pay_with == "balance":
            # The key's record expired, its purchase's guard did not: another body.
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used with another request body; use a new key")
        if not same:
            raise PaymentReferenceUsed("this payment reference was used already",
                                       paymentReference=request.payment_reference)
    return Answer(_public(result), outcome.replayed)


def read(subject: str, now: datetime | None = None, plan_id: str | None = None
         ) -> SubscriptionView:
    """The member's paid plan: the current (or most recent) plan's terms and status, or
    those of `plan_id` (a plan of the program, or one the member had)."""
    now = now or _now()
    member_id = member_id_for(subject)
    member = get_member(member_id)
    program = load_program()
    subscriptions, terms = store.read(member_id)
    if plan_id is not None and plan_id not in terms:
        plan_of(program, plan_id)  # 404 plan_not_found for a plan nobody can buy
    if plan_id is None:
        plan_id = member.paid_plan.plan_id if member.paid_plan is not None else None
    if plan_id is None and terms:  # e.g. settled away: show the latest run
        plan_id = max(terms, key=lambda p: max(t.record.paid_at for t in terms[p]))
    item = subscriptions.get(plan_id) if plan_id else None
    return subscription_view(program, plan_id, terms.get(plan_id, []) if plan_id else [],
                             bool(item.auto_renew) if item is not None else False, now)


def set_auto_renew(subject: str, request: AutoRenewRequest,
                   now: datetime | None = None) -> SubscriptionView:
    now = now or _now()
    member_id = member_id_for(subject)
    member = get_member(member_id)
    current = read(subject, now)
    plan_id = current.plan_id or (member.paid_plan.plan_id if member.paid_plan else None)
    if plan_id is None or not store.set_auto_renew(member_id, plan_id, request.auto_renew, now):
        raise SubscriptionNotFound("the member has no paid plan to renew")
    return read(subject, now)


__all__ = ["Answer", "PurchaseResponse", "purchase", "purchase_notified", "read",
           "set_auto_renew"]
