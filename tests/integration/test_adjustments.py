"""Manual adjustments by operators: one posting, idempotent by adjustmentId, never below zero."""
from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
from admin_support import OPERATOR, as_admin, call, grow, member, signup

from membership.domain import calendar
from membership.domain.program import default_program
from membership.handlers import admin_members, admin_program
from membership.services.ledger import reconcile_member
from membership.storage import ledger
from membership.storage.admin_members import audit_trail


def adjust(apigw_event, ctx, member_id, **body):
    payload = {"adjustmentId": "ADJ-1", "asset": "points", "amount": 500,
               "reasonCode": "goodwill", "note": "late delivery", **body}
    return call(admin_members, as_admin(
        apigw_event, "POST", f"/v1/admin/members/{member_id}/adjustments", payload), ctx)


@pytest.fixture
def member_id(table, apigw_event, lambda_context):
    return signup(apigw_event, lambda_context)


def entries(member_id, asset):
    return [e for e in ledger.all_entries(member_id) if e.asset == asset]


def test_positive_points_become_a_lot_with_the_normal_expiry(member_id, apigw_event,
                                                             lambda_context):
    status, body, raw = adjust(apigw_event, lambda_context, member_id)
    assert status == 201
    assert raw["headers"]["Idempotent-Replayed"] == "false"
    assert body["after"]["points"]["available"] == 600
    lot = next(lot for lot in ledger.all_lots(member_id) if lot.lot_id == "adjustment-ADJ-1")
    assert lot.remaining == 500
    assert lot.expires_at == calendar.end_of_next_year(datetime.now(UTC), "Asia/Shanghai")
    assert reconcile_member(member_id) == []


def test_the_entry_shows_the_reason_code_and_the_operator(member_id, apigw_event,
                                                          lambda_context):
    adjust(apigw_event, lambda_context, member_id, reasonCode="compensation")
    [entry] = [e for e in entries(member_id, "points") if e.source_type == "adjustment"]
    assert (entry.reason, entry.actor, entry.amount) == ("compensation", OPERATOR, 500)
    [audit] = audit_trail(member_id, 10)
    assert (audit.action, audit.actor, audit.reason) == ("adjustment", OPERATOR, "compensation")
    assert audit.details_dict() == {"adjustmentId": "ADJ-1", "asset": "points", "amount": 500,
                                    "note": "late delivery"}


def test_a_replayed_adjustment_answers_its_first_result_once(member_id, apigw_event,
                                                             lambda_context):
    first = adjust(apigw_event, lambda_context, member_id)
    again = adjust(apigw_event, lambda_context, member_id)
    assert again[0] == 200
    assert again[2]["headers"]["Idempotent-Replayed"] == "true"
    assert again[1] == first[1]
    assert member(member_id).points_available == 600
    assert len([e for e in entries(member_id, "points") if e.source_type == "adjustment"]) == 1


@pytest.mark.parametrize("other", [{"amount": 600}, {"asset": "growth"},
                                   {"reasonCode": "campaign"}, {"note": "another note"}])
def test_an_adjustment_id_reused_with_another_body_is_refused(member_id, apigw_event,
                                                              lambda_context, other):
    adjust(apigw_event, lambda_context, member_id)
    status, body, _ = adjust(apigw_event, lambda_context, member_id, **other)
    assert (status, body["code"]) == (409, "adjustment_id_reused")
    assert member(member_id).points_available == 600


def test_an_adjustment_id_reused_for_another_member_is_refused(member_id, apigw_event,
                                                               lambda_context):
    adjust(apigw_event, lambda_context, member_id)
    other = signup(apigw_event, lambda_context)
    status, body, _ = adjust(apigw_event, lambda_context, other)
    assert (status, body["code"]) == (409, "adjustment_id_reused")
    assert member(other).points_available == 100


def test_a_negative_adjustment_beyond_the_points_is_409_with_what_is_available(
        member_id, apigw_event, lambda_context):
    status, body, _ = adjust(apigw_event, lambda_context, member_id, amount=-101)
    assert (status, body["code"]) == (409, "insufficient_points")
    assert body["details"] == {"available": 100, "requested": 101}
    assert member(member_id).points_available == 100
    status, body, _ = adjust(apigw_event, lambda_context, member_id, adjustmentId="ADJ-2",
                             amount=-100)
    assert status == 201 and body["after"]["points"]["available"] == 0
    assert reconcile_member(member_id) == []


def test_a_replay_after_the_balance_moved_still_answers_the_first_result(
        member_id, apigw_event, lambda_context):
    first = adjust(apigw_event, lambda_context, member_id, amount=-100)
    assert first[0] == 201
    again = adjust(apigw_event, lambda_context, member_id, amount=-100)
    assert (again[0], again[1]) == (200, first[1])


