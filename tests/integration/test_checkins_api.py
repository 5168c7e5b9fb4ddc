"""Check-ins, make-ups and the calendar through the real handler and services, against
DynamoDB Local. Days are controlled by the services' `now` (or by patching `_now` when the
test goes through the handler)."""
import json
import threading
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from membership.domain.checkins import (
    AlreadyCheckedIn,
    CheckinLog,
    CheckinRequest,
    MakeupNotAllowed,
    MonthOutOfRange,
    plan_checkin,
)
from membership.domain.ledger import PostingBuilder
from membership.domain.members import SignupRequest, member_id_for
from membership.domain.program import default_program
from membership.handlers import checkins as checkins_handler
from membership.handlers import program as program_handler
from membership.services import checkins
from membership.services import members as member_service
from membership.services.ledger import reconcile_member
from membership.storage import ledger as store
from membership.storage.program import save_program

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
SUB = "checker"


def at(tz, *parts) -> datetime:
    return datetime(*parts, tzinfo=tz)


def join(now: datetime, sub: str = SUB, phone: str = "13812345678") -> str:
    member_service.signup(sub, SignupRequest(phone=phone, nickname="C", channel="app"),
                          now=now)
    return member_id_for(sub)


def check_in(now: datetime, day: str | None = None, sub: str = SUB) -> dict:
    return checkins.check_in(sub, CheckinRequest(date=day), now=now)


def state(member_id):
    return store.read_live_range(member_id)


def points(member_id) -> int:
    return state(member_id).member.points_available


def entries(member_id):
    return store.all_entries(member_id)


def call(event, ctx):
    response = checkins_handler.handler(event, ctx)
    return response["statusCode"], json.loads(response["body"] or "null")


def use_program(**changes):
    save_program(default_program().model_copy(update=changes))


def daily(first: datetime, days: int) -> list[dict]:
    return [check_in(first + timedelta(days=i)) for i in range(days)]


# ---- today's check-in -------------------------------------------------------------------

def test_check_in_credits_points_and_growth_and_answers_the_day(table, apigw_event,
                                                                lambda_context):
    member_id = join(datetime.now(UTC) - timedelta(days=1))
    status, body = call(apigw_event("POST", "/v1/members/me/checkins", sub=SUB),
                        lambda_context)
    today = datetime.now(SHANGHAI).date().isoformat()
    assert status == 201
    assert (body["date"], body["points"], body["growth"], body["bonus"], body["streak"],
            body["makeUp"], body["cost"]) == (today, 5, 5, 0, 1, False, 0)
    member = state(member_id).member
    assert member.points_available == 105
    assert sum(member.growth_months.values()) == 5
    assert reconcile_member(member_id) == []


def test_an_empty_json_body_is_todays_check_in(table, apigw_event, lambda_context):
    join(datetime.now(UTC) - timedelta(days=1))
    status, body = call(apigw_event("POST", "/v1/members/me/checkins", {}, sub=SUB),
                        lambda_context)
    assert status == 201 and body["makeUp"] is False


def test_the_same_day_again_is_409_and_writes_nothing(table, apigw_event, lambda_context):
    member_id = join(datetime.now(UTC) - timedelta(days=1))
    _, first = call(apigw_event("POST", "/v1/members/me/checkins", sub=SUB), lambda_context)
    before = (state(member_id), entries(member_id))
    status, body = call(apigw_event("POST", "/v1/members/me/checkins", sub=SUB),
                        lambda_context)
    assert status == 409
    assert body["code"] == "already_checked_in"
    assert body["details"]["first"] == first
    assert (state(member_id), entries(member_id)) == before


