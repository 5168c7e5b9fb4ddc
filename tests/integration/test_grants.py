"""Bulk grants: 202, fan-out over a real SQS queue (moto), each (grant, member) once."""
from __future__ import annotations

import json
import random
import threading
import uuid

import botocore.session
import pytest
from admin_support import OPERATOR, as_admin, bulk_members, call, member, signup
from moto import mock_aws

from membership.handlers import admin_grants, grant_worker
from membership.services import grants as grants_service
from membership.services.ledger import reconcile_member
from membership.storage import ledger
from membership.storage.models import EntryItem, GuardItem

GRANT = {"grantId": "G-618", "points": 88, "reasonCode": "campaign", "note": "618 festival"}


@pytest.fixture
def queue(table, monkeypatch, reset_caches):
    """A real SQS queue (moto) as the grant queue; DynamoDB stays DynamoDB Local."""
    with mock_aws():
        sqs = botocore.session.get_session().create_client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="grants")["QueueUrl"]
        monkeypatch.setenv("GRANT_QUEUE_URL", url)
        monkeypatch.setenv("GRANT_CHUNK_SIZE", "100")
        reset_caches()
        yield sqs, url
    reset_caches()


def post(apigw_event, ctx, body):
    return call(admin_grants, as_admin(apigw_event, "POST", "/v1/admin/grants", body), ctx)


def progress(apigw_event, ctx, grant_id="G-618"):
    return call(admin_grants, as_admin(apigw_event, "GET", f"/v1/admin/grants/{grant_id}"), ctx)


def record(message):
    """An SQS message as Lambda's event source mapping hands it to the function."""
    return {"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"], "attributes": message.get("Attributes", {}),
            "messageAttributes": {}, "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123:grants",
            "awsRegion": "us-east-1"}


def drain(sqs, url, ctx, *, lose_deletes_of=(), concurrent_twice=(), max_rounds=200):
    """Deliver every message to the worker as Lambda would, with redeliveries on demand.

    `lose_deletes_of`: chunks whose first successful delivery is not deleted (the worker
    died after applying it), so SQS delivers them again. `concurrent_twice`: chunks that
    two workers apply at the same time.
    """
    deliveries: dict = {}
    for _ in range(max_rounds):
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30,
                                  AttributeNames=["All"]).get("Messages", [])
        if not got:
            return deliveries
        for message in got:
            body = json.loads(message["Body"])
            # A chunk by its number; a tag grant's expansion step as ("expand", page).
            chunk = body["chunk"] if "chunk" in body else ("expand", body["expand"])
            deliveries[chunk] = deliveries.get(chunk, 0) + 1
            event = {"Records": [record(message)]}
            if chunk in concurrent_twice and deliveries[chunk] == 1:
                answers = _twice_at_once(event, ctx)
                assert answers == [{"batchItemFailures": []}] * 2
            else:
                assert grant_worker.handler(event, ctx) == {"batchItemFailures": []}
            if chunk in lose_deletes_of and deliveries[chunk] == 1:
                sqs.change_message_visibility(QueueUrl=url,
                                              ReceiptHandle=message["ReceiptHandle"],
                                              VisibilityTimeout=0)
            else:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    raise AssertionError("the queue did not drain")


