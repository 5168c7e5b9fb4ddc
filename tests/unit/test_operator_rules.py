"""Operators' rules, pure: program validation paths, If-Match, refusals, adjustments,
grants' chunks and progress, the freeze check."""
from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from membership.domain import calendar
from membership.domain import grants as grant_rules
from membership.domain.adjustments import (
    AdjustmentRequest,
    UnknownReasonCode,
    apply_adjustment,
    check_reason_code,
    request_hash,
)
from membership.domain.ledger import (
    InsufficientBalance,
    InsufficientGrowth,
    InsufficientPoints,
    LedgerState,
    PostingBuilder,
    reconcile,
)
from membership.domain.member_status import MemberFrozen, ensure_may_spend
from membership.domain.members import Member
from membership.domain.program import default_program
from membership.domain.program_admin import (
    ProgramDocument,
    changed_sections,
    fixed_field_refusals,
    parse_if_match,
    removed,
    tiers_of,
)
from membership.domain.tiers import upgrade_if_qualified
from membership.errors import PreconditionFailed, PreconditionRequired

NOW = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
TZ = "Asia/Shanghai"
PROGRAM = default_program()


def doc() -> dict:
    return copy.deepcopy(PROGRAM.model_dump(mode="json", by_alias=True))


def errors_of(document: dict) -> dict[tuple, str]:
    with pytest.raises(ValidationError) as failed:
        ProgramDocument.model_validate(document)
    return {tuple(str(p) for p in e["loc"]): e["type"] for e in failed.value.errors()}


# ---- program documents ------------------------------------------------------------------

def test_the_default_program_is_a_valid_document():
    assert ProgramDocument.model_validate(doc()).as_program() == PROGRAM


@given(st.lists(st.integers(0, 50_000), min_size=4, max_size=4))
def test_each_threshold_that_does_not_ascend_is_reported_at_its_path(thresholds):
    document = doc()
    thresholds = [0, *thresholds[1:]]
    for tier, value in zip(document["tiers"], thresholds):
        tier["threshold"] = value
    bad = {i for i in range(1, 4) if thresholds[i] <= thresholds[i - 1]}
    if not bad:
        assert ProgramDocument.model_validate(document)
        return
    found = errors_of(document)
    assert {int(loc[1]) for loc, kind in found.items()
            if kind == "thresholds_not_ascending"} == bad
    assert all(loc[2] == "threshold" for loc, kind in found.items()
               if kind == "thresholds_not_ascending")


def test_field_errors_and_cross_field_errors_are_listed_together():
    document = doc()
    document["tiers"][1]["discountBps"] = 10_001
    document["tiers"][3]["threshold"] = 10
    document["tiers"][2]["id"] = "V2"
    found = errors_of(document)
    assert found[("tiers", "1", "discountBps")] == "less_than_equal"
    assert found[("tiers", "3", "threshold")] == "thresholds_not_ascending"
    assert found[("tiers", "2", "id")] == "duplicate_id"


def test_the_first_tier_starts_at_zero():
    document = doc()
    document["tiers"][0]["threshold"] = 5
    assert errors_of(document)[("tiers", "0", "threshold")] == "first_tier_not_zero"


@pytest.mark.parametrize("change, path, kind", [
    (lambda d: d["topup"].update(minAmount=600_000), ("topup", "minAmount"), "range_inverted"),
    (lambda d: d["topup"].update(maxAmount=3_000_000), ("topup", "maxAmount"), "range_inverted"),
    (lambda d: d.update(reasonCodes=["a", "b", "a"]), ("reasonCodes", "2"), "duplicate_id"),
    (lambda d: d.update(reasonCodes=[]), ("reasonCodes",), "too_short"),
    (lambda d: d.update(reasonCodes=["Has Space"]), ("reasonCodes", "0"), "string_pattern_mismatch"),
    (lambda d: d["paidPlans"].append(copy.deepcopy(d["paidPlans"][0])), ("paidPlans", "1", "id"),
     "duplicate_id"),
    (lambda d: d.update(unknown=1), ("unknown",), "extra_forbidden"),
])
def test_cross_field_rules_report_their_paths(change, path, kind):
    document = doc()
    change(document)
    assert errors_of(document)[path] == kind


