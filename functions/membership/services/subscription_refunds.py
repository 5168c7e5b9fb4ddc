"""An operator refunds a paid-plan term (`POST /v1/admin/subscriptions/{id}/refunds`).

One ledger posting: the balance credit (a term paid from stored value), the member's plan
end, the term's `refundedAt` and `subscription.refunded`, in one transaction guarded by
`subscription.refund:<refundId>`. The guard keeps the request's hash: the same refundId
answers its first answer again; with another body it is 409 `payload_mismatch`.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from membership.domain.ledger import LedgerState, PostingBuilder, payload_hash
from membership.domain.subscription_refunds import SubscriptionRefundRequest, apply_refund
from membership.domain.subscriptions import SubscriptionNotFound
from membership.storage import subscriptions as store
from membership.storage.metrics import plan_flow_add
from membership.storage.program import load_program


@dataclass(frozen=True)
class Answer:
    body: dict
    replayed: bool


def _member_and_plan(subscription_id: str) -> tuple[str, str]:
    member_id, _, plan_id = subscription_id.partition(".")
    if not member_id or not plan_id:
        raise SubscriptionNotFound(f"no subscription {subscription_id}",
                                   subscriptionId=subscription_id)
    return member_id, plan_id


def refund(subscription_id: str, request: SubscriptionRefundRequest, *, actor: str,
           now: datetime | None = None) -> Answer:
    now = now or datetime.now(UTC)
    member_id, plan_id = _member_and_plan(subscription_id)
    program = load_program()
    source_key = f"subscription.refund:{request.refund_id}"
    digest = payload_hash({"subscriptionId": subscription_id,
                           **request.model_dump(mode="json", by_alias=True)})

    def build(state: LedgerState):
        # Read inside the attempt: a concurrent refund or purchase makes it retry.
        _, terms = store.read(member_id)
        if not terms.get(plan_id):
            raise SubscriptionNotFound(f"no subscription {subscription_id}",
                                       subscriptionId=subscription_id)
        builder = PostingBuilder(state, program, source_key=source_key,
                                 source_type="subscription_refund", reason="plan_refund",
                                 actor=actor, now=now)
        done = apply_refund(builder, program, terms[plan_id], request, subscription_id)
        # The refunded term's paid start or renewal is taken back (docs/metrics.md).
        uncounted = plan_flow_add(done.purchase.record, [p.record for p in terms[plan_id]],
                                  program.time_zone, member_id, sign=-1)
        return builder.build(), (store.refund_extra(done), *uncounted)

    if not store.subscription_exists(member_id, plan_id):
        raise SubscriptionNotFound(f"no subscription {subscription_id}",
                                   subscriptionId=subscription_id)
    outcome = store.post(member_id, source_key, build, payload_hash=digest)
    body = {k: v for k, v in outcome.result.items() if k != "memberId"}
    return Answer(body, outcome.replayed)