def _twice_at_once(event, ctx):
    answers = []
    workers = [threading.Thread(target=lambda: answers.append(grant_worker.handler(event, ctx)))
               for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return answers


def grant_entries():
    return list(EntryItem.scan((EntryItem.source_type == "grant")
                               & EntryItem.SK.startswith("ENTRY#")))


# About 4,400 ledger transactions against DynamoDB Local: 45 s alone, several minutes
# when the whole suite shares two cores, so the default 300 s bound does not fit it.
@pytest.mark.timeout(900)
def test_a_grant_of_2000_members_with_10_unknown_credits_exactly_1990_once(
        queue, apigw_event, lambda_context):
    sqs, url = queue
    known = bulk_members(1_990)
    unknown = [f"M{uuid.uuid4().hex[:24]}" for _ in range(10)]
    member_ids = known + unknown
    random.Random(7).shuffle(member_ids)
    status, body, _ = post(apigw_event, lambda_context, {**GRANT, "memberIds": member_ids})
    assert status == 202
    assert (body["status"], body["total"], body["chunks"], body["done"]) == (
        "queued", 2_000, 20, 0)

    deliveries = drain(sqs, url, lambda_context, lose_deletes_of={0, 5, 19},
                       concurrent_twice={7})
    assert sorted(deliveries) == list(range(20))
    assert {c: n for c, n in deliveries.items() if n > 1} == {0: 2, 5: 2, 19: 2}

    status, body, _ = progress(apigw_event, lambda_context)
    assert status == 200
    assert (body["status"], body["total"], body["done"], body["failed"]) == (
        "completed", 2_000, 1_990, 10)
    assert body["chunksDone"] == 20
    assert sorted(f["memberId"] for f in body["failures"]) == sorted(unknown)
    assert {f["code"] for f in body["failures"]} == {"member_not_found"}

    entries = grant_entries()
    assert len(entries) == 1_990
    assert sorted(e.member_id for e in entries) == sorted(known)
    assert {(e.amount, e.reason, e.actor) for e in entries} == {(88, "campaign", OPERATOR)}
    guards = list(GuardItem.scan(GuardItem.PK.startswith("SOURCE#grant:G-618:")))
    assert len(guards) == 1_990
    for member_id in random.Random(3).sample(known, 25):
        assert member(member_id).points_available == 88
        assert reconcile_member(member_id) == []


def test_a_replayed_grant_is_not_enqueued_again_and_another_body_is_refused(
        queue, apigw_event, lambda_context):
    sqs, url = queue
    ids = bulk_members(101)
    first = post(apigw_event, lambda_context, {**GRANT, "memberIds": ids})
    again = post(apigw_event, lambda_context, {**GRANT, "memberIds": ids})
    assert (first[0], again[0]) == (202, 202)
    assert again[1] == first[1]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert int(attributes["ApproximateNumberOfMessages"]) == 2  # 101 members, 2 chunks
    status, body, _ = post(apigw_event, lambda_context,
                           {**GRANT, "points": 99, "memberIds": ids})
    assert (status, body["code"]) == (409, "grant_id_reused")
    drain(sqs, url, lambda_context)
    assert {member(m).points_available for m in ids} == {88}


def test_duplicate_member_ids_are_credited_once(queue, apigw_event, lambda_context):
    sqs, url = queue
    a, b = bulk_members(2)
    status, body, _ = post(apigw_event, lambda_context, {**GRANT, "memberIds": [a, b, a, a]})
    assert (status, body["total"]) == (202, 2)
    drain(sqs, url, lambda_context)
    assert (member(a).points_available, member(b).points_available) == (88, 88)


def test_a_chunk_that_stays_busy_is_retried_and_finishes_once(queue, apigw_event,
                                                              lambda_context, monkeypatch):
    from membership.errors import Unavailable
    from membership.services import grants as service

    sqs, url = queue
    ids = bulk_members(30)
    post(apigw_event, lambda_context, {**GRANT, "memberIds": ids})
    real = service.post_legs
    calls = {"n": 0}

    def flaky(member_id, *args, **kwargs):
        calls["n"] += 1
        if member_id == ids[3] and calls["n"] < 40:
            raise Unavailable("the member's ledger stayed busy; try again")
        return real(member_id, *args, **kwargs)

    monkeypatch.setattr(service, "post_legs", flaky)
    [message] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    answer = grant_worker.handler({"Records": [record(message)]}, lambda_context)
    assert answer == {"batchItemFailures": [{"itemIdentifier": message["MessageId"]}]}
    assert progress(apigw_event, lambda_context)[1]["status"] == "queued"
    monkeypatch.setattr(service, "post_legs", real)
    assert grant_worker.handler({"Records": [record(message)]}, lambda_context) == {
        "batchItemFailures": []}
    body = progress(apigw_event, lambda_context)[1]
    assert (body["status"], body["done"], body["failed"]) == ("completed", 30, 0)
    assert len(grant_entries()) == 30


def test_the_entries_and_lots_of_a_grant_follow_the_ledger_rules(queue, apigw_event,
                                                                 lambda_context):
    sqs, url = queue
    member_id = signup(apigw_event, lambda_context)
    post(apigw_event, lambda_context, {**GRANT, "memberIds": [member_id]})
    drain(sqs, url, lambda_context)
    lot = next(lot for lot in ledger.all_lots(member_id) if lot.lot_id == "grant-G-618")
    assert lot.remaining == 88 and not lot.pending
    assert member(member_id).points_available == 188
    assert reconcile_member(member_id) == []


def test_a_registered_grant_kind_is_applied_once_per_member_by_the_same_fan_out(
        queue, apigw_event, lambda_context, monkeypatch):
    # The seam the coupons capability plugs into: register "coupon", and coupon grants
    # are accepted, chunked, redelivered and tallied like points grants.
    from membership.errors import MemberNotFound

    sqs, url = queue
    known = [signup(apigw_event, lambda_context, sub=f"kind-{i}") for i in range(3)]
    given: list[tuple[str, str]] = []

    def issue_coupon(member_id, grant, now):
        if member_id not in known:
            raise MemberNotFound(f"no member {member_id}")
        if (member_id, grant.template_id) not in given:  # the guard's job in a real kind
            given.append((member_id, grant.template_id))

    monkeypatch.setitem(grants_service.GRANT_KINDS, "coupon", issue_coupon)
    body = {"grantId": "G-coupon", "templateId": "T-10OFF100", "reasonCode": "campaign",
            "memberIds": [*known, "M" + "z" * 24]}
    assert post(apigw_event, lambda_context, body)[0] == 202
    drain(sqs, url, lambda_context, lose_deletes_of=(0,))
    assert sorted(given) == sorted((m, "T-10OFF100") for m in known)
    view = progress(apigw_event, lambda_context, "G-coupon")[1]
    assert (view["status"], view["done"], view["failed"]) == ("completed", 3, 1)
    assert view["failures"][0]["code"] == "member_not_found"


@pytest.mark.parametrize("body", [
    {"memberIds": []}, {"memberIds": ["M" + "a" * 24] * 10_001}, {"points": 0},
    {"points": 1, "templateId": "X", "memberIds": ["Ma"]}, {"memberIds": None},
    {"memberIds": ["bad id"]},
])
def test_bad_grants_are_422_and_write_nothing(queue, apigw_event, lambda_context, body):
    payload = {k: v for k, v in {**GRANT, "memberIds": ["Ma"], **body}.items()
               if v is not None}
    status, answer, _ = post(apigw_event, lambda_context, payload)
    assert (status, answer["code"]) == (422, "validation_failed")
    assert progress(apigw_event, lambda_context)[0] == 404


def test_an_unknown_reason_code_is_refused(queue, apigw_event, lambda_context):
    status, answer, _ = post(apigw_event, lambda_context,
                             {**GRANT, "reasonCode": "whim", "memberIds": ["Ma"]})
    assert (status, answer["code"]) == (422, "unknown_reason_code")


def test_an_unknown_grant_is_404(queue, apigw_event, lambda_context):
    status, body, _ = progress(apigw_event, lambda_context, "nope")
    assert (status, body["code"]) == (404, "grant_not_found")
