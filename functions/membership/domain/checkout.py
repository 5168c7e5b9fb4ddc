"""Checkout rules: the quote, the split of an order's amounts over its lines, and refunds.

Pure: no I/O. Money is integer fen, points and growth integer units.

Rounding (one rule, everywhere): every computed benefit rounds DOWN to the whole fen or
point (tier discount, the points cap, points and growth earned), so the brand never
grants more than its stated rate, and the member is short by less than one unit.
Amounts split over lines by the largest-remainder method: shares are the floors of the
exact proportions, and the fen left over go one each to the lines with the largest
remainders (ties: the earlier line). So per-line shares always sum exactly to the total.

Refunds are cumulative: after refunding r of a line's q units, the member has had back
floor(share × r / q) of each of the line's shares. A refund moves the difference between
the cumulative amounts after and before it, so refunding every unit, in any number of
steps, reverses exactly what the order spent and earned.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from membership.domain import calendar
from membership.domain import coupons as coupon_rules
from membership.domain.coupons import ApplicableCoupon, Coupon, CouponId
from membership.domain.instants import Instant
from membership.domain.ledger import (
    HeldCoupon,
    Hold,
    HoldAlreadyCaptured,
    HoldAlreadyReleased,
    HoldExpired,
    HoldNotFound,
    InsufficientBalance,
    InsufficientPoints,
    LotTake,
    PostingBuilder,
)
from membership.domain.members import Member
from membership.domain.program import FEN_PER_YUAN, PaidPlan, Program, Tier
from membership.domain.subscriptions import free_shipping as plan_free_shipping
from membership.domain.subscriptions import member_discount, points_multiplier_pct
from membership.domain.tiers import TierGift
from membership.errors import Conflict, InvalidRequest, Unavailable

BPS = 10_000
MAX_LINES = 200
MAX_FEN = 10**12  # a bound far above any real order, so arithmetic stays honest

OrderId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
LineId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
MemberId = Annotated[str, StringConstraints(pattern=r"^M[a-z2-7]{8,64}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Fen = Annotated[int, Field(ge=0, le=MAX_FEN, strict=True)]
Count = Annotated[int, Field(ge=0, le=MAX_FEN, strict=True)]


# ---- errors ------------------------------------------------------------------------------

class PointsOverCap(InvalidRequest):
    code = "points_over_cap"


class BalanceOverPayable(InvalidRequest):
    code = "balance_over_payable"


class HoldMismatch(Conflict):
    """The same order held again with other amounts, or paid with amounts its hold differs
    from: never silently fixed."""

    code = "hold_mismatch"


class AmountsMismatch(InvalidRequest):
    code = "amounts_mismatch"


class OverRefund(InvalidRequest):
    code = "over_refund"


class UnknownLine(InvalidRequest):
    code = "unknown_line"


class OrderNotPaidYet(Unavailable):
    """An event about an order whose payment has not landed yet: try again later."""

    code = "order_not_paid_yet"


# ---- wire models -------------------------------------------------------------------------

class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class EventModel(BaseModel):
    """Inbound events: unknown fields are ignored so a producer may add fields safely."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class OrderLine(ApiModel):
    line_id: LineId = Field(alias="lineId")
    sku: Text
    category: Text
    brand: Text
    quantity: int = Field(ge=1, le=100_000, strict=True)
    unit_price: Fen = Field(alias="unitPrice", description="fen")

    @property
    def amount(self) -> int:
        return self.quantity * self.unit_price


def _unique_lines(lines: tuple) -> None:
    ids = [line.line_id for line in lines]
    if len(set(ids)) != len(ids):
        raise ValueError("lineId values must be unique within an order")


CouponIds = Annotated[tuple[CouponId, ...], Field(
    max_length=coupon_rules.MAX_COUPONS_PER_ORDER,
    description="The member's coupons to apply, at most one of them not stackable")]


def _unique_coupons(coupon_ids: tuple[str, ...]) -> None:
    if len(set(coupon_ids)) != len(coupon_ids):
        raise ValueError("couponIds must be unique")


class QuoteRequest(ApiModel):
    member_id: MemberId = Field(alias="memberId")
    store_id: Text | None = Field(alias="storeId", default=None,
                                  description="The store of the order (coupon scopes)")
    lines: tuple[OrderLine, ...] = Field(min_length=1, max_length=MAX_LINES)
    points_to_redeem: Count = Field(alias="pointsToRedeem", default=0)
    balance_to_use: Fen = Field(alias="balanceToUse", default=0, description="fen")
    coupon_ids: CouponIds = Field(alias="couponIds", default=())

    @model_validator(mode="after")
    def _lines_unique(self) -> QuoteRequest:
        _unique_lines(self.lines)
        _unique_coupons(self.coupon_ids)
        return self


class LineQuote(ApiModel):
    line_id: str = Field(alias="lineId")
    subtotal: int
    tier_discount: int = Field(alias="tierDiscount")
    coupon_discount: int = Field(alias="couponDiscount", default=0)
    points_used: int = Field(alias="pointsUsed")
    points_value: int = Field(alias="pointsValue")
    balance: int
    payable: int


