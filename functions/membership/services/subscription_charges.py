"""Inbound `subscription.charged`: the provider's automatic renewal, once per cycle.

One posting per (subscription, cycle), guarded by `subscription:charge:<id>:<cycle>` with
the detail's digest, so a redelivery replays its first answer and the same cycle with
another payload is refused. The new term, the subscription item (its term count, the
version two purchases or charges serialise on, and the daily schedule's next due date)
and the payment reference's guard (`topup:<reference>`: a reference pays once, whatever
for) commit in the posting's transaction (domain/subscription_charges.py has the rules).
"""
from __future__ import annotations

from datetime import UTC, datetime

from membership.domain.ledger import PayloadMismatch, PostingBuilder, payload_hash
from membership.domain.subscription_charges import (
    ChargeRefused,
    SubscriptionCharged,
    apply_charge,
)
from membership.domain.subscriptions import PlanNotFound
from membership.domain.topups import topup_source_key
from membership.errors import MemberNotFound
from membership.services.subscription_schedule import due_keys_after
from membership.storage import subscriptions as store
from membership.storage.ledger import ExtraItem, Outcome
from membership.storage.ledger import post as ledger_post
from membership.storage.metrics import plan_flow_add
from membership.storage.models import GuardItem
from membership.storage.program import load_program


class UnknownSubscription(ChargeRefused):
    code = "subscription_not_found"


class ChargeReferenceUsed(ChargeRefused):
    code = "payment_reference_used"


def source_key(charge: SubscriptionCharged) -> str:
    return f"subscription:charge:{charge.subscription_id}:{charge.cycle}"


def apply(charge: SubscriptionCharged, now: datetime | None = None) -> Outcome:
    """Extend (or start) the plan for one charged cycle, exactly once."""
    now = now or datetime.now(UTC)
    program = load_program()
    member_id, plan_id = charge.member_id, charge.plan_id
    key = source_key(charge)
    guard_key = topup_source_key(charge.payment_reference)
    built: dict[int, tuple[ExtraItem, ...]] = {}

    def build(state):
        subscriptions, terms = store.read(member_id)
        existing = subscriptions.get(plan_id)
        if existing is None:
            raise UnknownSubscription("no such subscription: the member never bought the plan",
                                      subscriptionId=charge.subscription_id)
        mine = terms.get(plan_id, [])
        builder = PostingBuilder(state, program, source_key=key,
                                 source_type="subscription_charge", reason="plan_renewal",
                                 actor="provider", now=now)
        bought = apply_charge(builder, program, charge, mine)
        posting = builder.build()
        if bought is None:
            extras: tuple[ExtraItem, ...] = ()
        else:
            due = due_keys_after(member_id, plan_id, [*(p.record for p in mine), bought.record],
                                 existing, now, program.time_zone)
            # The payment guard is added below, for duplicates too.
            extras = (*store.purchase_extras(bought, existing, now, None, due_keys=due),
                      *plan_flow_add(bought.record, [p.record for p in mine],
                                     program.time_zone, member_id))  # docs/metrics.md
        built[id(posting)] = (*extras, ExtraItem(
            model=GuardItem(*GuardItem.key(guard_key), source_type="payment_reference",
                            member_id=member_id, created_at=now),
            condition=GuardItem.PK.does_not_exist(),
            on_condition_failed=store.PaymentReferenceTaken))
        return posting

    try:
        return ledger_post(member_id, key, build, extra=lambda p: built.pop(id(p)),
                           payload_hash=payload_hash(charge))
    except store.PaymentReferenceTaken:
        raise ChargeReferenceUsed("the charge's payment reference paid something else already",
                                  paymentReference=charge.payment_reference) from None
    except PayloadMismatch as exc:
        raise ChargeRefused(exc.message, subscriptionId=charge.subscription_id,
                            cycle=charge.cycle) from None
    except (MemberNotFound, PlanNotFound) as exc:
        raise UnknownSubscription(exc.message, subscriptionId=charge.subscription_id) from None
