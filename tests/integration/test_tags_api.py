"""Manual tags, consent and segments through the real handlers, against DynamoDB Local;
the tag index always equals the tags on the member items."""
import json
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from membership.domain.members import ProfileUpdate, SignupRequest, member_id_for
from membership.domain.tag_rules import MAX_MANUAL_TAGS
from membership.handlers import admin_tags
from membership.handlers import members as members_handler
from membership.services import members as member_service
from membership.services import tags as tag_service
from membership.storage import tags as tag_store
from membership.storage.models import hash_shard


def join(sub, now=None):
    member_service.signup(sub, SignupRequest(phone=f"138{uuid.uuid4().int % 10**8:08d}",
                                             nickname="T", channel="app"), now=now)
    return member_id_for(sub)


def call(apigw_event, ctx, method, path, *, scopes=("admin",), sub="operator", body=None,
         query=None):
    response = admin_tags.handler(apigw_event(method, path, body, sub=sub, scopes=scopes,
                                              query=query), ctx)
    return response["statusCode"], json.loads(response["body"] or "null")


def segment_ids(tag, limit=100):
    out, cursor = [], None
    while True:
        page = tag_service.segment(tag, limit, cursor)
        out += [m.member_id for m in page.members]
        cursor = page.next_cursor
        if cursor is None:
            return out


def assert_index_matches(member_id):
    """Every tag on the member item has its item, listed in GSI1 iff the member consents."""
    member = tag_store.read_member(member_id)
    items = {i.tag: i for i in tag_store.member_tags(member_id)}
    assert set(items) == set(member.tags)
    for tag, mark in member.tags.items():
        item = items[tag]
        assert (item.source, item.since) == (mark.source, mark.since)
        if member.marketing_consent:
            assert item.GSI1PK == f"TAG#{tag}#{hash_shard(member_id, 16)}"
            assert item.GSI1SK == member_id
        else:
            assert item.GSI1PK is None and item.GSI1SK is None


def test_an_operator_tags_a_member_and_the_segment_lists_them(table, apigw_event,
                                                              lambda_context):
    member_id = join("tag-put")
    status, body = call(apigw_event, lambda_context, "PUT",
                        f"/v1/admin/members/{member_id}/tags/milk_powder")
    assert status == 200
    assert {t["tag"]: t["source"] for t in body["tags"]} == {"milk_powder": "operator",
                                                             "new_member": "rule"}
    assert segment_ids("milk_powder") == [member_id]
    assert_index_matches(member_id)
    status, _ = call(apigw_event, lambda_context, "PUT",
                     f"/v1/admin/members/{member_id}/tags/milk_powder")
    assert status == 200 and segment_ids("milk_powder") == [member_id]


def test_an_operator_removes_a_tag(table, apigw_event, lambda_context):
    member_id = join("tag-delete")
    call(apigw_event, lambda_context, "PUT", f"/v1/admin/members/{member_id}/tags/vip")
    status, body = call(apigw_event, lambda_context, "DELETE",
                        f"/v1/admin/members/{member_id}/tags/vip")
    assert status == 200 and "vip" not in {t["tag"] for t in body["tags"]}
    assert segment_ids("vip") == []
    assert_index_matches(member_id)


def test_tag_routes_refuse_bad_names_rule_tags_unknown_members_and_members(
        table, apigw_event, lambda_context):
    member_id = join("tag-refusals")
    base = f"/v1/admin/members/{member_id}/tags"
    assert call(apigw_event, lambda_context, "PUT", f"{base}/Bad%20Name")[0] == 422
    status, body = call(apigw_event, lambda_context, "PUT", f"{base}/dormant")
    assert (status, body["code"]) == (409, "tag_is_automatic")
    status, body = call(apigw_event, lambda_context, "PUT",
                        "/v1/admin/members/Mzzzzzzzzzzzz/tags/vip")
    assert (status, body["code"]) == (404, "member_not_found")
    assert call(apigw_event, lambda_context, "PUT", f"{base}/vip", scopes=("member",))[0] == 403
    assert tag_store.read_member(member_id).tags.keys() == {"new_member"}


def test_a_member_carries_at_most_50_manual_tags(table, apigw_event, lambda_context):
    member_id = join("tag-limit")
    for i in range(MAX_MANUAL_TAGS):
        tag_service.put_tag(member_id, f"t{i}")
    status, body = call(apigw_event, lambda_context, "PUT",
                        f"/v1/admin/members/{member_id}/tags/one_more")
    assert (status, body["code"]) == (409, "too_many_tags")
    assert_index_matches(member_id)


