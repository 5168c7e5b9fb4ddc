"""A member's status: `active`, or `frozen` by an operator (fraud, a dispute, a request).

A frozen member keeps earning (orders, check-ins, grants and adjustments still credit)
but cannot spend: no hold, no top-up, no points or balance at checkout, and later no
coupon claim and no paid-plan purchase. Every capability that spends calls
`ensure_may_spend` before it builds its posting: this is the one place the rule lives.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from membership.domain.members import ApiModel, Member
from membership.errors import Forbidden

ACTIVE = "active"
FROZEN = "frozen"
Status = Literal["active", "frozen"]
# What a frozen member may not do; the names show in the error's details.
SpendAction = Literal["hold", "topup", "checkout_spend", "order_spend", "coupon_claim",
                      "plan_purchase", "makeup_checkin"]

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class MemberFrozen(Forbidden):
    code = "member_frozen"


class StatusChange(ApiModel):
    """PATCH /v1/admin/members/{memberId}: freeze or unfreeze, always with a reason."""

    status: Status
    reason: Reason = Field(description="Why, for the audit trail (shown to operators only)")


def ensure_may_spend(member: Member, action: SpendAction) -> None:
    """Raise `member_frozen` (403) when a frozen member tries to spend, hold or pay in."""
    if member.status == FROZEN:
        raise MemberFrozen(
            "this member is frozen: earning continues, spending, holds and top-ups are "
            "refused until an operator unfreezes the account",
            memberId=member.member_id, action=action)


def audit_action(status: Status) -> str:
    return "frozen" if status == FROZEN else "unfrozen"
