"""PLUS benefits at checkout and on order.paid: member price (better of tier and plan,
never both), free shipping, the points bonus decided at the order's paidAt, and the
benefits used recorded on the term that covered paidAt, against DynamoDB Local."""
import json
import uuid
from datetime import UTC, datetime, timedelta

from checkout_support import LINES, SUBTOTAL

from membership.domain.members import SignupRequest, member_id_for
from membership.domain.program import default_program
from membership.domain.subscriptions import SubscriptionRequest
from membership.handlers import checkout as checkout_handler
from membership.handlers import order_events
from membership.services import members as member_service
from membership.services import subscriptions as subscription_service
from membership.services.ledger import reconcile_member
from membership.storage import ledger
from membership.storage import subscriptions as store
from membership.storage.program import save_program

SUB = "plus-shopper"


def signed_up():
    member_service.signup(SUB, SignupRequest(phone="13812345678", nickname="P", channel="app"))
    return member_id_for(SUB)


def buy(at=None, reference="test-benefit-1", term="monthly"):
    """Bought ten minutes ago unless said otherwise: orders paid a minute ago are covered."""
    at = at or datetime.now(UTC) - timedelta(minutes=10)
    return subscription_service.purchase(SUB, reference, SubscriptionRequest.model_validate(
        {"planId": "PLUS", "term": term, "paymentReference": reference,
         "channel": "wechat_pay"}), now=at)


def use_program(tier_bps=None, plan_bps=None):
    program = default_program()
    tiers, plans = program.tiers, program.paid_plans
    if tier_bps is not None:
        tiers = (tiers[0].model_copy(update={"discount_bps": tier_bps}), *tiers[1:])
    if plan_bps is not None:
        plans = (plans[0].model_copy(update={"discount_bps": plan_bps}), *plans[1:])
    save_program(program.model_copy(update={"tiers": tiers, "paid_plans": plans}))


def quote(apigw_event, ctx, member_id):
    response = checkout_handler.handler(apigw_event(
        "POST", "/v1/checkout/quote", {"memberId": member_id, "lines": LINES},
        sub="order-system", scopes=("orders",)), ctx)
    return response["statusCode"], json.loads(response["body"])


def deliver(ctx, detail_type, detail):
    return order_events.handler({
        "version": "0", "id": str(uuid.uuid4()), "detail-type": detail_type,
        "source": "brand.orders", "account": "123456789012", "time": "2025-03-20T11:02:41Z",
        "region": "us-east-1", "resources": [], "detail": detail}, ctx)


def pay(ctx, member_id, paid_at, order_id="SO-1", discount=0):
    deliver(ctx, "order.paid", {
        "orderId": order_id, "memberId": member_id, "paidAt": paid_at.isoformat(),
        "lines": LINES, "amounts": {"subtotal": SUBTOTAL, "discount": discount,
                                    "pointsUsed": 0, "balanceUsed": 0,
                                    "cashPaid": SUBTOTAL - discount}})


def member(member_id):
    return ledger.read_live_range(member_id).member


def terms(member_id):
    return store.read(member_id)[1]["PLUS"]


# ---- quote ------------------------------------------------------------------------------

def test_quote_with_plus_shows_double_points_and_free_shipping(table, apigw_event,
                                                               lambda_context):
    member_id = signed_up()
    _, before = quote(apigw_event, lambda_context, member_id)
    buy()
    status, body = quote(apigw_event, lambda_context, member_id)
    assert status == 200, body
    assert before["pointsToEarn"] == 250 and before["freeShipping"] is False
    assert body["pointsToEarn"] == 500 and body["pointsMultiplierPct"] == 200
    assert body["paidPlan"] == "PLUS" and body["freeShipping"] is True
    assert (body["tierDiscount"], body["memberPriceBy"]) == (0, "tier")


def test_quote_gives_the_plan_member_price_when_it_beats_the_tier(table, apigw_event,
                                                                  lambda_context):
    use_program(tier_bps=300, plan_bps=500)
    member_id = signed_up()
    buy()
    status, body = quote(apigw_event, lambda_context, member_id)
    assert status == 200, body
    assert (body["tierDiscount"], body["memberPriceBy"]) == (1_250, "plan")  # 5 %, not 8 %
    assert body["amountAfterDiscounts"] == SUBTOTAL - 1_250
    assert body["pointsToEarn"] == (SUBTOTAL - 1_250) // 100 * 2


def test_quote_keeps_the_tier_discount_when_it_beats_the_plan(table, apigw_event,
                                                              lambda_context):
    use_program(tier_bps=300, plan_bps=200)
    member_id = signed_up()
    buy()
    _, body = quote(apigw_event, lambda_context, member_id)
    assert (body["tierDiscount"], body["memberPriceBy"]) == (750, "tier")  # 3 %, not 5 %


def test_quote_after_the_plan_lapsed_gives_no_plan_benefit(table, apigw_event,
                                                           lambda_context):
    use_program(plan_bps=500)
    member_id = signed_up()
    buy(at=datetime.now(UTC) - timedelta(days=60))
    _, body = quote(apigw_event, lambda_context, member_id)
    assert body["paidPlan"] is None and body["tierDiscount"] == 0
    assert body["pointsToEarn"] == 250 and body["freeShipping"] is False


