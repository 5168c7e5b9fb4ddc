"""Tag rules and RFM breakpoints as program data, and the tag a member carries.

Pure pydantic with no other domain import, so the program and the member models can both
use it. What the rules mean (how a member's facts are matched) lives in domain/tags.py.
"""
from __future__ import annotations

from datetime import datetime
from itertools import pairwise
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

# Lower-case letters, digits, `_` and `-`, starting with a letter: safe in keys and URLs.
TAG_PATTERN = r"^[a-z][a-z0-9_-]{0,39}$"
TagName = Annotated[str, StringConstraints(pattern=TAG_PATTERN)]
MAX_TAG_RULES = 20
MAX_MANUAL_TAGS = 50


class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TagCondition(_Rules):
    """Every field set must hold (AND); a field left out does not constrain.

    Days are calendar days of the program's time zone. Recency is days since the last paid
    order: a member who never ordered has no recency, so a recency bound never matches
    them (use `hasOrdered: false`). Orders and spend "in 12 months" are the rolling 12
    calendar months ending with the current one, net of refunds.
    """

    joined_days_min: int | None = Field(alias="joinedDaysMin", default=None, ge=0)
    joined_days_max: int | None = Field(alias="joinedDaysMax", default=None, ge=0)
    has_ordered: bool | None = Field(alias="hasOrdered", default=None)
    recency_days_min: int | None = Field(alias="recencyDaysMin", default=None, ge=0)
    recency_days_max: int | None = Field(alias="recencyDaysMax", default=None, ge=0)
    orders_12m_min: int | None = Field(alias="orders12mMin", default=None, ge=0)
    orders_12m_max: int | None = Field(alias="orders12mMax", default=None, ge=0)
    spend_12m_min: int | None = Field(alias="spend12mMin", default=None, ge=0,
                                      description="fen, net of refunds")
    spend_12m_max: int | None = Field(alias="spend12mMax", default=None, ge=0)
    top_categories: tuple[Annotated[str, StringConstraints(min_length=1, max_length=128)],
                          ...] = Field(alias="topCategories", default=(), max_length=20,
                                       description="any of these among the member's top 3")
    tiers: tuple[str, ...] = Field(default=(), max_length=20)
    paid_plan: bool | None = Field(alias="paidPlan", default=None,
                                   description="an active paid plan (PLUS)")
    stored_value_member: bool | None = Field(alias="storedValueMember", default=None)

    @model_validator(mode="after")
    def _says_something(self) -> TagCondition:
        if not self.model_dump(exclude_defaults=True):
            raise ValueError("a condition needs at least one field")
        return self


class TagRule(_Rules):
    tag: TagName
    description: str = Field(default="", max_length=256)
    any_of: tuple[TagCondition, ...] = Field(alias="anyOf", min_length=1, max_length=5)


class RfmBreakpoints(_Rules):
    """Scores 1-5. Recency: at most breakpoints[0] days scores 5, ... beyond the last (or
    never ordered) 1. Frequency (orders in 12 months) and monetary (fen in 12 months):
    below breakpoints[0] scores 1, at least breakpoints[3] scores 5."""

    recency_days: tuple[int, int, int, int] = Field(alias="recencyDays")
    frequency: tuple[int, int, int, int]
    monetary: tuple[int, int, int, int] = Field(description="fen")

    @model_validator(mode="after")
    def _ascending(self) -> RfmBreakpoints:
        for name in ("recency_days", "frequency", "monetary"):
            values = getattr(self, name)
            if any(b <= a for a, b in pairwise(values)) or values[0] < 0:
                raise ValueError(f"{name} breakpoints must strictly ascend from >= 0")
        return self


def default_rfm() -> RfmBreakpoints:
    return RfmBreakpoints(recencyDays=(30, 90, 180, 365), frequency=(2, 4, 8, 16),
                          monetary=(50_000, 200_000, 500_000, 2_000_000))


def default_tag_rules() -> tuple[TagRule, ...]:
    """The design's four: new_member, high_value, at_risk, dormant."""
    c = TagCondition
    return (
        TagRule(tag="new_member", description="joined at most 30 days ago, no order yet",
                anyOf=(c(joinedDaysMax=30, hasOrdered=False),)),
        TagRule(tag="high_value", description="at least 5,000 yuan in 12 months",
                anyOf=(c(spend12mMin=500_000),)),
        TagRule(tag="at_risk", description="last order 90 to 179 days ago",
                anyOf=(c(recencyDaysMin=90, recencyDaysMax=179),)),
        TagRule(tag="dormant", description="no order for 180 days, or none since joining "
                                           "180 days ago",
                anyOf=(c(recencyDaysMin=180), c(hasOrdered=False, joinedDaysMin=180))),
    )


def check_tag_rules(rules: tuple[TagRule, ...]) -> tuple[TagRule, ...]:
    if len(rules) > MAX_TAG_RULES:
        raise ValueError(f"at most {MAX_TAG_RULES} tag rules")
    if len({r.tag for r in rules}) != len(rules):
        raise ValueError("tag rule tags must be unique")
    return rules


class TagMark(BaseModel):
    """A tag a member carries: who put it there and since when."""

    model_config = ConfigDict(frozen=True)

    source: Literal["rule", "operator"]
    since: datetime
