"""Coupon grants: the "coupon" kind registered by services/coupon_grants.py through the
grants' seam. One coupon per (grant, member), issued in the member's posting transaction;
out of stock is reported in the progress, never blocks the chunk; redeliveries issue
nothing twice."""
from __future__ import annotations

from admin_support import signup
from test_grants import drain, post, progress, queue  # noqa: F401 (fixture)

from membership.domain.coupons import TemplateSpec
from membership.services import coupons
from membership.storage import coupons as coupon_store


def template(stock):
    coupons.create_template(TemplateSpec.model_validate(
        {"templateId": "GIFT-5OFF", "name": "5 off", "kind": "amount_off", "amountOff": 500,
         "minSpend": 0, "validDays": 30, "stock": stock, "perMemberLimit": 1,
         "claimable": False}))


def grant(member_ids, grant_id="G-cpn"):
    return {"grantId": grant_id, "templateId": "GIFT-5OFF", "reasonCode": "campaign",
            "memberIds": member_ids}


def test_a_coupon_grant_gives_each_member_one_coupon_once(queue, apigw_event,  # noqa: F811
                                                          lambda_context):
    sqs, url = queue
    template(stock=10)
    members = [signup(apigw_event, lambda_context, sub=f"cg-{i}") for i in range(3)]
    unknown = "M" + "z" * 24
    assert post(apigw_event, lambda_context, grant([*members, unknown]))[0] == 202
    drain(sqs, url, lambda_context, lose_deletes_of=(0,))  # chunk 0 delivered twice
    for m in members:
        got = [c for c in coupon_store.all_coupons(m) if c.template_id == "GIFT-5OFF"]
        assert len(got) == 1 and got[0].status == "available"
    assert coupons.get_template("GIFT-5OFF").issued == 3
    view = progress(apigw_event, lambda_context, "G-cpn")[1]
    assert (view["status"], view["done"], view["failed"]) == ("completed", 3, 1)
    assert view["failures"][0]["code"] == "member_not_found"


def test_out_of_stock_is_reported_and_never_blocks_the_chunk(queue, apigw_event,  # noqa: F811
                                                             lambda_context):
    sqs, url = queue
    template(stock=2)
    members = [signup(apigw_event, lambda_context, sub=f"cs-{i}") for i in range(4)]
    assert post(apigw_event, lambda_context, grant(members))[0] == 202
    drain(sqs, url, lambda_context, lose_deletes_of=(0,))
    view = progress(apigw_event, lambda_context, "G-cpn")[1]
    assert (view["status"], view["done"], view["failed"]) == ("completed", 2, 2)
    assert {f["code"] for f in view["failures"]} == {"coupon_out_of_stock"}
    assert coupons.get_template("GIFT-5OFF").issued == 2
    holders = [m for m in members if coupon_store.all_coupons(m)
               and any(c.template_id == "GIFT-5OFF" for c in coupon_store.all_coupons(m))]
    assert len(holders) == 2