def test_a_segment_excludes_a_member_without_consent(table, apigw_event, lambda_context):
    keeps, withdraws = join("consent-keeps"), join("consent-withdraws")
    for member_id in (keeps, withdraws):
        tag_service.put_tag(member_id, "milk_powder")
    response = members_handler.handler(apigw_event(
        "PATCH", "/v1/members/me", {"marketingConsent": False}, sub="consent-withdraws"),
        lambda_context)
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["marketingConsent"] is False
    assert segment_ids("milk_powder") == [keeps]
    assert segment_ids("new_member") == [keeps]
    member = tag_store.read_member(withdraws)
    assert member.marketing_consent is False and member.marketing_consent_at is not None
    assert set(member.tags) == {"milk_powder", "new_member"}  # still carried, not listed
    assert_index_matches(withdraws)
    member_service.edit_profile("consent-withdraws", ProfileUpdate(marketingConsent=True))
    assert sorted(segment_ids("milk_powder")) == sorted([keeps, withdraws])


def test_consent_must_be_a_boolean(table, apigw_event, lambda_context):
    join("consent-bad")
    response = members_handler.handler(apigw_event(
        "PATCH", "/v1/members/me", {"marketingConsent": "no"}, sub="consent-bad"),
        lambda_context)
    assert response["statusCode"] in (400, 422)
    assert tag_store.read_member(member_id_for("consent-bad")).marketing_consent is True


def test_segment_pages_by_cursor_cover_every_member_once(table, apigw_event, lambda_context):
    ids = [join(f"seg-{i}") for i in range(23)]
    for member_id in ids:
        tag_service.put_tag(member_id, "campaign")
    seen, cursor, pages = [], None, 0
    while True:
        query = {"limit": "5", **({"cursor": cursor} if cursor else {})}
        status, body = call(apigw_event, lambda_context, "GET",
                            "/v1/admin/tags/campaign/members", query=query)
        assert status == 200 and len(body["members"]) <= 5
        seen += [m["memberId"] for m in body["members"]]
        pages += 1
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and pages >= 5
    assert sorted(tag_service.members_with_tag("campaign")) == sorted(ids)


def test_a_forged_cursor_is_refused(table, apigw_event, lambda_context):
    forged = tag_store.encode_cursor(0, {"PK": {"S": "MEMBER#x"}, "SK": {"S": "MEMBER"},
                                         "GSI1PK": {"S": "HOLDS#0"}, "GSI1SK": {"S": "x"}})
    for cursor in (forged, "not-base64!", "e30"):
        status, body = call(apigw_event, lambda_context, "GET", "/v1/admin/tags/vip/members",
                            query={"cursor": cursor})
        assert (status, body["code"]) == (422, "invalid_cursor")


def test_a_segment_page_queries_each_shard_at_most_once(table):
    for i in range(12):
        tag_service.put_tag(join(f"q-{i}"), "vip")
    members, cursor, queries = tag_store.segment_page("vip", 1000, None)
    assert len(members) == 12 and cursor is None and queries == tag_store.TAG_SHARDS


OPS = st.lists(st.tuples(st.sampled_from(["put", "delete", "consent", "order", "refund"]),
                         st.integers(0, 2), st.sampled_from(["a", "b", "c"])),
               min_size=1, max_size=12)


@settings(max_examples=8, suppress_health_check=list(HealthCheck))
@given(ops=OPS)
def test_the_index_equals_the_members_tags_after_random_sequences(table, ops):
    run = uuid.uuid4().hex[:6]
    subs = [f"rnd-{run}-{i}" for i in range(3)]
    ids = [join(sub, now=datetime.now(UTC) - timedelta(days=100 * i))
           for i, sub in enumerate(subs)]
    orders = {}
    from membership.domain.checkout import OrderPaid, OrderRefunded
    from membership.services import orders as order_service

    for n, (op, who, tag) in enumerate(ops):
        member_id = ids[who]
        if op == "put":
            tag_service.put_tag(member_id, tag)
        elif op == "delete":
            tag_service.delete_tag(member_id, tag)
        elif op == "consent":
            consent = not tag_store.read_member(member_id).marketing_consent
            member_service.edit_profile(subs[who], ProfileUpdate(marketingConsent=consent))
        elif op == "order":
            order_id = f"{run}-{n}"
            order_service.paid(OrderPaid.model_validate({
                "orderId": order_id, "memberId": member_id,
                "paidAt": (datetime.now(UTC) - timedelta(days=95 * (n % 3))).isoformat(),
                "lines": [{"lineId": "1", "sku": "s", "category": "milk", "brand": "b",
                           "quantity": 1, "unitPrice": 600_000}],
                "amounts": {"subtotal": 600_000, "discount": 0, "pointsUsed": 0,
                            "balanceUsed": 0, "cashPaid": 600_000}}))
            orders.setdefault(who, []).append(order_id)
        elif orders.get(who):
            order_id = orders[who].pop()
            order_service.refunded(OrderRefunded.model_validate({
                "orderId": order_id, "memberId": member_id, "refundId": f"R{n}"}))
    for member_id in ids:
        assert_index_matches(member_id)
    for tag in ("a", "b", "c", "new_member", "high_value", "at_risk", "dormant"):
        listed = {m for m in segment_ids(tag) if m in ids}
        expected = {m for m in ids if tag in tag_store.read_member(m).tags
                    and tag_store.read_member(m).marketing_consent}
        assert listed == expected