# ---- If-Match ---------------------------------------------------------------------------

@pytest.mark.parametrize("header, version", [('"3"', 3), ("3", 3), ('W/"12"', 12), (' "0" ', 0)])
def test_if_match_names_a_version(header, version):
    assert parse_if_match(header) == version


@pytest.mark.parametrize("header", [None, "", "  ", "*"])
def test_a_missing_or_blind_if_match_is_required(header):
    with pytest.raises(PreconditionRequired):
        parse_if_match(header)


@pytest.mark.parametrize("header", ['"abc"', '"-1"', '"1.5"', '"99999999999999"'])
def test_an_if_match_that_names_no_version_fails(header):
    with pytest.raises(PreconditionFailed):
        parse_if_match(header)


# ---- refusals ---------------------------------------------------------------------------

def test_removed_and_fixed_fields():
    fewer = PROGRAM.model_copy(update={"tiers": PROGRAM.tiers[:3]})
    assert [r.resource_id for r in removed(tiers_of(PROGRAM), tiers_of(fewer))] == ["V4"]
    moved = PROGRAM.model_copy(update={"time_zone": "Europe/Paris", "id": "x"})
    assert [r.code for r in fixed_field_refusals(PROGRAM, moved)] == [
        "time_zone_locked", "program_id_locked"]
    assert fixed_field_refusals(PROGRAM, fewer) == []
    assert changed_sections(PROGRAM, fewer) == ["tiers"]


# ---- adjustments ------------------------------------------------------------------------

def member(**changes) -> Member:
    base = {"member_id": "M1", "subject": "s", "phone": "+8613812345678", "nickname": "n",
            "channel": "app", "created_at": NOW, "updated_at": NOW, "tier_id": "V1",
            "tier_since": NOW}
    return Member(**{**base, **changes})


def adjustment(asset="points", amount=100, **extra) -> AdjustmentRequest:
    return AdjustmentRequest(adjustmentId=extra.pop("adjustment_id", "A1"), asset=asset,
                             amount=amount, reasonCode="goodwill", **extra)


class Books:
    """Applies postings in memory as storage would: member, lots, entries."""

    def __init__(self):
        self.state = LedgerState(member=member())
        self.entries = []

    def adjust(self, request: AdjustmentRequest) -> dict:
        builder = PostingBuilder(self.state, PROGRAM, source_key=f"adjustment:{request.adjustment_id}",
                                 source_type="adjustment", reason=request.reason_code,
                                 actor="ops", now=NOW)
        result = apply_adjustment(builder, PROGRAM, request, upgrade=upgrade_if_qualified)
        posting = builder.build()
        lots = {lot.lot_id: lot for lot in self.state.lots}
        for change in posting.lots:
            if change.after is None:
                lots.pop(change.before.lot_id)
            else:
                lots[change.after.lot_id] = change.after
        self.state = LedgerState(member=posting.member, lots=tuple(lots.values()))
        self.entries += posting.entries
        return result


@given(st.lists(st.tuples(st.sampled_from(["points", "growth", "balance_bonus"]),
                          st.integers(-3_000, 3_000).filter(bool)), max_size=25))
def test_adjustments_never_go_below_zero_and_always_reconcile(moves):
    books = Books()
    expected = {"points": 0, "growth": 0, "balance_bonus": 0}
    for n, (asset, amount) in enumerate(moves):
        before = books.state
        try:
            books.adjust(adjustment(asset, amount, adjustment_id=f"A{n}"))
        except (InsufficientPoints, InsufficientGrowth, InsufficientBalance) as refused:
            assert books.state == before
            gifts = gift_points(books) if asset == "points" else 0
            assert refused.details["available"] == expected[asset] + gifts
            assert refused.details["available"] < -amount
            continue
        expected[asset] += amount
    m = books.state.member
    assert m.balance_bonus == expected["balance_bonus"] >= 0
    assert sum(m.growth_months.values()) == expected["growth"] >= 0
    assert m.points_available == expected["points"] + gift_points(books) >= 0
    assert reconcile(m, books.entries, list(books.state.lots)) == []


