"""Coupon templates, claims and the wallet through the real handler and services, against
DynamoDB Local; the concurrency tests run threads on loopback, bounded in count and time."""
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from membership.domain.coupons import (
    ClaimRequest,
    CouponLimitReached,
    CouponOutOfStock,
    TemplateSpec,
)
from membership.domain.members import SignupRequest, member_id_for
from membership.errors import DomainError
from membership.handlers import admin_coupons as admin_handler
from membership.handlers import coupons as coupons_handler
from membership.services import coupons
from membership.services import members as member_service
from membership.storage import coupons as store

ADMIN = ("admin",)


def join(sub: str, n: int = 0) -> str:
    member_service.signup(sub, SignupRequest(phone=f"138{n:08d}", nickname="C", channel="app"))
    return member_id_for(sub)


def spec(**changes) -> TemplateSpec:
    base = {"templateId": "SPRING-20OFF200", "name": "20 off 200", "kind": "amount_off",
            "amountOff": 2_000, "minSpend": 20_000, "validDays": 7, "stock": 50,
            "perMemberLimit": 1, "claimable": True}
    base.update(changes)
    return TemplateSpec.model_validate(base)


def call(event, ctx):
    admin = event["rawPath"].startswith("/v1/admin/")
    response = (admin_handler if admin else coupons_handler).handler(event, ctx)
    return response["statusCode"], json.loads(response["body"] or "null"), response


def claim_event(apigw_event, sub, template_id, key):
    return apigw_event("POST", "/v1/members/me/coupons", {"templateId": template_id}, sub=sub,
                       headers={"Idempotency-Key": key})


# ---- templates ----------------------------------------------------------------------

def test_admin_creates_a_template_and_reads_its_stock(table, apigw_event, lambda_context):
    body = spec().model_dump(mode="json", by_alias=True, exclude_none=True)
    status, created, _ = call(apigw_event("POST", "/v1/admin/coupon-templates", body,
                                          scopes=ADMIN), lambda_context)
    assert status == 201
    assert (created["stock"], created["issued"], created["redeemed"], created["remaining"]) \
        == (50, 0, 0, 50)
    status, read, _ = call(apigw_event("GET", "/v1/admin/coupon-templates/SPRING-20OFF200",
                                       scopes=ADMIN), lambda_context.next_invocation())
    assert status == 200
    assert read["template"]["kind"] == "amount_off"
    assert read["template"]["minSpend"] == 20_000


def test_a_template_id_is_created_once(table, apigw_event, lambda_context):
    coupons.create_template(spec())
    body = spec().model_dump(mode="json", by_alias=True, exclude_none=True)
    status, error, _ = call(apigw_event("POST", "/v1/admin/coupon-templates", body,
                                        scopes=ADMIN), lambda_context)
    assert (status, error["code"]) == (409, "coupon_template_exists")


@pytest.mark.parametrize("bad", [
    {"stock": 0}, {"stock": None}, {"kind": "percent_off"},
    {"validDays": None}, {"validFrom": "2026-01-01T00:00:00+08:00"},
    {"amountOff": 100, "percentOffBps": 500}, {"claimFrom": "2026-01-02T00:00:00Z",
                                               "claimUntil": "2026-01-01T00:00:00Z"},
])
def test_an_invalid_template_is_422_and_writes_nothing(table, apigw_event, lambda_context, bad):
    body = spec().model_dump(mode="json", by_alias=True, exclude_none=True)
    body.update(bad)
    body = {k: v for k, v in body.items() if v is not None}
    status, error, _ = call(apigw_event("POST", "/v1/admin/coupon-templates", body,
                                        scopes=ADMIN), lambda_context)
    assert status == 422, error
    status, _, _ = call(apigw_event("GET", "/v1/admin/coupon-templates/SPRING-20OFF200",
                                    scopes=ADMIN), lambda_context.next_invocation())
    assert status == 404


def test_templates_need_the_admin_scope(table, apigw_event, lambda_context):
    body = spec().model_dump(mode="json", by_alias=True, exclude_none=True)
    status, _error, _ = call(apigw_event("POST", "/v1/admin/coupon-templates", body),
                            lambda_context)
    assert status == 403