def test_ten_concurrent_check_ins_make_one_201(table, apigw_event, lambda_context):
    member_id = join(datetime.now(UTC) - timedelta(days=1))
    statuses: list[int] = []
    barrier = threading.Barrier(10)

    def tap():
        barrier.wait()
        response = checkins_handler.handler(
            apigw_event("POST", "/v1/members/me/checkins", sub=SUB),
            lambda_context.next_invocation())
        statuses.append(response["statusCode"])

    threads = [threading.Thread(target=tap) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [201] + [409] * 9
    assert points(member_id) == 105
    assert [e.amount for e in entries(member_id) if e.source_type == "checkin"
            and e.asset == "points"] == [5]
    assert reconcile_member(member_id) == []


def test_check_in_before_signup_is_member_not_found(table, apigw_event, lambda_context):
    status, body = call(apigw_event("POST", "/v1/members/me/checkins", sub="nobody"),
                        lambda_context)
    assert (status, body["code"]) == (404, "member_not_found")


def test_a_body_that_is_not_a_check_in_is_refused(table, apigw_event, lambda_context):
    member_id = join(datetime.now(UTC) - timedelta(days=1))
    for body in ({"date": "2025-02-30"}, {"date": "yesterday"}, {"day": "2025-03-01"}, [],
                 {"date": 20250301}):
        status, answer = call(apigw_event("POST", "/v1/members/me/checkins", body, sub=SUB),
                              lambda_context)
        assert status == 422, (body, answer)
    assert points(member_id) == 100


def test_a_binary_body_that_is_not_utf8_is_400(table, apigw_event, lambda_context):
    member_id = join(datetime.now(UTC) - timedelta(days=1))
    status, body = call(apigw_event("POST", "/v1/members/me/checkins", b"\xff\xfe\x00",
                                    sub=SUB, headers={"content-type": "application/json"}),
                        lambda_context)
    assert (status, body["code"]) == (400, "malformed_body")
    assert points(member_id) == 100


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["date", "Date", "orderId", "x"]) | st.text(max_size=5), inner,
        max_size=3),
    max_leaves=8)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=JSON_VALUES)
@example(body="")
@example(body="0")
@example(body=[None, None])
def test_whatever_the_body_a_check_in_answers_4xx_or_201_never_500(table, apigw_event,
                                                                  lambda_context, body):
    join(datetime.now(UTC) - timedelta(days=40))  # the same subject again: a no-op
    # Serialised here: the event factory sends a str as raw text, and "" as no body at all.
    sent = json.dumps(body)
    status, answer = call(apigw_event("POST", "/v1/members/me/checkins", sent, sub=SUB,
                                      headers={"content-type": "application/json"}),
                          lambda_context)
    assert status in {201, 400, 409, 422}, (body, answer)
    if not isinstance(body, dict | None):
        assert status in {400, 422}, (body, answer)


# ---- the day boundary -------------------------------------------------------------------

def test_235959_and_000000_in_shanghai_are_two_days(table):
    member_id = join(at(SHANGHAI, 2025, 3, 1, 9))
    first = check_in(at(SHANGHAI, 2025, 3, 1, 23, 59, 59))
    second = check_in(at(SHANGHAI, 2025, 3, 2, 0, 0, 0))
    assert (first["date"], second["date"]) == ("2025-03-01", "2025-03-02")
    assert second["streak"] == 2
    assert points(member_id) == 110


def test_before_and_after_0800_in_shanghai_are_one_day_though_utc_dates_differ(table):
    join(at(SHANGHAI, 2025, 3, 1, 9))
    check_in(at(SHANGHAI, 2025, 3, 2, 7, 59, 59))  # 2025-03-01T23:59:59Z
    with pytest.raises(AlreadyCheckedIn):
        check_in(at(SHANGHAI, 2025, 3, 2, 8, 0, 0))  # 2025-03-02T00:00:00Z


def test_235959_and_000000_across_the_spring_forward_in_new_york_are_two_days(deployed_in):
    deployed_in("America/New_York")
    join(at(NEW_YORK, 2025, 3, 7, 9))
    first = check_in(at(NEW_YORK, 2025, 3, 8, 23, 59, 59))  # EST, UTC-5
    second = check_in(at(NEW_YORK, 2025, 3, 9, 0, 0, 0))  # the 23-hour day
    third = check_in(at(NEW_YORK, 2025, 3, 10, 0, 0, 0))  # EDT, UTC-4
    assert [a["date"] for a in (first, second, third)] == ["2025-03-08", "2025-03-09",
                                                           "2025-03-10"]
    assert third["streak"] == 3