class Quote(ApiModel):
    member_id: str = Field(alias="memberId")
    tier: str
    subtotal: int = Field(description="fen")
    tier_discount: int = Field(alias="tierDiscount",
                               description="fen: the member price, tier's or plan's (see "
                                           "memberPriceBy), never both")
    member_price_by: str = Field(alias="memberPriceBy", default="tier",
                                 description="tier | plan: whose discountBps gave tierDiscount")
    paid_plan: str | None = Field(alias="paidPlan", default=None,
                                  description="The member's paid plan active now, if any")
    points_multiplier_pct: int = Field(alias="pointsMultiplierPct", default=100,
                                       description="Tier multiplier + the plan's bonus")
    coupon_discount: int = Field(alias="couponDiscount", default=0, description="fen")
    free_shipping: bool = Field(alias="freeShipping", default=False,
                                description="The tier, the paid plan or a coupon gives it")
    amount_after_discounts: int = Field(alias="amountAfterDiscounts", description="fen")
    points_redeemable: int = Field(alias="pointsRedeemable", description="points")
    points_to_redeem: int = Field(alias="pointsToRedeem", description="points")
    points_value: int = Field(alias="pointsValue", description="fen")
    balance_usable: int = Field(alias="balanceUsable", description="fen")
    balance_to_use: int = Field(alias="balanceToUse", description="fen")
    payable: int = Field(description="fen left to pay in cash")
    points_to_earn: int = Field(alias="pointsToEarn", description="points")
    growth_to_earn: int = Field(alias="growthToEarn")
    lines: tuple[LineQuote, ...]
    applicable_coupons: tuple[ApplicableCoupon, ...] = Field(
        alias="applicableCoupons", default=(),
        description="The member's usable coupons for these lines, each alone, best first")


class HoldRequest(ApiModel):
    order_id: OrderId = Field(alias="orderId")
    member_id: MemberId = Field(alias="memberId")
    points: Count = 0
    balance: Fen = Field(default=0, description="fen")
    coupon_ids: CouponIds = Field(alias="couponIds", default=())

    @model_validator(mode="after")
    def _something(self) -> HoldRequest:
        if self.points + self.balance == 0 and not self.coupon_ids:
            raise ValueError("a hold reserves points, balance, coupons or several")
        _unique_coupons(self.coupon_ids)
        return self


class HoldBalance(ApiModel):
    principal: int
    bonus: int
    total: int


class HoldView(ApiModel):
    hold_id: str = Field(alias="holdId")
    order_id: str = Field(alias="orderId")
    member_id: str = Field(alias="memberId")
    points: int
    balance: HoldBalance
    coupon_ids: tuple[str, ...] = Field(alias="couponIds", default=())
    status: str
    created_at: str = Field(alias="createdAt")
    expires_at: str = Field(alias="expiresAt")


class OrderAmounts(EventModel):
    subtotal: Fen
    discount: Fen = Field(description="Every discount, coupons included")
    coupon_discount: Fen = Field(alias="couponDiscount", default=0,
                                 description="The part of discount the coupons gave")
    points_used: Count = Field(alias="pointsUsed")
    balance_used: Fen = Field(alias="balanceUsed")
    cash_paid: Fen = Field(alias="cashPaid")


class OrderPaid(EventModel):
    order_id: OrderId = Field(alias="orderId")
    member_id: MemberId = Field(alias="memberId")
    store_id: Text | None = Field(alias="storeId", default=None)
    paid_at: Instant = Field(alias="paidAt")
    lines: tuple[OrderLine, ...] = Field(min_length=1, max_length=MAX_LINES)
    amounts: OrderAmounts
    coupon_ids: CouponIds = Field(alias="couponIds", default=())

    @model_validator(mode="after")
    def _consistent(self) -> OrderPaid:
        _unique_lines(self.lines)
        _unique_coupons(self.coupon_ids)
        if self.paid_at.tzinfo is None:
            raise ValueError("paidAt needs an offset")
        return self


class OrderCancelled(EventModel):
    order_id: OrderId = Field(alias="orderId")
    member_id: MemberId = Field(alias="memberId")
    cancelled_at: Instant | None = Field(alias="cancelledAt", default=None)


class OrderCompleted(EventModel):
    order_id: OrderId = Field(alias="orderId")
    member_id: MemberId = Field(alias="memberId")
    completed_at: Instant | None = Field(alias="completedAt", default=None)


class RefundLine(EventModel):
    line_id: LineId = Field(alias="lineId")
    quantity: int = Field(ge=1, le=100_000, strict=True)


class OrderRefunded(EventModel):
    order_id: OrderId = Field(alias="orderId")
    member_id: MemberId = Field(alias="memberId")
    refund_id: OrderId = Field(alias="refundId")
    refunded_at: Instant | None = Field(alias="refundedAt", default=None)
    lines: tuple[RefundLine, ...] | None = Field(
        default=None, min_length=1, max_length=MAX_LINES,
        description="None or absent: the whole order (what is left of it); never empty")

    @model_validator(mode="after")
    def _lines_unique(self) -> OrderRefunded:
        if self.lines is not None:
            _unique_lines(self.lines)
        return self


# ---- arithmetic --------------------------------------------------------------------------

