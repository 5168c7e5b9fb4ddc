"""The order system's events: paid, cancelled, completed, refunded.

Each effect has a deterministic source key, so a redelivery is a no-op whatever its
timing; an event about an order whose payment has not landed raises OrderNotPaidYet,
which the caller lets fail so that the delivery is retried. The guard keeps a hash of the
event's payload: the same key with another payload (other amounts or lines, another
refund under a used refundId) raises PayloadMismatch, never a silent replay.
"""
from __future__ import annotations

from datetime import UTC, datetime

from membership.domain import aggregates, checkout, tags
from membership.domain.checkout import (
    OrderCancelled,
    OrderCompleted,
    OrderNotPaidYet,
    OrderPaid,
    OrderRefunded,
    Settlement,
)
from membership.domain.ledger import PostingBuilder, payload_hash
from membership.domain.member_status import ensure_may_spend
from membership.domain.tiers import upgrade_if_qualified
from membership.errors import DomainError
from membership.services import subscription_benefits
from membership.storage import ledger
from membership.storage.ledger import ExtraItem
from membership.storage.metrics import counter_add
from membership.storage.models import OrderItem
from membership.storage.program import load_program
from membership.storage.table import Retry


def _now() -> datetime:
    return datetime.now(UTC)


def _read_settlement(member_id: str, order_id: str) -> tuple[Settlement, int]:
    try:
        item = OrderItem.get(*OrderItem.key(member_id, order_id), consistent_read=True)
    except OrderItem.DoesNotExist:
        raise OrderNotPaidYet(f"order {order_id} has not been paid yet",
                              order_id=order_id) from None
    return Settlement.model_validate_json(item.document), int(item.version)


def _order_item(settlement: Settlement, version: int) -> OrderItem:
    return OrderItem(*OrderItem.key(settlement.member_id, settlement.order_id),
                     order_id=settlement.order_id, member_id=settlement.member_id,
                     document=settlement.model_dump_json(), version=version)


def paid(event: OrderPaid, now: datetime | None = None) -> ledger.Outcome:
    now = now or _now()
    program = load_program()
    source_key = f"order.paid:{event.order_id}"
    made: dict[str, Settlement] = {}

    def build(state):
        if not any(h.hold_id == checkout.hold_id_for(event.order_id) and h.status == "held"
                   for h in state.holds) and (event.amounts.points_used
                                              or event.amounts.balance_used
                                              or event.coupon_ids):
            # Spending without a hold placed before a freeze: refused, the event is
            # retried and then waits in the DLQ for an operator (docs/operations.md).
            ensure_may_spend(state.member, "order_spend")
        coupons = _coupons_of(event, state)
        builder = PostingBuilder(state, program, source_key=source_key,
                                 source_type="order.paid", reason="order_paid",
                                 actor="orders", now=now, effective_at=event.paid_at)
        plan, term = subscription_benefits.plan_at(state.member, program, event.paid_at)
        settlement = checkout.settle_paid(builder, event, program, upgrade_if_qualified,
                                          coupons, plan=plan,
                                          term_id=term.record.term_id if term else None)
        made["settlement"] = aggregates.with_categories(settlement, event.lines)
        made["term"] = term
        _know_member(builder, program, lambda stats: aggregates.order_paid(
            stats, made["settlement"], now=builder.now, tz=program.time_zone))
        return builder.build()

    def extra(_posting):
        settlement = made["settlement"]
        return (ExtraItem(model=_order_item(settlement, 0),
                          condition=OrderItem.PK.does_not_exist(),
                          on_condition_failed=ledger.AlreadyApplied),
                # Penetration's member side, in the same transaction (docs/metrics.md).
                counter_add(settlement.growth_month, event.order_id, member_orders=1,
                            member_spend=settlement.cash_paid + settlement.balance_used),
                *subscription_benefits.used_on_order(made["term"], settlement))

    return ledger.post(event.member_id, source_key, build, extra,
                       payload_hash=payload_hash(event))


def _coupons_of(event: OrderPaid, state) -> dict:
    """The order's coupons and those its open hold locked: one BatchGetItem, or none."""
    ids = set(event.coupon_ids)
    hold_id = checkout.hold_id_for(event.order_id)
    for hold in state.holds:
        if hold.hold_id == hold_id:
            ids.update(c.coupon_id for c in hold.coupons)
    if not ids:
        return {}
    from membership.storage import coupons as coupon_store

    return coupon_store.get_coupons(event.member_id, sorted(ids))


