"""The metrics' arithmetic (domain/metrics.py)."""
from membership.domain.metrics import Flows, metrics_of, ratio_bps
from membership.domain.program import default_program
from membership.domain.settlement import Tally

PROGRAM = default_program()


def test_ratios_are_basis_points_rounded_down_and_null_without_a_denominator():
    assert ratio_bps(1, 3) == 3_333 and ratio_bps(0, 5) == 0 and ratio_bps(3, 0) is None


def test_penetration_counts_guests_only_in_the_whole():
    m = metrics_of("2026-11", Flows(member_orders=3, member_spend=900, guest_orders=1,
                                    guest_spend=100, new_members=2), None, PROGRAM, "none")
    assert m.penetration == {"memberOrders": 3, "allOrders": 4, "ordersBps": 7_500,
                             "memberSpend": 900, "allSpend": 1_000, "spendBps": 9_000}
    assert m.members == {"total": None, "new": 2} and m.points["liability"] is None


def test_stocks_come_from_the_settlement_tally():
    tally = Tally(processed=4, tiers_before={"V1": 3, "V2": 1}, tiers_after={"V1": 2, "V2": 2},
                  tiers_kept={"V1": 2, "V2": 1}, points_available=250, points_pending=50,
                  balance_principal=7_000, balance_bonus=300, paid_active=1, points_expired=9)
    m = metrics_of("2026-11", Flows(), tally, PROGRAM, "completed")
    assert m.members["total"] == 4
    assert m.tiers == {"distribution": {"V1": 2, "V2": 2},
                       "retentionBps": {"V1": 6_666, "V2": 10_000}}
    assert (m.points["liability"], m.points["cashValue"], m.points["expired"]) == (300, 300, 9)
    assert m.stored_value == {"principal": 7_000, "bonus": 300}
    assert m.paid_members == {"active": 1}
    assert m.conversion["bps"] is None and m.renewal["bps"] is None


def test_tallies_add_their_stocks():
    a = Tally(points_available=1, balance_bonus=2, paid_active=1, tiers_kept={"V1": 1})
    b = Tally(points_available=10, balance_bonus=20, paid_active=0, tiers_kept={"V1": 2})
    total = a + b
    assert (total.points_available, total.balance_bonus, total.paid_active,
            total.tiers_kept) == (11, 22, 1, {"V1": 3})
