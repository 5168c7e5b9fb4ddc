"""Operators change the program: versions, If-Match, validation paths, stranding refusals.

A paid plan with active runs of terms: tests/integration/test_plan_usage.py."""
from __future__ import annotations

import copy
import time

import pytest
from admin_support import OPERATOR, as_admin, call, grow, member, signup

from membership.domain.program import default_program
from membership.errors import Unavailable
from membership.handlers import admin_program
from membership.storage import program as program_store
from membership.storage import usage
from membership.storage.models import MemberItem
from membership.storage.program_versions import ProgramVersionItem

PATH = "/v1/admin/program"


def default_doc():
    return default_program().model_dump(mode="json", by_alias=True)


def get(apigw_event, ctx):
    return call(admin_program, as_admin(apigw_event, "GET", PATH), ctx)


def put(apigw_event, ctx, doc, if_match='"0"'):
    headers = {} if if_match is None else {"If-Match": if_match}
    return call(admin_program, as_admin(apigw_event, "PUT", PATH, doc, headers=headers), ctx)


def without_tier(doc, tier_id):
    doc = copy.deepcopy(doc)
    doc["tiers"] = [t for t in doc["tiers"] if t["id"] != tier_id]
    return doc


def renamed(doc, name="Membership Plus"):
    return {**copy.deepcopy(doc), "name": name}


def test_get_answers_the_version_and_an_etag(table, apigw_event, lambda_context):
    status, body, raw = get(apigw_event, lambda_context)
    assert status == 200
    assert body["version"] == 0
    assert raw["headers"]["ETag"] == '"0"'
    assert body["program"] == default_doc()
    assert body["program"]["reasonCodes"] == ["goodwill", "correction", "compensation",
                                              "campaign"]


def test_put_without_if_match_is_428_and_changes_nothing(table, apigw_event, lambda_context):
    status, body, _ = put(apigw_event, lambda_context, renamed(default_doc()), if_match=None)
    assert status == 428
    assert body["code"] == "precondition_required"
    assert get(apigw_event, lambda_context)[1]["version"] == 0


def test_put_with_a_stale_if_match_is_412(table, apigw_event, lambda_context):
    assert put(apigw_event, lambda_context, renamed(default_doc(), "A"))[0] == 200
    status, body, _ = put(apigw_event, lambda_context, renamed(default_doc(), "B"),
                          if_match='"0"')
    assert status == 412
    assert body["code"] == "precondition_failed"
    assert body["details"]["currentVersion"] == 1
    current = get(apigw_event, lambda_context)[1]
    assert (current["version"], current["program"]["name"]) == (1, "A")


def test_put_with_the_current_version_writes_the_next(table, apigw_event, lambda_context):
    status, body, raw = put(apigw_event, lambda_context, renamed(default_doc()), if_match='W/"0"')
    assert status == 200
    assert raw["headers"]["ETag"] == '"1"'
    assert body["version"] == 1
    assert body["updatedBy"] == OPERATOR
    assert body["changes"] == ["name"]
    status, body, _ = put(apigw_event, lambda_context, renamed(default_doc(), "Again"),
                          if_match="1")
    assert (status, body["version"]) == (200, 2)