def test_bonus_moves_and_never_goes_below_zero(member_id, apigw_event, lambda_context):
    status, body, _ = adjust(apigw_event, lambda_context, member_id, asset="balance_bonus",
                             amount=800)
    assert status == 201 and body["after"]["balance"] == {"principal": 0, "bonus": 800}
    status, body, _ = adjust(apigw_event, lambda_context, member_id, adjustmentId="ADJ-2",
                             asset="balance_bonus", amount=-900)
    assert (status, body["code"]) == (409, "insufficient_balance")
    assert body["details"]["available"] == 800
    status, body, _ = adjust(apigw_event, lambda_context, member_id, adjustmentId="ADJ-3",
                             asset="balance_bonus", amount=-300)
    assert body["after"]["balance"]["bonus"] == 500
    assert reconcile_member(member_id) == []


def test_principal_only_moves_with_money(member_id, apigw_event, lambda_context):
    status, body, _ = adjust(apigw_event, lambda_context, member_id, asset="balance_principal")
    assert (status, body["code"]) == (422, "validation_failed")
    status, body, _ = adjust(apigw_event, lambda_context, member_id, asset="balance")
    assert status == 422


def test_growth_lands_in_the_current_month_and_upgrades_at_once(member_id, apigw_event,
                                                                lambda_context):
    status, body, _ = adjust(apigw_event, lambda_context, member_id, asset="growth",
                             amount=1_200)
    assert status == 201 and body["after"]["tier"] == "V2"
    m = member(member_id)
    month = calendar.month_of(datetime.now(UTC), "Asia/Shanghai")
    assert m.growth_months == {month: 1_200}
    assert m.tier_id == "V2"
    assert m.points_available == 100 + 200  # V2's upgrade gift
    assert reconcile_member(member_id) == []


def test_negative_growth_takes_the_newest_months_and_not_beyond_the_rolling_year(
        member_id, apigw_event, lambda_context):
    now = datetime.now(UTC)
    month = calendar.month_of(now, "Asia/Shanghai")
    earlier = calendar.shift_month(month, -2)
    from membership.services.ledger import post_legs

    post_legs(member_id, "seed-growth", lambda b: (b.credit_growth(300, month=earlier),
                                                   b.credit_growth(200)),
              source_type="test", reason="test")
    status, body, _ = adjust(apigw_event, lambda_context, member_id, asset="growth",
                             amount=-501)
    assert (status, body["code"], body["details"]["available"]) == (
        409, "insufficient_growth", 500)
    status, body, _ = adjust(apigw_event, lambda_context, member_id, adjustmentId="ADJ-2",
                             asset="growth", amount=-350)
    assert status == 201
    assert member(member_id).growth_months == {earlier: 150}
    assert reconcile_member(member_id) == []


def test_negative_growth_never_downgrades_by_itself(member_id, apigw_event, lambda_context):
    grow(member_id, 1_000)
    adjust(apigw_event, lambda_context, member_id, asset="growth", amount=-1_000)
    assert member(member_id).tier_id == "V2"  # the monthly settlement decides, by policy


def test_the_reason_code_comes_from_the_programs_list(member_id, apigw_event, lambda_context):
    status, body, _ = adjust(apigw_event, lambda_context, member_id, reasonCode="birthday")
    assert (status, body["code"]) == (422, "unknown_reason_code")
    assert body["details"]["allowed"] == ["goodwill", "correction", "compensation", "campaign"]
    doc = copy.deepcopy(default_program().model_dump(mode="json", by_alias=True))
    doc["reasonCodes"] = [*doc["reasonCodes"], "birthday"]
    status, _, _ = call(admin_program, as_admin(apigw_event, "PUT", "/v1/admin/program", doc,
                                                headers={"If-Match": '"0"'}), lambda_context)
    assert status == 200
    assert adjust(apigw_event, lambda_context, member_id, reasonCode="birthday")[0] == 201


@pytest.mark.parametrize("body", [{"amount": 0}, {"amount": 1.5}, {"amount": "5"},
                                  {"adjustmentId": ""}, {"adjustmentId": "has space"},
                                  {"note": "x" * 501}, {"extra": 1}])
def test_bad_bodies_are_422_and_change_nothing(member_id, apigw_event, lambda_context, body):
    status, answer, _ = adjust(apigw_event, lambda_context, member_id, **body)
    assert (status, answer["code"]) == (422, "validation_failed")
    assert member(member_id).points_available == 100


def test_adjusting_an_unknown_member_is_404(table, apigw_event, lambda_context):
    status, body, _ = adjust(apigw_event, lambda_context, "M" + "c" * 24)
    assert (status, body["code"]) == (404, "member_not_found")


def test_a_frozen_member_can_still_be_credited(member_id, apigw_event, lambda_context):
    call(admin_members, as_admin(apigw_event, "PATCH", f"/v1/admin/members/{member_id}",
                                 {"status": "frozen", "reason": "fraud review"}),
         lambda_context)
    assert adjust(apigw_event, lambda_context, member_id)[0] == 201
