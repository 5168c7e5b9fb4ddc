"""The local event bus: real PutEvents calls, routed by template.yaml's rules to the real
order-events handler, with retries and a local DLQ."""
import json
from datetime import UTC, datetime, timedelta

import botocore.session
import pytest

from membership.domain.members import SignupRequest, member_id_for
from membership.services import members as member_service
from membership.storage import ledger as store
from membership_local.eventbus import EventBus, read_dlq, routes
from membership_local.runtime import Handlers
from membership_local.template import load_template

PAID_AT = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0).isoformat()
LINES = [{"lineId": "1", "sku": "TEE", "category": "apparel", "brand": "acme", "quantity": 2,
          "unitPrice": 10_000}]


@pytest.fixture
def bus(table, tmp_path):
    bus = EventBus(load_template(), port=0, handlers=Handlers(),
                   refs={"MembershipEventBus": "membership"}, dlq_path=tmp_path / "dlq.jsonl",
                   first_retry_delay=0.05).start()
    yield bus
    bus.stop()


@pytest.fixture
def member_id(table):
    member_service.signup("bus-user", SignupRequest(phone="13812345678", nickname="B",
                                                    channel="app"))
    return member_id_for("bus-user")


def client(bus):
    return botocore.session.get_session().create_client(
        "events", region_name="us-east-1", endpoint_url=bus.url,
        aws_access_key_id="testing", aws_secret_access_key="testing")


def entry(detail_type, detail, source="brand.orders", bus_name="membership"):
    return {"Source": source, "DetailType": detail_type, "Detail": json.dumps(detail),
            "EventBusName": bus_name}


def paid(member_id, order_id="SO-1"):
    return entry("order.paid", {
        "orderId": order_id, "memberId": member_id, "storeId": "s", "paidAt": PAID_AT,
        "lines": LINES, "amounts": {"subtotal": 20_000, "discount": 0, "pointsUsed": 0,
                                    "balanceUsed": 0, "cashPaid": 20_000}})


def test_routes_come_from_the_templates_rules_with_parameters_resolved():
    found = {r.name: r for r in routes(load_template(), {"MembershipEventBus": "membership"})}
    paid_route = found["OrderEventsFunction.OrderPaid"]
    assert paid_route.bus == "membership"
    assert paid_route.pattern == {"source": ["brand.orders"], "detail-type": ["order.paid"]}
    assert paid_route.handler == "membership.handlers.order_events.handler"


def test_put_events_reaches_the_handler_in_an_eventbridge_envelope(bus, member_id):
    answer = client(bus).put_events(Entries=[paid(member_id)])
    assert answer["FailedEntryCount"] == 0 and answer["Entries"][0]["EventId"]
    assert bus.drain(30)
    assert store.read_live_range(member_id).member.points_pending == 200
    (name, event), = bus.delivered
    assert name == "OrderEventsFunction.OrderPaid"
    assert event["detail-type"] == "order.paid" and event["source"] == "brand.orders"
    assert event["id"] == answer["Entries"][0]["EventId"]


def test_events_of_other_sources_or_buses_reach_no_order_rule(bus, member_id):
    events = client(bus)
    events.put_events(Entries=[paid(member_id) | {"Source": "someone.else"}])
    events.put_events(Entries=[paid(member_id) | {"EventBusName": "default"}])
    assert bus.drain(30)
    assert bus.delivered == []
    assert store.read_live_range(member_id).member.points_pending == 0


def test_a_refund_before_its_payment_is_retried_until_the_payment_lands(bus, member_id):
    events = client(bus)
    events.put_events(Entries=[entry("order.refunded", {
        "orderId": "SO-1", "memberId": member_id, "refundId": "RF-1"})])
    events.put_events(Entries=[paid(member_id)])
    assert bus.drain(60)
    m = store.read_live_range(member_id).member
    assert (m.points_pending, sum(m.growth_months.values())) == (0, 0)
    assert store.read_guard("order.refunded:SO-1:RF-1") is not None
    assert read_dlq(bus.dlq_path) == []


def test_a_malformed_event_is_retried_then_kept_in_the_dlq(bus, member_id):
    client(bus).put_events(Entries=[entry("order.paid", {"orderId": "SO-1",
                                                         "memberId": member_id})])
    assert bus.drain(60)
    (record,) = read_dlq(bus.dlq_path)
    assert record["rule"] == "OrderEventsFunction.OrderPaid"
    assert record["attempts"] > 1 and "MalformedEvent" in record["error"]
    assert record["event"]["detail"]["orderId"] == "SO-1"
    assert store.read_live_range(member_id).member.points_pending == 0


def test_an_entry_whose_detail_is_not_json_fails_alone(bus, member_id):
    answer = client(bus).put_events(Entries=[
        {"Source": "brand.orders", "DetailType": "order.paid", "Detail": "{oops",
         "EventBusName": "membership"},
        paid(member_id)])
    assert answer["FailedEntryCount"] == 1
    assert answer["Entries"][0]["ErrorCode"] == "MalformedDetail"
    assert "EventId" in answer["Entries"][1]
