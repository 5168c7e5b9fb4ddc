"""Tag rules (domain/tags.py): the default program's four at their boundaries, manual tags."""
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from membership.domain.aggregates import OrderStats
from membership.domain.program import Program, default_program
from membership.domain.tag_rules import MAX_MANUAL_TAGS, TagMark
from membership.domain.tags import (
    InvalidTagName,
    MemberFacts,
    TagIsAutomatic,
    TooManyTags,
    add_manual,
    evaluate,
    remove_manual,
)

PROGRAM = default_program()
# Noon in Shanghai, so whole days back stay whole calendar days of the program's clock.
NOW = datetime(2026, 11, 20, 4, tzinfo=UTC)


def facts(joined_days=400, last_order_days=None, spend_12m=0, tags=None, **extra):
    stats = OrderStats()
    if last_order_days is not None:
        at = NOW - timedelta(days=last_order_days)
        stats = OrderStats(orders=1, net_spend=spend_12m, first_order_at=at, last_order_at=at,
                           order_months={"2026-11": 1}, spend_months={"2026-11": spend_12m})
    return MemberFacts(member_id="Mabcdefghij", created_at=NOW - timedelta(days=joined_days),
                       tier_id="V1", stats=stats, tags=tags or {}, **extra)


def tags_of(f):
    return set(evaluate(f, PROGRAM, NOW))


@pytest.mark.parametrize(("joined", "expected"), [(0, True), (30, True), (31, False)])
def test_new_member_is_who_joined_at_most_30_days_ago(joined, expected):
    assert ("new_member" in tags_of(facts(joined_days=joined))) is expected


def test_new_member_ends_with_the_first_order():
    assert "new_member" not in tags_of(facts(joined_days=3, last_order_days=1, spend_12m=100))


@pytest.mark.parametrize(("spend", "expected"), [(499_999, False), (500_000, True)])
def test_high_value_is_5000_yuan_in_12_months(spend, expected):
    assert ("high_value" in tags_of(facts(last_order_days=0, spend_12m=spend))) is expected


def test_high_value_counts_only_the_rolling_12_months():
    stats = OrderStats(orders=2, net_spend=900_000, last_order_at=NOW - timedelta(days=10),
                       first_order_at=NOW - timedelta(days=400),
                       spend_months={"2025-10": 600_000, "2026-11": 300_000})
    f = MemberFacts(member_id="Mabcdefghij", created_at=NOW - timedelta(days=500),
                    tier_id="V1", stats=stats)
    assert "high_value" not in tags_of(f)


@pytest.mark.parametrize(("days", "at_risk", "dormant"), [
    (89, False, False), (90, True, False), (179, True, False), (180, False, True),
])
def test_at_risk_then_dormant_as_the_last_order_ages(days, at_risk, dormant):
    got = tags_of(facts(last_order_days=days, spend_12m=100))
    assert ("at_risk" in got, "dormant" in got) == (at_risk, dormant)


@pytest.mark.parametrize(("joined", "expected"), [(179, False), (180, True)])
def test_dormant_without_any_order_after_180_days(joined, expected):
    assert ("dormant" in tags_of(facts(joined_days=joined))) is expected


def test_a_rule_tag_keeps_its_since_while_it_holds_and_goes_when_it_stops():
    since = NOW - timedelta(days=5)
    kept = evaluate(facts(joined_days=10, tags={"new_member": TagMark(source="rule",
                                                                       since=since)}),
                    PROGRAM, NOW)
    assert kept["new_member"].since == since
    gone = evaluate(facts(joined_days=40, tags={"new_member": TagMark(source="rule",
                                                                       since=since)}),
                    PROGRAM, NOW)
    assert "new_member" not in gone


def test_operator_tags_survive_evaluation():
    mark = TagMark(source="operator", since=NOW)
    assert evaluate(facts(tags={"milk_powder": mark}), PROGRAM, NOW)["milk_powder"] == mark


def test_a_tag_whose_rule_was_removed_goes_at_the_next_evaluation():
    program = Program.model_validate({**PROGRAM.model_dump(by_alias=True), "tagRules": []})
    f = facts(joined_days=1, tags={"new_member": TagMark(source="rule", since=NOW)})
    assert evaluate(f, program, NOW) == {}


@pytest.mark.parametrize("rule", [
    {"tag": "paid", "anyOf": [{"paidPlan": True}]},
    {"tag": "svm", "anyOf": [{"storedValueMember": True}]},
    {"tag": "gold", "anyOf": [{"tiers": ["V3", "V4"]}]},
])
def test_conditions_over_plan_stored_value_and_tier(rule):
    program = Program.model_validate({**PROGRAM.model_dump(by_alias=True), "tagRules": [rule]})
    plain = facts()
    rich = facts(paid_plan_ends_at=NOW + timedelta(days=3), topup_total=100_000)
    rich = rich.model_copy(update={"tier_id": "V3"})
    assert evaluate(plain, program, NOW) == {}
    assert rule["tag"] in evaluate(rich, program, NOW)


def test_top_categories_condition_reads_the_three_largest():
    program = Program.model_validate({**PROGRAM.model_dump(by_alias=True), "tagRules": [
        {"tag": "milk_fan", "anyOf": [{"topCategories": ["milk"]}]}]})
    stats = OrderStats(orders=1, categories={"milk": 10, "a": 50, "b": 40, "c": 30},
                       last_order_at=NOW)
    f = facts().model_copy(update={"stats": stats})
    assert evaluate(f, program, NOW) == {}
    stats = stats.model_copy(update={"categories": {"milk": 35, "a": 50, "b": 40, "c": 30}})
    assert "milk_fan" in evaluate(f.model_copy(update={"stats": stats}), program, NOW)


def test_a_program_refuses_duplicate_or_empty_rules():
    base = PROGRAM.model_dump(by_alias=True)
    with pytest.raises(ValidationError):
        Program.model_validate({**base, "tagRules": [{"tag": "x", "anyOf": [{}]}]})
    rule = {"tag": "x", "anyOf": [{"paidPlan": True}]}
    with pytest.raises(ValidationError):
        Program.model_validate({**base, "tagRules": [rule, rule]})


@pytest.mark.parametrize("bad", ["", "A", "1abc", "a" * 41, "milk powder", "x/y", "é"])
def test_manual_tag_names_are_validated(bad):
    with pytest.raises(InvalidTagName):
        add_manual({}, bad, PROGRAM, NOW)


def test_a_rule_tag_cannot_be_set_or_removed_by_hand():
    with pytest.raises(TagIsAutomatic):
        add_manual({}, "high_value", PROGRAM, NOW)
    with pytest.raises(TagIsAutomatic):
        remove_manual({"dormant": TagMark(source="rule", since=NOW)}, "dormant", PROGRAM)


def test_at_most_50_manual_tags():
    tags = {}
    for i in range(MAX_MANUAL_TAGS):
        tags = add_manual(tags, f"t{i}", PROGRAM, NOW)
    assert add_manual(tags, "t0", PROGRAM, NOW) == tags  # again: no change, no refusal
    with pytest.raises(TooManyTags):
        add_manual(tags, "one_more", PROGRAM, NOW)


def test_removing_a_tag_not_carried_changes_nothing():
    assert remove_manual({}, "milk", PROGRAM) == {}
