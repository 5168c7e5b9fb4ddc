"""Tasks through the real handlers, against DynamoDB Local: reported by the app, and
completed by the order system's review.posted."""
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from membership.domain.members import SignupRequest, member_id_for
from membership.domain.program import Task, default_program
from membership.domain.tasks import OrderNotPaid
from membership.handlers import order_events, task_events
from membership.handlers import tasks as tasks_handler
from membership.handlers.events import MalformedEvent
from membership.services import members as member_service
from membership.services.ledger import reconcile_member
from membership.storage import ledger as store
from membership.storage.program import save_program

SAMPLES = Path(__file__).resolve().parents[2] / "events" / "samples"
PAID_AT = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0).isoformat()
LINES = [{"lineId": "1", "sku": "TEE", "category": "apparel", "brand": "acme", "quantity": 1,
          "unitPrice": 10_000}]


def join(sub="reviewer", phone="13812345678", store_id=None) -> str:
    member_service.signup(sub, SignupRequest(phone=phone, nickname="R", channel="app",
                                             storeId=store_id))
    return member_id_for(sub)


def envelope(detail_type, detail):
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": detail_type,
            "source": "brand.orders", "account": "123456789012",
            "time": "2025-03-26T12:15:00Z", "region": "us-east-1", "resources": [],
            "detail": detail}


def pay(ctx, member_id, order_id="SO-1"):
    order_events.handler(envelope("order.paid", {
        "orderId": order_id, "memberId": member_id, "storeId": "store-001", "paidAt": PAID_AT,
        "lines": LINES, "amounts": {"subtotal": 10_000, "discount": 0, "pointsUsed": 0,
                                    "balanceUsed": 0, "cashPaid": 10_000}}), ctx)


def review(ctx, member_id, order_id="SO-1", review_id="RV-1"):
    return task_events.handler(envelope("review.posted", {
        "memberId": member_id, "orderId": order_id, "reviewId": review_id,
        "postedAt": "2025-03-26T20:15:00+08:00"}), ctx)


def report(apigw_event, ctx, task_id, body=None, sub="reviewer"):
    response = tasks_handler.handler(apigw_event(
        "POST", f"/v1/members/me/tasks/{task_id}/completions", body, sub=sub), ctx)
    return response["statusCode"], json.loads(response["body"] or "null")


def member(member_id):
    return store.read_live_range(member_id).member


def snapshot(member_id):
    return store.read_live_range(member_id), store.all_entries(member_id)


def task_entries(member_id):
    return sorted((e.asset, e.amount, e.reason) for e in store.all_entries(member_id)
                  if e.source_type == "task")


# ---- reported by the app ----------------------------------------------------------------

def test_a_completed_profile_earns_the_task_once(table, apigw_event, lambda_context):
    member_id = join(store_id="store-001")
    status, body = report(apigw_event, lambda_context, "profile_completed")
    assert status == 201
    assert (body["taskId"], body["points"], body["growth"]) == ("profile_completed", 50, 0)
    assert member(member_id).points_available == 150
    assert reconcile_member(member_id) == []


def test_a_task_twice_is_409_and_writes_nothing(table, apigw_event, lambda_context):
    member_id = join(store_id="store-001")
    _, first = report(apigw_event, lambda_context, "profile_completed")
    before = snapshot(member_id)
    status, body = report(apigw_event, lambda_context, "profile_completed", {})
    assert (status, body["code"]) == (409, "task_already_completed")
    assert body["details"]["first"] == first
    assert snapshot(member_id) == before


def test_an_incomplete_profile_does_not_complete_the_task(table, apigw_event, lambda_context):
    member_id = join()
    before = snapshot(member_id)
    status, body = report(apigw_event, lambda_context, "profile_completed")
    assert (status, body["code"]) == (422, "task_requirements_not_met")
    assert body["details"]["missing"] == ["storeId"]
    assert snapshot(member_id) == before


def test_a_task_of_the_order_system_cannot_be_reported_by_the_app(table, apigw_event,
                                                                  lambda_context):
    member_id = join()
    pay(lambda_context, member_id)
    before = snapshot(member_id)
    status, body = report(apigw_event, lambda_context, "review_posted", {"orderId": "SO-1"})
    assert (status, body["code"]) == (422, "task_not_reportable")
    assert snapshot(member_id) == before


def test_an_unknown_task_is_404(table, apigw_event, lambda_context):
    join()
    status, body = report(apigw_event, lambda_context, "no_such_task")
    assert (status, body["code"]) == (404, "task_not_found")


@pytest.mark.parametrize("task_id", ["Profile", "x" * 65, "1abc"])
def test_a_task_id_that_is_not_one_is_422(table, apigw_event, lambda_context, task_id):
    join()
    status, _ = report(apigw_event, lambda_context, task_id)
    assert status == 422


