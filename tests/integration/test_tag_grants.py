"""Bulk grants to a tag's segment: the worker expands the segment into chunks; only the
members carrying the tag who consent to marketing are credited, each once."""
from __future__ import annotations

import pytest
from admin_support import signup
from test_coupon_grants import template as coupon_template
from test_grants import GRANT, drain, grant_entries, post, progress, queue  # noqa: F401

from membership.domain.members import ProfileUpdate
from membership.services import coupons, tag_grants
from membership.services import grants as grants_service
from membership.services import members as member_service
from membership.services import tags as tag_service
from membership.services.ledger import reconcile_member
from membership.storage import coupons as coupon_store
from membership.storage import ledger
from membership.storage.grants import GrantPageItem

TAG = "vip_618"


@pytest.fixture
def small_pages(queue, monkeypatch, reset_caches):  # noqa: F811
    """Pages (and chunks) of 7 members, at most 2 pages per expansion message: a segment
    of a few dozen members spans several chunks and several expansion messages."""
    monkeypatch.setenv("GRANT_CHUNK_SIZE", "7")
    monkeypatch.setattr(tag_grants, "PAGES_PER_MESSAGE", 2)
    reset_caches()
    return queue


def members(apigw_event, ctx, count, *, prefix, tag=None, consent=True):
    ids = []
    for n in range(count):
        sub = f"{prefix}-{n}"
        member_id = signup(apigw_event, ctx, sub=sub)
        if tag:
            tag_service.put_tag(member_id, tag)
        if not consent:
            member_service.edit_profile(sub, ProfileUpdate(marketingConsent=False))
        ids.append(member_id)
    return ids


def grant_lots(member_ids, grant_id="G-618"):
    """memberId -> the remaining points of its lot from the grant, for members that have one."""
    lots = {}
    for member_id in member_ids:
        for lot in ledger.all_lots(member_id):
            if lot.lot_id == f"grant-{grant_id}":
                assert member_id not in lots, "two lots from one grant"
                lots[member_id] = lot.remaining
    return lots


def tag_grant(apigw_event, ctx, **extra):
    status, body, _ = post(apigw_event, ctx, {**GRANT, "tag": TAG, **extra})
    assert status == 202, body
    return body


def test_a_tag_grant_credits_exactly_the_consenting_tagged_members_once(
        small_pages, apigw_event, lambda_context):
    sqs, url = small_pages
    consenting = members(apigw_event, lambda_context, 24, prefix="tg-yes", tag=TAG)
    refusing = members(apigw_event, lambda_context, 6, prefix="tg-no", tag=TAG, consent=False)
    untagged = members(apigw_event, lambda_context, 5, prefix="tg-other", tag="other_tag")
    accepted = tag_grant(apigw_event, lambda_context)
    assert (accepted["status"], accepted["tag"], accepted["expanded"], accepted["total"]) == (
        "queued", TAG, False, 0)

    deliveries = drain(sqs, url, lambda_context)
    # 24 members in pages of 7: chunks 0..3; expansion steps of 2 pages: 0 then 2.
    assert sorted(k for k in deliveries if isinstance(k, int)) == [0, 1, 2, 3]
    assert sorted(k[1] for k in deliveries if isinstance(k, tuple)) == [0, 2]

    assert grant_lots(consenting + refusing + untagged) == dict.fromkeys(consenting, 88)
    status, view, _ = progress(apigw_event, lambda_context)
    assert status == 200
    assert (view["status"], view["expanded"], view["total"], view["done"], view["failed"],
            view["chunks"], view["chunksDone"]) == ("completed", True, 24, 24, 0, 4, 4)
    for member_id in consenting:
        assert reconcile_member(member_id) == []


def test_redelivered_expansion_and_chunks_credit_nobody_twice(
        small_pages, apigw_event, lambda_context):
    sqs, url = small_pages
    tagged = members(apigw_event, lambda_context, 16, prefix="tg-redeliver", tag=TAG)
    tag_grant(apigw_event, lambda_context)
    deliveries = drain(sqs, url, lambda_context,
                       lose_deletes_of={("expand", 0), ("expand", 2), 0, 2},
                       concurrent_twice={1})
    assert deliveries[("expand", 0)] == 2 and deliveries[0] >= 2
    assert grant_lots(tagged) == dict.fromkeys(tagged, 88)
    assert len(grant_entries()) == 16
    view = progress(apigw_event, lambda_context)[1]
    assert (view["status"], view["total"], view["done"], view["chunks"]) == (
        "completed", 16, 16, 3)