def test_every_version_is_kept_with_who_and_when(table, apigw_event, lambda_context):
    put(apigw_event, lambda_context, renamed(default_doc(), "First"))
    put(apigw_event, lambda_context, renamed(default_doc(), "Second"), if_match='"1"')
    status, page, _ = call(admin_program, as_admin(
        apigw_event, "GET", f"{PATH}/versions", query={"limit": "2"}), lambda_context)
    assert status == 200
    assert [v["version"] for v in page["versions"]] == [2, 1]
    assert page["versions"][0]["createdBy"] == OPERATOR
    assert page["versions"][0]["createdAt"]
    status, rest, _ = call(admin_program, as_admin(
        apigw_event, "GET", f"{PATH}/versions",
        query={"limit": "2", "cursor": page["nextCursor"]}), lambda_context)
    assert [v["version"] for v in rest["versions"]] == [0]
    assert rest["versions"][0]["createdBy"] == "system"
    status, first, _ = call(admin_program, as_admin(
        apigw_event, "GET", f"{PATH}/versions/1"), lambda_context)
    assert (status, first["program"]["name"], first["updatedBy"]) == (200, "First", OPERATOR)
    status, shipped, _ = call(admin_program, as_admin(
        apigw_event, "GET", f"{PATH}/versions/0"), lambda_context)
    assert shipped["program"] == default_doc()
    assert call(admin_program, as_admin(apigw_event, "GET", f"{PATH}/versions/9"),
                lambda_context)[0] == 404


def test_the_same_rules_again_write_no_version(table, apigw_event, lambda_context):
    status, body, _ = put(apigw_event, lambda_context, default_doc())
    assert (status, body["version"]) == (200, 0)
    assert list(ProgramVersionItem.query("PROGRAM")) == []


def test_an_invalid_program_lists_each_failing_path(table, apigw_event, lambda_context):
    doc = default_doc()
    doc["tiers"][1]["discountBps"] = -5
    doc["tiers"][3]["threshold"] = 100
    doc["reasonCodes"] = ["goodwill", "goodwill", "Bad Code"]
    doc["surprise"] = True
    status, body, _ = put(apigw_event, lambda_context, doc)
    assert status == 422
    assert body["code"] == "validation_failed"
    paths = {"/".join(e["loc"]) for e in body["details"]["errors"]}
    assert {"body/tiers/1/discountBps", "body/tiers/3/threshold", "body/reasonCodes/2",
            "body/reasonCodes/1", "body/surprise"} <= paths
    assert get(apigw_event, lambda_context)[1]["version"] == 0


def test_thresholds_that_no_longer_ascend_are_refused(table, apigw_event, lambda_context):
    doc = default_doc()
    doc["tiers"][2]["threshold"] = 1_000  # Gold at Silver's threshold
    status, body, _ = put(apigw_event, lambda_context, doc)
    assert status == 422
    [error] = body["details"]["errors"]
    assert error["loc"] == ["body", "tiers", "2", "threshold"]
    assert error["type"] == "thresholds_not_ascending"


def test_removing_a_tier_someone_holds_is_refused(table, apigw_event, lambda_context):
    member_id = signup(apigw_event, lambda_context)
    grow(member_id, 20_000)
    assert member(member_id).tier_id == "V4"
    status, body, _ = put(apigw_event, lambda_context, without_tier(default_doc(), "V4"))
    assert status == 409
    assert body["code"] == "program_change_refused"
    assert body["details"]["refusals"] == [{
        "path": "tiers[3]", "code": "tier_in_use", "inUse": 1,
        "message": "1 member(s) still use tier 'V4': it cannot be removed"}]
    assert get(apigw_event, lambda_context)[1]["version"] == 0


def test_removing_a_tier_nobody_holds_is_allowed(table, apigw_event, lambda_context):
    member_id = signup(apigw_event, lambda_context)
    grow(member_id, 20_000)
    grow(member_id, 1)  # still V4; the counter followed V1 -> V4
    assert usage.read_usage("tier", "V1").count == 0
    assert usage.read_usage("tier", "V4").count == 1
    status, body, _ = put(apigw_event, lambda_context, without_tier(default_doc(), "V3"))
    assert status == 200
    assert [t["id"] for t in body["program"]["tiers"]] == ["V1", "V2", "V4"]


def test_changing_the_time_zone_is_refused(table, apigw_event, lambda_context):
    signup(apigw_event, lambda_context)
    status, body, _ = put(apigw_event, lambda_context,
                          {**default_doc(), "timeZone": "America/New_York"})
    assert status == 409
    [refusal] = body["details"]["refusals"]
    assert (refusal["path"], refusal["code"]) == ("timeZone", "time_zone_locked")


