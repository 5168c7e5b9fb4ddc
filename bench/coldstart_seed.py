"""Data and events for the cold-start probes: `python -m bench.coldstart_seed OUT COUNT`.

Runs in a process of its own with the functions' environment (the table on DynamoDB
Local, SQS and EventBridge on moto), so the bench's own process never imports a handler
before its DynamoDB call counter is installed. Prepares members, top-ups and a
settlement run through the real handlers and services, then writes OUT (JSON): for each
scenario, its function, its handler and COUNT events, one per fresh process (a write
needs its own order, top-up or key each time); and the key the baseline's GetItem reads.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from membership_local.apigw import lambda_context, member_event

H = "membership.handlers."
LINES = [
    {"lineId": "1", "sku": "TEE", "category": "apparel", "brand": "acme", "quantity": 2,
     "unitPrice": 9_900},
    {"lineId": "2", "sku": "CAP", "category": "acc", "brand": "acme", "quantity": 1,
     "unitPrice": 5_900},
]
# A month long closed; its run is created here as the schedule of 1 February 2020 would
# (only the month that ended last can be settled, relative to the run's own time).
SETTLED_PERIOD = "2020-01"
SETTLED_AT = datetime(2020, 2, 1, 0, 5, tzinfo=UTC)


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _phone() -> str:
    return f"139{uuid.uuid4().int % 10**8:08d}"


def _invoke(handler: str, event: dict) -> dict:
    import importlib

    module, attribute = handler.rsplit(".", 1)
    with contextlib.redirect_stdout(io.StringIO()):  # Powertools' metrics and logs
        return getattr(importlib.import_module(module), attribute)(event, lambda_context())


def _ok(response: dict, *statuses: int) -> dict:
    if response.get("statusCode") not in statuses:
        raise RuntimeError(f"seeding got {response.get('statusCode')}: {response.get('body')}")
    return json.loads(response.get("body") or "{}")


def _envelope(detail_type: str, source: str, detail: dict) -> dict:
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": detail_type,
            "source": source, "account": "123456789012",
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": "us-east-1",
            "resources": [], "detail": detail}


def _signup_event(sub: str) -> dict:
    return member_event("POST", "/v1/members", {"phone": _phone(), "nickname": "Bench",
                                                "channel": "app", "storeId": "store-001"},
                        sub=sub)


def _topup_event(sub: str) -> dict:
    body = {"amount": 50_000, "paymentReference": _unique("test-cold"), "channel": "wechat_pay"}
    return member_event("POST", "/v1/members/me/topups", body, sub=sub,
                        headers={"Idempotency-Key": _unique("key")})


def seed(count: int) -> dict:
    from membership.domain.members import member_id_for

    sub = _unique("cold")
    _ok(_invoke(H + "members.handler", _signup_event(sub)), 201)
    member_id = member_id_for(sub)
    # Stored value to quote with, and top-ups for the refund scenarios to undo.
    credited = [_ok(_invoke(H + "topups.handler", _topup_event(sub)), 201)
                for _ in range(2 * count + 1)]
    refundable = iter(credited[1:])

    from membership.services import settlement

    settlement.start(SETTLED_PERIOD, now=SETTLED_AT, enqueue=lambda _messages: None)

    def each(make: Callable[[int], dict]) -> list[dict]:
        return [make(i) for i in range(count)]

    orders = ("order-system", ("orders",))
    scenarios = {
        "GET /v1/members/me": ("MembersFunction", each(
            lambda _: member_event("GET", "/v1/members/me", sub=sub))),
        "POST /v1/members (signup)": ("MembersFunction", each(
            lambda _: _signup_event(_unique("cold")))),
        "GET /v1/program": ("ProgramFunction", each(
            lambda _: member_event("GET", "/v1/program", sub=sub))),
        "POST /v1/members/me/topups": ("TopupsFunction", each(lambda _: _topup_event(sub))),
        "POST /v1/admin/topups/{id}/refunds": ("AdminTopupsFunction", each(
            lambda _: member_event(
                "POST", f"/v1/admin/topups/{next(refundable)['topupId']}/refunds",
                {"refundReference": _unique("test-refund")}, sub="operator",
                scopes=("admin",), headers={"Idempotency-Key": _unique("key")}))),
        "payment.refunded": ("PaymentEventsFunction", each(
            lambda _: _envelope("payment.refunded", "payments", {
                "paymentReference": next(refundable)["paymentReference"],
                "refundReference": _unique("test-refund"), "amount": 50_000,
                "occurredAt": datetime.now(UTC).isoformat()}))),
        "POST /v1/checkout/quote": ("CheckoutFunction", each(
            lambda _: member_event("POST", "/v1/checkout/quote",
                                   {"memberId": member_id, "lines": LINES,
                                    "balanceToUse": 5_000},
                                   sub=orders[0], scopes=orders[1]))),
        "order.paid": ("OrderEventsFunction", each(
            lambda _: _envelope("order.paid", "brand.orders", {
                "orderId": _unique("SO"), "memberId": member_id, "storeId": "store-001",
                "paidAt": datetime.now(UTC).isoformat(), "lines": LINES,
                "amounts": {"subtotal": 25_700, "discount": 0, "pointsUsed": 0,
                            "balanceUsed": 0, "cashPaid": 25_700}}))),
        "stream → PutEvents": ("PublisherFunction", each(lambda i: {"Records": [{
            "eventID": _unique("e"), "eventName": "INSERT", "dynamodb": {
                "Keys": {"PK": {"S": "SOURCE#cold"}, "SK": {"S": "SOURCE"}},
                "NewImage": {"PK": {"S": "SOURCE#cold"}, "memberId": {"S": member_id},
                             "outbox": {"L": [{"M": {
                                 "detailType": {"S": "member.signed_up"},
                                 "detail": {"S": json.dumps({"memberId": member_id})}}}]}},
                "SequenceNumber": str(100 + i)}}]})),
        "schedule → start settlement": ("SettlementCoordinatorFunction", each(
            # The schedule's own event: each settles the month before its time.
            lambda i: {"scheduledTime": f"{2001 + i // 12}-{1 + i % 12:02d}-01T00:05:00Z"})),
        "SQS → settle a segment": ("SettlementWorkerFunction", each(lambda i: {"Records": [{
            "messageId": _unique("m"), "body": json.dumps(
                {"period": SETTLED_PERIOD, "segment": i % 64, "segments": 64})}]})),
        "GET /v1/admin/settlements/{period}": ("AdminSettlementsFunction", each(
            lambda _: member_event("GET", f"/v1/admin/settlements/{SETTLED_PERIOD}",
                                   sub="operator", scopes=("admin",)))),
        "schedule → sweep": ("SweepFunction", each(lambda _: {})),
    }
    return {
        "baseline_key": {"PK": {"S": f"MEMBER#{member_id}"}, "SK": {"S": "MEMBER"}},
        "scenarios": {name: {"function": function, "events": events}
                      for name, (function, events) in scenarios.items()},
    }


def main(argv: list[str]) -> int:
    out, count = argv[0], int(argv[1])
    with open(out, "w", encoding="utf-8") as f:
        json.dump(seed(count), f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
