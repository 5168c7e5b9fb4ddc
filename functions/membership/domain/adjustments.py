"""Manual adjustments by an operator: points, growth or bonus, with a reason code.

One adjustment is one posting, guarded by `adjustment:<adjustmentId>`: the same id
applies once, forever, and answers its first result again; the same id with another
body is refused. Principal never moves here: stored value that was paid for moves only
with money (top-ups, refunds).

- points: a credit is a new lot with the program's normal expiry (end of next year from
  now); a debit spends available points soonest-expiring first, never pending ones;
- growth: a credit lands in the current month (program time zone) and may upgrade at
  once, as any growth does; a debit takes the newest months of the rolling 12 first and
  never downgrades by itself (downgrades happen at the monthly settlement, by policy);
- balance_bonus: the bonus bucket of stored value.
Nothing goes below zero: 409 with what is available.
"""
from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal

from pydantic import Field, StrictInt, StringConstraints, field_validator

from membership.domain import calendar
from membership.domain.ledger import (
    InsufficientBalance,
    InsufficientGrowth,
    InsufficientPoints,
    PostingBuilder,
)
from membership.domain.members import ApiModel
from membership.domain.program import Program
from membership.errors import Conflict, InvalidRequest

AdjustmentAsset = Literal["points", "growth", "balance_bonus"]
OperationId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:\-]+$", min_length=1,
                                               max_length=64)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
MAX_ADJUSTMENT = 100_000_000  # one million yuan of bonus, or 100 million points


class UnknownReasonCode(InvalidRequest):
    code = "unknown_reason_code"


class AdjustmentIdReused(Conflict):
    code = "adjustment_id_reused"


class AdjustmentRequest(ApiModel):
    adjustment_id: OperationId = Field(
        alias="adjustmentId", description="Your id for this adjustment: retries reuse it")
    asset: AdjustmentAsset
    amount: StrictInt = Field(ge=-MAX_ADJUSTMENT, le=MAX_ADJUSTMENT,
                              description="Signed, non-zero: points, growth, or bonus fen")
    reason_code: str = Field(alias="reasonCode", min_length=1, max_length=32,
                             description="One of the program's reasonCodes")
    note: Note | None = Field(default=None, description="Free text for the audit trail")

    @field_validator("amount")
    @classmethod
    def _non_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("an adjustment moves something: amount is non-zero")
        return value


def check_reason_code(program: Program, code: str) -> None:
    if code not in program.reason_codes:
        raise UnknownReasonCode(f"{code!r} is not one of the program's reason codes",
                                reasonCode=code, allowed=list(program.reason_codes))


def source_key(adjustment_id: str) -> str:
    return f"adjustment:{adjustment_id}"


def request_hash(member_id: str, request: AdjustmentRequest) -> str:
    """What makes a retry the same request: the member and the body."""
    body = {"memberId": member_id, **request.model_dump(mode="json", by_alias=True)}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def lot_id_for(adjustment_id: str) -> str:
    return f"adjustment-{adjustment_id}"


def _debit_growth_newest_first(builder: PostingBuilder, amount: int) -> None:
    months = calendar.rolling_months(calendar.month_of(builder.now, builder.tz))
    growth = builder.member.growth_months
    available = sum(growth.get(m, 0) for m in months)
    if amount > available:
        raise InsufficientGrowth(
            f"rolling 12-month growth is {available}, less than {amount}",
            available=available, requested=amount)
    left = amount
    for month in reversed(months):
        take = min(left, growth.get(month, 0))
        if take:
            builder.debit_growth(take, month=month)
            left -= take
        if not left:
            break


def apply_adjustment(builder: PostingBuilder, program: Program, request: AdjustmentRequest,
                     *, upgrade) -> dict:
    """The legs of one adjustment; `upgrade(builder, program)` is the tier rule."""
    amount = request.amount
    if request.asset == "points":
        if amount > 0:
            builder.credit_points(amount, lot_id=lot_id_for(request.adjustment_id))
        else:
            spendable = sum(lot.remaining for lot in builder.live_lots()
                            if lot.spendable(builder.now))
            if -amount > spendable:
                raise InsufficientPoints(
                    f"the member has {spendable} available points, less than {-amount}",
                    available=spendable, requested=-amount)
            builder.debit_points(-amount)
    elif request.asset == "growth":
        if amount > 0:
            builder.credit_growth(amount)
            upgrade(builder, program)
        else:
            _debit_growth_newest_first(builder, -amount)
    elif amount > 0:
        builder.credit_balance("bonus", amount)
    else:
        bonus = builder.member.balance_bonus
        if -amount > bonus:
            raise InsufficientBalance(
                f"the member's bonus balance is {bonus} fen, less than {-amount}",
                bucket="bonus", available=bonus, requested=-amount)
        builder.debit_buckets(bonus=-amount)
    member = builder.member
    month = calendar.month_of(builder.now, builder.tz)
    builder.result = {
        "adjustmentId": request.adjustment_id,
        "memberId": member.member_id,
        "asset": request.asset,
        "amount": amount,
        "reasonCode": request.reason_code,
        "note": request.note,
        "actor": builder.actor,
        "createdAt": calendar.wire(builder.now, builder.tz),
        "after": {
            "points": {"available": member.points_available, "pending": member.points_pending},
            "growth": {"rolling12Months": member.rolling_growth(month)},
            "balance": {"principal": member.balance_principal, "bonus": member.balance_bonus},
            "tier": member.tier_id,
        },
    }
    return builder.result


def public(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "requestHash"}