def test_stock_is_raised_and_never_cut_below_what_was_issued(table):
    coupons.create_template(spec(stock=3, perMemberLimit=5))
    join("a")
    for n in range(2):
        coupons.claim("a", f"k{n}", ClaimRequest(templateId="SPRING-20OFF200"))
    from membership.domain.coupons import StockBelowIssued, TemplatePatch

    with pytest.raises(StockBelowIssued):
        coupons.patch_template("SPRING-20OFF200", TemplatePatch(stock=1))
    view = coupons.patch_template("SPRING-20OFF200", TemplatePatch(stock=2))
    assert (view.stock, view.issued, view.remaining) == (2, 2, 0)
    view = coupons.patch_template("SPRING-20OFF200", TemplatePatch(stock=10))
    assert (view.stock, view.issued, view.remaining) == (10, 2, 8)


def test_pausing_stops_claims_and_resuming_allows_them(table):
    from membership.domain.coupons import CouponNotClaimable, TemplatePatch

    coupons.create_template(spec())
    join("a")
    coupons.patch_template("SPRING-20OFF200", TemplatePatch(paused=True))
    with pytest.raises(CouponNotClaimable) as refused:
        coupons.claim("a", "k", ClaimRequest(templateId="SPRING-20OFF200"))
    assert refused.value.details["reason"] == "paused"
    coupons.patch_template("SPRING-20OFF200", TemplatePatch(paused=False))
    assert coupons.claim("a", "k", ClaimRequest(templateId="SPRING-20OFF200")).result


def test_the_claim_window_is_extended_not_shortened(table):
    from membership.domain.coupons import ClaimWindowShortened, TemplatePatch

    until = datetime(2030, 1, 1, tzinfo=UTC)
    coupons.create_template(spec(claimUntil=until.isoformat()))
    with pytest.raises(ClaimWindowShortened):
        coupons.patch_template("SPRING-20OFF200",
                               TemplatePatch(claimUntil=(until - timedelta(days=1)).isoformat()))
    view = coupons.patch_template(
        "SPRING-20OFF200", TemplatePatch(claimUntil=(until + timedelta(days=1)).isoformat()))
    assert view.template["claimUntil"].startswith("2030-01-02")


# ---- claims -------------------------------------------------------------------------

def test_a_claim_issues_a_coupon_with_its_terms_and_validity(table, apigw_event,
                                                            lambda_context):
    coupons.create_template(spec())
    join("demo-user")
    status, coupon, response = call(claim_event(apigw_event, "demo-user", "SPRING-20OFF200",
                                                "k1"), lambda_context)
    assert status == 201
    assert response["headers"]["Idempotent-Replayed"] == "false"
    assert coupon["status"] == "available"
    assert coupon["terms"]["amountOff"] == 2_000
    assert coupon["validUntil"].endswith("+08:00")
    assert coupons.get_template("SPRING-20OFF200").issued == 1


def test_the_same_idempotency_key_answers_the_first_claim_again(table, apigw_event,
                                                               lambda_context):
    coupons.create_template(spec(perMemberLimit=3))
    join("demo-user")
    first = call(claim_event(apigw_event, "demo-user", "SPRING-20OFF200", "k1"),
                 lambda_context)
    again = call(claim_event(apigw_event, "demo-user", "SPRING-20OFF200", "k1"),
                 lambda_context.next_invocation())
    assert again[0] == 201 and again[1] == first[1]
    assert again[2]["headers"]["Idempotent-Replayed"] == "true"
    assert coupons.get_template("SPRING-20OFF200").issued == 1


def test_an_idempotency_key_reused_for_another_template_is_refused(table, apigw_event,
                                                                  lambda_context):
    coupons.create_template(spec())
    coupons.create_template(spec(templateId="OTHER"))
    join("demo-user")
    call(claim_event(apigw_event, "demo-user", "SPRING-20OFF200", "k1"), lambda_context)
    status, error, _ = call(claim_event(apigw_event, "demo-user", "OTHER", "k1"),
                            lambda_context.next_invocation())
    assert (status, error["code"]) == (409, "payload_mismatch")
    assert coupons.get_template("OTHER").issued == 0