def test_the_monthly_settlement_re_tags_members_whose_recency_decayed(table):
    from membership.domain import settlement as settlement_rules
    from membership.domain.checkout import OrderPaid
    from membership.services import orders as order_service
    from membership.services import settlement

    now = datetime.now(UTC)
    buyer, quiet = join("decay-buyer", now=now), join("decay-quiet", now=now)
    order_service.paid(OrderPaid.model_validate({
        "orderId": "SO-decay", "memberId": buyer,
        "paidAt": (now - timedelta(hours=1)).isoformat(),
        "lines": [{"lineId": "1", "sku": "s", "category": "milk", "brand": "b", "quantity": 1,
                   "unitPrice": 100_000}],
        "amounts": {"subtotal": 100_000, "discount": 0, "pointsUsed": 0, "balanceUsed": 0,
                    "cashPaid": 100_000}}))
    assert tag_store.read_member(buyer).tags == {}
    run_at = now + timedelta(days=100)
    period = settlement_rules.period_before(run_at, "Asia/Shanghai")
    settlement.start(period, now=run_at, segments=1)
    settlement.settle_segment(period, 0, 1, clock=lambda: run_at)
    report = settlement.report(period)
    assert set(tag_store.read_member(buyer).tags) == {"at_risk"}
    assert set(tag_store.read_member(quiet).tags) == set()  # new_member over, not dormant
    assert (report.tags_added, report.tags_removed) == (1, 1)  # at_risk on, new_member off
    assert segment_ids("at_risk") == [buyer]
    assert_index_matches(buyer)
    assert_index_matches(quiet)


# ---- with privacy (docs/privacy.md) -------------------------------------------------------

def consent_records(member_id):
    from membership.storage.consents import ConsentItem
    from membership.storage.models import member_pk

    return list(ConsentItem.query(member_pk(member_id), ConsentItem.SK.startswith("CONSENT#")))


def test_a_consent_change_moves_the_index_and_records_the_statement_together(
        table, apigw_event, lambda_context):
    member_id = join("consent-recorded")
    tag_service.put_tag(member_id, "milk_powder")
    for granted in (False, False, True):
        response = members_handler.handler(apigw_event(
            "PATCH", "/v1/members/me", {"marketingConsent": granted},
            sub="consent-recorded"), lambda_context)
        assert response["statusCode"] == 200
    assert [r.granted for r in sorted(consent_records(member_id), key=lambda r: r.at)] == [
        False, False, True]  # every statement, a repeated one too
    assert segment_ids("milk_powder") == [member_id]
    assert_index_matches(member_id)


def test_a_birthday_sent_with_a_consent_change_is_still_set_once(table, apigw_event,
                                                                 lambda_context):
    member_id = join("consent-birthday")
    member_service.edit_profile("consent-birthday", ProfileUpdate(birthday="1990-05-01"))
    response = members_handler.handler(apigw_event(
        "PATCH", "/v1/members/me", {"marketingConsent": False, "birthday": "1991-06-02"},
        sub="consent-birthday"), lambda_context)
    assert response["statusCode"] == 409
    assert json.loads(response["body"])["code"] == "birthday_already_set"
    member = tag_store.read_member(member_id)
    assert (member.birthday, member.marketing_consent) == ("1990-05-01", True)
    assert consent_records(member_id) == []


def test_closure_removes_the_tags_their_index_items_and_the_order_aggregates(
        table, apigw_event, lambda_context):
    from membership.handlers import privacy

    member_id = join("closing-tagged")
    tag_service.put_tag(member_id, "milk_powder")
    response = privacy.handler(apigw_event("DELETE", "/v1/members/me", sub="closing-tagged"),
                               lambda_context)
    assert response["statusCode"] == 200, response["body"]
    member = tag_store.read_member(member_id)
    assert member.status == "closed" and member.tags == {}
    assert list(tag_store.member_tags(member_id)) == []
    assert segment_ids("milk_powder") == [] and segment_ids("new_member") == []


def test_a_closed_member_gains_no_rule_tag_from_the_settlement_scan(table):
    from membership.domain.program import default_program
    from membership.domain.tags import evaluate, facts_of

    member_id = join("closed-no-rules")
    member = tag_store.read_member(member_id).model_copy(update={"status": "closed",
                                                                 "tags": {}})
    assert evaluate(facts_of(member), default_program(), datetime.now(UTC)) == {}


def test_two_consent_statements_in_the_same_instant_are_both_recorded(table):
    member_id = join("consent-same-instant")
    now = datetime.now(UTC)
    for granted in (False, True):
        member_service.edit_profile("consent-same-instant",
                                    ProfileUpdate(marketingConsent=granted), now=now)
    assert sorted(r.granted for r in consent_records(member_id)) == [False, True]
    assert tag_store.read_member(member_id).marketing_consent is True
