"""Monthly settlement rules: periods and boundaries in Asia/Shanghai, tiers under each
downgrade policy, expiry, lapsed plans, idempotency and the report's arithmetic."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from membership.domain import calendar
from membership.domain import settlement as rules
from membership.domain.ledger import LedgerState, PostingBuilder
from membership.domain.members import Member, PaidPlanState
from membership.domain.program import default_program

SHANGHAI = ZoneInfo("Asia/Shanghai")
PROGRAM = default_program()
TIERS = PROGRAM.tiers
SCHEMAS = Path(__file__).resolve().parents[2] / "events" / "schemas"
RUN_AT = datetime(2025, 3, 1, 0, 5, tzinfo=SHANGHAI)


def local(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def program_with(policy: str):
    return PROGRAM.model_copy(update={"downgrade_policy": policy})


def member(tier: str = "V1", growth: dict | None = None, **fields) -> Member:
    created = local(2023, 1, 1)
    return Member(member_id="Mabcdefghij", subject="s", phone="+8613800000000", nickname="n",
                  channel="app", created_at=created, updated_at=created, tier_id=tier,
                  tier_since=created, growth_months=growth or {}, **fields)


def builder_for(m: Member, lots=(), now: datetime = RUN_AT, program=PROGRAM,
                period: str = "2025-02") -> PostingBuilder:
    return PostingBuilder(LedgerState(member=m, lots=tuple(lots)), program,
                          source_key=rules.source_key(period, m.member_id),
                          source_type="settlement", reason="settlement", actor="system",
                          now=now)


def with_growth_at(instant: datetime, amount: int, start: Member | None = None) -> Member:
    """A member whose growth was earned at `instant`, bucketed the way postings do it."""
    b = PostingBuilder(LedgerState(member=start or member()), PROGRAM, source_key="order-1",
                       source_type="order", reason="order", actor="system", now=instant)
    b.credit_growth(amount)
    return b.build().member


def with_lot(m: Member, earned: datetime, amount: int, expires_at: datetime | None = None):
    b = PostingBuilder(LedgerState(member=m), PROGRAM, source_key=f"earn-{earned.isoformat()}",
                       source_type="order", reason="order", actor="system", now=earned)
    lot = b.credit_points(amount, lot_id=f"lot-{earned:%Y%m%d}", expires_at=expires_at)
    return b.build().member, lot


def decide(m: Member, period: str, program=PROGRAM) -> rules.Decision:
    return rules.decide(rules.snapshot_of(m), program, period)


def validate(detail_type: str, detail: dict) -> None:
    schema = json.loads((SCHEMAS / f"{detail_type}.json").read_text())
    jsonschema.validate(detail, schema)


# ---- periods and month boundaries in the program's time zone --------------------------

def test_the_run_on_the_first_settles_the_month_that_just_ended():
    assert rules.period_before(local(2025, 3, 1, 0, 5), "Asia/Shanghai") == "2025-02"


def test_the_run_in_utc_evening_before_the_first_is_already_the_first_in_shanghai():
    # 2025-02-28T16:05Z is 00:05 on 1 March in Shanghai.
    assert rules.period_before(datetime(2025, 2, 28, 16, 5, tzinfo=UTC), "Asia/Shanghai") == "2025-02"


def test_the_run_on_new_years_day_settles_december_of_the_year_before():
    assert rules.period_before(local(2025, 1, 1, 0, 5), "Asia/Shanghai") == "2024-12"


def test_growth_at_235959_on_the_last_day_counts_for_the_month_that_ends():
    m = with_growth_at(local(2025, 1, 31, 23, 59, 59), 1_000)
    assert decide(m, "2025-01").tier_after == "V2"


def test_growth_at_midnight_on_the_first_counts_for_the_next_month_not_the_settled_one():
    m = with_growth_at(local(2025, 2, 1, 0, 0, 0), 1_000)
    assert decide(m, "2025-01").rolling_growth == 0
    assert decide(m, "2025-02").rolling_growth == 1_000


def test_february_of_a_leap_year_ends_on_the_29th():
    on_29th = with_growth_at(local(2024, 2, 29, 23, 59, 59), 1_000)
    on_1st = with_growth_at(local(2024, 3, 1, 0, 0, 0), 1_000)
    assert decide(on_29th, "2024-02").rolling_growth == 1_000
    assert decide(on_1st, "2024-02").rolling_growth == 0


def test_february_of_a_common_year_ends_on_the_28th():
    on_28th = with_growth_at(local(2025, 2, 28, 23, 59, 59), 1_000)
    on_1st = with_growth_at(local(2025, 3, 1, 0, 0, 0), 1_000)
    assert decide(on_28th, "2025-02").rolling_growth == 1_000
    assert decide(on_1st, "2025-02").rolling_growth == 0


def test_year_end_growth_on_31_december_counts_for_december():
    m = with_growth_at(local(2024, 12, 31, 23, 59, 59), 5_000)
    assert decide(m, "2024-12").tier_after == "V3"
    assert decide(with_growth_at(local(2025, 1, 1), 5_000), "2024-12").tier_after == "V1"


def test_rolling_window_is_the_twelve_months_ending_with_the_period():
    m = member(growth={"2024-02": 600, "2025-01": 400, "2024-01": 10_000})
    assert decide(m, "2025-01").rolling_growth == 1_000  # 2024-01 fell out of the window


def test_growth_leaves_the_window_after_twelve_months():
    m = member(tier="V2", growth={"2024-02": 1_000})
    assert decide(m, "2025-01").tier_after == "V2"
    assert decide(m, "2025-02").tier_after == "V1"


def test_a_period_is_a_month():
    with pytest.raises(rules.InvalidPeriod):
        rules.check_period("2025-13")
    with pytest.raises(rules.InvalidPeriod):
        rules.check_period("2025-1")


# ---- each threshold, up and down ------------------------------------------------------

@pytest.mark.parametrize("index", range(1, len(TIERS)))
def test_reaching_a_threshold_settles_into_that_tier(index):
    m = member(tier=TIERS[index - 1].id, growth={"2025-02": TIERS[index].threshold})
    assert decide(m, "2025-02").tier_after == TIERS[index].id


@pytest.mark.parametrize("index", range(1, len(TIERS)))
def test_one_below_a_threshold_does_not_reach_it(index):
    m = member(tier=TIERS[index - 1].id, growth={"2025-02": TIERS[index].threshold - 1})
    d = decide(m, "2025-02")
    assert d.tier_after == TIERS[index - 1].id and not d.changes


@pytest.mark.parametrize("index", range(1, len(TIERS)))
def test_falling_one_below_a_threshold_moves_down_one_tier(index):
    m = member(tier=TIERS[index].id, growth={"2025-02": TIERS[index].threshold - 1})
    assert decide(m, "2025-02").tier_after == TIERS[index - 1].id


@pytest.mark.parametrize("index", range(1, len(TIERS)))
def test_holding_exactly_the_threshold_keeps_the_tier_and_writes_nothing(index):
    m = member(tier=TIERS[index].id, growth={"2025-02": TIERS[index].threshold})
    assert not decide(m, "2025-02").changes


# ---- downgrade policies ----------------------------------------------------------------

@pytest.mark.parametrize("policy,expected", [("none", "V4"), ("one_down", "V3"),
                                             ("to_qualified", "V1")])
def test_a_diamond_without_growth_settles_by_policy(policy, expected):
    d = decide(member(tier="V4"), "2025-02", program_with(policy))
    assert d.tier_after == expected


@pytest.mark.parametrize("policy", ["none", "one_down", "to_qualified"])
def test_upgrades_do_not_depend_on_the_policy(policy):
    d = decide(member(tier="V1", growth={"2025-02": 20_000}), "2025-02", program_with(policy))
    assert d.tier_after == "V4"


def test_to_qualified_lands_on_the_qualified_tier_not_lower():
    d = decide(member(tier="V4", growth={"2025-01": 1_500}), "2025-02",
               program_with("to_qualified"))
    assert d.tier_after == "V2"


def test_one_down_steps_one_tier_per_period():
    m = member(tier="V4")
    tiers = []
    for period in ("2025-02", "2025-03", "2025-04", "2025-05"):
        b = builder_for(m, period=period, now=RUN_AT + timedelta(days=31 * len(tiers)))
        try:
            rules.apply(b, PROGRAM, period)
            m = b.build().member
        except rules.NothingToSettle:
            pass
        tiers.append(m.tier_id)
    assert tiers == ["V3", "V2", "V1", "V1"]


@given(tier=st.integers(0, len(TIERS) - 1), growth=st.integers(0, 40_000),
       policy=st.sampled_from(["none", "one_down", "to_qualified"]))
def test_settlement_never_goes_below_the_qualified_tier_nor_down_more_than_policy(
        tier, growth, policy):
    program = program_with(policy)
    d = decide(member(tier=TIERS[tier].id, growth={"2025-02": growth}), "2025-02", program)
    after = program.tier_index(d.tier_after)
    qualified = program.tier_index(program.qualified_tier(growth).id)
    assert after >= min(qualified, tier)
    if qualified > tier:
        assert after == qualified
    elif policy == "none":
        assert after == tier
    elif policy == "one_down":
        assert after == max(tier - 1, qualified)
    else:
        assert after == qualified


# ---- points expiry and lapsed plans ------------------------------------------------------

def test_lots_expiring_at_year_end_expire_in_the_december_settlement():
    m, lot = with_lot(member(), local(2023, 6, 1), 300)
    assert lot.expires_at == calendar.utc(local(2024, 12, 31, 23, 59, 59, 999_999))
    assert not decide(m, "2024-11").expire_points
    assert decide(m, "2024-12").expire_points


def test_a_lot_expiring_on_the_last_day_of_february_expires_in_the_february_settlement():
    m, _ = with_lot(member(), local(2025, 1, 5), 50,
                    expires_at=local(2025, 2, 28, 23, 59, 59))
    assert decide(m, "2025-02").expire_points
    assert not decide(m, "2025-01").expire_points


def test_a_lot_expiring_at_midnight_on_the_first_is_not_due_for_the_month_before():
    m, _ = with_lot(member(), local(2025, 1, 5), 50, expires_at=local(2025, 3, 1, 0, 0, 0))
    assert not decide(m, "2025-02").expire_points


def test_apply_expires_due_lots_and_emits_points_expired():
    m, lot = with_lot(member(), local(2023, 6, 1), 300)
    b = builder_for(m, lots=[lot], now=local(2025, 1, 1, 0, 5), period="2024-12")
    result = rules.apply(b, PROGRAM, "2024-12")
    posting = b.build()
    assert result["pointsExpired"] == 300
    assert posting.member.points_available == 0
    events = [e for e in posting.events if e.detail_type == "points.expired"]
    assert len(events) == 1 and events[0].detail["points"] == 300
    validate("points.expired", events[0].detail)


def test_a_plan_that_ended_within_the_period_lapses():
    plan = PaidPlanState(plan_id="PLUS", started_at=local(2024, 1, 29),
                         ends_at=local(2024, 2, 29, 23, 59, 59))
    m = member(paid_plan=plan)
    assert decide(m, "2024-02").lapse_plan
    assert not decide(m, "2024-01").lapse_plan
    b = builder_for(m, period="2024-02", now=local(2024, 3, 1, 0, 5))
    rules.apply(b, PROGRAM, "2024-02")
    assert b.build().member.paid_plan is None


# ---- what gets written, and idempotency ------------------------------------------------------

def test_an_unchanged_member_needs_no_write():
    m = member(tier="V2", growth={"2025-02": 1_200})
    assert not decide(m, "2025-02").changes
    with pytest.raises(rules.NothingToSettle):
        rules.apply(builder_for(m), PROGRAM, "2025-02")


def test_a_settled_member_is_not_settled_again_for_the_same_period():
    b = builder_for(member(tier="V4"))
    rules.apply(b, PROGRAM, "2025-02")
    after = b.build().member
    assert after.tier_id == "V3" and after.settled_period == "2025-02"
    again = decide(after, "2025-02")
    assert again.already_settled and not again.changes


def test_a_settlement_upgrade_credits_the_gift_of_every_gained_tier():
    b = builder_for(member(tier="V1", growth={"2025-02": 5_000}))
    result = rules.apply(b, PROGRAM, "2025-02")
    posting = b.build()
    assert result["direction"] == "upgrade"
    assert posting.member.points_available == 200 + 1_000


def test_a_settlement_downgrade_emits_tier_changed_with_the_period():
    b = builder_for(member(tier="V3", growth={"2025-02": 10}))
    rules.apply(b, PROGRAM, "2025-02")
    event = next(e for e in b.build().events if e.detail_type == "member.tier_changed")
    assert event.detail["reason"] == "settlement" and event.detail["period"] == "2025-02"
    assert event.detail["direction"] == "downgrade" and event.detail["toTier"] == "V2"


# ---- the report --------------------------------------------------------------------------

def test_tallies_add_up_counts_and_tiers():
    a, b = rules.TallyBuilder(), rules.TallyBuilder()
    a.unchanged("V1")
    a.settled({"tierBefore": "V3", "tierAfter": "V2", "direction": "downgrade",
               "pointsExpired": 40, "planLapsed": False})
    b.settled({"tierBefore": "V1", "tierAfter": "V2", "direction": "upgrade",
               "pointsExpired": 0, "planLapsed": True})
    b.failed()
    total = a.tally() + b.tally()
    assert (total.processed, total.changed, total.upgrades, total.downgrades) == (3, 2, 1, 1)
    assert (total.points_expired, total.plans_lapsed, total.failures) == (40, 1, 1)
    assert total.tiers_before == {"V1": 2, "V3": 1}
    assert total.tiers_after == {"V1": 1, "V2": 2}


def test_the_completed_event_matches_its_schema():
    tally = rules.Tally(processed=2, changed=1, downgrades=1, tiers_before={"V2": 1, "V1": 1},
                        tiers_after={"V1": 2})
    report = rules.report_of("2025-02", tally, status="completed", segments=4, segments_done=4,
                             started_at=RUN_AT, completed_at=RUN_AT + timedelta(seconds=90),
                             tz="Asia/Shanghai")
    assert report.duration_ms == 90_000
    validate("settlement.completed", rules.completed_event(report))