def test_a_re_expansion_reads_its_frozen_pages_not_the_changed_segment(
        small_pages, apigw_event, lambda_context):
    sqs, url = small_pages
    first = members(apigw_event, lambda_context, 10, prefix="tg-frozen", tag=TAG)
    tag_grant(apigw_event, lambda_context)
    drain(sqs, url, lambda_context)
    # The segment grows afterwards; a stray expansion from the start changes nothing.
    later = members(apigw_event, lambda_context, 5, prefix="tg-late", tag=TAG)
    queued: list[dict] = []
    tag_grants.expand("G-618", 0, queued.extend)
    assert sorted(m for message in queued for m in message.get("memberIds", [])) == sorted(first)
    for message in queued:
        grants_service.apply_chunk(message["grantId"], message["chunk"], message["memberIds"])
    assert grant_lots(first + later) == dict.fromkeys(first, 88)
    view = progress(apigw_event, lambda_context)[1]
    assert (view["status"], view["total"], view["done"]) == ("completed", 10, 10)
    assert GrantPageItem.count("GRANT#G-618#PAGES") == 2


def test_a_tag_without_members_completes_with_total_zero(queue, apigw_event, lambda_context):  # noqa: F811
    sqs, url = queue
    members(apigw_event, lambda_context, 2, prefix="tg-empty-no", tag=TAG, consent=False)
    tag_grant(apigw_event, lambda_context)
    deliveries = drain(sqs, url, lambda_context)
    assert list(deliveries) == [("expand", 0)]
    view = progress(apigw_event, lambda_context)[1]
    assert (view["status"], view["expanded"], view["total"], view["done"], view["chunks"]) == (
        "completed", True, 0, 0, 0)
    assert grant_entries() == []


def test_a_tag_grant_of_coupons_gives_each_consenting_member_one(
        queue, apigw_event, lambda_context):  # noqa: F811
    sqs, url = queue
    coupon_template(stock=10)
    tagged = members(apigw_event, lambda_context, 3, prefix="tg-coupon", tag=TAG)
    refusing = members(apigw_event, lambda_context, 1, prefix="tg-coupon-no", tag=TAG,
                       consent=False)
    body = {"grantId": "G-coupon-tag", "templateId": "GIFT-5OFF", "reasonCode": "campaign",
            "tag": TAG}
    assert post(apigw_event, lambda_context, body)[0] == 202
    drain(sqs, url, lambda_context, lose_deletes_of={0})
    for member_id in tagged + refusing:
        got = [c for c in coupon_store.all_coupons(member_id) if c.template_id == "GIFT-5OFF"]
        assert len(got) == (1 if member_id in tagged else 0)
    assert coupons.get_template("GIFT-5OFF").issued == 3
    view = progress(apigw_event, lambda_context, "G-coupon-tag")[1]
    assert (view["status"], view["total"], view["done"], view["failed"]) == (
        "completed", 3, 3, 0)


@pytest.mark.parametrize("tag", ["VIP", "9lives", "a" * 41, "has space", "", 7])
def test_a_bad_tag_name_is_422_and_writes_nothing(queue, apigw_event, lambda_context, tag):  # noqa: F811
    status, answer, _ = post(apigw_event, lambda_context, {**GRANT, "tag": tag})
    assert (status, answer["code"]) == (422, "validation_failed")
    assert progress(apigw_event, lambda_context)[0] == 404


def test_a_tag_and_a_member_list_together_are_422(queue, apigw_event, lambda_context):  # noqa: F811
    status, answer, _ = post(apigw_event, lambda_context,
                             {**GRANT, "tag": TAG, "memberIds": ["Ma"]})
    assert (status, answer["code"]) == (422, "validation_failed")
