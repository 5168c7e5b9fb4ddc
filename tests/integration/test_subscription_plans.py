"""Paid plans of a program that offers more than one: a member holds one at a time."""
import json
from datetime import UTC, datetime, timedelta

from membership.domain.program import default_program
from membership.domain.subscriptions import SubscriptionRequest
from membership.handlers import members as members_handler
from membership.handlers import subscriptions as handler
from membership.services import subscriptions as service
from membership.storage.models import MemberItem
from membership.storage.program import save_program

SIGNUP = {"phone": "13812345678", "nickname": "Lin", "channel": "app"}
SUB = "user-two-plans"
PATH = "/v1/members/me/subscriptions"


def use_two_plans():
    program = default_program()
    plus = program.paid_plans[0]
    save_program(program.model_copy(update={"paid_plans": (
        plus, plus.model_copy(update={"id": "PRO", "name": "PRO"}))}))


def call(module, event, ctx):
    response = module.handler(event, ctx)
    return response["statusCode"], json.loads(response["body"] or "null")


def buy(apigw_event, ctx, plan_id, reference, key):
    return call(handler, apigw_event("POST", PATH, {
        "planId": plan_id, "term": "monthly", "paymentReference": reference,
        "channel": "wechat_pay"}, sub=SUB, headers={"Idempotency-Key": key}), ctx)


def test_buying_another_plan_while_one_is_active_is_refused(table, apigw_event,
                                                            lambda_context):
    use_two_plans()
    status, body = call(members_handler, apigw_event("POST", "/v1/members", SIGNUP, sub=SUB),
                        lambda_context)
    assert status == 201
    member_id = body["memberId"]
    status, first = buy(apigw_event, lambda_context, "PLUS", "test-two-1", "k1")
    assert status == 201, first
    status, refused = buy(apigw_event, lambda_context, "PRO", "test-two-2", "k2")
    assert (status, refused["code"]) == (409, "another_plan_active")
    held = MemberItem.get(*MemberItem.key(member_id), consistent_read=True).to_domain()
    assert held.paid_plan.plan_id == "PLUS"
    assert held.paid_plan.ends_at == datetime.fromisoformat(first["endsAt"])
    # the same plan still extends
    status, again = buy(apigw_event, lambda_context, "PLUS", "test-two-3", "k3")
    assert status == 201 and again["extended"] is True


def test_another_plan_may_be_bought_once_the_first_lapsed(table, apigw_event, lambda_context):
    use_two_plans()
    call(members_handler, apigw_event("POST", "/v1/members", SIGNUP, sub=SUB), lambda_context)
    service.purchase(SUB, "old", SubscriptionRequest.model_validate(
        {"planId": "PLUS", "term": "monthly", "paymentReference": "test-two-old",
         "channel": "wechat_pay"}), now=datetime.now(UTC) - timedelta(days=90))
    status, body = buy(apigw_event, lambda_context, "PRO", "test-two-4", "k4")
    assert status == 201, body
    assert body["planId"] == "PRO" and body["extended"] is False
