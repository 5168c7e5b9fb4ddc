"""Tier rules: upgrade as soon as rolling growth crosses a threshold; downgrade only at the
monthly settlement, under the program's downgrade policy.

Upgrade gifts (docs/money.md) cannot be farmed by paying, upgrading, refunding and
repeating:
- a tier's gift is paid at most once in any 12 months (`Member.tier_gifts`), whatever
  happens to it afterwards;
- a gift earned through an order is pending with that order's points (available when the
  order completes or its return window passes), and is taken back when that order's
  refunds bring rolling growth below the tier's threshold (domain.checkout).
"""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from membership.domain import calendar
from membership.domain.ledger import PostingBuilder
from membership.domain.program import Program, Tier

GIFT_EVERY_MONTHS = 12


class TierGift(BaseModel):
    """An upgrade gift paid by one posting: which tier, into which lot, at what threshold."""

    model_config = ConfigDict(frozen=True)

    tier_id: str
    lot_id: str
    points: int
    threshold: int


class TierChange(BaseModel):
    model_config = ConfigDict(frozen=True)

    direction: str  # "upgrade" | "downgrade"
    gifts: tuple[TierGift, ...] = ()


def rolling_growth_now(builder: PostingBuilder) -> int:
    return builder.member.rolling_growth(calendar.month_of(builder.now, builder.tz))


def settlement_target(program: Program, current_tier_id: str, rolling_growth: int) -> Tier:
    """The tier a member holds after a monthly settlement."""
    current = program.tier_index(current_tier_id)
    qualified = program.tier_index(program.qualified_tier(rolling_growth).id)
    if qualified >= current:
        return program.tiers[qualified]
    policy = program.downgrade_policy
    if policy == "none":
        return program.tiers[current]
    if policy == "one_down":
        return program.tiers[current - 1]
    return program.tiers[qualified]


def gift_due(tier_gifts: dict[str, str], tier_id: str, month: str) -> bool:
    """Is the tier's gift payable in `month`: never paid, or last paid 12+ months before?"""
    last = tier_gifts.get(tier_id)
    return last is None or calendar.shift_month(last, GIFT_EVERY_MONTHS) <= month


def gift_lot_id(tier_id: str, source_key: str) -> str:
    return f"upgrade-{tier_id}-{source_key}"


def change_tier(builder: PostingBuilder, program: Program, target: Tier, *, reason: str,
                rolling_growth: int, period: str | None = None,
                gift_pending_until: datetime | None = None) -> TierChange | None:
    """Move the member to `target`; upgrades credit each gained tier's gift pack once per
    12 months. With `gift_pending_until`, the gifts are pending until then (an order's
    return window). Returns what changed, or None when nothing does.
    """
    member = builder.member
    before = program.tier_index(member.tier_id)
    after = program.tier_index(target.id)
    if before == after:
        return None
    direction = "upgrade" if after > before else "downgrade"
    builder.set(tier_id=target.id, tier_since=builder.now)
    gifts: list[TierGift] = []
    if direction == "upgrade":
        month = calendar.month_of(builder.now, builder.tz)
        paid = dict(member.tier_gifts)
        coupons_given = False
        for tier in program.tiers[before + 1:after + 1]:
            gift = tier.upgrade_gift
            if not (gift.points or gift.coupons) or not gift_due(paid, tier.id, month):
                continue
            paid[tier.id] = month
            # The pack's coupons come with it (domain/coupons.py: stock permitting).
            for grant in gift.coupons:
                builder.issue_coupons(grant.template_id, grant.quantity, source="upgrade")
                coupons_given = True
            if not gift.points:
                continue
            lot_id = gift_lot_id(tier.id, builder.source_key)
            builder.credit_points(
                gift.points, reason="upgrade_gift", lot_id=lot_id,
                pending=gift_pending_until is not None, available_at=gift_pending_until)
            gifts.append(TierGift(tier_id=tier.id, lot_id=lot_id,
                                  points=gift.points, threshold=tier.threshold))
        if gifts or coupons_given:
            builder.set(tier_gifts=paid)
    builder.emit("member.tier_changed", {
        "memberId": member.member_id,
        "fromTier": member.tier_id,
        "toTier": target.id,
        "direction": direction,
        "reason": reason,
        "period": period,
        "rollingGrowth": rolling_growth,
        "giftPoints": sum(g.points for g in gifts),
        "occurredAt": calendar.wire(builder.now, builder.tz),
    })
    return TierChange(direction=direction, gifts=tuple(gifts))


def upgrade_if_qualified(builder: PostingBuilder, program: Program, *,
                         gift_pending_until: datetime | None = None) -> TierChange | None:
    """Called by every posting that adds growth: upgrades never wait for the settlement."""
    rolling = rolling_growth_now(builder)
    qualified = program.qualified_tier(rolling)
    if program.tier_index(qualified.id) <= program.tier_index(builder.member.tier_id):
        return None
    return change_tier(builder, program, qualified, reason="growth", rolling_growth=rolling,
                       gift_pending_until=gift_pending_until)
