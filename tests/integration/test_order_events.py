"""The order system's events through the real rule target, against DynamoDB Local."""
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from membership.domain import calendar
from membership.domain.checkout import HoldMismatch, OrderNotPaidYet
from membership.domain.ledger import PostingBuilder
from membership.domain.members import SignupRequest, member_id_for
from membership.handlers import order_events
from membership.handlers.events import MalformedEvent
from membership.services import checkout as checkout_service
from membership.services import members as member_service
from membership.services.ledger import reconcile_member
from membership.storage import ledger as store
from membership.storage.models import OrderItem
from membership.storage.program import load_program

SHANGHAI = calendar.zone("Asia/Shanghai")
# An hour ago, so the order's growth counts in the rolling 12 months that decide the tier.
PAID_AT = (datetime.now(SHANGHAI) - timedelta(hours=1)).replace(microsecond=0).isoformat()
PAID_MONTH = calendar.month_of(datetime.fromisoformat(PAID_AT), "Asia/Shanghai")


def signed_up(sub="shopper", balance=0, points=0, growth=None):
    member_service.signup(sub, SignupRequest(phone="13812345678", nickname="S", channel="app"))
    member_id = member_id_for(sub)
    if balance or points or growth:
        def build(state):
            b = PostingBuilder(state, load_program(), source_key=f"seed:{member_id}",
                               source_type="test", reason="seed", actor="test",
                               now=datetime.now(UTC))
            if balance:
                b.credit_balance("principal", balance)
            if points:
                b.credit_points(points, lot_id=f"seed-{member_id}",
                                expires_at=datetime.now(UTC) + timedelta(days=900))
            for month, amount in (growth or {}).items():
                b.credit_growth(amount, month=month)
            return b.build()
        store.post(member_id, f"seed:{member_id}", build)
    return member_id


