"""Tier rules: upgrade as soon as rolling growth crosses a threshold; downgrade only at the
monthly settlement, under the program's downgrade policy."""
from __future__ import annotations

from membership.domain import calendar
from membership.domain.ledger import PostingBuilder
from membership.domain.program import Program, Tier


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


def change_tier(builder: PostingBuilder, program: Program, target: Tier, *, reason: str,
                rolling_growth: int, period: str | None = None) -> str | None:
    """Move the member to `target`; upgrades credit each gained tier's gift pack.

    Returns the direction ("upgrade"/"downgrade") or None when nothing changes.
    """
    member = builder.member
    before = program.tier_index(member.tier_id)
    after = program.tier_index(target.id)
    if before == after:
        return None
    direction = "upgrade" if after > before else "downgrade"
    builder.set(tier_id=target.id, tier_since=builder.now)
    gift_points = 0
    if direction == "upgrade":
        for tier in program.tiers[before + 1:after + 1]:
            if tier.upgrade_gift.points:
                gift_points += tier.upgrade_gift.points
                builder.credit_points(
                    tier.upgrade_gift.points, reason="upgrade_gift",
                    lot_id=f"upgrade-{tier.id}-{builder.source_key}",
                )
    builder.emit("member.tier_changed", {
        "memberId": member.member_id,
        "fromTier": member.tier_id,
        "toTier": target.id,
        "direction": direction,
        "reason": reason,
        "period": period,
        "rollingGrowth": rolling_growth,
        "giftPoints": gift_points,
        "occurredAt": calendar.wire(builder.now, builder.tz),
    })
    return direction


def upgrade_if_qualified(builder: PostingBuilder, program: Program) -> str | None:
    """Called by every posting that adds growth: upgrades never wait for the settlement."""
    rolling = rolling_growth_now(builder)
    qualified = program.qualified_tier(rolling)
    if program.tier_index(qualified.id) <= program.tier_index(builder.member.tier_id):
        return None
    return change_tier(builder, program, qualified, reason="growth", rolling_growth=rolling)
