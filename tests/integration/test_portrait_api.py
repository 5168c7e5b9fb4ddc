"""The member portrait through the real handler, against DynamoDB Local."""
import json
from datetime import UTC, datetime, timedelta

from membership.domain import calendar
from membership.domain.checkout import OrderPaid
from membership.domain.members import SignupRequest, member_id_for
from membership.handlers import admin_portrait
from membership.services import members as member_service
from membership.services import orders as order_service
from membership.services import tags as tag_service


def test_portrait_shows_rfm_affinity_orders_assets_and_tags(table, apigw_event,
                                                            lambda_context):
    member_service.signup("pic", SignupRequest(phone="13812345678", nickname="P",
                                               channel="mini_program", storeId="S1"))
    member_id = member_id_for("pic")
    # Paid today in the program's time zone (recencyDays 0), whatever the hour of the run.
    now = datetime.now(UTC)
    local_midnight = datetime.now(calendar.zone("Asia/Shanghai")).replace(
        hour=0, minute=0, second=0, microsecond=0)
    paid_at = max(now - timedelta(hours=1), local_midnight)
    order_service.paid(OrderPaid.model_validate({
        "orderId": "SO-1", "memberId": member_id, "storeId": "S9",
        "paidAt": paid_at.isoformat(),
        "lines": [{"lineId": "1", "sku": "m", "category": "milk", "brand": "b", "quantity": 3,
                   "unitPrice": 20_000},
                  {"lineId": "2", "sku": "t", "category": "toys", "brand": "b", "quantity": 1,
                   "unitPrice": 20_000}],
        "amounts": {"subtotal": 80_000, "discount": 0, "pointsUsed": 0, "balanceUsed": 0,
                    "cashPaid": 80_000}}))
    tag_service.put_tag(member_id, "milk_powder")
    response = admin_portrait.handler(apigw_event(
        "GET", f"/v1/admin/members/{member_id}/portrait", sub="op", scopes=("admin",)),
        lambda_context)
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert (body["channel"], body["storeId"], body["tier"]) == ("mini_program", "S1", "V1")
    assert body["rfm"] == {"recency": 5, "frequency": 1, "monetary": 2, "recencyDays": 0,
                           "orders12Months": 1, "spend12Months": 80_000}
    assert [(c["category"], c["shareBps"]) for c in body["categoryAffinity"]] == [
        ("milk", 7_500), ("toys", 2_500)]
    assert (body["orders"]["count"], body["orders"]["stores"]) == (1, ["S9"])
    assert body["tierHistory"][-1]["rollingGrowth"] == 800
    assert body["assets"]["pointsPending"] == 800 and body["assets"]["pointsAvailable"] == 100
    assert [(t["tag"], t["source"]) for t in body["tags"]] == [("milk_powder", "operator")]


def test_portrait_of_an_unknown_member_is_404_and_needs_admin(table, apigw_event,
                                                              lambda_context):
    response = admin_portrait.handler(apigw_event(
        "GET", "/v1/admin/members/Mzzzzzzzzzzz/portrait", sub="op", scopes=("admin",)),
        lambda_context)
    assert response["statusCode"] == 404
    response = admin_portrait.handler(apigw_event(
        "GET", "/v1/admin/members/Mzzzzzzzzzzz/portrait", sub="op", scopes=("member",)),
        lambda_context)
    assert response["statusCode"] == 403