def allocate(total: int, weights: list[int]) -> list[int]:
    """Split `total` over `weights` by largest remainder; shares sum exactly to `total`.

    When total <= sum(weights) no share exceeds its weight. All-zero weights split evenly.
    """
    if total < 0 or any(w < 0 for w in weights):
        raise ValueError("allocate takes non-negative integers")
    if not weights:
        if total:
            raise ValueError("nothing to allocate over")
        return []
    whole = sum(weights)
    if whole == 0:
        weights, whole = [1] * len(weights), len(weights)
    shares = [total * w // whole for w in weights]
    left = total - sum(shares)
    by_remainder = sorted(range(len(weights)),
                          key=lambda i: (-(total * weights[i] % whole), i))
    for i in by_remainder[:left]:
        shares[i] += 1
    return shares


def share_through(amount: int, done: int, quantity: int) -> int:
    """What of a line's `amount` belongs to its first `done` of `quantity` units."""
    return amount * done // quantity


def bps_of(amount: int, bps: int) -> int:
    return amount * bps // BPS


def points_value(points: int, program: Program) -> int:
    """Fen that `points` offset at checkout, rounded down."""
    return points * FEN_PER_YUAN // program.points.points_per_yuan_redeemed


def points_for_value(fen: int, program: Program) -> int:
    """The most points whose value does not exceed `fen`."""
    return fen * program.points.points_per_yuan_redeemed // FEN_PER_YUAN


def points_to_earn(paid_fen: int, tier: Tier, program: Program,
                   plan: PaidPlan | None = None) -> int:
    """Per whole yuan paid (cash + stored value), times the tier multiplier plus the active
    paid plan's bonus (domain/subscriptions.py), rounded down."""
    return (paid_fen // FEN_PER_YUAN * program.points.per_yuan
            * points_multiplier_pct(tier, plan) // 100)


def growth_to_earn(paid_fen: int, program: Program) -> int:
    return paid_fen // FEN_PER_YUAN * program.growth.per_yuan


# ---- lines -------------------------------------------------------------------------------

class LineSplit(BaseModel):
    """One line's share of every amount an order moved."""

    model_config = ConfigDict(frozen=True)

    line_id: str
    quantity: int
    subtotal: int
    discount: int
    points_used: int
    points_value: int
    balance: int
    cash: int
    earned_points: int = 0
    growth: int = 0
    refunded_quantity: int = 0
    category: str | None = None  # the order aggregates' spend per category (docs/tags.md)


def split_lines(lines: tuple[OrderLine, ...], *, discount: int, points_used: int,
                points_value_fen: int, balance: int, earned_points: int = 0,
                growth: int = 0, line_discounts: list[int] | None = None) -> list[LineSplit]:
    """Spread each amount over the lines, in the order a checkout applies them.

    Discounts by line subtotal, or as given per line (`line_discounts`: the tier's by
    subtotal plus each coupon's over its scope, `discounts_by_line`); the points
    value by what is left of each line; stored value by what is left after that; cash is
    each line's remainder, so a line's parts add up to its subtotal exactly.
    """
    subtotals = [line.amount for line in lines]
    if discount > sum(subtotals):
        raise AmountsMismatch("the discount exceeds the subtotal")
    discounts = allocate(discount, subtotals) if line_discounts is None else line_discounts
    if sum(discounts) != discount or any(d > s for d, s in zip(discounts, subtotals)):
        raise AmountsMismatch("the line discounts do not add up to the discount")
    nets = [s - d for s, d in zip(subtotals, discounts)]
    if points_value_fen + balance > sum(nets):
        raise AmountsMismatch("points and stored value exceed what is payable")
    values = allocate(points_value_fen, nets)
    points = allocate(points_used, values if points_value_fen else nets)
    after_points = [n - v for n, v in zip(nets, values)]
    balances = allocate(balance, after_points)
    cash = [a - b for a, b in zip(after_points, balances)]
    paid = [b + c for b, c in zip(balances, cash)]
    earned = allocate(earned_points, paid)
    growths = allocate(growth, paid)
    return [
        LineSplit(line_id=line.line_id, quantity=line.quantity, subtotal=subtotals[i],
                  discount=discounts[i], points_used=points[i], points_value=values[i],
                  balance=balances[i], cash=cash[i], earned_points=earned[i],
                  growth=growths[i])
        for i, line in enumerate(lines)
    ]


# ---- the quote ---------------------------------------------------------------------------

def coupon_lines(lines: tuple[OrderLine, ...], earlier: list[int]) -> list[coupon_rules.LineAmount]:
    """The lines as coupons see them: each line's amount after the earlier discounts."""
    return [coupon_rules.LineAmount(line_id=line.line_id, sku=line.sku, category=line.category,
                                    amount=line.amount - d)
            for line, d in zip(lines, earlier)]


def discounts_by_line(lines: tuple[OrderLine, ...], tier_discount: int, coupons: list[Coupon],
                      *, store_id: str | None, now: datetime | None
                      ) -> tuple[list[int], list[coupon_rules.CouponDiscount]]:
    """(the tier discount per line, each coupon's discount per line), in checkout order:
    the tier discount by line subtotal, then the coupons (domain/coupons.py) on what is left.
    `now` None: the coupons' windows were checked when they were held."""
    tier_shares = allocate(tier_discount, [line.amount for line in lines])
    applied = coupon_rules.apply_coupons(coupons, coupon_lines(lines, tier_shares),
                                         store_id=store_id, now=now) if coupons else []
    return tier_shares, applied


def quote(request: QuoteRequest, member: Member, program: Program,
          wallet: tuple[Coupon, ...] = (), now: datetime | None = None,
          plan: PaidPlan | None = None) -> Quote:
    """What this member gets for these lines; checks the requested points and balance.

    `wallet`: the member's coupons that are not used; the requested ones must be in it,
    this member's, available and applicable. `plan`: the member's paid plan if active now
    (its member price, points bonus and free shipping apply).
    """
    now = now or calendar.utc(datetime.now().astimezone())
    tier = program.tier(member.tier_id)
    subtotal = sum(line.amount for line in request.lines)
    discount_bps, price_by = member_discount(tier, plan)
    tier_discount = bps_of(subtotal, discount_bps)
    by_id = {c.coupon_id: c for c in wallet}
    chosen = [coupon_rules.check_usable(by_id.get(cid), cid, member.member_id, now)
              for cid in request.coupon_ids]
    tier_shares, applied = discounts_by_line(request.lines, tier_discount, chosen,
                                             store_id=request.store_id, now=now)
    coupon_shares = coupon_rules.line_totals(applied, len(request.lines))
    coupon_discount = sum(coupon_shares)
    after_discounts = subtotal - tier_discount - coupon_discount
    cap_points = points_for_value(bps_of(after_discounts, program.points.max_redeem_bps),
                                  program)
    redeemable = min(cap_points, member.points_available)
    wanted = request.points_to_redeem
    if wanted > cap_points:
        raise PointsOverCap(f"at most {cap_points} points may offset this order",
                            cap=cap_points, requested=wanted)
    if wanted > member.points_available:
        raise InsufficientPoints(f"the member has {member.points_available} points",
                                 available=member.points_available, requested=wanted)
    value = points_value(wanted, program)
    left = after_discounts - value
    balance_total = member.balance_principal + member.balance_bonus
    usable = min(balance_total, left)
    if request.balance_to_use > left:
        raise BalanceOverPayable(f"only {left} fen are left to pay", payable=left,
                                 requested=request.balance_to_use)
    if request.balance_to_use > balance_total:
        raise InsufficientBalance(f"the member's balance is {balance_total} fen",
                                  available=balance_total, requested=request.balance_to_use)
    cash = left - request.balance_to_use
    paid = cash + request.balance_to_use
    splits = split_lines(request.lines, discount=tier_discount + coupon_discount,
                         points_used=wanted, points_value_fen=value,
                         balance=request.balance_to_use,
                         line_discounts=[t + c for t, c in zip(tier_shares, coupon_shares)])
    applicable = coupon_rules.applicable_coupons(
        [c for c in wallet if c.member_id == member.member_id],
        coupon_lines(request.lines, tier_shares), store_id=request.store_id, now=now,
        tz=program.time_zone)
    return Quote(
        member_id=member.member_id, tier=tier.id, subtotal=subtotal, tier_discount=tier_discount,
        member_price_by=price_by, paid_plan=plan.id if plan is not None else None,
        points_multiplier_pct=points_multiplier_pct(tier, plan),
        coupon_discount=coupon_discount,
        free_shipping=(plan_free_shipping(tier, plan)
                       or any(d.free_shipping for d in applied)),
        amount_after_discounts=after_discounts, points_redeemable=redeemable,
        points_to_redeem=wanted, points_value=value, balance_usable=usable,
        balance_to_use=request.balance_to_use, payable=cash,
        points_to_earn=points_to_earn(paid, tier, program, plan),
        growth_to_earn=growth_to_earn(paid, program),
        lines=tuple(LineQuote(line_id=s.line_id, subtotal=s.subtotal,
                              tier_discount=t, coupon_discount=c,
                              points_used=s.points_used,
                              points_value=s.points_value, balance=s.balance, payable=s.cash)
                    for s, t, c in zip(splits, tier_shares, coupon_shares)),
        applicable_coupons=tuple(applicable),
    )


# ---- holds -------------------------------------------------------------------------------

def hold_id_for(order_id: str) -> str:
    return order_id


def hold_source_key(order_id: str) -> str:
    return f"hold:{order_id}"


def hold_view(hold: Hold, order_id: str, tz: str) -> dict:
    return HoldView(
        hold_id=hold.hold_id, order_id=order_id, member_id=hold.member_id, points=hold.points,
        balance=HoldBalance(principal=hold.principal, bonus=hold.bonus,
                            total=hold.principal + hold.bonus),
        coupon_ids=tuple(c.coupon_id for c in hold.coupons),
        status=hold.status, created_at=calendar.wire(hold.created_at, tz),
        expires_at=calendar.wire(hold.expires_at, tz),
    ).model_dump(mode="json", by_alias=True)


def held_coupon(coupon: Coupon) -> HeldCoupon:
    return HeldCoupon(coupon_id=coupon.coupon_id, template_id=coupon.template_id,
                      shard=coupon.shard)


def place_hold(builder: PostingBuilder, request: HoldRequest, program: Program,
               coupons: dict[str, Coupon] | None = None) -> dict:
    """Reserve points and stored value, and lock the coupons to this order: each must be
    the member's and available now (storage makes the lock conditional, so of two orders
    holding one coupon at once, one wins and the other is 409)."""
    coupons = coupons or {}
    locked = tuple(held_coupon(coupon_rules.check_usable(
        coupons.get(cid), cid, request.member_id, builder.now)) for cid in request.coupon_ids)
    coupon_rules.check_stacking([coupons[c.coupon_id] for c in locked])
    hold = builder.place_hold(
        hold_id_for(request.order_id), points=request.points, balance=request.balance,
        expires_at=builder.now + timedelta(minutes=program.holds.ttl_minutes), coupons=locked)
    builder.result = hold_view(hold, request.order_id, program.time_zone)
    return builder.result


def check_still_held(hold: Hold | None, order_id: str, now: datetime) -> None:
    """Asking again for an order's hold answers `held` only while it still holds funds."""
    if hold is None:
        return  # the guard exists but the hold item does not: nothing more to tell
    if hold.status == "released":
        raise HoldAlreadyReleased(
            f"the hold of order {order_id} was released (cancelled or lapsed); its funds are "
            "back with the member: hold again under a new order id",
            holdStatus=hold.status, closedBy=hold.closed_by)
    if hold.status == "captured":
        raise HoldAlreadyCaptured(f"the hold of order {order_id} was captured by its payment",
                                  holdStatus=hold.status, closedBy=hold.closed_by)
    if calendar.utc(now) > hold.expires_at:
        raise HoldExpired(f"the hold of order {order_id} lapsed at "
                          f"{hold.expires_at.isoformat()}; its funds are being returned",
                          holdStatus="expired")


def same_hold(first: dict, request: HoldRequest) -> bool:
    """Is `request` the order's first hold again (same member, same amounts)?"""
    return (first.get("memberId") == request.member_id
            and first.get("points") == request.points
            and (first.get("balance") or {}).get("total") == request.balance
            and sorted(first.get("couponIds") or ()) == sorted(request.coupon_ids))


# ---- settlement of a paid order ----------------------------------------------------------

class SettledCoupon(BaseModel):
    model_config = ConfigDict(frozen=True)

    coupon_id: str
    template_id: str
    shard: int
    discount: int
    valid_until: datetime

    def held(self) -> HeldCoupon:
        return HeldCoupon(coupon_id=self.coupon_id, template_id=self.template_id,
                          shard=self.shard)


class Settlement(BaseModel):
    """What a paid order moved, line by line; refunds work from this record."""

    model_config = ConfigDict(frozen=True)

    order_id: str
    member_id: str
    store_id: str | None = None
    paid_at: datetime
    tier_id: str
    lot_id: str
    growth_month: str
    points_used: int
    principal_used: int
    bonus_used: int
    takes: tuple[LotTake, ...] = ()
    cash_paid: int
    earned_points: int
    growth: int
    captured_hold: bool
    lines: tuple[LineSplit, ...]
    refund_ids: tuple[str, ...] = ()
    points_returned: int = 0
    balance_returned: int = 0
    bonus_returned: int = 0
    earned_reversed: int = 0
    earned_written_off: int = 0  # recorded as points debt (docs/money.md)
    growth_reversed: int = 0
    gifts: tuple[TierGift, ...] = ()  # upgrade gifts this order earned (pending with it)
    gifts_clawed_back: tuple[str, ...] = ()  # tier ids whose gift a refund took back
    coupons: tuple[SettledCoupon, ...] = ()  # coupons the order used
    coupons_returned: bool = False  # a full refund gave the still-valid ones back
    # The paid plan active at paidAt and what it gave (docs/subscriptions.md): recorded on
    # the term that covered paidAt, in the same posting.
    plan_id: str | None = None
    term_id: str | None = None
    bonus_points: int = 0  # of earned_points, above the tier rate
    plan_discount: int = 0  # fen of member price above the tier's
    plan_coupon_discount: int = 0  # fen the plan's gift-pack coupons gave

    @property
    def balance_used(self) -> int:
        return self.principal_used + self.bonus_used

    def result(self) -> dict:
        return {
            "orderId": self.order_id, "memberId": self.member_id,
            "pointsEarned": self.earned_points, "growthEarned": self.growth,
            "pointsUsed": self.points_used, "balanceUsed": self.balance_used,
            "capturedHold": self.captured_hold, "lotId": self.lot_id,
            "couponIds": [c.coupon_id for c in self.coupons],
            "paidPlan": self.plan_id, "bonusPoints": self.bonus_points,
        }


def order_lot_id(order_id: str) -> str:
    return f"order-{order_id}"


def _open_hold(builder: PostingBuilder, hold_id: str) -> Hold | None:
    try:
        hold = builder.hold(hold_id)
    except HoldNotFound:
        return None
    return hold if hold.status == "held" else None


def check_amounts(event: OrderPaid, program: Program) -> None:
    """The order's amounts add up; anything else is a malformed event."""
    a = event.amounts
    subtotal = sum(line.amount for line in event.lines)
    if a.subtotal != subtotal:
        raise AmountsMismatch(f"subtotal {a.subtotal} is not the lines' {subtotal}")
    due = a.subtotal - a.discount - points_value(a.points_used, program) - a.balance_used
    if due != a.cash_paid:
        raise AmountsMismatch(
            f"subtotal - discount - points value - balance = {due}, not cashPaid {a.cash_paid}")


def settle_coupons(builder: PostingBuilder, event: OrderPaid, program: Program,
                   coupons: dict[str, Coupon], held: tuple[HeldCoupon, ...] | None
                   ) -> tuple[list[int], tuple[SettledCoupon, ...]]:
    """The order's coupons: checked against what the order says they gave, and used.

    `held`: the coupons the order's open hold locked (None without a hold); they are the
    order's already, so their window is not checked again. Without a hold, each must be
    the member's, available and valid when the order was paid. Returns the per-line
    discounts (tier and coupons) for the split.
    """
    a = event.amounts
    if a.coupon_discount > a.discount:
        raise AmountsMismatch("couponDiscount is part of discount: it cannot exceed it")
    order_id = event.order_id
    if held is not None:
        if sorted(c.coupon_id for c in held) != sorted(event.coupon_ids):
            raise HoldMismatch(f"order {order_id} paid with coupons {list(event.coupon_ids)} "
                               f"but its hold locked {[c.coupon_id for c in held]}")
        chosen = [coupons.get(c.coupon_id) for c in held]
        if any(c is None for c in chosen):
            raise AmountsMismatch("a coupon of the hold is gone")
        when = None
    else:
        # Valid when the order was paid (a redelivery days later still counts), and
        # issued by the time it is settled (paidAt may run a little behind our clock).
        chosen = [coupon_rules.check_usable(coupons.get(cid), cid, event.member_id,
                                            event.paid_at, order_id=order_id)
                  for cid in event.coupon_ids]
        for coupon in chosen:
            if (builder.now < coupon.valid_from
                    or calendar.utc(event.paid_at) > coupon.valid_until):
                raise coupon_rules.not_applicable(
                    coupon.coupon_id, "window", f"coupon {coupon.coupon_id} is valid from "
                    f"{calendar.iso(coupon.valid_from)} to {calendar.iso(coupon.valid_until)}")
        when = None
    tier_shares, applied = discounts_by_line(
        event.lines, a.discount - a.coupon_discount, chosen, store_id=event.store_id,
        now=when)
    coupon_shares = coupon_rules.line_totals(applied, len(event.lines))
    if sum(coupon_shares) != a.coupon_discount:
        raise AmountsMismatch(f"the coupons give {sum(coupon_shares)} fen off these lines, "
                              f"not couponDiscount {a.coupon_discount}",
                              couponDiscount=sum(coupon_shares))
    settled = []
    by_id = {d.coupon_id: d for d in applied}
    for coupon in chosen:
        if held is None:
            builder.move_coupon(held_coupon(coupon), "available", "used", order_id=order_id)
        builder.emit("coupon.redeemed", {
            "couponId": coupon.coupon_id, "memberId": event.member_id,
            "templateId": coupon.template_id, "orderId": order_id,
            "discount": by_id[coupon.coupon_id].discount})
        settled.append(SettledCoupon(coupon_id=coupon.coupon_id,
                                     template_id=coupon.template_id, shard=coupon.shard,
                                     discount=by_id[coupon.coupon_id].discount,
                                     valid_until=coupon.valid_until))
    return [t + c for t, c in zip(tier_shares, coupon_shares)], tuple(settled)


def settle_paid(builder: PostingBuilder, event: OrderPaid, program: Program,
                upgrade, coupons: dict[str, Coupon] | None = None,
                plan: PaidPlan | None = None, term_id: str | None = None) -> Settlement:
    """order.paid: capture the hold (or debit directly), award pending points and growth
    dated by the order's paid time, then upgrade at once if rolling growth now qualifies.

    `upgrade(builder, program, gift_pending_until=...)` is the tier rule
    (domain.tiers.upgrade_if_qualified); the gifts of an upgrade this order causes are
    pending with the order's points, and recorded so that its refunds can take them back.
    `plan`: the member's paid plan if it was active at paidAt (`term_id` the term that
    covered it): its points bonus applies, and what it gave is recorded on the settlement.
    """
    check_amounts(event, program)
    a = event.amounts
    hold_id = hold_id_for(event.order_id)
    hold = _open_hold(builder, hold_id)
    captured = False
    held_coupons: tuple[HeldCoupon, ...] | None = None
    if hold is not None:
        if hold.points != a.points_used or hold.principal + hold.bonus != a.balance_used:
            raise HoldMismatch(
                f"order {event.order_id} paid {a.points_used} points and {a.balance_used} fen "
                f"but its hold reserved {hold.points} points and "
                f"{hold.principal + hold.bonus} fen",
                hold_points=hold.points, hold_balance=hold.principal + hold.bonus,
                paid_points=a.points_used, paid_balance=a.balance_used)
        if builder.now > hold.expires_at:
            # The hold lapsed before the sweep came by, but the order did pay: put the
            # funds back and spend them anew, so the ledger shows what happened.
            builder.release_hold(hold_id, reason="hold_expired")
            hold = None
        else:
            held_coupons = hold.coupons
            builder.capture_hold(hold_id)
            captured = True
            principal, bonus, takes = hold.principal, hold.bonus, hold.lots
    if hold is None:
        principal = bonus = 0
        takes: tuple[LotTake, ...] = ()
        if a.balance_used:
            principal, bonus = builder.debit_balance(a.balance_used, reason="order_paid")
        if a.points_used:
            takes = builder.debit_points(a.points_used, reason="order_paid")
    tier = program.tier(builder.member.tier_id)
    paid_fen = a.cash_paid + a.balance_used
    earned = points_to_earn(paid_fen, tier, program, plan)
    bonus_points = earned - points_to_earn(paid_fen, tier, program)
    growth = growth_to_earn(paid_fen, program)
    lot_id = order_lot_id(event.order_id)
    available_at = (calendar.utc(event.paid_at)
                    + timedelta(days=program.points.return_window_days))
    if earned:
        builder.credit_points(earned, lot_id=lot_id, pending=True, reason="order_paid",
                              available_at=available_at)
    month = calendar.month_of(event.paid_at, program.time_zone)
    gifts: tuple[TierGift, ...] = ()
    if growth:
        builder.credit_growth(growth, month=month, reason="order_paid")
        change = upgrade(builder, program, gift_pending_until=available_at)
        gifts = change.gifts if change else ()
    line_discounts, settled_coupons = None, ()
    if event.coupon_ids or a.coupon_discount or (held_coupons or ()):
        line_discounts, settled_coupons = settle_coupons(builder, event, program,
                                                         coupons or {}, held_coupons)
    lines = split_lines(event.lines, discount=a.discount, points_used=a.points_used,
                        points_value_fen=points_value(a.points_used, program),
                        balance=a.balance_used, earned_points=earned, growth=growth,
                        line_discounts=line_discounts)
    settlement = Settlement(
        order_id=event.order_id, member_id=event.member_id, store_id=event.store_id,
        paid_at=calendar.utc(event.paid_at), tier_id=tier.id, lot_id=lot_id,
        growth_month=month, points_used=a.points_used, principal_used=principal,
        bonus_used=bonus, takes=takes, cash_paid=a.cash_paid, earned_points=earned,
        growth=growth, captured_hold=captured, lines=tuple(lines), gifts=gifts,
        coupons=settled_coupons)
    if plan is not None:
        settlement = settlement.model_copy(update=plan_benefits(
            event, tier, plan, settled_coupons, bonus_points) | {"term_id": term_id})
    builder.result = settlement.result()
    return settlement


def plan_benefits(event: OrderPaid, tier: Tier, plan: PaidPlan,
                  settled_coupons: tuple[SettledCoupon, ...], bonus_points: int) -> dict:
    """What the plan gave this order: bonus points above the tier rate; the member price
    above the tier's (the order's non-coupon discount beyond the tier's, at most the plan's
    rate, and only when the plan's rate is the better one); its gift-pack coupons."""
    a = event.amounts
    subtotal = a.subtotal
    plan_discount = 0
    if plan.discount_bps > tier.discount_bps:
        member_price = min(a.discount - a.coupon_discount, bps_of(subtotal, plan.discount_bps))
        plan_discount = max(member_price - bps_of(subtotal, tier.discount_bps), 0)
    templates = {g.template_id for g in plan.monthly_gift.coupons}
    return {"plan_id": plan.id, "bonus_points": bonus_points, "plan_discount": plan_discount,
            "plan_coupon_discount": sum(c.discount for c in settled_coupons
                                        if c.template_id in templates)}


# ---- refunds -----------------------------------------------------------------------------

class RefundPlan(BaseModel):
    """What one refund gives back and takes back, computed cumulatively per line."""

    model_config = ConfigDict(frozen=True)

    points_return: int
    balance_return: int
    earned_reverse: int
    growth_reverse: int
    lines: tuple[LineSplit, ...]  # with refunded_quantity advanced


def plan_refund(settlement: Settlement, refund: OrderRefunded) -> RefundPlan:
    by_id = {line.line_id: line for line in settlement.lines}
    wanted: dict[str, int] = {}
    if refund.lines is None:
        wanted = {line.line_id: line.quantity - line.refunded_quantity
                  for line in settlement.lines}
    else:
        for r in refund.lines:
            if r.line_id not in by_id:
                raise UnknownLine(f"order {settlement.order_id} has no line {r.line_id}")
            line = by_id[r.line_id]
            if r.quantity > line.quantity - line.refunded_quantity:
                raise OverRefund(
                    f"line {r.line_id}: {line.quantity - line.refunded_quantity} of "
                    f"{line.quantity} units are left to refund, not {r.quantity}")
            wanted[r.line_id] = r.quantity
    totals = {"points_used": 0, "balance": 0, "earned_points": 0, "growth": 0}
    new_lines = []
    for line in settlement.lines:
        before = line.refunded_quantity
        after = before + wanted.get(line.line_id, 0)
        for field in totals:
            amount = getattr(line, field)
            totals[field] += (share_through(amount, after, line.quantity)
                              - share_through(amount, before, line.quantity))
        new_lines.append(line.model_copy(update={"refunded_quantity": after}))
    return RefundPlan(points_return=totals["points_used"], balance_return=totals["balance"],
                      earned_reverse=totals["earned_points"], growth_reverse=totals["growth"],
                      lines=tuple(new_lines))


def takes_between(takes: tuple[LotTake, ...], start: int, end: int) -> tuple[LotTake, ...]:
    """The slice [start, end) of the points an order spent, lot by lot, in spend order."""
    out, offset = [], 0
    for take in takes:
        low, high = max(start, offset), min(end, offset + take.amount)
        if high > low:
            out.append(take.model_copy(update={"amount": high - low}))
        offset += take.amount
    return tuple(out)


def apply_refund(builder: PostingBuilder, settlement: Settlement,
                 refund: OrderRefunded) -> Settlement:
    """order.refunded: give back spent stored value and points, take back what was earned.

    Value given back pays the member's debt of its asset first (docs/money.md): bonus
    returned pays bonus debt, points returned pay points debt.
    Earned points (and upgrade gifts, below) that were already spent (policy; nothing ever
    goes negative):
    1. take back what is left of the order's own lot;
    2. the shortfall comes out of the member's spendable points, which include the points
       this same refund just gave back (so the refund's points offset pays first);
    3. whatever still cannot be taken (spent, or held by an open hold) is recorded as
       points debt, which every later points credit pays first.
    Growth is reversed in the month it was earned. An upgrade gift this order earned is
    taken back the same way once its refunds bring rolling growth below that tier's
    threshold. The tier itself is not revoked here: the monthly settlement re-evaluates it.
    """
    plan = plan_refund(settlement, refund)
    # Stored value: the bonus share is cumulative over the order, so a full refund gives
    # back exactly the principal and bonus the order spent.
    balance_through = settlement.balance_returned + plan.balance_return
    bonus_through = (settlement.bonus_used * balance_through // settlement.balance_used
                     if settlement.balance_used else 0)
    bonus = bonus_through - settlement.bonus_returned
    principal = plan.balance_return - bonus
    if principal:
        builder.credit_balance("principal", principal, reason="order_refunded")
    if bonus:
        builder.credit_balance("bonus", bonus, reason="order_refunded")
    if plan.points_return:
        takes = takes_between(settlement.takes, settlement.points_returned,
                              settlement.points_returned + plan.points_return)
        builder.return_points(takes, reason="order_refunded")
    growth = 0
    if plan.growth_reverse:
        # The settlement never lowers a month's growth, so this only guards against data
        # that was corrected by hand.
        have = builder.member.growth_months.get(settlement.growth_month, 0)
        growth = min(plan.growth_reverse, have)
        if growth:
            builder.debit_growth(growth, month=settlement.growth_month, reason="order_refunded")
    earned_short = 0
    if plan.earned_reverse:
        clawed = builder.claw_back_points(settlement.lot_id, plan.earned_reverse,
                                          reason="order_refunded")
        earned_short = plan.earned_reverse - clawed
    gift_points, gift_short, clawed_tiers = 0, 0, []
    for gift in gifts_to_take_back(builder, settlement):
        clawed = builder.claw_back_points(gift.lot_id, gift.points,
                                          reason="upgrade_gift_clawback")
        gift_points += gift.points
        gift_short += gift.points - clawed
        clawed_tiers.append(gift.tier_id)
    written_off = gift_written_off = 0
    shortfall = earned_short + gift_short
    if shortfall:
        takes = builder.debit_points(shortfall, reason="order_refunded_clawback", partial=True)
        owed = shortfall - sum(t.amount for t in takes)
        if owed:
            builder.record_points_debt(owed, reason="order_refunded_written_off",
                                       lot_id=settlement.lot_id)
        written_off = min(owed, earned_short)
        gift_written_off = owed - written_off
    updated = settlement.model_copy(update={
        "lines": plan.lines,
        "refund_ids": (*settlement.refund_ids, refund.refund_id),
        "points_returned": settlement.points_returned + plan.points_return,
        "balance_returned": balance_through,
        "bonus_returned": bonus_through,
        "earned_reversed": settlement.earned_reversed + plan.earned_reverse - written_off,
        "earned_written_off": settlement.earned_written_off + written_off,
        "growth_reversed": settlement.growth_reversed + growth,
        "gifts_clawed_back": (*settlement.gifts_clawed_back, *clawed_tiers),
    })
    returned = return_coupons(builder, updated)
    if returned is not None:
        updated = updated.model_copy(update={"coupons_returned": True})
    builder.result = {
        "orderId": settlement.order_id, "refundId": refund.refund_id,
        "memberId": settlement.member_id,
        "balanceReturned": {"principal": principal, "bonus": bonus,
                            "total": plan.balance_return},
        "pointsReturned": plan.points_return, "earnedPointsReversed": plan.earned_reverse,
        "earnedPointsWrittenOff": written_off, "growthReversed": growth,
        "giftPointsReversed": gift_points, "giftPointsWrittenOff": gift_written_off,
        "pointsDebt": builder.member.points_debt, "bonusDebt": builder.member.bonus_debt,
        "couponsReturned": returned or [],
    }
    return updated


def return_coupons(builder: PostingBuilder, settlement: Settlement) -> list[str] | None:
    """A full refund (every unit of every line refunded) gives back the order's coupons
    that are still valid; an expired one stays used. A partial refund keeps them used: its
    lines' refunds are already net of their coupon shares. None when nothing is due."""
    if settlement.coupons_returned or not settlement.coupons:
        return None
    if any(line.refunded_quantity < line.quantity for line in settlement.lines):
        return None
    returned = []
    for coupon in settlement.coupons:
        if builder.now > coupon.valid_until:
            continue
        builder.move_coupon(coupon.held(), "used", "available", order_id=settlement.order_id)
        builder.emit("coupon.returned", {"couponId": coupon.coupon_id,
                                         "memberId": settlement.member_id,
                                         "templateId": coupon.template_id,
                                         "orderId": settlement.order_id,
                                         "reason": "order_refunded"})
        returned.append(coupon.coupon_id)
    return returned


def gifts_to_take_back(builder: PostingBuilder, settlement: Settlement) -> list[TierGift]:
    """The order's upgrade gifts whose tier its refunds have taken rolling growth below.

    Rolling growth is the member's as of the refund (so growth earned since by other
    orders still counts); an order whose month has left the 12-month window keeps its
    gifts: its growth no longer counts for anything.
    """
    if not settlement.gifts:
        return []
    month = calendar.month_of(builder.effective_at, builder.tz)
    window = calendar.rolling_months(max(month, settlement.growth_month))
    if settlement.growth_month not in window:
        return []
    rolling = sum(builder.member.growth_months.get(m, 0) for m in window)
    return [g for g in settlement.gifts
            if g.tier_id not in settlement.gifts_clawed_back and rolling < g.threshold]


def complete_order(builder: PostingBuilder, settlement: Settlement) -> int:
    """order.completed: the order's pending points (and upgrade gifts) become available."""
    released = 0
    lots = {lot.lot_id: lot for lot in builder.live_lots()}
    for lot_id in (settlement.lot_id, *(g.lot_id for g in settlement.gifts)):
        lot = lots.get(lot_id)
        if lot is not None and lot.pending:
            released += builder.release_pending(lot_id, reason="order_completed")
    builder.result = {"orderId": settlement.order_id, "memberId": settlement.member_id,
                      "pointsReleased": released}
    return released