def test_the_25_hour_day_in_new_york_is_still_one_day(deployed_in):
    deployed_in("America/New_York")
    join(at(NEW_YORK, 2025, 10, 30, 9))
    check_in(at(NEW_YORK, 2025, 11, 2, 0, 30))  # EDT, before the clocks go back
    with pytest.raises(AlreadyCheckedIn):
        check_in(at(NEW_YORK, 2025, 11, 2, 23, 59, 59))  # EST, 24.5 hours later
    assert check_in(at(NEW_YORK, 2025, 11, 3, 0, 0, 0))["streak"] == 2


# ---- streaks ----------------------------------------------------------------------------

def test_a_7_day_streak_pays_its_bonus_once_and_the_14th_day_again(table):
    member_id = join(at(SHANGHAI, 2025, 3, 1, 8))
    answers = daily(at(SHANGHAI, 2025, 3, 1, 12), 15)
    assert [a["bonus"] for a in answers] == [0] * 6 + [20] + [0] * 6 + [20] + [0]
    assert [a["streak"] for a in answers] == list(range(1, 16))
    assert points(member_id) == 100 + 15 * 5 + 2 * 20
    assert reconcile_member(member_id) == []


def test_a_missed_day_restarts_the_streak(table):
    join(at(SHANGHAI, 2025, 3, 1, 8))
    daily(at(SHANGHAI, 2025, 3, 1, 12), 6)
    after_gap = check_in(at(SHANGHAI, 2025, 3, 8, 12))
    assert (after_gap["streak"], after_gap["bonus"]) == (1, 0)


def test_a_month_of_daily_check_ins_adds_one_lot(table):
    member_id = join(at(SHANGHAI, 2025, 3, 1, 8))
    lots_before = len(store.all_lots(member_id))
    daily(at(SHANGHAI, 2025, 3, 1, 12), 31)
    lots = store.all_lots(member_id)
    assert len(lots) == lots_before + 1
    (activity,) = [lot for lot in lots if lot.lot_id.startswith("activity-")]
    assert activity.remaining == 31 * 5 + 4 * 20
    assert reconcile_member(member_id) == []


def test_check_ins_across_new_year_add_one_lot_per_expiry(table):
    member_id = join(at(SHANGHAI, 2025, 12, 20, 8))
    daily(at(SHANGHAI, 2025, 12, 25, 12), 14)
    activity = sorted(lot.lot_id for lot in store.all_lots(member_id)
                      if lot.lot_id.startswith("activity-"))
    assert activity == ["activity-2026-12-31", "activity-2027-12-31"]


def test_growth_from_a_check_in_upgrades_at_once(table):
    member_id = join(at(SHANGHAI, 2025, 3, 1, 8))

    def seed(builder: PostingBuilder):
        builder.credit_growth(995, month="2025-03")

    def build(s):
        b = PostingBuilder(s, default_program(), source_key="seed-growth", source_type="test",
                           reason="seed", actor="test", now=at(SHANGHAI, 2025, 3, 1, 9))
        seed(b)
        return b.build()

    store.post(member_id, "seed-growth", build)
    check_in(at(SHANGHAI, 2025, 3, 2, 12))
    member = state(member_id).member
    assert member.tier_id == "V2"
    assert member.points_available == 100 + 5 + 200  # the V2 upgrade gift
    assert reconcile_member(member_id) == []


# ---- make-ups ---------------------------------------------------------------------------

def test_a_make_up_that_closes_a_gap_joins_the_streak_and_pays_the_bonus_once(table):
    member_id = join(at(SHANGHAI, 2025, 3, 1, 8))
    for day in (1, 2, 3, 5, 6, 7):
        check_in(at(SHANGHAI, 2025, 3, day, 12))
    before = points(member_id)
    answer = check_in(at(SHANGHAI, 2025, 3, 7, 20), day="2025-03-04")
    assert (answer["makeUp"], answer["streak"], answer["bonus"], answer["cost"],
            answer["points"]) == (True, 7, 20, 20, 5)
    assert points(member_id) == before - 20 + 5 + 20
    day8 = check_in(at(SHANGHAI, 2025, 3, 8, 12))
    assert (day8["streak"], day8["bonus"]) == (8, 0)  # the 7-day bonus is not paid again
    assert reconcile_member(member_id) == []