def gift_points(books: Books) -> int:
    """Upgrade gifts credited on the way (growth adjustments upgrade at once)."""
    return sum(e.amount for e in books.entries if e.reason == "upgrade_gift")


def test_a_points_credit_is_a_lot_with_the_normal_expiry():
    books = Books()
    books.adjust(adjustment("points", 250))
    [lot] = books.state.lots
    assert (lot.lot_id, lot.remaining) == ("adjustment-A1", 250)
    assert lot.expires_at == calendar.end_of_next_year(NOW, TZ)


def test_growth_upgrades_at_once_and_its_entry_names_reason_and_operator():
    books = Books()
    result = books.adjust(adjustment("growth", 5_000))
    assert result["after"]["tier"] == "V3"
    growth = [e for e in books.entries if e.asset == "growth"]
    assert [(e.bucket, e.reason, e.actor) for e in growth] == [
        (calendar.month_of(NOW, TZ), "goodwill", "ops")]


def test_the_reason_code_must_be_the_programs():
    check_reason_code(PROGRAM, "campaign")
    with pytest.raises(UnknownReasonCode):
        check_reason_code(PROGRAM, "birthday")


def test_the_request_hash_covers_member_and_body():
    a = adjustment()
    assert request_hash("M1", a) == request_hash("M1", adjustment())
    assert request_hash("M1", a) != request_hash("M2", a)
    assert request_hash("M1", a) != request_hash("M1", adjustment(note="x"))


@pytest.mark.parametrize("fields", [{"amount": 0}, {"asset": "balance_principal"},
                                    {"amount": True}, {"amount": 100_000_001}])
def test_invalid_adjustments_do_not_parse(fields):
    body = {"adjustmentId": "A", "asset": "points", "amount": 1, "reasonCode": "goodwill",
            **fields}
    with pytest.raises(ValidationError):
        AdjustmentRequest.model_validate(body)


# ---- freeze -----------------------------------------------------------------------------

def test_only_a_frozen_member_is_refused_spending():
    ensure_may_spend(member(), "hold")
    with pytest.raises(MemberFrozen) as refused:
        ensure_may_spend(member(status="frozen"), "topup")
    assert refused.value.details == {"memberId": "M1", "action": "topup"}


# ---- grants -----------------------------------------------------------------------------

@given(st.lists(st.sampled_from([f"M{n}" for n in range(40)]), min_size=1, max_size=300),
       st.integers(1, 50))
def test_chunks_cover_each_member_exactly_once_in_order(ids, size):
    unique = grant_rules.unique_members(tuple(ids))
    assert unique == list(dict.fromkeys(ids))
    parts = grant_rules.chunks(unique, size)
    assert [m for part in parts for m in part] == unique
    assert all(1 <= len(p) <= size for p in parts)


def test_progress_sums_chunks_and_shows_the_first_failures():
    fail = [grant_rules.Failure(memberId=f"M{i}", code="member_not_found", message="x")
            for i in range(30)]
    reported = [grant_rules.ChunkProgress(chunk=1, total=100, done=85, failed=15,
                                          failures=tuple(fail[15:25])),
                grant_rules.ChunkProgress(chunk=0, total=100, done=85, failed=15,
                                          failures=tuple(fail[:10]))]
    done, failed, failures = grant_rules.summed(reported)
    assert (done, failed) == (170, 30)
    assert [f.member_id for f in failures] == [f"M{i}" for i in [*range(10), *range(15, 25)]]
    assert grant_rules.status_of(3, []) == "queued"
    assert grant_rules.status_of(3, reported) == "running"
    assert grant_rules.status_of(2, reported) == "completed"


@pytest.mark.parametrize("body", [
    {"points": 5}, {"memberIds": ["M1"]}, {"points": 5, "templateId": "T", "memberIds": ["M1"]},
    {"points": 5, "memberIds": ["M1"], "tag": "vip"}])
def test_a_grant_names_one_gift_and_one_audience(body):
    with pytest.raises(ValidationError):
        grant_rules.GrantRequest.model_validate({"grantId": "G", "reasonCode": "campaign",
                                                 **body})
