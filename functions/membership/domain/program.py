"""The program: a brand's rules as data.

Rates are integers (basis points, percent) so that no rule ever needs a float; money is
integer fen. The default program is the one the design brief fixes; a brand edits its
own copy in the table.
"""
from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from membership.domain import calendar
from membership.domain.instants import Instant
from membership.domain.tag_rules import (
    RfmBreakpoints,
    TagRule,
    check_tag_rules,
    default_rfm,
    default_tag_rules,
)

FEN_PER_YUAN = 100


class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Benefit(Rules):
    code: str = Field(max_length=64)
    name: str = Field(max_length=128)


class CouponGrant(Rules):
    template_id: str = Field(alias="templateId", max_length=64)
    quantity: int = Field(ge=1, le=100)


class GiftPack(Rules):
    points: int = Field(default=0, ge=0)
    coupons: tuple[CouponGrant, ...] = ()


class Tier(Rules):
    id: str = Field(max_length=16)
    name: str = Field(max_length=64)
    threshold: int = Field(ge=0, description="Rolling 12-month growth needed")
    discount_bps: int = Field(alias="discountBps", ge=0, le=10_000)
    points_multiplier_pct: int = Field(alias="pointsMultiplierPct", ge=0, le=10_000)
    benefits: tuple[Benefit, ...] = ()
    upgrade_gift: GiftPack = Field(alias="upgradeGift", default_factory=GiftPack)


class GrowthRules(Rules):
    per_yuan: int = Field(alias="perYuan", ge=0, description="Growth per whole yuan paid")
    checkin: int = Field(ge=0)


class PointsRules(Rules):
    per_yuan: int = Field(alias="perYuan", ge=0, description="Points per whole yuan paid")
    points_per_yuan_redeemed: int = Field(alias="pointsPerYuanRedeemed", ge=1)
    max_redeem_bps: int = Field(alias="maxRedeemBps", ge=0, le=10_000)
    expiry: Literal["end_of_next_year"] = "end_of_next_year"
    return_window_days: int = Field(alias="returnWindowDays", ge=0, le=365)


class TopupOffer(Rules):
    min_amount: int = Field(alias="minAmount", gt=0, description="fen")
    bonus: int = Field(ge=0, description="fen")
    # Aware and within 2000-2100, checked when a program is stored, not at each top-up.
    valid_from: Instant | None = Field(alias="validFrom", default=None)
    valid_until: Instant | None = Field(alias="validUntil", default=None)

    @model_validator(mode="after")
    def _window_ends_after_it_starts(self) -> TopupOffer:
        if (self.valid_from is not None and self.valid_until is not None
                and self.valid_until <= self.valid_from):
            raise ValueError("validUntil must come after validFrom")
        return self


class TopupRules(Rules):
    offers: tuple[TopupOffer, ...]
    min_amount: int = Field(alias="minAmount", gt=0)
    max_amount: int = Field(alias="maxAmount", gt=0)
    daily_max: int = Field(alias="dailyMax", gt=0)
    spend_order: Literal["principal_first", "bonus_first", "proportional"] = Field(
        alias="spendOrder", default="principal_first"
    )
    stored_value_member_threshold: int = Field(alias="storedValueMemberThreshold", gt=0)
    stored_value_member_benefits: tuple[Benefit, ...] = Field(
        alias="storedValueMemberBenefits", default=()
    )


class PaidPlanPrices(Rules):
    monthly: int = Field(gt=0)
    quarterly: int = Field(gt=0)
    yearly: int = Field(gt=0)


class PaidPlan(Rules):
    id: str = Field(max_length=16)
    name: str = Field(max_length=64)
    prices: PaidPlanPrices
    # For display; the rules below are what checkout and the schedule apply
    # (domain/subscriptions.py, docs/subscriptions.md). Defaults let stored programs load.
    benefits: tuple[Benefit, ...] = ()
    trial_days: int = Field(alias="trialDays", default=0, ge=0, le=366,
                            description="0: no trial; once per member, ever")
    cooling_off_days: int = Field(alias="coolingOffDays", default=7, ge=0, le=366,
                                  description="Full refund within these days if no benefit used")
    discount_bps: int = Field(alias="discountBps", default=0, ge=0, le=10_000,
                              description="Member price; the better of tier and plan applies")
    points_bonus_pct: int = Field(alias="pointsBonusPct", default=0, ge=0, le=10_000,
                                  description="Added to the tier multiplier on orders")
    monthly_gift: GiftPack = Field(alias="monthlyGift", default_factory=GiftPack)
    free_shipping: bool = Field(alias="freeShipping", default=False)