class _NothingToRelease(DomainError):
    code = "nothing_to_release"


def cancelled(event: OrderCancelled, now: datetime | None = None) -> ledger.Outcome:
    """Releases the order's hold; with no open hold there is nothing to undo."""
    now = now or _now()
    program = load_program()
    source_key = f"order.cancelled:{event.order_id}"
    hold_id = checkout.hold_id_for(event.order_id)

    def build(state):
        if not any(h.hold_id == hold_id and h.status == "held" for h in state.holds):
            raise _NothingToRelease()
        builder = PostingBuilder(state, program, source_key=source_key,
                                 source_type="order.cancelled", reason="order_cancelled",
                                 actor="orders", now=now)
        builder.release_hold(hold_id, reason="order_cancelled")
        builder.result = {"orderId": event.order_id, "memberId": event.member_id,
                          "released": True}
        return builder.build()

    try:
        return ledger.post(event.member_id, source_key, build, payload_hash=_ids_hash(event))
    except _NothingToRelease:
        # Never held, already captured (a paid order is refunded, not cancelled), or
        # released: writing nothing keeps every redelivery free.
        return ledger.Outcome(result={"orderId": event.order_id, "memberId": event.member_id,
                                      "released": False}, replayed=False)


def completed(event: OrderCompleted, now: datetime | None = None) -> ledger.Outcome:
    now = now or _now()
    program = load_program()
    source_key = f"order.completed:{event.order_id}"

    def build(state):
        settlement, _ = _read_settlement(event.member_id, event.order_id)
        builder = PostingBuilder(state, program, source_key=source_key,
                                 source_type="order.completed", reason="order_completed",
                                 actor="orders", now=now)
        checkout.complete_order(builder, settlement)
        return builder.build()

    return ledger.post(event.member_id, source_key, build, payload_hash=_ids_hash(event))


def refunded(event: OrderRefunded, now: datetime | None = None) -> ledger.Outcome:
    now = now or _now()
    program = load_program()
    source_key = f"order.refunded:{event.order_id}:{event.refund_id}"
    made: dict[str, object] = {}

    def build(state):
        # Read inside the attempt: a concurrent refund of the same order moves the
        # order's version, fails our condition, and this runs again on fresh data.
        settlement, version = _read_settlement(event.member_id, event.order_id)
        builder = PostingBuilder(state, program, source_key=source_key,
                                 source_type="order.refunded", reason="order_refunded",
                                 actor="orders", now=now,
                                 effective_at=event.refunded_at or now)
        made["settlement"] = checkout.apply_refund(builder, settlement, event)
        made["before"] = settlement
        made["version"] = version
        _know_member(builder, program, lambda stats: aggregates.order_refunded(
            stats, settlement, made["settlement"], now=builder.now, tz=program.time_zone))
        return builder.build()

    def extra(_posting):
        version = made["version"]
        return (ExtraItem(model=_order_item(made["settlement"], version + 1),
                          condition=OrderItem.version == version,
                          on_condition_failed=Retry),
                *subscription_benefits.given_back_on_refund(made["before"],
                                                            made["settlement"]))

    return ledger.post(event.member_id, source_key, build, extra,
                       payload_hash=_refund_hash(event))


def _know_member(builder: PostingBuilder, program, fold) -> None:
    """The order aggregates and the rule tags move in the posting itself: no extra write
    (docs/tags.md)."""
    builder.set(order_stats=fold(builder.member.order_stats))
    tags.retag(builder, program)


def _ids_hash(event) -> str:
    """Cancellation and completion mean the same whenever they were stamped: the ids only."""
    return payload_hash({"orderId": event.order_id, "memberId": event.member_id})


def _refund_hash(event: OrderRefunded) -> str:
    # The refund's time is when it happened, not what it is: a redelivery stamped again
    # is the same refund. Lines are what it refunds, in any order.
    lines = None if event.lines is None else sorted(
        (line.line_id, line.quantity) for line in event.lines)
    return payload_hash({"orderId": event.order_id, "memberId": event.member_id,
                         "refundId": event.refund_id, "lines": lines})
