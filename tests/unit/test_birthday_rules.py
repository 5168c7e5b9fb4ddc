"""The birthday gift (domain/birthdays.py) as the monthly settlement gives it."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from membership.domain import birthdays, calendar
from membership.domain import settlement as rules
from membership.domain.ledger import LedgerState, PostingBuilder
from membership.domain.members import Member
from membership.domain.program import GiftPack, default_program

SHANGHAI = ZoneInfo("Asia/Shanghai")
PROGRAM = default_program()
V2_GROWTH = {"2025-01": 1_500}  # inside the window of every period below, until 2026-01


def member(tier: str = "V2", birthday: str | None = "1990-03-15", **fields) -> Member:
    created = datetime(2023, 1, 1, tzinfo=SHANGHAI)
    fields.setdefault("growth_months", dict(V2_GROWTH))
    return Member(member_id="Mabcdefghij", subject="s", phone="+8613800000000", nickname="n",
                  channel="app", created_at=created, updated_at=created, tier_id=tier,
                  tier_since=created, birthday=birthday, **fields)


def run_at(period: str) -> datetime:
    """Five minutes into the month after `period`, when its settlement runs."""
    return calendar.month_start(calendar.shift_month(period, 1), PROGRAM.time_zone
                                ) + timedelta(minutes=5)


def settle(m: Member, period: str, program=PROGRAM):
    builder = PostingBuilder(LedgerState(member=m), program,
                             source_key=rules.source_key(period, m.member_id),
                             source_type="settlement", reason="settlement", actor="system",
                             now=run_at(period))
    result = rules.apply(builder, program, period)
    return result, builder.build()


def decide(m: Member, period: str, program=PROGRAM) -> rules.Decision:
    return rules.decide(rules.snapshot_of(m), program, period)


def test_the_settlement_run_in_the_birthday_month_gives_the_gift():
    assert decide(member(), "2025-02").birthday_gift


def test_the_run_of_the_month_before_the_birthday_month_does_not():
    assert not decide(member(), "2025-01").birthday_gift


def test_the_run_after_the_birthday_month_does_not():
    assert not decide(member(), "2025-03").birthday_gift


def test_a_member_without_a_birthday_gets_none():
    assert not decide(member(birthday=None), "2025-02").birthday_gift


def test_a_tier_without_the_benefit_gets_none():
    assert not decide(member(tier="V1", growth_months={}), "2025-02").birthday_gift


@pytest.mark.parametrize("tier", ["V2", "V3", "V4"])
def test_every_tier_listing_the_benefit_gets_it(tier):
    growth = {"2025-01": PROGRAM.tier(tier).threshold}
    assert decide(member(tier=tier, growth_months=growth), "2025-02").birthday_gift


def test_the_tier_after_this_settlement_counts_an_upgrade_into_a_gifted_tier():
    m = member(tier="V1", growth_months={"2025-01": 1_000})
    decision = decide(m, "2025-02")
    assert decision.tier_after == "V2" and decision.birthday_gift


def test_the_tier_after_this_settlement_counts_a_downgrade_out_of_one():
    decision = decide(member(tier="V2", growth_months={}), "2025-02")
    assert decision.tier_after == "V1" and not decision.birthday_gift


def test_a_gift_given_this_year_is_not_given_again():
    assert not decide(member(birthday_gift_year=2025), "2025-02").birthday_gift


def test_a_gift_given_last_year_does_not_stop_this_years():
    assert decide(member(birthday_gift_year=2024), "2025-02").birthday_gift


def test_a_program_with_an_empty_birthday_pack_gives_nothing():
    program = PROGRAM.model_copy(update={"birthday_gift": GiftPack()})
    assert not decide(member(), "2025-02", program).birthday_gift


def test_a_birthday_gift_alone_is_a_change_worth_a_posting():
    decision = decide(member(), "2025-02")
    assert decision.tier_after == decision.tier_before and decision.changes


def test_the_gift_credits_its_points_issues_its_coupons_and_records_the_year():
    result, posting = settle(member(), "2025-02")
    assert result["birthdayGiftPoints"] == PROGRAM.birthday_gift.points == 200
    assert posting.member.points_available == 200
    assert posting.member.birthday_gift_year == 2025
    assert [(c.template_id, c.quantity, c.source) for c in posting.coupon_issues] == [
        ("BIRTHDAY-20OFF100", 1, "birthday")]
    lot = next(c.after for c in posting.lots
               if c.after is not None and c.after.lot_id == birthdays.lot_id(2025))
    # The normal expiry: the end of the next year on the program's clock.
    assert lot.expires_at == calendar.end_of_next_year(run_at("2025-02"), PROGRAM.time_zone)


def test_the_gift_pays_the_points_debt_first():
    _, posting = settle(member(points_debt=150), "2025-02")
    assert (posting.member.points_debt, posting.member.points_available) == (0, 50)


def test_the_gift_of_an_upgrade_month_comes_with_the_upgrade_gift():
    result, posting = settle(member(tier="V1", growth_months={"2025-01": 1_000}), "2025-02")
    assert result["direction"] == "upgrade" and result["birthdayGiftPoints"] == 200
    assert posting.member.points_available == 200 + PROGRAM.tier("V2").upgrade_gift.points


def test_settling_the_same_period_again_gives_nothing_more():
    _, posting = settle(member(), "2025-02")
    with pytest.raises(rules.NothingToSettle):
        settle(posting.member, "2025-02")


def test_the_report_counts_the_members_given_the_gift():
    page = rules.TallyBuilder()
    page.settled(settle(member(), "2025-02")[0])
    page.settled(settle(member(birthday="1990-07-01", tier="V2",
                               growth_months={}), "2025-02")[0])  # a downgrade alone
    report = rules.report_of("2025-02", page.tally(), status="completed", segments=1,
                             segments_done=1, started_at=run_at("2025-02"),
                             completed_at=run_at("2025-02"), tz=PROGRAM.time_zone)
    assert report.birthday_gifts == 1


@given(birth_month=st.integers(1, 12), day=st.sampled_from([1, 15, 28, 29, 31]),
       start=st.sampled_from(["2024-01", "2024-06", "2024-12"]))
def test_a_member_settled_every_month_gets_exactly_one_gift_a_year_in_the_birthday_month(
        birth_month, day, start):
    day = min(day, 28 if birth_month == 2 else 30 if birth_month in (4, 6, 9, 11) else 31)
    m = member(birthday=f"1992-{birth_month:02d}-{day:02d}",
               growth_months={calendar.shift_month(start, i): 1_000 for i in range(30)})
    given_in: list[str] = []
    period = start
    for _ in range(26):
        try:
            result, posting = settle(m, period)
        except rules.NothingToSettle:
            pass
        else:
            m = posting.member
            if "birthdayGiftPoints" in result:
                given_in.append(birthdays.month_after(period))
        period = calendar.shift_month(period, 1)
    years = [month[:4] for month in given_in]
    assert len(years) == len(set(years)), given_in
    assert all(int(month[5:]) == birth_month for month in given_in), given_in
    # Every birthday month the runs covered gave it: the member held V2 throughout.
    covered = {calendar.shift_month(start, i + 1) for i in range(26)}
    assert set(given_in) == {mo for mo in covered if int(mo[5:]) == birth_month}
