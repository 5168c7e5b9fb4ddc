"""Upgrade gifts and the settlement's edges as pure rules (docs/money.md)."""
from datetime import UTC, datetime, timedelta

from test_settlement_rules import PROGRAM, RUN_AT, builder_for, local, member

from membership.domain import settlement as rules
from membership.domain.tiers import change_tier, gift_due


def test_a_tier_gift_is_due_again_only_twelve_months_after_it_was_paid():
    paid = {"V2": "2025-03"}
    assert gift_due({}, "V2", "2025-03")
    assert not gift_due(paid, "V2", "2025-03")
    assert not gift_due(paid, "V2", "2026-02")
    assert gift_due(paid, "V2", "2026-03")
    assert gift_due(paid, "V3", "2025-04")


def test_an_upgrade_within_twelve_months_of_the_last_gift_pays_no_gift_again():
    b = builder_for(member("V1", tier_gifts={"V2": "2024-06"}))
    change = change_tier(b, PROGRAM, PROGRAM.tier("V3"), reason="growth", rolling_growth=5_000)
    # V2's gift was paid in June 2024; V3's never: only V3's is paid now (March 2025).
    assert [g.tier_id for g in change.gifts] == ["V3"]
    assert b.build().member.tier_gifts == {"V2": "2024-06", "V3": "2025-03"}


def test_an_upgrade_gift_with_a_return_window_is_pending_until_then():
    b = builder_for(member("V1"))
    until = RUN_AT + timedelta(days=7)
    change = change_tier(b, PROGRAM, PROGRAM.tier("V2"), reason="growth", rolling_growth=1_000,
                         gift_pending_until=until)
    m = b.build().member
    assert (m.points_available, m.points_pending) == (0, 200)
    assert change.gifts[0].threshold == 1_000


def test_a_tier_changed_after_the_period_closed_is_not_downgraded_by_that_period():
    after_close = local(2025, 3, 1, 0, 3)  # an order at 00:03 upgraded the member
    snapshot = rules.snapshot_of(member("V2").model_copy(update={"tier_since": after_close}))
    decision = rules.decide(snapshot, PROGRAM, "2025-02")
    assert decision.tier_after == "V2" and not decision.changes


def test_a_tier_held_since_before_the_close_is_still_downgraded():
    snapshot = rules.snapshot_of(member("V2").model_copy(
        update={"tier_since": datetime(2025, 2, 1, tzinfo=UTC)}))
    assert rules.decide(snapshot, PROGRAM, "2025-02").tier_after == "V1"
