"""Tags a member carries: the program's automatic rules and operators' manual tags.

A member's tags live on the member item (`Member.tags`: name -> source and since); storage
mirrors each one as a small item in a sparse, sharded index (storage/tags.py) in the same
transaction that changes them. Rules are re-evaluated in each order posting and in the
monthly settlement's scan, so recency decays without orders.
"""
from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from membership.domain import calendar
from membership.domain.aggregates import OrderStats
from membership.domain.program import Program
from membership.domain.tag_rules import (
    MAX_MANUAL_TAGS,
    TAG_PATTERN,
    TagCondition,
    TagMark,
    TagRule,
)
from membership.errors import Conflict, InvalidRequest

_TAG = re.compile(TAG_PATTERN)


class InvalidTagName(InvalidRequest):
    code = "invalid_tag"


class TagIsAutomatic(Conflict):
    code = "tag_is_automatic"


class TooManyTags(Conflict):
    code = "too_many_tags"


def check_tag(tag: str) -> str:
    if not isinstance(tag, str) or not _TAG.fullmatch(tag):
        raise InvalidTagName(
            "a tag is 1-40 characters: a lower-case letter, then lower-case letters, digits, "
            "'_' or '-'", pattern=TAG_PATTERN)
    return tag


class MemberFacts(BaseModel):
    """What the rules read: the member item alone, so the settlement's scan row is enough."""

    model_config = ConfigDict(frozen=True)

    member_id: str
    created_at: datetime
    tier_id: str
    paid_plan_ends_at: datetime | None = None
    topup_total: int = 0
    stats: OrderStats = Field(default_factory=OrderStats)
    tags: dict[str, TagMark] = Field(default_factory=dict)
    closed: bool = False  # a closed account carries no tag (docs/privacy.md)


def facts_of(member) -> MemberFacts:
    return MemberFacts(
        member_id=member.member_id, created_at=member.created_at, tier_id=member.tier_id,
        paid_plan_ends_at=member.paid_plan.ends_at if member.paid_plan else None,
        topup_total=member.topup_total, stats=member.order_stats, tags=dict(member.tags),
        closed=member.status == "closed")


def days_since(then: datetime, now: datetime, tz: str) -> int:
    """Whole calendar days of the program's clock from `then` to `now`."""
    local = calendar.zone(tz)
    return ((calendar.utc(now).astimezone(local).date()
             - calendar.utc(then).astimezone(local).date()).days)


def _within(value: int, low: int | None, high: int | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def matches(cond: TagCondition, facts: MemberFacts, program: Program, now: datetime) -> bool:
    tz = program.time_zone
    stats = facts.stats
    joined = days_since(facts.created_at, now, tz)
    if not _within(joined, cond.joined_days_min, cond.joined_days_max):
        return False
    ordered = stats.last_order_at is not None
    if cond.has_ordered is not None and cond.has_ordered != ordered:
        return False
    if cond.recency_days_min is not None or cond.recency_days_max is not None:
        if not ordered:
            return False
        if not _within(days_since(stats.last_order_at, now, tz), cond.recency_days_min,
                       cond.recency_days_max):
            return False
    window = calendar.rolling_months(calendar.month_of(now, tz))
    if (cond.orders_12m_min is not None or cond.orders_12m_max is not None) and not _within(
            stats.orders_in(window), cond.orders_12m_min, cond.orders_12m_max):
        return False
    if (cond.spend_12m_min is not None or cond.spend_12m_max is not None) and not _within(
            stats.spend_in(window), cond.spend_12m_min, cond.spend_12m_max):
        return False
    if cond.top_categories and not set(cond.top_categories) & set(stats.top_categories(3)):
        return False
    if cond.tiers and facts.tier_id not in cond.tiers:
        return False
    if cond.paid_plan is not None:
        active = facts.paid_plan_ends_at is not None and facts.paid_plan_ends_at > now
        if active != cond.paid_plan:
            return False
    if cond.stored_value_member is not None:
        svm = facts.topup_total >= program.topup.stored_value_member_threshold
        if svm != cond.stored_value_member:
            return False
    return True


def rule_applies(rule: TagRule, facts: MemberFacts, program: Program, now: datetime) -> bool:
    return any(matches(c, facts, program, now) for c in rule.any_of)


def evaluate(facts: MemberFacts, program: Program, now: datetime) -> dict[str, TagMark]:
    """The tags the member should carry now: operator tags as they are, rule tags as the
    rules say (a rule tag keeps its `since` while it holds; one whose rule is gone goes)."""
    if facts.closed:
        return {}
    tags = {t: m for t, m in facts.tags.items() if m.source == "operator"}
    for rule in program.tag_rules:
        if rule.tag in tags or not rule_applies(rule, facts, program, now):
            continue
        mark = facts.tags.get(rule.tag)
        tags[rule.tag] = mark if mark is not None else TagMark(source="rule",
                                                              since=calendar.utc(now))
    return dict(sorted(tags.items()))


def diff(before: dict[str, TagMark], after: dict[str, TagMark]) -> tuple[int, int]:
    """(added, removed) tag counts between two tag sets."""
    return len(after.keys() - before.keys()), len(before.keys() - after.keys())


def retag(builder, program: Program) -> tuple[int, int]:
    """Re-evaluate the rules inside a posting (PostingBuilder); (added, removed)."""
    member = builder.member
    tags = evaluate(facts_of(member), program, builder.now)
    if tags == member.tags:
        return 0, 0
    builder.set(tags=tags)
    return diff(member.tags, tags)


def add_manual(tags: dict[str, TagMark], tag: str, program: Program,
               now: datetime) -> dict[str, TagMark]:
    check_tag(tag)
    if tag in {r.tag for r in program.tag_rules}:
        raise TagIsAutomatic(f"{tag} is set by a tag rule of the program, not by hand",
                             tag=tag)
    mark = tags.get(tag)
    if mark is not None and mark.source == "operator":
        return tags
    manual = sum(1 for m in tags.values() if m.source == "operator")
    if manual >= MAX_MANUAL_TAGS:
        raise TooManyTags(f"a member carries at most {MAX_MANUAL_TAGS} manual tags",
                          limit=MAX_MANUAL_TAGS)
    return dict(sorted({**tags, tag: TagMark(source="operator",
                                             since=calendar.utc(now))}.items()))


def remove_manual(tags: dict[str, TagMark], tag: str, program: Program) -> dict[str, TagMark]:
    check_tag(tag)
    mark = tags.get(tag)
    if mark is None:
        return tags
    if mark.source == "rule":
        raise TagIsAutomatic(f"{tag} is set by a tag rule of the program; change the rule",
                             tag=tag)
    return {t: m for t, m in tags.items() if t != tag}


# ---- the wire ---------------------------------------------------------------------------

class TagView(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True)

    tag: str
    source: str = Field(description="rule | operator")
    since: str


def tag_views(tags: dict[str, TagMark], tz: str) -> list[TagView]:
    return [TagView(tag=t, source=m.source, since=calendar.wire(m.since, tz))
            for t, m in sorted(tags.items())]


class MemberTags(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True)

    member_id: str = Field(alias="memberId")
    tags: list[TagView]


class SegmentMember(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True)

    member_id: str = Field(alias="memberId")


class SegmentPage(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True)

    tag: str
    members: list[SegmentMember]
    next_cursor: str | None = Field(alias="nextCursor")