def envelope(detail_type, detail):
    """An EventBridge event as a rule delivers it to its Lambda target."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": detail_type,
            "source": "brand.orders", "account": "123456789012",
            "time": "2025-03-20T11:02:41Z", "region": "us-east-1", "resources": [],
            "detail": detail}


def deliver(ctx, detail_type, detail):
    return order_events.handler(envelope(detail_type, detail), ctx)


LINES = [
    {"lineId": "1", "sku": "TEE", "category": "apparel", "brand": "acme", "quantity": 2,
     "unitPrice": 10_000},
    {"lineId": "2", "sku": "CAP", "category": "acc", "brand": "acme", "quantity": 1,
     "unitPrice": 5_000},
]


def paid(member_id, order_id="SO-1", points=0, balance=0, lines=LINES, paid_at=PAID_AT):
    subtotal = sum(x["quantity"] * x["unitPrice"] for x in lines)
    return {"orderId": order_id, "memberId": member_id, "storeId": "store-001",
            "paidAt": paid_at, "lines": lines,
            "amounts": {"subtotal": subtotal, "discount": 0, "pointsUsed": points,
                        "balanceUsed": balance, "cashPaid": subtotal - points - balance}}


def member(member_id):
    return store.read_live_range(member_id).member


def test_paid_order_without_hold_debits_and_awards_pending_points_and_growth(
        table, lambda_context):
    member_id = signed_up(balance=5_000)
    answer = deliver(lambda_context, "order.paid", paid(member_id, balance=5_000, points=100))
    m = member(member_id)
    assert answer["result"]["pointsEarned"] == 249 and not answer["result"]["capturedHold"]
    assert (m.balance_principal, m.points_available, m.points_pending) == (0, 0, 249)
    assert m.growth_months == {PAID_MONTH: 249}
    assert reconcile_member(member_id) == []


def test_paid_order_captures_its_hold(table, lambda_context):
    member_id = signed_up(balance=5_000)
    checkout_service.hold(checkout_service.HoldRequest(orderId="SO-1", memberId=member_id,
                                                       balance=5_000))
    answer = deliver(lambda_context, "order.paid", paid(member_id, balance=5_000))
    assert answer["result"]["capturedHold"]
    assert store.read_live_range(member_id).holds == ()
    assert member(member_id).balance_principal == 0
    assert reconcile_member(member_id) == []


def test_paid_amounts_that_differ_from_the_hold_fail_and_change_nothing(table, lambda_context):
    member_id = signed_up(balance=5_000)
    checkout_service.hold(checkout_service.HoldRequest(orderId="SO-1", memberId=member_id,
                                                       balance=5_000))
    before = store.read_live_range(member_id)
    with pytest.raises(HoldMismatch):
        deliver(lambda_context, "order.paid", paid(member_id, balance=4_000))
    assert store.read_live_range(member_id) == before


def test_points_and_growth_are_dated_by_the_paid_time_not_processing_time(table,
                                                                          lambda_context):
    member_id = signed_up()
    deliver(lambda_context, "order.paid", paid(member_id, paid_at="2025-01-31T23:30:00+08:00"))
    m = member(member_id)
    lot = next(lot for lot in store.all_lots(member_id) if lot.lot_id == "order-SO-1")
    assert m.growth_months == {"2025-01": 250}
    assert lot.expires_at == calendar.end_of_next_year(datetime(2025, 1, 31, 16, tzinfo=UTC),
                                                       "Asia/Shanghai")


def test_paid_order_crossing_a_threshold_upgrades_with_gift_and_event(table, lambda_context):
    member_id = signed_up(growth={PAID_MONTH: 900})
    deliver(lambda_context, "order.paid", paid(member_id))
    m = member(member_id)
    # The gift is pending with the order's points until the order completes.
    assert m.tier_id == "V2" and (m.points_available, m.points_pending) == (100, 250 + 200)
    deliver(lambda_context, "order.completed", {"orderId": "SO-1", "memberId": member_id})
    assert member(member_id).points_available == 100 + 250 + 200
    guard = store.read_guard("order.paid:SO-1")
    assert [e["detailType"] for e in guard.outbox] == ["member.tier_changed"]


def test_the_same_paid_event_five_times_some_concurrently_has_one_effect(table, lambda_context):
    member_id = signed_up(balance=5_000)
    event = paid(member_id, balance=3_000)
    barrier = threading.Barrier(3)
    errors = []

    def run():
        barrier.wait()
        try:
            deliver(lambda_context.next_invocation(), "order.paid", event)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    deliver(lambda_context, "order.paid", event)
    deliver(lambda_context, "order.paid", event)
    m = member(member_id)
    assert errors == []
    assert (m.balance_principal, m.points_pending) == (2_000, 250)
    assert reconcile_member(member_id) == []


def test_cancelled_order_releases_its_hold(table, lambda_context):
    member_id = signed_up(balance=5_000, points=1_000)
    checkout_service.hold(checkout_service.HoldRequest(orderId="SO-1", memberId=member_id,
                                                       balance=2_000, points=500))
    first = deliver(lambda_context, "order.cancelled", {"orderId": "SO-1", "memberId": member_id})
    again = deliver(lambda_context, "order.cancelled", {"orderId": "SO-1", "memberId": member_id})
    m = member(member_id)
    assert (m.balance_principal, m.points_available) == (5_000, 1_100)
    assert again["replayed"] and again["result"] == first["result"]


def test_cancelling_an_order_that_was_never_held_writes_nothing(table, lambda_context):
    member_id = signed_up()
    before = store.read_live_range(member_id)
    answer = deliver(lambda_context, "order.cancelled", {"orderId": "SO-9", "memberId": member_id})
    assert answer["result"]["released"] is False
    assert store.read_live_range(member_id) == before
    assert reconcile_member(member_id) == []


def test_completed_order_makes_its_pending_points_available(table, lambda_context):
    member_id = signed_up()
    deliver(lambda_context, "order.paid", paid(member_id))
    deliver(lambda_context, "order.completed", {"orderId": "SO-1", "memberId": member_id})
    deliver(lambda_context, "order.completed", {"orderId": "SO-1", "memberId": member_id})
    m = member(member_id)
    assert (m.points_pending, m.points_available) == (0, 100 + 250)
    assert reconcile_member(member_id) == []


def test_completion_before_its_payment_fails_until_the_payment_lands(table, lambda_context):
    member_id = signed_up()
    completed = {"orderId": "SO-1", "memberId": member_id}
    with pytest.raises(OrderNotPaidYet):
        deliver(lambda_context, "order.completed", completed)
    assert store.read_guard("order.completed:SO-1") is None
    deliver(lambda_context, "order.paid", paid(member_id))
    deliver(lambda_context, "order.completed", completed)  # the retry
    assert member(member_id).points_available == 100 + 250


def test_refund_before_its_payment_fails_until_the_payment_lands(table, lambda_context):
    member_id = signed_up(balance=5_000)
    refund = {"orderId": "SO-1", "memberId": member_id, "refundId": "RF-1"}
    with pytest.raises(OrderNotPaidYet):
        deliver(lambda_context, "order.refunded", refund)
    assert member(member_id).balance_principal == 5_000
    deliver(lambda_context, "order.paid", paid(member_id, balance=5_000))
    deliver(lambda_context, "order.refunded", refund)  # the retry
    m = member(member_id)
    assert (m.balance_principal, m.points_pending, sum(m.growth_months.values())) == (5_000, 0, 0)
    assert reconcile_member(member_id) == []


def test_partial_refund_reverses_in_proportion_and_applies_once(table, lambda_context):
    member_id = signed_up(balance=5_000, points=1_000)
    deliver(lambda_context, "order.paid", paid(member_id, balance=5_000, points=1_000))
    refund = {"orderId": "SO-1", "memberId": member_id, "refundId": "RF-1",
              "lines": [{"lineId": "1", "quantity": 1}]}
    first = deliver(lambda_context, "order.refunded", refund)
    deliver(lambda_context, "order.refunded", refund)
    # Line 1 is 20,000 of 25,000 fen; one unit of two is 40% of the order.
    assert first["result"]["balanceReturned"]["total"] == 2_000
    assert first["result"]["pointsReturned"] == 400
    assert first["result"]["earnedPointsReversed"] == 96  # 40% of 240 pending
    m = member(member_id)
    assert (m.balance_principal, m.points_available, m.points_pending) == (2_000, 500, 144)
    settlement = json.loads(OrderItem.get(*OrderItem.key(member_id, "SO-1")).document)
    assert settlement["refund_ids"] == ["RF-1"]
    assert reconcile_member(member_id) == []


def test_partial_refund_after_the_earned_points_were_spent_never_goes_negative(
        table, lambda_context):
    member_id = signed_up(sub="spender")
    deliver(lambda_context, "order.paid", paid(member_id))
    deliver(lambda_context, "order.completed", {"orderId": "SO-1", "memberId": member_id})
    # The member spends everything: the signup gift and the order's 250 points.
    checkout_service.hold(checkout_service.HoldRequest(orderId="SO-2", memberId=member_id,
                                                       points=350))
    deliver(lambda_context, "order.paid", paid(member_id, order_id="SO-2", points=350,
                                               lines=[{**LINES[0], "quantity": 1}]))
    answer = deliver(lambda_context, "order.refunded", {
        "orderId": "SO-1", "memberId": member_id, "refundId": "RF-1",
        "lines": [{"lineId": "1", "quantity": 2}]})
    m = member(member_id)
    assert answer["result"]["earnedPointsReversed"] == 200
    assert answer["result"]["earnedPointsWrittenOff"] == 200
    assert m.points_available == 0 and m.points_pending == 96
    assert reconcile_member(member_id) == []


def test_refunding_the_whole_order_in_steps_restores_exactly(table, lambda_context):
    member_id = signed_up(balance=7_777, points=3_333)
    deliver(lambda_context, "order.paid", paid(member_id, balance=7_777, points=3_333))
    for n, lines in enumerate(([{"lineId": "1", "quantity": 1}],
                               [{"lineId": "2", "quantity": 1}], None)):
        deliver(lambda_context, "order.refunded", {
            "orderId": "SO-1", "memberId": member_id, "refundId": f"RF-{n}", "lines": lines})
    m = member(member_id)
    assert (m.balance_principal, m.points_available, m.points_pending) == (7_777, 3_433, 0)
    assert sum(m.growth_months.values()) == 0
    assert reconcile_member(member_id) == []


def test_refunding_more_than_was_bought_fails_and_changes_nothing(table, lambda_context):
    member_id = signed_up()
    deliver(lambda_context, "order.paid", paid(member_id))
    before = store.read_live_range(member_id)
    with pytest.raises(Exception, match="left to refund"):
        deliver(lambda_context, "order.refunded", {
            "orderId": "SO-1", "memberId": member_id, "refundId": "RF-1",
            "lines": [{"lineId": "2", "quantity": 2}]})
    assert store.read_live_range(member_id) == before


@pytest.mark.parametrize("detail_type, detail", [
    ("order.paid", {"orderId": "SO-1"}),
    ("order.paid", {"orderId": "SO-1", "memberId": "Mabcdefghij", "paidAt": PAID_AT,
                    "lines": [], "amounts": {}}),
    ("order.refunded", {"orderId": "SO-1", "memberId": "Mabcdefghij"}),
    ("order.shipped", {"orderId": "SO-1"}),
])
def test_a_malformed_event_fails_and_changes_nothing(table, lambda_context, detail_type,
                                                     detail):
    with pytest.raises(MalformedEvent):
        deliver(lambda_context, detail_type, detail)


def test_paid_amounts_that_do_not_add_up_fail_and_change_nothing(table, lambda_context):
    member_id = signed_up(balance=5_000)
    event = paid(member_id, balance=1_000)
    event["amounts"]["cashPaid"] += 1
    with pytest.raises(Exception, match="cashPaid"):
        deliver(lambda_context, "order.paid", event)
    assert member(member_id).balance_principal == 5_000


def test_a_stale_posting_that_deletes_a_lot_is_retried_not_taken_for_applied(table):
    # A refund that raced its payment used to read as "already applied" and was lost: the
    # transaction sends deletes before puts, so cancellation reasons must be read that way.
    from membership.storage.table import Retry

    member_id = signed_up()
    stale = store.read_live_range(member_id)
    b = PostingBuilder(stale, load_program(), source_key="spend-all", source_type="test",
                       reason="t", actor="test", now=datetime.now(UTC))
    b.debit_points(100)  # uses the signup lot up: the posting deletes it
    posting = b.build()
    assert any(change.after is None for change in posting.lots)
    signed_up_bump = PostingBuilder(stale, load_program(), source_key="bump",
                                    source_type="test", reason="t", actor="test",
                                    now=datetime.now(UTC))
    signed_up_bump.credit_balance("principal", 1)
    store.commit(signed_up_bump.build())
    with pytest.raises(Retry):
        store.commit(posting)