def test_a_make_up_of_yesterday_extends_the_streak_before_todays_check_in(table):
    member_id = join(at(SHANGHAI, 2025, 3, 1, 8))
    for day in range(1, 6):
        check_in(at(SHANGHAI, 2025, 3, day, 12))
    made_up = check_in(at(SHANGHAI, 2025, 3, 7, 9), day="2025-03-06")
    assert (made_up["streak"], made_up["bonus"]) == (6, 0)
    today = check_in(at(SHANGHAI, 2025, 3, 7, 10))
    assert (today["streak"], today["bonus"]) == (7, 20)
    assert reconcile_member(member_id) == []


def test_the_make_up_cost_is_debited_in_the_same_posting(table):
    member_id = join(at(SHANGHAI, 2025, 3, 1, 8))
    check_in(at(SHANGHAI, 2025, 3, 3, 12), day="2025-03-02")
    made_up = [e for e in entries(member_id) if e.source_key.endswith(":2025-03-02")]
    assert sorted((e.asset, e.amount, e.reason) for e in made_up) == [
        ("growth", 5, "checkin"), ("points", -20, "makeup_cost"), ("points", 5, "checkin")]
    assert len({e.source_key for e in made_up}) == 1


def test_a_make_up_in_the_next_month_counts_for_the_month_of_the_missed_day(table):
    join(at(SHANGHAI, 2025, 3, 1, 8))
    check_in(at(SHANGHAI, 2025, 3, 31, 12), day="2025-03-29")
    check_in(at(SHANGHAI, 2025, 4, 1, 12), day="2025-03-30")
    with pytest.raises(MakeupNotAllowed) as refused:
        check_in(at(SHANGHAI, 2025, 4, 1, 12), day="2025-03-31")
    assert refused.value.details["reason"] == "monthly_limit"
    assert check_in(at(SHANGHAI, 2025, 4, 2, 12), day="2025-04-01")["makeUp"] is True


REFUSALS = [
    # (reason, join, now, date)
    ("future", (2025, 3, 1, 8), (2025, 3, 10, 12), "2025-03-11"),
    ("today", (2025, 3, 1, 8), (2025, 3, 10, 12), "2025-03-10"),
    ("too_old", (2025, 3, 1, 8), (2025, 3, 10, 12), "2025-03-06"),
    ("before_joined", (2025, 3, 9, 8), (2025, 3, 10, 12), "2025-03-08"),
]


@pytest.mark.parametrize(("reason", "joined", "now", "day"), REFUSALS,
                         ids=[r[0] for r in REFUSALS])
def test_a_refused_make_up_says_why_and_writes_nothing(table, reason, joined, now, day):
    member_id = join(at(SHANGHAI, *joined))
    before = (state(member_id), entries(member_id))
    with pytest.raises(MakeupNotAllowed) as refused:
        check_in(at(SHANGHAI, *now), day=day)
    assert refused.value.details["reason"] == reason
    assert (state(member_id), entries(member_id)) == before


def test_a_make_up_of_a_day_checked_in_is_refused_as_already_checked_in(table):
    member_id = join(at(SHANGHAI, 2025, 3, 1, 8))
    first = check_in(at(SHANGHAI, 2025, 3, 8, 12))
    before = (state(member_id), entries(member_id))
    with pytest.raises(MakeupNotAllowed) as refused:
        check_in(at(SHANGHAI, 2025, 3, 10, 12), day="2025-03-08")
    assert refused.value.details["reason"] == "already_checked_in"
    assert refused.value.details["first"] == first
    assert (state(member_id), entries(member_id)) == before


def test_a_third_make_up_in_a_month_is_refused_as_monthly_limit(table):
    member_id = join(at(SHANGHAI, 2025, 3, 1, 8))
    check_in(at(SHANGHAI, 2025, 3, 10, 12), day="2025-03-09")
    check_in(at(SHANGHAI, 2025, 3, 10, 12), day="2025-03-08")
    before = (state(member_id), entries(member_id))
    with pytest.raises(MakeupNotAllowed) as refused:
        check_in(at(SHANGHAI, 2025, 3, 10, 12), day="2025-03-07")
    assert refused.value.details["reason"] == "monthly_limit"
    assert (state(member_id), entries(member_id)) == before