class CheckinRules(Rules):
    points: int = Field(ge=0)
    streak_days: int = Field(alias="streakDays", ge=1)
    streak_bonus: int = Field(alias="streakBonus", ge=0)
    # Make-up check-ins (补签): docs/checkins.md.
    make_up_days: int = Field(alias="makeUpDays", default=3, ge=0, le=31,
                              description="How many days before today a missed day may be filled")
    make_up_cost: int = Field(alias="makeUpCost", default=20, ge=0, description="points")
    make_up_per_month: int = Field(alias="makeUpPerMonth", default=2, ge=0, le=31,
                                   description="Make-ups per calendar month of the filled day")


# Profile fields a member-reported task may require (wire names); docs/checkins.md.
ProfileField = Literal["nickname", "storeId"]


class Task(Rules):
    """A task (任务): what completing it earns, how often, and who reports it."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    name: str = Field(min_length=1, max_length=64)
    points: int = Field(default=0, ge=0)
    growth: int = Field(default=0, ge=0)
    limit: Literal["once", "daily", "per_order"]
    trigger: Literal["member", "review.posted"] = Field(
        description="'member': reported by the app; otherwise the inbound event type")
    profile_fields: tuple[ProfileField, ...] = Field(alias="profileFields", default=())

    @model_validator(mode="after")
    def _earns_something(self) -> Task:
        if self.points + self.growth == 0:
            raise ValueError(f"task {self.id} earns neither points nor growth")
        if self.profile_fields and self.trigger != "member":
            raise ValueError(f"task {self.id}: profile fields are checked on member reports only")
        return self


class HoldRules(Rules):
    ttl_minutes: int = Field(alias="ttlMinutes", ge=1, le=7 * 24 * 60)


ReasonCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=32)]
# Why an operator moved a member's points, growth or bonus (docs/operations.md).
DEFAULT_REASON_CODES = ("goodwill", "correction", "compensation", "campaign")


class Program(Rules):
    id: str = Field(max_length=64)
    name: str = Field(max_length=128)
    currency: Literal["CNY"] = "CNY"
    time_zone: str = Field(alias="timeZone", max_length=64)
    signup_gift: GiftPack = Field(alias="signupGift")
    # Given once a year in the birthday month to members whose tier lists the
    # `birthday_gift` benefit (domain/birthdays.py); a stored program without it gives none.
    birthday_gift: GiftPack = Field(alias="birthdayGift", default_factory=GiftPack)
    growth: GrowthRules
    tiers: tuple[Tier, ...] = Field(min_length=1)
    downgrade_policy: Literal["none", "one_down", "to_qualified"] = Field(alias="downgradePolicy")
    points: PointsRules
    topup: TopupRules
    paid_plans: tuple[PaidPlan, ...] = Field(alias="paidPlans", default=())
    checkin: CheckinRules
    tasks: tuple[Task, ...] = ()
    holds: HoldRules
    # Member tags and the portrait (docs/tags.md); a stored program without them gets these.
    tag_rules: tuple[TagRule, ...] = Field(alias="tagRules", default_factory=default_tag_rules)
    rfm: RfmBreakpoints = Field(default_factory=default_rfm)

    @field_validator("tag_rules")
    @classmethod
    def _tag_rules_unique(cls, value: tuple[TagRule, ...]) -> tuple[TagRule, ...]:
        return check_tag_rules(value)
    reason_codes: tuple[ReasonCode, ...] = Field(
        alias="reasonCodes", default=DEFAULT_REASON_CODES, min_length=1, max_length=50)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return calendar.check_zone(value)

    @model_validator(mode="after")
    def _tiers_ascend_from_zero(self) -> Program:
        thresholds = [t.threshold for t in self.tiers]
        if thresholds[0] != 0:
            raise ValueError("the first tier must start at growth 0")
        if any(b <= a for a, b in pairwise(thresholds)):
            raise ValueError("tier thresholds must strictly ascend")
        if len({t.id for t in self.tiers}) != len(self.tiers):
            raise ValueError("tier ids must be unique")
        if len({t.id for t in self.tasks}) != len(self.tasks):
            raise ValueError("task ids must be unique")
        return self

    # Tier lookups live here because every capability needs them.
    def tier(self, tier_id: str) -> Tier:
        for t in self.tiers:
            if t.id == tier_id:
                return t
        return self.tiers[0]

    def tier_index(self, tier_id: str) -> int:
        for i, t in enumerate(self.tiers):
            if t.id == tier_id:
                return i
        return 0

    def qualified_tier(self, rolling_growth: int) -> Tier:
        qualified = self.tiers[0]
        for t in self.tiers:
            if rolling_growth >= t.threshold:
                qualified = t
        return qualified

    def next_tier(self, tier_id: str) -> Tier | None:
        i = self.tier_index(tier_id)
        return self.tiers[i + 1] if i + 1 < len(self.tiers) else None


def _benefit(code: str, name: str) -> Benefit:
    return Benefit(code=code, name=name)


DEFAULT_TIME_ZONE = "Asia/Shanghai"


def default_program(time_zone: str = DEFAULT_TIME_ZONE) -> Program:
    """The program the design brief fixes; the local stack and the tests start from it.

    Its calendar is the deployment's (the `ProgramTimeZone` parameter): storage passes it.
    """
    birthday = _benefit("birthday_gift", "Birthday gift")
    shipping = _benefit("free_shipping", "Free shipping")
    priority = _benefit("priority_service", "Priority service")
    return Program(
        id="default",
        name="Membership",
        timeZone=time_zone,
        signupGift=GiftPack(points=100, coupons=(
            CouponGrant(templateId="WELCOME-10OFF100", quantity=1),)),
        birthdayGift=GiftPack(points=200, coupons=(
            CouponGrant(templateId="BIRTHDAY-20OFF100", quantity=1),)),
        growth=GrowthRules(perYuan=1, checkin=5),
        tiers=(
            Tier(id="V1", name="Registered", threshold=0, discountBps=0, pointsMultiplierPct=100),
            Tier(
                id="V2", name="Silver", threshold=1_000, discountBps=200, pointsMultiplierPct=120,
                benefits=(birthday,), upgradeGift=GiftPack(points=200),
            ),
            Tier(
                id="V3", name="Gold", threshold=5_000, discountBps=500, pointsMultiplierPct=150,
                benefits=(birthday, shipping), upgradeGift=GiftPack(points=1_000, coupons=(
                    CouponGrant(templateId="V3-5PCT", quantity=1),)),
            ),
            Tier(
                id="V4", name="Diamond", threshold=20_000, discountBps=800,
                pointsMultiplierPct=200, benefits=(birthday, shipping, priority),
                upgradeGift=GiftPack(points=3_000),
            ),
        ),
        downgradePolicy="one_down",
        points=PointsRules(
            perYuan=1, pointsPerYuanRedeemed=100, maxRedeemBps=5_000, returnWindowDays=7
        ),
        topup=TopupRules(
            offers=(
                TopupOffer(minAmount=100 * FEN_PER_YUAN, bonus=5 * FEN_PER_YUAN),
                TopupOffer(minAmount=500 * FEN_PER_YUAN, bonus=50 * FEN_PER_YUAN),
                TopupOffer(minAmount=1_000 * FEN_PER_YUAN, bonus=120 * FEN_PER_YUAN),
            ),
            minAmount=1 * FEN_PER_YUAN,
            maxAmount=5_000 * FEN_PER_YUAN,
            dailyMax=20_000 * FEN_PER_YUAN,
            spendOrder="principal_first",
            storedValueMemberThreshold=1_000 * FEN_PER_YUAN,
            storedValueMemberBenefits=(_benefit("stored_value_price", "Stored-value member price"),),
        ),
        paidPlans=(
            PaidPlan(
                id="PLUS", name="PLUS",
                prices=PaidPlanPrices(monthly=1_900, quarterly=4_900, yearly=14_900),
                benefits=(shipping, _benefit("plus_points_x2", "Double points on orders")),
                trialDays=7, coolingOffDays=7, discountBps=0, pointsBonusPct=100,
                freeShipping=True,
                monthlyGift=GiftPack(coupons=(CouponGrant(templateId="PLUS-10OFF100",
                                                          quantity=2),)),
            ),
        ),
        checkin=CheckinRules(points=5, streakDays=7, streakBonus=20, makeUpDays=3,
                             makeUpCost=20, makeUpPerMonth=2),
        tasks=(
            Task(id="profile_completed", name="Complete your profile", points=50,
                 limit="once", trigger="member", profileFields=("nickname", "storeId")),
            Task(id="review_posted", name="Review an order", points=10, growth=5,
                 limit="per_order", trigger="review.posted"),
        ),
        holds=HoldRules(ttlMinutes=30),
    )