def test_a_claim_needs_an_idempotency_key(table, apigw_event, lambda_context):
    coupons.create_template(spec())
    join("demo-user")
    status, _error, _ = call(apigw_event("POST", "/v1/members/me/coupons",
                                        {"templateId": "SPRING-20OFF200"}), lambda_context)
    assert status == 400
    assert coupons.get_template("SPRING-20OFF200").issued == 0


def test_the_per_member_limit_refuses_the_next_claim(table):
    coupons.create_template(spec(perMemberLimit=2))
    join("a")
    coupons.claim("a", "k1", ClaimRequest(templateId="SPRING-20OFF200"))
    coupons.claim("a", "k2", ClaimRequest(templateId="SPRING-20OFF200"))
    with pytest.raises(CouponLimitReached):
        coupons.claim("a", "k3", ClaimRequest(templateId="SPRING-20OFF200"))
    assert coupons.get_template("SPRING-20OFF200").issued == 2


def test_a_template_that_is_not_claimable_is_refused(table, apigw_event, lambda_context):
    coupons.create_template(spec(claimable=False))
    join("demo-user")
    status, error, _ = call(claim_event(apigw_event, "demo-user", "SPRING-20OFF200", "k"),
                            lambda_context)
    assert (status, error["code"], error["details"]["reason"]) == (
        422, "coupon_not_claimable", "not_claimable")


def test_claims_outside_the_claim_window_are_refused(table):
    from membership.domain.coupons import CouponNotClaimable

    now = datetime.now(UTC)
    coupons.create_template(spec(claimFrom=(now + timedelta(days=1)).isoformat()))
    coupons.create_template(spec(templateId="LATE",
                                 claimUntil=(now - timedelta(days=1)).isoformat()))
    join("a")
    with pytest.raises(CouponNotClaimable) as early:
        coupons.claim("a", "k1", ClaimRequest(templateId="SPRING-20OFF200"))
    with pytest.raises(CouponNotClaimable) as late:
        coupons.claim("a", "k2", ClaimRequest(templateId="LATE"))
    assert (early.value.details["reason"], late.value.details["reason"]) == (
        "before_window", "after_window")


def test_an_unknown_template_is_404(table, apigw_event, lambda_context):
    join("demo-user")
    status, error, _ = call(claim_event(apigw_event, "demo-user", "NOPE", "k"), lambda_context)
    assert (status, error["code"]) == (404, "coupon_template_not_found")


def test_a_subject_that_never_signed_up_cannot_claim(table):
    coupons.create_template(spec())
    with pytest.raises(DomainError) as refused:
        coupons.claim("nobody", "k", ClaimRequest(templateId="SPRING-20OFF200"))
    assert refused.value.code == "member_not_found"
    assert coupons.get_template("SPRING-20OFF200").issued == 0


def test_a_claim_is_one_write_call(table, monkeypatch):
    from membership.storage.table import connection

    coupons.create_template(spec())
    join("a")
    client = connection().client
    calls = []
    original = client._make_api_call

    def counting(operation, params):
        calls.append(operation)
        return original(operation, params)

    monkeypatch.setattr(client, "_make_api_call", counting)
    coupons.claim("a", "k", ClaimRequest(templateId="SPRING-20OFF200"))
    writes = [c for c in calls if c in ("PutItem", "UpdateItem", "DeleteItem",
                                        "TransactWriteItems", "BatchWriteItem")]
    assert writes == ["TransactWriteItems"]


# ---- concurrency --------------------------------------------------------------------

def _claim_outcome(sub: str, key: str, template_id: str) -> str:
    try:
        coupons.claim(sub, key, ClaimRequest(templateId=template_id))
        return "issued"
    except DomainError as exc:
        return exc.code
    except Exception as exc:  # noqa: BLE001 - a server error is what this test counts
        return f"error:{type(exc).__name__}"


