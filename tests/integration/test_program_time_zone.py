"""The `ProgramTimeZone` parameter is the program's time zone: the schedule, the month that
is settled and the top-up day all follow it, whatever zone a stored program names."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from membership.domain.program import default_program
from membership.domain.topups import DailyTopupLimitExceeded, TopupRequest
from membership.handlers import members as members_handler
from membership.handlers import program as program_handler
from membership.handlers import settlement as settlement_handler
from membership.services import topups as service
from membership.storage import program as program_store
from membership.storage.models import ProgramItem

SIGNUP = {"phone": "13812345678", "nickname": "Lin", "channel": "app"}
ZONES = ["Pacific/Auckland", "America/New_York"]


def scheduler_time(zone: str, year: int, month: int) -> str:
    """What EventBridge Scheduler passes for cron(5 0 1 * ? *) in `zone`: UTC, ISO 8601."""
    local = datetime(year, month, 1, 0, 5, tzinfo=ZoneInfo(zone))
    return local.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("zone", ZONES)
def test_the_scheduled_run_settles_the_month_that_just_ended_in_the_program_zone(
        deployed_in, zone, lambda_context, monkeypatch):
    deployed_in(zone)
    handed_out: list[dict] = []
    monkeypatch.setattr(settlement_handler, "enqueue", handed_out.extend)
    # 00:05 on 1 February in Auckland is still 31 January in Shanghai and in UTC.
    result = settlement_handler.coordinator(
        {"scheduledTime": scheduler_time(zone, 2026, 2)}, lambda_context)
    assert result["period"] == "2026-01"
    assert handed_out and {m["period"] for m in handed_out} == {"2026-01"}


@pytest.mark.parametrize("zone", ZONES)
def test_the_top_up_day_limit_turns_at_midnight_in_the_program_zone(
        deployed_in, zone, apigw_event, lambda_context):
    deployed_in(zone)
    status = members_handler.handler(apigw_event("POST", "/v1/members", SIGNUP, sub="user-a"),
                                     lambda_context)["statusCode"]
    assert status == 201
    daily_max = default_program().topup.daily_max
    tz = ZoneInfo(zone)
    late = datetime(2026, 3, 14, 23, 0, tzinfo=tz)
    for n in range(daily_max // 500_000):
        service.top_up("user-a", f"k{n}", TopupRequest(
            amount=500_000, paymentReference=f"test-day-{n}", channel="alipay"), now=late)
    one_more = TopupRequest(amount=100, paymentReference="test-after", channel="alipay")
    with pytest.raises(DailyTopupLimitExceeded) as refused:
        service.top_up("user-a", "k-late", one_more,
                       now=datetime(2026, 3, 14, 23, 59, 59, tzinfo=tz))
    assert refused.value.details["day"] == "2026-03-14"
    midnight = datetime(2026, 3, 15, 0, 0, tzinfo=tz)
    answer = service.top_up("user-a", "k-next-day", one_more, now=midnight)
    assert answer.body["principal"] == 100
    # The answer is dated on the program's clock, with its offset.
    assert answer.body["creditedAt"] == midnight.isoformat()


def test_a_program_stored_in_another_zone_is_read_in_the_deployment_zone(deployed_in):
    deployed_in("Pacific/Auckland")
    ProgramItem(*ProgramItem.key(), document=default_program("Asia/Shanghai").model_dump_json(
        by_alias=True), updated_at=datetime.now(ZoneInfo("UTC"))).save()
    program_store.forget_cached_program()
    assert program_store.load_program().time_zone == "Pacific/Auckland"


def test_a_program_in_another_zone_than_the_deployment_is_refused_when_stored(deployed_in):
    deployed_in("America/New_York")
    with pytest.raises(program_store.ProgramTimeZoneMismatch) as refused:
        program_store.save_program(default_program("Asia/Shanghai"))
    assert refused.value.code == "program_time_zone_mismatch"
    assert refused.value.details["deploymentTimeZone"] == "America/New_York"
    with pytest.raises(ProgramItem.DoesNotExist):
        ProgramItem.get(*ProgramItem.key())
    program_store.save_program(default_program("America/New_York"))
    assert program_store.load_program().time_zone == "America/New_York"


def test_the_seeded_and_the_published_program_carry_the_deployment_zone(
        deployed_in, apigw_event, lambda_context):
    deployed_in("Pacific/Auckland")
    assert program_store.seed_default_program()
    stored = json.loads(ProgramItem.get(*ProgramItem.key()).document)
    assert stored["timeZone"] == "Pacific/Auckland"
    response = program_handler.handler(apigw_event("GET", "/v1/program"), lambda_context)
    assert json.loads(response["body"])["timeZone"] == "Pacific/Auckland"


def test_member_dates_are_written_with_the_program_zone_offset(
        deployed_in, apigw_event, lambda_context):
    deployed_in("America/New_York")
    response = members_handler.handler(apigw_event("POST", "/v1/members", SIGNUP),
                                       lambda_context)
    created = datetime.fromisoformat(json.loads(response["body"])["createdAt"])
    expected = datetime.now(ZoneInfo("America/New_York")).utcoffset()
    assert created.utcoffset() == expected
    assert abs(created - datetime.now(ZoneInfo("UTC"))) < timedelta(minutes=5)
