"""Signup and profile rules, without storage."""
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from membership.domain.members import (
    Member,
    SignupRequest,
    mask_phone,
    member_id_for,
    new_member,
    normalize_phone,
    profile_of,
)
from membership.domain.program import default_program
from membership.errors import InvalidPhone

NOW = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)


@pytest.mark.parametrize("raw", ["13812345678", "+86 138 1234 5678", "+8613812345678",
                                 "0086-138-1234-5678"])
def test_chinese_mobile_numbers_normalise_to_e164(raw):
    assert normalize_phone(raw) == "+8613812345678"


def test_foreign_number_keeps_its_country_code():
    assert normalize_phone("+1 650 253 0000") == "+16502530000"


@pytest.mark.parametrize("raw", ["12345", "abc", "+86 1", "1381234567890123"])
def test_non_numbers_are_invalid_phones(raw):
    with pytest.raises(InvalidPhone):
        normalize_phone(raw)


def test_mask_keeps_prefix_and_last_four_digits():
    assert mask_phone("+8613812345678") == "+86138****5678"


def test_member_id_is_stable_per_subject_and_differs_between_subjects():
    assert member_id_for("a") == member_id_for("a")
    assert member_id_for("a") != member_id_for("b")
    assert member_id_for("a").startswith("M")


def test_signup_request_rejects_unknown_fields():
    with pytest.raises(ValidationError):
        SignupRequest.model_validate({"phone": "13812345678", "nickname": "n",
                                      "channel": "app", "memberId": "x"})


def test_nickname_is_trimmed():
    req = SignupRequest.model_validate({"phone": "138", "nickname": "  Lin ", "channel": "app"})
    assert req.nickname == "Lin"


def _member(**changes) -> Member:
    program = default_program()
    req = SignupRequest(phone="13812345678", nickname="Lin", channel="app")
    return new_member(req, "sub", "+8613812345678", program, NOW).model_copy(update=changes)


def test_new_member_starts_at_the_first_tier():
    assert _member().tier_id == "V1"


def test_profile_counts_growth_of_the_last_twelve_months_only():
    member = _member(growth_months={"2025-11": 500, "2025-12": 300, "2026-11": 200})
    profile = profile_of(member, default_program(), NOW)
    assert profile.growth.rolling_12_months == 500  # 2025-11 fell out of the window
    assert profile.next_tier.growth_needed == 500


def test_top_tier_has_no_next_tier():
    profile = profile_of(_member(tier_id="V4"), default_program(), NOW)
    assert profile.next_tier is None


def test_benefits_follow_the_tier():
    profile = profile_of(_member(tier_id="V3"), default_program(), NOW)
    assert {b.code for b in profile.benefits} == {"birthday_gift", "free_shipping"}


def test_stored_value_members_get_their_benefit():
    member = _member(topup_total=100_000)
    profile = profile_of(member, default_program(), NOW)
    assert profile.stored_value_member
    assert "stored_value_price" in {b.code for b in profile.benefits}


def test_profile_times_carry_the_program_offset():
    profile = profile_of(_member(), default_program(), NOW)
    assert profile.created_at == "2026-11-22T12:00:00+08:00"