def test_changing_the_program_id_is_refused(table, apigw_event, lambda_context):
    status, body, _ = put(apigw_event, lambda_context, {**default_doc(), "id": "other"})
    assert status == 409
    assert body["details"]["refusals"][0]["code"] == "program_id_locked"


def test_an_upgrade_into_a_tier_removed_meanwhile_is_refused(table, apigw_event, lambda_context):
    """A function that still caches the old program cannot strand a member in V4."""
    member_id = signup(apigw_event, lambda_context)
    stale = program_store.load_program()  # cached, as a running function holds it
    assert put(apigw_event, lambda_context, without_tier(default_doc(), "V4"))[0] == 200
    program_store._cache = (time.monotonic(), stale)
    with pytest.raises(Unavailable):
        grow(member_id, 20_000)
    assert member(member_id).tier_id == "V1"  # nothing was written
    assert usage.read_usage("tier", "V4").count == 0
    # The refusal dropped the stale cache: the retry reads the program without V4.
    grow(member_id, 20_000)
    assert member(member_id).tier_id == "V3"


def test_a_tier_that_comes_back_can_be_reached_again(table, apigw_event, lambda_context):
    assert put(apigw_event, lambda_context, without_tier(default_doc(), "V4"))[0] == 200
    assert put(apigw_event, lambda_context, default_doc(), if_match='"1"')[0] == 200
    assert usage.read_usage("tier", "V4").retired_shards == ()
    member_id = signup(apigw_event, lambda_context)
    grow(member_id, 20_000)
    assert member(member_id).tier_id == "V4"


def test_tier_counters_follow_signups_upgrades_and_downgrades(table, apigw_event,
                                                               lambda_context):
    from membership.domain.tiers import change_tier

    a, b = signup(apigw_event, lambda_context), signup(apigw_event, lambda_context)
    assert usage.read_usage("tier", "V1").count == 2
    grow(a, 5_000)
    assert (usage.read_usage("tier", "V1").count, usage.read_usage("tier", "V3").count) == (1, 1)
    program = program_store.load_program()
    from membership.services.ledger import post_legs

    post_legs(a, "test-down", lambda bld: change_tier(
        bld, program, program.tier("V2"), reason="test", rolling_growth=0),
        source_type="test", reason="test")
    counts = {t: usage.read_usage("tier", t).count for t in ("V1", "V2", "V3", "V4")}
    assert counts == {"V1": 1, "V2": 1, "V3": 0, "V4": 0}
    assert member(b).tier_id == "V1"


def test_running_functions_pick_up_a_version_within_their_cache_time(
        table, apigw_event, lambda_context, monkeypatch):
    before = program_store.load_program()  # a container cached version 0 a moment ago
    cached_at = time.monotonic()
    assert put(apigw_event, lambda_context, renamed(default_doc(), "New name"))[0] == 200
    assert program_store.load_program().name == "New name"  # the writer's own cache is new
    program_store._cache = (cached_at, before)  # another container, cached before the PUT
    assert program_store.load_program().name == before.name
    ttl = program_store.get_settings().program_cache_seconds
    monkeypatch.setattr(program_store.time, "monotonic", lambda: cached_at + ttl + 0.001)
    assert program_store.load_program().name == "New name"


def test_seeded_members_are_counted_in_their_tiers(table):
    import os

    import botocore.session

    from membership_local.seed import seed_members

    client = botocore.session.get_session().create_client(
        "dynamodb", region_name="us-east-1", endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"])
    seed_members(client, table, 30, "2025-02", threads=2)
    held = {}
    for item in MemberItem.scan(MemberItem.SK == "MEMBER"):
        held[item.tier_id] = held.get(item.tier_id, 0) + 1
    assert sum(held.values()) == 30
    assert {t: usage.read_usage("tier", t).count for t in held} == held
