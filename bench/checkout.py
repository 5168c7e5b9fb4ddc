"""Checkout: a quote and a hold through the checkout handler, and a settled order (the
order.paid event through the order-events handler in its EventBridge envelope)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from bench.operations import BenchContext, CallStats, operation

CHECKOUT = "membership.handlers.checkout.handler"
ORDER_EVENTS = "membership.handlers.order_events.handler"
LINES = [
    {"lineId": "1", "sku": "TEE", "category": "apparel", "brand": "acme", "quantity": 2,
     "unitPrice": 9_900},
    {"lineId": "2", "sku": "CAP", "category": "acc", "brand": "acme", "quantity": 1,
     "unitPrice": 5_900},
]


def _member(ctx: BenchContext, principal: int = 0) -> str:
    from membership.domain.members import member_id_for

    member_id = member_id_for(ctx.signed_up_member())
    if principal:
        from membership.domain.ledger import PostingBuilder
        from membership.storage import ledger
        from membership.storage.program import load_program

        key = ctx.unique("fund")

        def build(state):
            b = PostingBuilder(state, load_program(), source_key=key, source_type="bench",
                               reason="bench", actor="system", now=datetime.now(UTC))
            b.credit_balance("principal", principal)
            return b.build()

        ledger.post(member_id, key, build)
    return member_id


def _orders_event(ctx: BenchContext, path: str, body: dict) -> dict:
    return ctx.member_event("POST", path, body, sub="order-system", scopes=("orders",))


def _paid(member_id: str, order_id: str, balance: int = 0) -> dict:
    detail = {"orderId": order_id, "memberId": member_id, "storeId": "store-001",
              "paidAt": datetime.now(UTC).isoformat(), "lines": LINES,
              "amounts": {"subtotal": 25_700, "discount": 0, "pointsUsed": 0,
                          "balanceUsed": balance, "cashPaid": 25_700 - balance}}
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "order.paid",
            "source": "brand.orders", "account": "123456789012",
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": "us-east-1",
            "resources": [], "detail": detail}


@operation("checkout quote", requires=("membership.handlers.checkout",),
           route="POST /v1/checkout/quote")
def quote(ctx: BenchContext) -> CallStats:
    member_id = _member(ctx, principal=10_000)
    event = _orders_event(ctx, "/v1/checkout/quote",
                          {"memberId": member_id, "lines": LINES, "balanceToUse": 5_000})
    with ctx.count() as first:
        ctx.expect_status(ctx.invoke(CHECKOUT, event), 200)
    ctx.first_calls(first)
    with ctx.count() as calls:
        ctx.expect_status(ctx.invoke(CHECKOUT, event), 200)
    ctx.check("DynamoDB write calls per quote", calls.writes, "==", 0)
    ctx.check("DynamoDB read calls per quote", calls.reads, "==", 1)
    return calls


@operation("checkout hold", requires=("membership.handlers.checkout",),
           route="POST /v1/checkout/holds")
def hold(ctx: BenchContext) -> CallStats:
    member_id = _member(ctx, principal=10_000)
    event = _orders_event(ctx, "/v1/checkout/holds",
                          {"orderId": ctx.unique("SO"), "memberId": member_id,
                           "balance": 5_000, "points": 100})
    with ctx.count() as calls:
        ctx.expect_status(ctx.invoke(CHECKOUT, event), 201)
    ctx.check("DynamoDB write calls per hold", calls.writes, "==", 1)
    return calls


@operation("settled order (order.paid, cash)", requires=("membership.handlers.order_events",),
           route="EventBridge order.paid")
def settled_order(ctx: BenchContext) -> CallStats:
    member_id = _member(ctx)
    with ctx.count() as calls:
        ctx.invoke(ORDER_EVENTS, _paid(member_id, ctx.unique("SO")))
    ctx.check("DynamoDB write calls per settled order", calls.writes, "==", 1)
    # The 6-item target is the posting's own items (member, guard, points and growth
    # entries, lot, order); the metrics counter shard rides on top, in the same
    # transaction, because nothing else counts member orders exactly (docs/metrics.md).
    ctx.check("items written per plain cash order, without the metrics counter",
              calls.items_written - calls.counter_items_written, "<=", 6)
    ctx.check("metrics counter shards written per plain cash order",
              calls.counter_items_written, "==", 1)
    if calls.capacity_known:
        ctx.check("write units per item of a settled order",
                  calls.write_units / max(1, calls.items_written), "<=", 2)
    return calls


@operation("settled order (order.paid, captures hold)",
           requires=("membership.handlers.order_events",), route="EventBridge order.paid")
def settled_held_order(ctx: BenchContext) -> CallStats:
    member_id = _member(ctx, principal=10_000)
    order_id = ctx.unique("SO")
    ctx.expect_status(ctx.invoke(CHECKOUT, _orders_event(
        ctx, "/v1/checkout/holds", {"orderId": order_id, "memberId": member_id,
                                    "balance": 5_000})), 201)
    with ctx.count() as calls:
        ctx.invoke(ORDER_EVENTS, _paid(member_id, order_id, balance=5_000))
    ctx.check("DynamoDB write calls per settled held order", calls.writes, "==", 1)
    ctx.note(f"{calls.items_written} items: member, guard, hold delete + record, "
             "balance and points and growth entries, lot, order")
    return calls
