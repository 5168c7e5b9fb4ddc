"""Monthly settlement against DynamoDB Local: fan-out over segments, checkpoints, re-runs,
a worker killed mid-segment, events, and the admin report route."""
from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import botocore.session
import jsonschema
import pytest

from membership.handlers import admin_settlements
from membership.handlers import settlement as settlement_handler
from membership.services import settlement
from membership.storage import ledger
from membership.storage import settlement as store
from membership.storage.models import GuardItem
from membership_local.seed import seed_members

PERIOD = "2024-12"  # a year end: lots earned in 2023 expire
RUN_AT = datetime(2024, 12, 31, 16, 5, tzinfo=UTC)  # 00:05 on 1 Jan 2025 in Shanghai
SEGMENTS = 3
PAGE_LIMIT = 120  # items evaluated per page: several pages per segment
MEMBERS = 24
SCHEMAS = Path(__file__).resolve().parents[2] / "events" / "schemas"


class Killed(Exception):
    """Stands in for a worker that dies (timeout, out of memory) mid-segment."""


def client():
    return botocore.session.get_session().create_client(
        "dynamodb", region_name="us-east-1", endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"])


def seed(table_name: str, count: int = MEMBERS) -> None:
    seed_members(client(), table_name, count, PERIOD, seed=11, threads=2)


def settle_all(**kwargs) -> dict:
    settlement.start(PERIOD, now=RUN_AT, segments=SEGMENTS)
    for segment in range(SEGMENTS):
        settlement.settle_segment(PERIOD, segment, SEGMENTS, page_limit=PAGE_LIMIT,
                                  clock=lambda: RUN_AT, **kwargs)
    return settlement.report(PERIOD).model_dump(mode="json", by_alias=True)


def raw_items(table_name: str) -> list[dict]:
    items, kwargs = [], {"TableName": table_name, "ConsistentRead": True}
    for _ in range(10_000):
        page = client().scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    raise AssertionError("scan did not end")


def members_by_id(table_name: str) -> dict[str, dict]:
    return {i["memberId"]["S"]: i for i in raw_items(table_name) if i["SK"]["S"] == "MEMBER"}


def member_state(table_name: str) -> dict:
    """What settlement decides, per member: comparable across tables and runs."""
    state: dict = {}
    for item in raw_items(table_name):
        pk, sk = item["PK"]["S"], item["SK"]["S"]
        if not pk.startswith("MEMBER#"):
            continue
        member = state.setdefault(pk, {"lots": [], "entries": []})
        if sk == "MEMBER":
            member.update(tier=item["tier"]["S"], points=item["ptsA"]["N"],
                          settled=item.get("settled", {}).get("S"),
                          plan="plan" in item, version=item["version"]["N"])
        elif sk.startswith("LOT#"):
            member["lots"].append((item["lotId"]["S"], item["remaining"]["N"]))
        elif sk.startswith("ENTRY#"):
            member["entries"].append((item["asset"]["S"], item["bucket"]["S"],
                                      item["amount"]["N"], item["sourceKey"]["S"]))
    for member in state.values():
        member["lots"].sort()
        member["entries"].sort()
    return state


def timeless(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in {"startedAt", "completedAt",
                                                          "durationMs"}}


@pytest.fixture
def other_table(extra_table, table, reset_caches):
    """A second fresh table; `use(name)` points the code at one or the other."""
    name = extra_table(f"{table}-b")

    def use(table_name: str) -> None:
        os.environ["TABLE_NAME"] = table_name
        reset_caches()

    yield name, use
    use(table)


# ---- settling a period ---------------------------------------------------------------------

def test_settlement_processes_every_member_once(table):
    seed(table)
    report = settle_all()
    assert report["status"] == "completed"
    assert report["membersProcessed"] == MEMBERS
    assert sum(report["tiersBefore"].values()) == sum(report["tiersAfter"].values()) == MEMBERS


def test_settlement_moves_a_realistic_minority(table):
    seed(table)
    report = settle_all()
    assert 0 < report["membersChanged"] < MEMBERS
    assert report["downgrades"] > 0 and report["pointsExpired"] > 0


def test_members_whose_state_does_not_change_are_not_written(table):
    seed(table)
    before = members_by_id(table)
    settle_all()
    after = members_by_id(table)
    unchanged = [m for m, item in after.items() if item.get("settled", {}).get("S") != PERIOD]
    assert unchanged
    assert all(after[m] == before[m] for m in unchanged)


def test_changed_members_record_the_period_and_keep_their_ledger_consistent(table):
    seed(table)
    report = settle_all()
    changed = [m for m, item in members_by_id(table).items()
               if item.get("settled", {}).get("S") == PERIOD]
    assert len(changed) == report["membersChanged"]
    from membership.domain.ledger import reconcile
    from membership.storage.members import get_member
    for member_id in changed:
        member = get_member(member_id, consistent=True)
        assert reconcile(member, ledger.all_entries(member_id), ledger.all_lots(member_id)) == []


def test_report_counts_match_the_members_tiers(table):
    seed(table)
    report = settle_all()
    tiers: dict[str, int] = {}
    for item in members_by_id(table).values():
        tiers[item["tier"]["S"]] = tiers.get(item["tier"]["S"], 0) + 1
    assert report["tiersAfter"] == dict(sorted(tiers.items()))


def test_checkpoints_are_written_per_page_not_per_member(table):
    seed(table)
    settle_all()
    checkpoints = store.checkpoints(PERIOD)
    assert len(checkpoints) == SEGMENTS and all(cp.done for cp in checkpoints)
    assert sum(cp.pages for cp in checkpoints) < MEMBERS


# ---- idempotency ------------------------------------------------------------------------------

def test_starting_a_completed_period_again_hands_out_nothing(table):
    seed(table)
    settle_all()
    handed_out: list[dict] = []
    run = settlement.start(PERIOD, now=RUN_AT, enqueue=handed_out.extend)
    assert run.status == "completed" and handed_out == []


def test_settling_a_period_twice_changes_nothing_the_second_time(table):
    seed(table)
    first_report = settle_all()
    settled = member_state(table)
    # Forget the run entirely: a second, fresh run over the settled members.
    for item in raw_items(table):
        if item["PK"]["S"].startswith("SETTLEMENT#") or item["PK"]["S"] == "SOURCE#settlement:" \
                + PERIOD:
            client().delete_item(TableName=table, Key={"PK": item["PK"], "SK": item["SK"]})
    second_report = settle_all()
    assert member_state(table) == settled
    assert timeless(second_report) == timeless(first_report)


# ---- a worker killed mid-segment ----------------------------------------------------------------

@pytest.mark.parametrize("kill_after", [1, 5])
def test_a_worker_killed_mid_segment_resumes_to_the_state_of_an_uninterrupted_run(
        table, other_table, kill_after):
    other, use = other_table
    use(other)
    seed(other)
    uninterrupted = settle_all()
    expected = member_state(other)

    use(table)
    seed(table)
    settlement.start(PERIOD, now=RUN_AT, segments=SEGMENTS)

    def die(n: int) -> None:
        if n == kill_after:
            raise Killed()

    with pytest.raises(Killed):
        settlement.settle_segment(PERIOD, 0, SEGMENTS, page_limit=PAGE_LIMIT,
                                  clock=lambda: RUN_AT, on_member=die)
    assert not store.load_checkpoint(PERIOD, 0).done
    resumed = settle_all()
    assert member_state(table) == expected
    assert timeless(resumed) == timeless(uninterrupted)


def test_without_the_metrics_tally_a_run_settles_the_same_and_knows_no_paid_counts(
        table, other_table):
    """The bench's settlement alone (bench/settlement.py): the same decisions and writes as
    the production run, only the metrics' term rows and stocks left out."""
    other, use = other_table
    use(other)
    seed(other, 60)  # 5 % have a paid plan: a few members with term items
    production = settle_all()
    expected = member_state(other)
    tallied = store.checkpoints(PERIOD)[0].tally
    assert tallied.paying_at_close is not None and tallied.points_available > 0

    use(table)
    seed(table, 60)
    alone = settle_all(tally_metrics=False)
    assert member_state(table) == expected
    assert timeless(alone) == timeless(production)
    untallied = store.checkpoints(PERIOD)[0].tally
    assert (untallied.members_closed, untallied.paying_at_close, untallied.terms_ended) == (
        None, None, None)
    assert untallied.points_available == 0


def test_a_worker_killed_after_changing_members_resumes_without_writing_them_again(table):
    seed(table)
    settlement.start(PERIOD, now=RUN_AT, segments=1)
    changed_before_kill: list[str] = []

    def die(n: int) -> None:
        changed_before_kill[:] = [m for m, i in members_by_id(table).items()
                                  if i.get("settled", {}).get("S") == PERIOD]
        if len(changed_before_kill) >= 2:
            raise Killed()

    with pytest.raises(Killed):
        settlement.settle_segment(PERIOD, 0, 1, page_limit=10_000, clock=lambda: RUN_AT,
                                  on_member=die)
    versions = {m: members_by_id(table)[m]["version"]["N"] for m in changed_before_kill}
    settlement.settle_segment(PERIOD, 0, 1, page_limit=10_000, clock=lambda: RUN_AT)
    after = members_by_id(table)
    assert {m: after[m]["version"]["N"] for m in changed_before_kill} == versions
    assert settlement.report(PERIOD).members_changed >= 2


def test_a_second_worker_on_a_moved_checkpoint_stops(table):
    seed(table, 10)
    settlement.start(PERIOD, now=RUN_AT, segments=1)
    stale = store.load_checkpoint(PERIOD, 0)
    settlement.settle_segment(PERIOD, 0, 1, page_limit=20, clock=lambda: RUN_AT,
                              should_stop=_stop_after(1))
    with pytest.raises(store.SegmentTaken):
        store.save_checkpoint(stale, stale, RUN_AT)


def _stop_after(pages: int):
    calls = iter(range(10_000))
    return lambda: next(calls) >= pages


# ---- events ----------------------------------------------------------------------------------

def test_completion_writes_one_settlement_completed_event_matching_its_schema(table):
    seed(table)
    settle_all()
    guard = GuardItem.get(*GuardItem.key(store.run_guard_key(PERIOD)), consistent_read=True)
    assert [e["detailType"] for e in guard.outbox] == ["settlement.completed"]
    detail = json.loads(guard.outbox[0]["detail"])
    jsonschema.validate(detail, json.loads((SCHEMAS / "settlement.completed.json").read_text()))
    assert detail["period"] == PERIOD and detail["membersProcessed"] == MEMBERS


def test_expired_points_go_out_as_points_expired_events(table):
    seed(table)
    report = settle_all()
    schema = json.loads((SCHEMAS / "points.expired.json").read_text())
    expired = 0
    for item in raw_items(table):
        if item["PK"]["S"].startswith(f"SOURCE#settlement:{PERIOD}:"):
            for event in item.get("outbox", {}).get("L", []):
                if event["M"]["detailType"]["S"] == "points.expired":
                    detail = json.loads(event["M"]["detail"]["S"])
                    jsonschema.validate(detail, schema)
                    expired += detail["points"]
    assert expired == report["pointsExpired"] > 0


# ---- handlers ---------------------------------------------------------------------------------

def test_the_scheduled_coordinator_settles_the_month_that_ended_in_shanghai(
        table, lambda_context, monkeypatch):
    handed_out: list[dict] = []
    monkeypatch.setattr(settlement_handler, "enqueue", handed_out.extend)
    result = settlement_handler.coordinator({"scheduledTime": "2024-12-31T16:05:00Z"},
                                            lambda_context)
    assert result["period"] == PERIOD
    assert sorted(m["segment"] for m in handed_out) == list(range(result["segments"]))


def test_a_worker_near_its_timeout_hands_the_rest_of_its_segment_on(
        table, monkeypatch):
    from membership_local.apigw import lambda_context as make_context

    seed(table, 10)
    settlement.start(PERIOD, now=RUN_AT, segments=1)
    handed_out: list[dict] = []
    monkeypatch.setattr(settlement_handler, "enqueue", handed_out.extend)
    message = {"period": PERIOD, "segment": 0, "segments": 1}
    event = {"Records": [{"messageId": "m1", "body": json.dumps(message)}]}
    result = settlement_handler.worker(event, make_context(timeout=0.0))
    assert result == {"batchItemFailures": []}
    assert handed_out == [message]
    settlement_handler.worker(event, make_context(timeout=600.0))
    assert settlement.report(PERIOD).status == "completed"


def admin_get(apigw_event, ctx, period: str, scopes=("admin",)):
    response = admin_settlements.handler(
        apigw_event("GET", f"/v1/admin/settlements/{period}", sub="operator", scopes=scopes),
        ctx)
    return response["statusCode"], json.loads(response["body"])


def test_admin_reads_the_report_of_a_settled_period(table, apigw_event, lambda_context):
    seed(table, 12)
    report = settle_all()
    status, body = admin_get(apigw_event, lambda_context, PERIOD)
    assert status == 200 and body == report


def test_admin_report_of_an_unsettled_period_is_not_found(table, apigw_event, lambda_context):
    status, body = admin_get(apigw_event, lambda_context, "2020-01")
    assert status == 404 and body["code"] == "settlement_not_found"


def test_admin_report_needs_the_admin_scope(table, apigw_event, lambda_context):
    status, _body = admin_get(apigw_event, lambda_context, PERIOD, scopes=("member",))
    assert status == 403


def test_admin_report_rejects_a_malformed_period(table, apigw_event, lambda_context):
    status, body = admin_get(apigw_event, lambda_context, "2024-13")
    assert status == 422 and body["code"] == "invalid_period"