def test_a_daily_member_task_completes_once_a_day(table, apigw_event, lambda_context):
    save_program(default_program().model_copy(update={"tasks": (
        Task(id="share", name="Share", points=3, limit="daily", trigger="member"),)}))
    member_id = join()
    assert report(apigw_event, lambda_context, "share")[0] == 201
    assert report(apigw_event, lambda_context, "share")[0] == 409
    assert member(member_id).points_available == 103


def test_a_per_order_member_task_needs_a_paid_order_of_the_member(table, apigw_event,
                                                                  lambda_context):
    save_program(default_program().model_copy(update={"tasks": (
        Task(id="unbox", name="Unboxing photo", points=7, limit="per_order",
             trigger="member"),)}))
    member_id = join()
    other = join(sub="other", phone="13912345678")
    pay(lambda_context, other, "SO-OTHER")
    pay(lambda_context, member_id, "SO-MINE")
    assert report(apigw_event, lambda_context, "unbox")[1]["code"] == "order_required"
    assert report(apigw_event, lambda_context, "unbox",
                  {"orderId": "SO-OTHER"})[1]["code"] == "order_not_paid"
    assert report(apigw_event, lambda_context, "unbox",
                  {"orderId": "SO-NONE"})[1]["code"] == "order_not_paid"
    status, body = report(apigw_event, lambda_context, "unbox", {"orderId": "SO-MINE"})
    assert (status, body["orderId"]) == (201, "SO-MINE")
    assert report(apigw_event, lambda_context, "unbox", {"orderId": "SO-MINE"})[0] == 409
    assert task_entries(member_id) == [("points", 7, "task_unbox")]


# ---- review.posted ----------------------------------------------------------------------

def test_a_review_of_a_paid_order_earns_points_and_growth_once(table, lambda_context):
    member_id = join()
    pay(lambda_context, member_id)
    before = member(member_id)
    answer = review(lambda_context, member_id)
    assert answer["results"][0]["replayed"] is False
    after = member(member_id)
    assert after.points_available == before.points_available + 10
    assert sum(after.growth_months.values()) == sum(before.growth_months.values()) + 5
    again = review(lambda_context, member_id, review_id="RV-2")  # redelivered, or edited
    assert again["results"][0]["replayed"] is True
    assert member(member_id) == after
    assert task_entries(member_id) == [("growth", 5, "task_review_posted"),
                                       ("points", 10, "task_review_posted")]
    assert reconcile_member(member_id) == []


def test_reviews_of_two_orders_earn_twice(table, lambda_context):
    member_id = join()
    pay(lambda_context, member_id, "SO-1")
    pay(lambda_context, member_id, "SO-2")
    review(lambda_context, member_id, "SO-1")
    review(lambda_context, member_id, "SO-2")
    assert [a for a, _, _ in task_entries(member_id)].count("points") == 2


def test_a_review_of_an_unpaid_order_fails_and_credits_nothing(table, lambda_context):
    member_id = join()
    before = snapshot(member_id)
    with pytest.raises(OrderNotPaid):
        review(lambda_context, member_id, "SO-NEVER-PAID")
    assert snapshot(member_id) == before


def test_a_review_of_another_members_order_fails_and_credits_nothing(table, lambda_context):
    member_id = join()
    other = join(sub="other", phone="13912345678")
    pay(lambda_context, other, "SO-OTHER")
    before = snapshot(member_id), snapshot(other)
    with pytest.raises(OrderNotPaid):
        review(lambda_context, member_id, "SO-OTHER")
    assert (snapshot(member_id), snapshot(other)) == before


def test_a_review_that_arrives_before_its_payment_is_applied_when_retried(table,
                                                                         lambda_context):
    member_id = join()
    with pytest.raises(OrderNotPaid):
        review(lambda_context, member_id)
    pay(lambda_context, member_id)
    assert review(lambda_context, member_id)["results"][0]["replayed"] is False


def test_a_review_when_the_program_has_no_review_task_changes_nothing(table, lambda_context):
    save_program(default_program().model_copy(update={"tasks": ()}))
    member_id = join()
    pay(lambda_context, member_id)
    before = snapshot(member_id)
    assert review(lambda_context, member_id)["results"] == []
    assert snapshot(member_id) == before


def test_a_malformed_review_event_is_refused(table, lambda_context):
    member_id = join()
    for detail in ({"memberId": member_id, "orderId": "SO-1"},
                   {"memberId": "someone", "orderId": "SO-1", "reviewId": "R"},
                   {"memberId": member_id, "orderId": "SO 1", "reviewId": "R"}):
        with pytest.raises(MalformedEvent):
            task_events.handler(envelope("review.posted", detail), lambda_context)


def test_the_review_sample_is_what_the_handler_accepts(table, lambda_context):
    (entry,) = json.loads((SAMPLES / "review.posted.json").read_text())
    detail = json.loads(entry["Detail"])
    member_id = join()
    pay(lambda_context, member_id, detail["orderId"])
    answer = review(lambda_context, member_id, detail["orderId"], detail["reviewId"])
    assert answer["results"][0]["result"]["orderId"] == detail["orderId"]