# ---- order.paid: the multiplier at paidAt -------------------------------------------------

def test_an_order_paid_while_active_earns_the_bonus_and_records_it_on_the_term(
        table, lambda_context):
    member_id = signed_up()
    buy()
    pay(lambda_context, member_id, datetime.now(UTC) - timedelta(minutes=1))
    assert member(member_id).points_pending == 500
    (term,) = terms(member_id)
    assert term.benefits.bonus_points == 250
    assert reconcile_member(member_id) == []


def test_an_order_paid_while_active_but_processed_after_the_lapse_earns_the_bonus(
        table, lambda_context):
    member_id = signed_up()
    start = datetime.now(UTC) - timedelta(days=45)
    buy(at=start)
    assert terms(member_id)[0].record.ends_at < datetime.now(UTC)
    pay(lambda_context, member_id, start + timedelta(days=3))
    assert member(member_id).points_pending == 500
    assert terms(member_id)[0].benefits.bonus_points == 250


def test_an_order_paid_after_the_lapse_earns_no_bonus(table, lambda_context):
    member_id = signed_up()
    buy(at=datetime.now(UTC) - timedelta(days=45))
    pay(lambda_context, member_id, datetime.now(UTC) - timedelta(minutes=1))
    assert member(member_id).points_pending == 250
    assert terms(member_id)[0].benefits.bonus_points == 0


def test_an_order_paid_in_an_earlier_run_reads_the_terms_and_earns_the_bonus(
        table, lambda_context):
    member_id = signed_up()
    start = datetime.now(UTC) - timedelta(days=90)
    buy(at=start, reference="test-benefit-old")
    buy(reference="test-benefit-new")  # a new run: paid_plan starts ten minutes ago
    pay(lambda_context, member_id, start + timedelta(days=2))
    assert member(member_id).points_pending == 500
    old, new = terms(member_id)
    assert (old.benefits.bonus_points, new.benefits.bonus_points) == (250, 0)


def test_an_order_paid_between_two_runs_earns_no_bonus(table, lambda_context):
    member_id = signed_up()
    buy(at=datetime.now(UTC) - timedelta(days=90), reference="test-benefit-old")
    buy(reference="test-benefit-new")
    pay(lambda_context, member_id, datetime.now(UTC) - timedelta(days=20))
    assert member(member_id).points_pending == 250


def test_the_plan_member_price_above_the_tier_is_recorded_on_the_term(table, lambda_context):
    use_program(tier_bps=300, plan_bps=500)
    member_id = signed_up()
    buy()
    pay(lambda_context, member_id, datetime.now(UTC) - timedelta(minutes=1), discount=1_250)
    (term,) = terms(member_id)
    assert term.benefits.plan_discount == 1_250 - 750
    assert term.benefits.bonus_points == (SUBTOTAL - 1_250) // 100


def test_a_redelivered_order_paid_records_the_benefits_once(table, lambda_context):
    member_id = signed_up()
    buy()
    at = datetime.now(UTC) - timedelta(minutes=1)
    pay(lambda_context, member_id, at)
    pay(lambda_context, member_id, at)
    assert terms(member_id)[0].benefits.bonus_points == 250
    assert member(member_id).points_pending == 500


def test_a_full_refund_takes_back_the_bonus_points_too(table, lambda_context):
    member_id = signed_up()
    buy()
    pay(lambda_context, member_id, datetime.now(UTC) - timedelta(minutes=1))
    deliver(lambda_context, "order.refunded",
            {"orderId": "SO-1", "memberId": member_id, "refundId": "R-1"})
    assert member(member_id).points_pending == 0
    assert terms(member_id)[0].benefits.bonus_points == 0  # nothing kept, nothing used
    assert reconcile_member(member_id) == []


def test_a_plan_pack_coupon_redeemed_is_recorded_on_the_term(table, lambda_context):
    from membership.domain.coupons import ClaimRequest, TemplateSpec
    from membership.services import coupons

    member_id = signed_up()
    buy()
    coupons.create_template(TemplateSpec.model_validate({
        "templateId": "PLUS-10OFF100", "name": "10 off 100 (PLUS)", "kind": "amount_off",
        "amountOff": 1_000, "minSpend": 10_000, "validDays": 30, "stock": 100,
        "perMemberLimit": 5, "claimable": True}))
    coupon_id = coupons.claim(SUB, "claim-1", ClaimRequest(templateId="PLUS-10OFF100")
                              ).result["couponId"]
    deliver(lambda_context, "order.paid", {
        "orderId": "SO-C", "memberId": member_id,
        "paidAt": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(), "lines": LINES,
        "couponIds": [coupon_id],
        "amounts": {"subtotal": SUBTOTAL, "discount": 1_000, "couponDiscount": 1_000,
                    "pointsUsed": 0, "balanceUsed": 0, "cashPaid": SUBTOTAL - 1_000}})
    (term,) = terms(member_id)
    assert (term.benefits.coupon_discount, term.benefits.bonus_points) == (1_000, 240)
    assert term.benefits.plan_discount == 0  # the coupon's discount is not member price
