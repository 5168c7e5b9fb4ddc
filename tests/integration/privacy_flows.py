"""A member's life through the real handlers, for the privacy tests: every item type the
suite's flows write, made by one member whose personal data is easy to find."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

from checkout_support import LINES, SUBTOTAL

from membership.domain import calendar
from membership.domain.members import member_id_for
from membership.handlers import (
    admin_topups,
    checkins,
    checkout,
    members,
    order_events,
    privacy,
    task_events,
    tasks,
    topups,
)
from membership_local.apigw import member_event

SHANGHAI = calendar.zone("Asia/Shanghai")


class Person:
    """Personal data no other item may carry; distinct per subject."""

    def __init__(self, n: int = 1) -> None:
        self.subject = f"privacy-subject-{n}-{uuid.uuid4().hex[:6]}"
        self.national = f"1391234{5670 + n:04d}"
        self.e164 = f"+86{self.national}"
        self.nickname = f"Nick-Xq{n}zv"
        self.birthday = f"1990-07-{10 + n:02d}"
        self.member_id = member_id_for(self.subject)
        self.tag = f"P{n}-"  # order ids are the brand's, unique across members

    def secrets(self) -> dict[str, str]:
        return {"phone": self.national, "nickname": self.nickname, "birthday": self.birthday,
                "subject": self.subject}


def call(module, ctx, method, path, body=None, *, sub, scopes=("member",), headers=None):
    response = module.handler(member_event(method, path, body, sub=sub, scopes=scopes,
                                           headers=headers), ctx)
    return response["statusCode"], json.loads(response["body"] or "null")


def envelope(detail_type: str, detail: dict, source: str = "brand.orders") -> dict:
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": detail_type,
            "source": source, "account": "123456789012", "time": "2025-03-20T11:02:41Z",
            "region": "us-east-1", "resources": [], "detail": detail}


def order(ctx, detail_type: str, detail: dict):
    return order_events.handler(envelope(detail_type, detail), ctx)


def paid_detail(member_id: str, order_id: str, *, points: int = 0, balance: int = 0) -> dict:
    paid_at = (datetime.now(SHANGHAI) - timedelta(hours=1)).replace(microsecond=0)
    return {"orderId": order_id, "memberId": member_id, "storeId": "store-001",
            "paidAt": paid_at.isoformat(), "lines": LINES,
            "amounts": {"subtotal": SUBTOTAL, "discount": 0, "pointsUsed": points,
                        "balanceUsed": balance,
                        "cashPaid": SUBTOTAL - points - balance}}


def sign_up(ctx, person: Person) -> str:
    status, body = call(members, ctx, "POST", "/v1/members",
                        {"phone": person.national, "nickname": person.nickname,
                         "channel": "app", "storeId": "store-001"}, sub=person.subject)
    assert status == 201, body
    return body["memberId"]


def top_up(ctx, person: Person, amount: int, reference: str) -> dict:
    status, body = call(topups, ctx, "POST", "/v1/members/me/topups",
                        {"amount": amount, "paymentReference": reference,
                         "channel": "wechat_pay"}, sub=person.subject,
                        headers={"Idempotency-Key": reference})
    assert status == 201, body
    return body


def empty_the_balance(ctx, person: Person, topup_ids: list[str]) -> None:
    """As a brand would before closure: refund what is left of the top-ups' principal
    (which claws back their unspent bonus), then the member spends any bonus left."""
    from membership.storage.ledger import read_live_range

    for topup_id in topup_ids:
        principal = read_live_range(person.member_id).member.balance_principal
        if not principal:
            break
        status, body = call(admin_topups, ctx, "POST", f"/v1/admin/topups/{topup_id}/refunds",
                            {"refundReference": f"rf-{topup_id}", "amount": principal},
                            sub="operator", scopes=("admin",),
                            headers={"Idempotency-Key": f"rf-{topup_id}"})
        assert status in (200, 201), body
    member = read_live_range(person.member_id).member
    left = member.balance_principal + member.balance_bonus
    if left:
        order(ctx, "order.paid", paid_detail(person.member_id, f"{person.tag}SO-LAST", balance=left))


def live_a_life(ctx, person: Person) -> dict:
    """Every kind of record: profile edits and a consent change, a top-up, a check-in, a
    task, a hold captured by its paid order, a completed order, a partial refund, a hold
    released by a cancellation, a review; and every read route. Returns the top-up ids."""
    member_id = sign_up(ctx, person)
    sub = person.subject
    p = person.tag
    status, body = call(members, ctx, "PATCH", "/v1/members/me",
                        {"birthday": person.birthday, "gender": "female",
                         "marketingConsent": False}, sub=sub)
    assert status == 200, body
    topup = top_up(ctx, person, 50_000, f"test-{uuid.uuid4().hex[:10]}")
    assert call(checkins, ctx, "POST", "/v1/members/me/checkins", sub=sub)[0] == 201
    assert call(tasks, ctx, "POST", "/v1/members/me/tasks/profile_completed/completions",
                sub=sub)[0] == 201
    status, body = call(checkout, ctx, "POST", "/v1/checkout/holds",
                        {"orderId": f"{p}SO-1", "memberId": member_id, "points": 100,
                         "balance": 1_000}, sub="order-system", scopes=("orders",))
    assert status == 201, body
    order(ctx, "order.paid", paid_detail(member_id, f"{p}SO-1", points=100, balance=1_000))
    order(ctx, "order.completed", {"orderId": f"{p}SO-1", "memberId": member_id})
    order(ctx, "order.paid", paid_detail(member_id, f"{p}SO-2"))
    order(ctx, "order.refunded", {"orderId": f"{p}SO-2", "memberId": member_id,
                                  "refundId": f"{p}RF-1", "lines": [{"lineId": "2",
                                                                 "quantity": 1}]})
    status, body = call(checkout, ctx, "POST", "/v1/checkout/holds",
                        {"orderId": f"{p}SO-3", "memberId": member_id, "balance": 2_000},
                        sub="order-system", scopes=("orders",))
    assert status == 201, body
    order(ctx, "order.cancelled", {"orderId": f"{p}SO-3", "memberId": member_id})
    task_events.handler(envelope("review.posted", {
        "memberId": member_id, "orderId": f"{p}SO-1", "reviewId": f"{p}RV-1",
        "postedAt": datetime.now(SHANGHAI).replace(microsecond=0).isoformat()}), ctx)
    operate_on(ctx, person)
    campaign_for(ctx, person)
    subscribe_then_refund(ctx, person)
    for module, path, query in ((members, "/v1/members/me", None),
                                (members, "/v1/members/me/ledger", {"asset": "points"}),
                                (checkins, "/v1/members/me/checkins", None)):
        event = member_event("GET", path, None, sub=sub, query=query)
        assert module.handler(event, ctx)["statusCode"] == 200
    status, _ = call(checkout, ctx, "POST", "/v1/checkout/quote",
                     {"memberId": member_id, "lines": LINES}, sub="order-system",
                     scopes=("orders",))
    assert status == 200
    assert call(privacy, ctx, "GET", "/v1/members/me/export", sub=sub)[0] == 200
    return {"member_id": member_id, "topups": [topup["topupId"]]}


def operate_on(ctx, person: Person) -> None:
    """What operators do to a member (issue 13): freeze and unfreeze with a reason, look
    the member up by phone, an adjustment, a bulk grant applied as its worker would."""
    from membership.domain.grants import GrantRequest
    from membership.handlers import admin_members
    from membership.services import grants

    p, admin = person.tag, {"sub": "ops-privacy", "scopes": ("admin",)}
    path = f"/v1/admin/members/{person.member_id}"
    for wanted in ("frozen", "active"):
        status, body = call(admin_members, ctx, "PATCH", path,
                            {"status": wanted, "reason": "a dispute"}, **admin)
        assert status == 200, body
    status, body = call(admin_members, ctx, "POST", f"{path}/adjustments",
                        {"adjustmentId": f"{p}ADJ-{uuid.uuid4().hex[:6]}", "asset": "points",
                         "amount": 300, "reasonCode": "goodwill", "note": "late delivery"},
                        **admin)
    assert status == 201, body
    event = member_event("GET", "/v1/admin/members", None, sub="ops-privacy",
                         scopes=("admin",), query={"phone": person.national})
    assert admin_members.handler(event, ctx)["statusCode"] == 200
    request = GrantRequest.model_validate({
        "grantId": f"{p}G-{uuid.uuid4().hex[:6]}", "points": 88, "reasonCode": "campaign",
        "memberIds": [person.member_id]})
    grants.create(request, actor="ops-privacy", enqueue=lambda messages: [
        grants.apply_chunk(m["grantId"], int(m["chunk"]), list(m["memberIds"]))
        for m in messages])


def subscribe_then_refund(ctx, person: Person) -> None:
    """Paid membership (issue 11): a PLUS month paid from the balance, refunded by an
    operator, so its subscription, term, guard and due-index items exist and the account
    can still close."""
    from membership.handlers import admin_subscriptions, subscriptions

    status, body = call(subscriptions, ctx, "POST", "/v1/members/me/subscriptions",
                        {"planId": "PLUS", "term": "monthly", "payWith": "balance"},
                        sub=person.subject, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert status == 201, body
    status, body = call(admin_subscriptions, ctx, "POST",
                        f"/v1/admin/subscriptions/{body['subscriptionId']}/refunds",
                        {"refundId": f"{person.tag}PR-{uuid.uuid4().hex[:6]}",
                         "reason": "changed their mind"},
                        sub="ops-privacy", scopes=("admin",))
    assert status == 201, body


def campaign_for(ctx, person: Person) -> None:
    """Tags and coupons (issues 14 and 10): an operator's tag, a coupon the member claims,
    a coupon grant; their items (tag, coupon, per-member counter, template shards, grant
    pages) are in the scan like every other kind."""
    from membership.domain.coupons import ClaimRequest, TemplateSpec
    from membership.domain.grants import GrantRequest
    from membership.errors import Conflict
    from membership.services import coupon_grants, coupons, grants
    from membership.services import tags as tag_service

    assert coupon_grants  # registers the coupon grant kind, as the grant functions do

    tag_service.put_tag(person.member_id, "milk_powder")
    try:
        coupons.create_template(TemplateSpec.model_validate(
            {"templateId": "PRIVACY-5OFF", "name": "5 off", "kind": "amount_off",
             "amountOff": 500, "minSpend": 0, "validDays": 30, "stock": 100,
             "perMemberLimit": 5, "claimable": True}))
    except Conflict:
        pass  # the second person of a test: the template exists
    coupons.claim(person.subject, uuid.uuid4().hex, ClaimRequest(templateId="PRIVACY-5OFF"))
    request = GrantRequest.model_validate({
        "grantId": f"{person.tag}CG-{uuid.uuid4().hex[:6]}", "templateId": "PRIVACY-5OFF",
        "reasonCode": "campaign", "memberIds": [person.member_id]})
    grants.create(request, actor="ops-privacy", enqueue=lambda messages: [
        grants.apply_chunk(m["grantId"], int(m["chunk"]), list(m["memberIds"]))
        for m in messages])


class CapturedLogs:
    """What the functions' Powertools logger writes, formatted as in Lambda (every level)."""

    def __enter__(self) -> CapturedLogs:
        import io
        import logging

        from membership.observability import logger

        self._logger = logger
        self.stream = io.StringIO()
        self._handler = logging.StreamHandler(self.stream)
        self._handler.setFormatter(logger.registered_handler.formatter)
        self._level = logger.log_level
        logger.addHandler(self._handler)
        logger.setLevel("DEBUG")
        return self

    def __exit__(self, *exc) -> None:
        self._logger.removeHandler(self._handler)
        self._logger.setLevel(self._level)

    @property
    def text(self) -> str:
        return self.stream.getvalue()