def test_200_concurrent_claims_of_a_50_coupon_template_issue_exactly_50(table):
    coupons.create_template(spec(stock=50))
    subs = [f"claimer-{n}" for n in range(200)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda sn: join(sn[1], sn[0]), enumerate(subs)))
    barrier = threading.Barrier(32, timeout=60)

    def run(sub: str) -> str:
        if int(sub.rsplit("-", 1)[1]) < 32:
            barrier.wait()
        return _claim_outcome(sub, "once", "SPRING-20OFF200")

    with ThreadPoolExecutor(32) as pool:
        outcomes = list(pool.map(run, subs, timeout=300))
    assert outcomes.count("issued") == 50
    assert outcomes.count("coupon_out_of_stock") == 150
    assert not [o for o in outcomes if o not in ("issued", "coupon_out_of_stock")]
    view = coupons.get_template("SPRING-20OFF200")
    assert (view.issued, view.remaining) == (50, 0)
    issued = sum(len(store.coupons_page(member_id_for(s), 10, None)[0]) for s in subs)
    assert issued == 50


def test_one_member_claiming_concurrently_gets_exactly_the_limit(table):
    coupons.create_template(spec(stock=100, perMemberLimit=3))
    join("greedy")

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(
            lambda n: _claim_outcome("greedy", f"key-{n}", "SPRING-20OFF200"), range(40),
            timeout=300))
    assert outcomes.count("issued") == 3
    assert outcomes.count("coupon_limit_reached") == 37
    assert coupons.get_template("SPRING-20OFF200").issued == 3
    assert len(store.coupons_page(member_id_for("greedy"), 50, None)[0]) == 3


# ---- the wallet ---------------------------------------------------------------------

def test_the_wallet_pages_newest_first_with_a_cursor(table, apigw_event, lambda_context):
    coupons.create_template(spec(perMemberLimit=5))
    join("demo-user")
    start = datetime.now(UTC)
    ids = [coupons.claim("demo-user", f"k{n}", ClaimRequest(templateId="SPRING-20OFF200"),
                         now=start + timedelta(seconds=n)).result["couponId"]
           for n in range(5)]
    seen, cursor = [], None
    for _ in range(4):
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        status, page, _ = call(apigw_event("GET", "/v1/members/me/coupons", query=query),
                               lambda_context.next_invocation())
        assert status == 200
        seen += [c["couponId"] for c in page["coupons"]]
        cursor = page.get("nextCursor")
        if not cursor:
            break
    assert seen == list(reversed(ids))


def test_a_coupon_past_its_window_lists_as_expired_without_any_job(table):
    coupons.create_template(spec(perMemberLimit=2, validDays=1))
    join("a")
    long_ago = datetime.now(UTC) - timedelta(days=10)
    old = coupons.claim("a", "k1", ClaimRequest(templateId="SPRING-20OFF200"), now=long_ago)
    fresh = coupons.claim("a", "k2", ClaimRequest(templateId="SPRING-20OFF200"))
    expired = coupons.wallet("a", "expired", 20, None).coupons
    available = coupons.wallet("a", "available", 20, None).coupons
    assert [c.coupon_id for c in expired] == [old.result["couponId"]]
    assert [c.status for c in expired] == ["expired"]
    assert [c.coupon_id for c in available] == [fresh.result["couponId"]]


def test_a_cursor_from_another_member_is_refused(table, apigw_event, lambda_context):
    join("demo-user")
    forged = coupons.encode_cursor({"PK": {"S": "MEMBER#Mother"}, "SK": {"S": "COUPON#c1"}})
    status, error, _ = call(apigw_event("GET", "/v1/members/me/coupons",
                                        query={"cursor": forged}), lambda_context)
    assert (status, error["code"]) == (422, "invalid_cursor")


def test_out_of_stock_is_409(table, apigw_event, lambda_context):
    coupons.create_template(spec(stock=1))
    join("demo-user")
    join("other", 1)
    coupons.claim("other", "k", ClaimRequest(templateId="SPRING-20OFF200"))
    status, error, _ = call(claim_event(apigw_event, "demo-user", "SPRING-20OFF200", "k"),
                            lambda_context)
    assert (status, error["code"]) == (409, "coupon_out_of_stock")
    with pytest.raises(CouponOutOfStock):
        coupons.claim("demo-user", "k2", ClaimRequest(templateId="SPRING-20OFF200"))