def test_a_make_up_without_the_points_is_refused_as_not_enough_points(table):
    member_id = join(at(SHANGHAI, 2025, 3, 1, 8))
    use_program(checkin=default_program().checkin.model_copy(update={"make_up_cost": 101}))
    before = (state(member_id), entries(member_id))
    with pytest.raises(MakeupNotAllowed) as refused:
        check_in(at(SHANGHAI, 2025, 3, 10, 12), day="2025-03-09")
    assert refused.value.details["reason"] == "not_enough_points"
    assert (refused.value.details["cost"], refused.value.details["available"]) == (101, 100)
    assert (state(member_id), entries(member_id)) == before


def test_a_refused_make_up_through_the_handler_is_422_with_the_reason(table, apigw_event,
                                                                      lambda_context):
    join(datetime.now(UTC) - timedelta(days=30))
    tomorrow = (datetime.now(SHANGHAI) + timedelta(days=1)).date().isoformat()
    status, body = call(apigw_event("POST", "/v1/members/me/checkins", {"date": tomorrow},
                                    sub=SUB), lambda_context)
    assert (status, body["code"], body["details"]["reason"]) == (422, "makeup_not_allowed",
                                                                 "future")


def test_concurrent_make_ups_of_one_day_fill_it_once(table):
    member_id = join(at(SHANGHAI, 2025, 3, 1, 8))
    outcomes: list[str] = []
    barrier = threading.Barrier(5)

    def tap():
        barrier.wait()
        try:
            check_in(at(SHANGHAI, 2025, 3, 10, 12), day="2025-03-09")
            outcomes.append("ok")
        except MakeupNotAllowed as refused:
            outcomes.append(refused.details["reason"])

    threads = [threading.Thread(target=tap) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["already_checked_in"] * 4 + ["ok"]
    assert points(member_id) == 100 - 20 + 5
    assert reconcile_member(member_id) == []


# ---- the calendar -----------------------------------------------------------------------

def test_the_calendar_shows_the_days_make_ups_streak_and_next_bonus(table):
    join(at(SHANGHAI, 2025, 3, 1, 8))
    for day in (1, 2, 4, 5):
        check_in(at(SHANGHAI, 2025, 3, day, 12))
    check_in(at(SHANGHAI, 2025, 3, 5, 13), day="2025-03-03")
    view = checkins.calendar(SUB, "2025-03", now=at(SHANGHAI, 2025, 3, 5, 14)).model_dump(
        mode="json", by_alias=True)
    assert view["days"] == [{"date": f"2025-03-0{d}", "makeUp": d == 3} for d in range(1, 6)]
    assert (view["streak"], view["checkedInToday"], view["nextBonusIn"]) == (5, True, 2)
    assert view["makeUp"] == {"cost": 20, "perMonth": 2, "used": 1, "eligibleDates": []}
    assert (view["today"], view["timeZone"]) == ("2025-03-05", "Asia/Shanghai")


def test_the_calendar_before_todays_check_in_counts_the_streak_to_yesterday(table):
    join(at(SHANGHAI, 2025, 3, 1, 8))
    daily(at(SHANGHAI, 2025, 3, 1, 12), 6)
    view = checkins.calendar(SUB, None, now=at(SHANGHAI, 2025, 3, 7, 8))
    assert (view.month, view.streak, view.checked_in_today, view.next_bonus_in) == (
        "2025-03", 6, False, 1)


def test_the_calendar_lists_the_days_that_can_still_be_made_up(table):
    join(at(SHANGHAI, 2025, 3, 1, 8))
    check_in(at(SHANGHAI, 2025, 3, 9, 12))
    view = checkins.calendar(SUB, None, now=at(SHANGHAI, 2025, 3, 10, 8))
    assert view.make_up.eligible_dates == ["2025-03-07", "2025-03-08"]


def test_the_calendar_through_the_handler_is_200(table, apigw_event, lambda_context):
    join(datetime.now(UTC) - timedelta(days=1))
    call(apigw_event("POST", "/v1/members/me/checkins", sub=SUB), lambda_context)
    status, body = call(apigw_event("GET", "/v1/members/me/checkins", sub=SUB),
                        lambda_context)
    assert status == 200
    assert body["checkedInToday"] is True and body["streak"] == 1
    assert body["days"] == [{"date": datetime.now(SHANGHAI).date().isoformat(),
                             "makeUp": False}]


@pytest.mark.parametrize("month", ["2025-13", "2025-3", "march", "1999-01", "2999-01"])
def test_a_month_outside_the_calendar_is_422(table, apigw_event, lambda_context, month):
    join(datetime.now(UTC) - timedelta(days=1))
    status, body = call(apigw_event("GET", "/v1/members/me/checkins", sub=SUB,
                                    query={"month": month}), lambda_context)
    assert status == 422, body


def test_the_calendar_is_the_callers_own(table, apigw_event, lambda_context):
    join(datetime.now(UTC) - timedelta(days=1))
    join(datetime.now(UTC) - timedelta(days=1), sub="other", phone="13912345678")
    call(apigw_event("POST", "/v1/members/me/checkins", sub=SUB), lambda_context)
    _, body = call(apigw_event("GET", "/v1/members/me/checkins", sub="other"), lambda_context)
    assert body["days"] == [] and body["streak"] == 0


def test_a_year_long_streak_survives_the_months_the_member_item_drops(table):
    member_id = join(at(SHANGHAI, 2024, 1, 1, 8))
    # 375 days of check-ins planned by the pure rules, then stored as the member's log, so
    # that the test does not pay for 375 postings; the next check-ins go through storage.
    log, first = CheckinLog(), date(2024, 1, 1)
    for i in range(375):
        day = first + timedelta(days=i)
        log = plan_checkin(log, default_program(), today=day, joined=first,
                           spendable_points=0).log

    def build(s):
        b = PostingBuilder(s, default_program(), source_key="seed-log", source_type="test",
                           reason="seed", actor="test", now=at(SHANGHAI, 2025, 1, 9, 12))
        b.set(**log.member_fields())
        return b.build()

    store.post(member_id, "seed-log", build)
    assert check_in(at(SHANGHAI, 2025, 1, 10, 12))["streak"] == 376
    answer = check_in(at(SHANGHAI, 2025, 2, 1, 12))  # a gap: a new streak, a month dropped
    assert answer["streak"] == 1
    member = state(member_id).member
    assert sorted(member.checkin_months) == [f"2024-{m:02d}" for m in range(3, 13)] + [
        "2025-01", "2025-02"]
    assert (member.checkin_since, member.checkin_carry) == ("2024-03", 60)
    view = checkins.calendar(SUB, "2024-03", now=at(SHANGHAI, 2025, 2, 1, 13))
    assert len(view.days) == 31
    with pytest.raises(MonthOutOfRange):
        checkins.calendar(SUB, "2024-02", now=at(SHANGHAI, 2025, 2, 1, 13))


# ---- the program ------------------------------------------------------------------------

def test_the_program_lists_the_check_in_rules_and_tasks(table, apigw_event, lambda_context):
    response = program_handler.handler(apigw_event("GET", "/v1/program", sub=SUB),
                                       lambda_context)
    body = json.loads(response["body"])
    assert body["checkin"] == {"points": 5, "streakDays": 7, "streakBonus": 20,
                               "makeUpDays": 3, "makeUpCost": 20, "makeUpPerMonth": 2}
    assert body["growth"]["checkin"] == 5
    assert [(t["id"], t["points"], t["growth"], t["limit"], t["trigger"])
            for t in body["tasks"]] == [
        ("profile_completed", 50, 0, "once", "member"),
        ("review_posted", 10, 5, "per_order", "review.posted")]


@pytest.mark.parametrize("body", [[None, None], [{}], [None]])
def test_a_list_body_is_refused_and_checks_nothing_in(table, apigw_event, lambda_context, body):
    member_id = join(datetime.now(UTC) - timedelta(days=1))
    status, answer = call(apigw_event("POST", "/v1/members/me/checkins", body, sub=SUB),
                          lambda_context)
    assert (status, answer["code"]) == (422, "validation_failed")
    assert points(member_id) == 100
