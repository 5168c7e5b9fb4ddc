"""The money oracle's model: what one member SHOULD own under the documented policies.

Plain Python, no I/O, written from docs/money.md, docs/checkout.md and docs/topups.md
rather than from the ledger's code: a second, simpler account of every source of value
(top-ups and their bonus, signup and upgrade gifts, earned points, refunds, holds,
expiry, settlement) that the state machine in `money_machine.py` checks the stored
state against after every step.

Only the arithmetic that has its own exhaustive unit tests is borrowed from the domain
(how an order's amounts split over its lines, points and growth per yuan, a paid plan's
calendar terms), so that the
oracle is about *where value goes*, not about rounding.

Extending it: a new capability (check-in, coupons, PLUS, grants, adjustments) subclasses
`MoneyModel`, adds a method per operation that either changes the model or raises
`Refused`, and uses the helpers below (`credit_points`, `credit_bonus`, `take_points`,
`return_points`...) so that debts and expiry follow the same policy everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from membership.domain import calendar
from membership.domain.checkout import (
    OrderLine,
    growth_to_earn,
    points_to_earn,
    points_value,
    share_through,
    split_lines,
)
from membership.domain.program import Program
from membership.domain.subscriptions import (
    BenefitsUsed,
    TermRecord,
    latest_term,
    next_term,
    refund_amount,
)


class Refused(Exception):
    """The system must refuse this operation and change nothing."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@dataclass
class MLot:
    lot_id: str
    expires_at: datetime
    earned_at: datetime
    remaining: int
    pending: bool = False
    available_at: datetime | None = None


@dataclass(frozen=True)
class MTake:
    lot_id: str
    expires_at: datetime
    amount: int


@dataclass
class MHold:
    order_id: str
    points: int
    balance: int
    principal: int
    bonus: int
    takes: tuple[MTake, ...]
    expires_at: datetime
    status: str = "held"  # held | captured | released


@dataclass(frozen=True)
class MGift:
    tier_id: str
    lot_id: str
    points: int
    threshold: int


@dataclass
class MOrder:
    order_id: str
    payload: dict
    splits: list
    takes: tuple[MTake, ...]
    principal_used: int
    bonus_used: int
    earned: int
    growth: int
    month: str
    lot_id: str
    gifts: tuple[MGift, ...] = ()
    refunded: dict[str, int] = field(default_factory=dict)
    points_returned: int = 0
    balance_returned: int = 0
    bonus_returned: int = 0
    gifts_clawed: set[str] = field(default_factory=set)
    refunds: dict[str, object] = field(default_factory=dict)  # refundId -> lines
    bonus: int = 0  # of earned: the paid plan's bonus above the tier rate
    term_id: str | None = None  # the plan term that covered paidAt
    earned_reversed: int = 0  # of earned, taken back by refunds (written off included)

    @property
    def balance_used(self) -> int:
        return self.principal_used + self.bonus_used


@dataclass
class MTopup:
    reference: str
    principal: int
    bonus: int
    refunded: int = 0
    clawed: int = 0
    forgiven: int = 0
    refunds: dict[str, int] = field(default_factory=dict)  # refund reference -> principal


class MoneyModel:
    """One member's assets, moved by the documented rules only."""

    def __init__(self, program: Program, member_id: str, now: datetime) -> None:
        self.program = program
        self.tz = program.time_zone
        self.member_id = member_id
        self.principal = 0
        self.bonus = 0
        self.bonus_debt = 0
        self.points_debt = 0
        self.lots: dict[str, MLot] = {}
        self.growth: dict[str, int] = {}
        self.tier = program.tiers[0].id
        self.tier_since = now
        self.tier_gifts: dict[str, str] = {}
        self.holds: dict[str, MHold] = {}
        self.orders: dict[str, MOrder] = {}
        self.topups: dict[str, MTopup] = {}
        self.settled_period: str | None = None
        self.topup_day: str | None = None
        self.topup_day_amount = 0
        self.birthday: str | None = None
        self.birthday_gift_year: int | None = None
        self.plan_purchases: dict[str, int] = {}  # Idempotency-Key -> price paid
        self.plan_term: TermRecord | None = None  # the latest term bought
        self.plan_terms: list[TermRecord] = []  # every term, refunded ones too
        self.plan_paid: dict[str, tuple[int, int]] = {}  # term -> (principal, bonus) paid
        self.plan_refunds: dict[str, int] = {}  # refund reference -> amount
        # Counted in the plan's usage counter (domain/plan_usage.py): from a run's first
        # term until a refund ends it or the daily run sees it ended.
        self.plan_counted = False
        gift = program.signup_gift.points
        if gift:
            self.credit_points(f"signup-{member_id}", gift, now=now, effective_at=now)

    # ---- what the member owns ----------------------------------------------------------

    @property
    def points_available(self) -> int:
        return sum(lot.remaining for lot in self.lots.values() if not lot.pending)

    @property
    def points_pending(self) -> int:
        return sum(lot.remaining for lot in self.lots.values() if lot.pending)

    def lots_by_expiry(self) -> dict[tuple[str, bool], int]:
        """Remaining points per (expiry, pending): what lots hold, whatever they are named."""
        out: dict[tuple[str, bool], int] = {}
        for lot in self.lots.values():
            if lot.remaining:
                key = (calendar.iso(lot.expires_at), lot.pending)
                out[key] = out.get(key, 0) + lot.remaining
        return out

    def open_holds(self) -> dict[str, tuple[int, int, int]]:
        return {h.order_id: (h.principal, h.bonus, h.points)
                for h in self.holds.values() if h.status == "held"}

    def rolling_growth(self, month: str) -> int:
        return sum(self.growth.get(m, 0) for m in calendar.rolling_months(month))

    def spendable(self, now: datetime) -> list[MLot]:
        lots = [lot for lot in self.lots.values()
                if not lot.pending and lot.remaining and now <= lot.expires_at]
        return sorted(lots, key=lambda lot: (lot.expires_at, lot.earned_at, lot.lot_id))

    # ---- stored value ------------------------------------------------------------------

    def credit_bonus(self, amount: int) -> None:
        """Every bonus credit pays the bonus debt first (docs/money.md)."""
        pay = min(amount, self.bonus_debt)
        self.bonus_debt -= pay
        self.bonus += amount - pay

    def split_debit(self, amount: int) -> tuple[int, int]:
        if amount > self.principal + self.bonus:
            raise Refused("insufficient_balance")
        take_p = min(amount, self.principal)  # the default program spends principal first
        return take_p, amount - take_p

    # ---- points ------------------------------------------------------------------------

    def credit_points(self, lot_id: str, amount: int, *, now: datetime,
                      effective_at: datetime, pending: bool = False,
                      available_at: datetime | None = None,
                      expires_at: datetime | None = None) -> None:
        """A new lot; an available one pays the points debt first."""
        expires = expires_at or calendar.end_of_next_year(effective_at, self.tz)
        if not pending:
            pay = min(amount, self.points_debt)
            self.points_debt -= pay
            amount -= pay
            if amount == 0:
                return
        self.lots[lot_id] = MLot(lot_id=lot_id, expires_at=expires, earned_at=effective_at,
                                 remaining=amount, pending=pending, available_at=available_at)

    def take_points(self, amount: int, now: datetime, *, partial: bool = False
                    ) -> tuple[MTake, ...]:
        """Soonest-expiring spendable lots first."""
        spendable = self.spendable(now)
        if not partial and sum(lot.remaining for lot in spendable) < amount:
            raise Refused("insufficient_points")
        takes, left = [], amount
        for lot in spendable:
            if left == 0:
                break
            take = min(lot.remaining, left)
            left -= take
            lot.remaining -= take
            takes.append(MTake(lot.lot_id, lot.expires_at, take))
        self._drop_used_up()
        return tuple(takes)

    def return_points(self, takes: tuple[MTake, ...], *, now: datetime,
                      effective_at: datetime) -> None:
        """Back to their lots; an expired lot's points expire at once; debt is paid first,
        by the soonest-expiring points."""
        live = sorted((t for t in takes if now <= t.expires_at), key=lambda t: t.expires_at)
        for take in live:
            pay = min(take.amount, self.points_debt)
            self.points_debt -= pay
            rest = take.amount - pay
            if not rest:
                continue
            lot = self.lots.get(take.lot_id)
            if lot is None:
                lot = self.lots[take.lot_id] = MLot(take.lot_id, take.expires_at, effective_at, 0)
            lot.remaining += rest

    def release_pending(self, lot_id: str) -> None:
        lot = self.lots.get(lot_id)
        if lot is None or not lot.pending:
            return
        pay = min(lot.remaining, self.points_debt)
        self.points_debt -= pay
        lot.remaining -= pay
        lot.pending = False
        lot.available_at = None
        self._drop_used_up()

    def claw_back(self, lot_id: str, amount: int) -> int:
        lot = self.lots.get(lot_id)
        if lot is None or not lot.remaining:
            return 0
        take = min(lot.remaining, amount)
        lot.remaining -= take
        self._drop_used_up()
        return take

    def _drop_used_up(self) -> None:
        for lot_id in [k for k, lot in self.lots.items() if not lot.remaining and not lot.pending]:
            del self.lots[lot_id]

    # ---- tiers -------------------------------------------------------------------------

    def tier_index(self, tier_id: str) -> int:
        return [t.id for t in self.program.tiers].index(tier_id)

    def gift_due(self, tier_id: str, month: str) -> bool:
        last = self.tier_gifts.get(tier_id)
        return last is None or calendar.shift_month(last, 12) <= month

    def change_tier(self, target: str, *, now: datetime, source_key: str,
                    effective_at: datetime, gift_pending_until: datetime | None
                    ) -> tuple[MGift, ...]:
        before, after = self.tier_index(self.tier), self.tier_index(target)
        if before == after:
            return ()
        gifts = []
        if after > before:
            month = calendar.month_of(now, self.tz)
            for tier in self.program.tiers[before + 1:after + 1]:
                points = tier.upgrade_gift.points
                if not points or not self.gift_due(tier.id, month):
                    continue
                lot_id = f"upgrade-{tier.id}-{source_key}"
                self.credit_points(lot_id, points, now=now, effective_at=effective_at,
                                   pending=gift_pending_until is not None,
                                   available_at=gift_pending_until)
                self.tier_gifts[tier.id] = month
                gifts.append(MGift(tier.id, lot_id, points, tier.threshold))
        self.tier = target
        self.tier_since = now
        return tuple(gifts)

    def qualified(self, rolling: int) -> str:
        return [t.id for t in self.program.tiers if rolling >= t.threshold][-1]

    # ---- top-ups (docs/topups.md) ------------------------------------------------------

    def top_up(self, reference: str, amount: int, now: datetime) -> None:
        if reference in self.topups:
            return  # the same payment credits once
        rules = self.program.topup
        if amount < rules.min_amount or amount > rules.max_amount:
            raise Refused("topup_limits")
        day = calendar.day_of(now, self.tz)
        today = self.topup_day_amount if self.topup_day == day else 0
        if today + amount > rules.daily_max:
            raise Refused("daily_topup_limit_exceeded")
        reached = [o for o in rules.offers if amount >= o.min_amount]
        bonus = max(reached, key=lambda o: (o.min_amount, o.bonus)).bonus if reached else 0
        self.principal += amount
        if bonus:
            self.credit_bonus(bonus)
        self.topup_day, self.topup_day_amount = day, today + amount
        self.topups[reference] = MTopup(reference, amount, bonus)

    def refund_topup(self, reference: str, refund_reference: str, amount: int | None) -> None:
        topup = self.topups.get(reference)
        if topup is None:  # never credited (e.g. refused while the member was frozen)
            raise Refused("topup_not_found")
        if refund_reference in topup.refunds:
            if amount is not None and amount != topup.refunds[refund_reference]:
                raise Refused("refund_reference_used")
            return
        refundable = topup.principal - topup.refunded
        if refundable == 0:
            raise Refused("topup_already_refunded")
        principal = refundable if amount is None else amount
        if principal > refundable:
            raise Refused("refund_exceeds_topup")
        if self.principal < principal:
            raise Refused("topup_principal_spent")
        after = topup.refunded + principal
        share_after = topup.bonus if after == topup.principal else topup.bonus * after // topup.principal
        share = share_after - topup.clawed - topup.forgiven
        clawed = min(share, self.bonus)
        self.principal -= principal
        self.bonus -= clawed
        # The share that was spent or held is owed back by later bonus credits.
        self.bonus_debt += share - clawed
        topup.refunded = after
        topup.clawed += clawed
        topup.forgiven += share - clawed
        topup.refunds[refund_reference] = principal

    # ---- the paid plan bought from stored value (docs/subscriptions.md) ------------------

    def buy_plan(self, key: str, term: str, now: datetime) -> None:
        """A sink of stored value: the term's price leaves the balance (principal first),
        once per key; the plan extends from its end while active, else starts now."""
        if key in self.plan_purchases:
            return
        plan = self.program.paid_plans[0]
        price = getattr(plan.prices, term)
        take_p, take_b = self.split_debit(price)
        self.principal -= take_p
        self.bonus -= take_b
        self.add_plan_term(key, term, price, now)
        self.plan_paid[key] = (take_p, take_b)
        self.plan_purchases[key] = price

    def add_plan_term(self, term_id: str, term: str, price: int, now: datetime) -> None:
        """A paid term of the plan: it extends the run from its end while active, else
        starts now, and the member is counted in the plan's usage counter."""
        plan = self.program.paid_plans[0]
        span = next_term(plan, term, now=now, tz=self.tz, current=latest_term(self.plan_terms))
        self.plan_term = TermRecord(
            term_id=term_id, plan_id=plan.id, term=term, price=price, paid_at=now,
            starts_at=span.starts_at, ends_at=span.ends_at, anchor=span.anchor,
            months_from_anchor=span.months_from_anchor)
        self.plan_terms.append(self.plan_term)
        self.plan_counted = True

    def plan_ends_at(self, now: datetime) -> datetime | None:
        """The end of the active plan; None once lapsed (the settlement may clear it).
        A refunded term ends when it was refunded."""
        ends = [t.ends_at if t.refunded_at is None else min(t.ends_at, t.refunded_at)
                for t in self.plan_terms]
        end = max(ends, default=None)
        return end if end is not None and now < end else None

    def plan_run_active(self, now: datetime) -> bool:
        """An unrefunded term covers now or is still to come."""
        return any(t.refunded_at is None and now < t.ends_at for t in self.plan_terms)

    def plan_term_at(self, paid_at: datetime) -> TermRecord | None:
        """The term in force when an order was paid (benefits are decided at paidAt)."""
        at = calendar.utc(paid_at)
        for t in self.plan_terms:
            end = t.ends_at if t.refunded_at is None else min(t.ends_at, t.refunded_at)
            if t.starts_at <= at < end:
                return t
        return None

    def bonus_used(self, term_id: str) -> int:
        """Bonus points a term gave on orders, less what order refunds took back."""
        return sum(o.bonus - o.bonus * o.earned_reversed // o.earned
                   for o in self.orders.values() if o.term_id == term_id and o.earned)

    def refund_plan(self, refund_id: str, now: datetime) -> int:
        """An operator's refund of the latest unrefunded term (docs/subscriptions.md): the
        documented amount back to the balance it was paid from (principal first, up to what
        the term took from principal), the term ended at once. Once per reference."""
        if refund_id in self.plan_refunds:
            return self.plan_refunds[refund_id]
        live = [t for t in self.plan_terms if t.refunded_at is None]
        if not live:
            raise Refused("nothing_to_refund")
        term = live[-1]
        plan = self.program.paid_plans[0]
        amount = refund_amount(term, plan, self.program,
                               BenefitsUsed(bonus_points=self.bonus_used(term.term_id)), now)
        paid_p, paid_b = self.plan_paid[term.term_id]
        to_principal = min(amount, paid_p) if paid_b else amount
        self.principal += to_principal
        if amount - to_principal:
            self.credit_bonus(amount - to_principal)
        self.plan_terms = [t if t.term_id != term.term_id
                           else t.model_copy(update={"refunded_at": calendar.utc(now)})
                           for t in self.plan_terms]
        self.plan_refunds[refund_id] = amount
        self.plan_counted = self.plan_run_active(now)  # a refund that ends the run
        return amount

    # ---- holds (docs/checkout.md) ------------------------------------------------------

    def hold(self, order_id: str, points: int, balance: int, now: datetime) -> None:
        held = self.holds.get(order_id)
        if held is not None:
            # Asked again: the same hold while it still holds funds; anything else refused.
            if (held.points, held.balance) != (points, balance):
                raise Refused("hold_mismatch")
            if held.status != "held" or now > held.expires_at:
                raise Refused("hold_closed")
            return
        principal, bonus = self.split_debit(balance) if balance else (0, 0)
        takes: tuple[MTake, ...] = ()
        if points:
            if sum(lot.remaining for lot in self.spendable(now)) < points:
                raise Refused("insufficient_points")
            takes = self.take_points(points, now)
        self.principal -= principal
        self.bonus -= bonus
        self.holds[order_id] = MHold(
            order_id=order_id, points=points, balance=balance, principal=principal,
            bonus=bonus, takes=takes,
            expires_at=now + timedelta(minutes=self.program.holds.ttl_minutes))

    def release(self, order_id: str, now: datetime) -> None:
        hold = self.holds[order_id]
        self.principal += hold.principal
        if hold.bonus:
            self.credit_bonus(hold.bonus)
        if hold.takes:
            self.return_points(hold.takes, now=now, effective_at=now)
        hold.status = "released"

    # ---- order events ------------------------------------------------------------------

    def paid(self, payload: dict, now: datetime) -> None:
        order_id = payload["orderId"]
        if order_id in self.orders:
            if self.orders[order_id].payload != payload:
                raise Refused("payload_mismatch")
            return
        a = payload["amounts"]
        paid_at = datetime.fromisoformat(payload["paidAt"])
        hold = self.holds.get(order_id)
        hold = hold if hold is not None and hold.status == "held" else None
        snapshot = self._snapshot()
        try:
            if hold is not None:
                if (hold.points, hold.balance) != (a["pointsUsed"], a["balanceUsed"]):
                    raise Refused("hold_mismatch")
                if now > hold.expires_at:
                    self.release(order_id, now)
                    hold = None
                else:
                    hold.status = "captured"
                    principal, bonus, takes = hold.principal, hold.bonus, hold.takes
            if hold is None:
                principal, bonus = self.split_debit(a["balanceUsed"]) if a["balanceUsed"] else (0, 0)
                self.principal -= principal
                self.bonus -= bonus
                takes = self.take_points(a["pointsUsed"], now) if a["pointsUsed"] else ()
            # Coupons (a subclass's): None keeps the discount split by line subtotal.
            line_discounts = self.order_coupons(payload, hold, now)
        except Refused:
            self._restore(snapshot)
            raise
        tier = self.program.tier(self.tier)
        paid_fen = a["cashPaid"] + a["balanceUsed"]
        # The paid plan's bonus is decided at paidAt, not when the event is processed.
        term = self.plan_term_at(paid_at)
        plan = self.program.paid_plans[0] if term is not None else None
        earned = points_to_earn(paid_fen, tier, self.program, plan)
        plan_bonus = earned - points_to_earn(paid_fen, tier, self.program)
        growth = growth_to_earn(paid_fen, self.program)
        lot_id = f"order-{order_id}"
        available_at = calendar.utc(paid_at) + timedelta(
            days=self.program.points.return_window_days)
        if earned:
            self.credit_points(lot_id, earned, now=now, effective_at=paid_at, pending=True,
                               available_at=available_at)
        month = calendar.month_of(paid_at, self.tz)
        gifts: tuple[MGift, ...] = ()
        if growth:
            self.growth[month] = self.growth.get(month, 0) + growth
            qualified = self.qualified(self.rolling_growth(calendar.month_of(now, self.tz)))
            if self.tier_index(qualified) > self.tier_index(self.tier):
                gifts = self.change_tier(qualified, now=now, source_key=f"order.paid:{order_id}",
                                         effective_at=paid_at, gift_pending_until=available_at)
        lines = tuple(OrderLine.model_validate(line) for line in payload["lines"])
        splits = split_lines(lines, discount=a["discount"], points_used=a["pointsUsed"],
                             points_value_fen=points_value(a["pointsUsed"], self.program),
                             balance=a["balanceUsed"], earned_points=earned, growth=growth,
                             line_discounts=line_discounts)
        self.orders[order_id] = MOrder(
            order_id=order_id, payload=payload, splits=splits, takes=takes,
            principal_used=principal, bonus_used=bonus, earned=earned, growth=growth,
            month=month, lot_id=lot_id, gifts=gifts, bonus=plan_bonus,
            term_id=term.term_id if term is not None else None)

    def cancelled(self, order_id: str, now: datetime) -> None:
        hold = self.holds.get(order_id)
        if hold is not None and hold.status == "held":
            self.release(order_id, now)

    def completed(self, order_id: str) -> None:
        order = self.orders.get(order_id)
        if order is None:
            raise Refused("order_not_paid_yet")
        for lot_id in (order.lot_id, *(g.lot_id for g in order.gifts)):
            self.release_pending(lot_id)

    def refunded(self, order_id: str, refund_id: str, lines: list[dict] | None,
                 now: datetime) -> None:
        order = self.orders.get(order_id)
        if order is None:
            raise Refused("order_not_paid_yet")
        wanted_key = None if lines is None else sorted((x["lineId"], x["quantity"]) for x in lines)
        if refund_id in order.refunds:
            if order.refunds[refund_id] != wanted_key:
                raise Refused("payload_mismatch")
            return
        by_id = {s.line_id: s for s in order.splits}
        if lines is None:
            wanted = {s.line_id: s.quantity - order.refunded.get(s.line_id, 0)
                      for s in order.splits}
        else:
            wanted = {}
            for line in lines:
                split = by_id.get(line["lineId"])
                if split is None:
                    raise Refused("unknown_line")
                if line["quantity"] > split.quantity - order.refunded.get(split.line_id, 0):
                    raise Refused("over_refund")
                wanted[line["lineId"]] = line["quantity"]
        totals = {"points_used": 0, "balance": 0, "earned_points": 0, "growth": 0}
        for split in order.splits:
            before = order.refunded.get(split.line_id, 0)
            after = before + wanted.get(split.line_id, 0)
            for name in totals:
                amount = getattr(split, name)
                totals[name] += (share_through(amount, after, split.quantity)
                                 - share_through(amount, before, split.quantity))
            order.refunded[split.line_id] = after
        # Stored value back to its buckets; bonus pays the bonus debt first.
        balance_through = order.balance_returned + totals["balance"]
        bonus_through = (order.bonus_used * balance_through // order.balance_used
                         if order.balance_used else 0)
        bonus = bonus_through - order.bonus_returned
        self.principal += totals["balance"] - bonus
        if bonus:
            self.credit_bonus(bonus)
        order.balance_returned, order.bonus_returned = balance_through, bonus_through
        # Spent points back to their lots (or expired at once), paying points debt first.
        if totals["points_used"]:
            start = order.points_returned
            self.return_points(_slice(order.takes, start, start + totals["points_used"]),
                               now=now, effective_at=now)
            order.points_returned += totals["points_used"]
        if totals["growth"]:
            have = self.growth.get(order.month, 0)
            self.growth[order.month] = have - min(totals["growth"], have)
        shortfall = 0
        if totals["earned_points"]:
            order.earned_reversed += totals["earned_points"]
            shortfall += totals["earned_points"] - self.claw_back(order.lot_id,
                                                                  totals["earned_points"])
        month = calendar.month_of(now, self.tz)
        window = calendar.rolling_months(max(month, order.month))
        if order.month in window:
            rolling = sum(self.growth.get(m, 0) for m in window)
            for gift in order.gifts:
                if gift.tier_id not in order.gifts_clawed and rolling < gift.threshold:
                    shortfall += gift.points - self.claw_back(gift.lot_id, gift.points)
                    order.gifts_clawed.add(gift.tier_id)
        if shortfall:
            taken = sum(t.amount for t in self.take_points(shortfall, now, partial=True))
            self.points_debt += shortfall - taken
        order.refunds[refund_id] = wanted_key
        self.order_refunded(order, now)

    # ---- hooks for capabilities that ride on orders (coupons) -------------------------

    def order_coupons(self, payload: dict, captured: MHold | None, now: datetime
                      ) -> list[int] | None:
        """order.paid: use the order's coupons; the per-line discounts, or None."""
        if payload.get("couponIds"):
            raise Refused("coupon_not_applicable")
        return None

    def order_refunded(self, order: MOrder, now: datetime) -> None:
        """After a refund of `order` (a full refund returns its coupons)."""

    # ---- time (docs/checkout.md "sweep", docs/settlement.md) ---------------------------

    def sweep(self, now: datetime) -> None:
        for hold in sorted((h for h in self.holds.values()
                            if h.status == "held" and h.expires_at <= now),
                           key=lambda h: (h.expires_at, h.order_id)):
            self.release(hold.order_id, now)
        for lot in sorted((lot for lot in self.lots.values()
                           if lot.pending and lot.available_at and lot.available_at <= now),
                          key=lambda lot: (lot.available_at, lot.lot_id)):
            self.release_pending(lot.lot_id)

    def settle(self, period: str, now: datetime) -> None:
        """The month that ended last; once per period."""
        if self.settled_period is not None and self.settled_period >= period:
            return
        close = calendar.month_start(calendar.shift_month(period, 1), self.tz)
        rolling = self.rolling_growth(period)
        current = self.tier_index(self.tier)
        qualified = self.tier_index(self.qualified(rolling))
        if qualified >= current:
            target = qualified
        elif self.tier_since >= close:
            target = current  # changed after the period closed: not this period's to judge
        else:
            policy = self.program.downgrade_policy
            target = {"none": current, "one_down": current - 1}.get(policy, qualified)
        available = [lot for lot in self.lots.values() if lot.remaining and not lot.pending]
        expire = bool(available) and min(lot.expires_at for lot in available) < close
        month = calendar.shift_month(period, 1)
        birthday = self.birthday_due(self.program.tiers[target], month)
        if target == current and not expire and not birthday:
            return
        if expire:
            for lot in self.lots.values():
                if lot.remaining and lot.expires_at < close:
                    lot.remaining = 0
            self._drop_used_up()
        source_key = f"settlement:{period}:{self.member_id}"
        self.change_tier(self.program.tiers[target].id, now=now, source_key=source_key,
                         effective_at=now, gift_pending_until=None)
        if birthday:
            self.birthday_gift(month, now, source_key)
        self.settled_period = period

    # ---- the birthday gift (docs/coupons.md) ------------------------------------------

    def set_birthday(self, birthday: str) -> None:
        if self.birthday is not None and self.birthday != birthday:
            raise Refused("birthday_already_set")
        self.birthday = birthday

    def birthday_due(self, tier, month: str) -> bool:
        """In the birthday month's settlement, once a year, to a tier that lists it."""
        pack = self.program.birthday_gift
        return (bool(pack.points or pack.coupons) and self.birthday is not None
                and self.birthday[5:7] == month[5:7]
                and self.birthday_gift_year != int(month[:4])
                and "birthday_gift" in {b.code for b in tier.benefits})

    def birthday_gift(self, month: str, now: datetime, source_key: str) -> None:
        year = int(month[:4])
        points = self.program.birthday_gift.points
        if points:
            self.credit_points(f"birthday-{year}", points, now=now, effective_at=now)
        self.birthday_gift_year = year

    # ---- helpers -----------------------------------------------------------------------

    def _snapshot(self) -> dict:
        import copy

        return copy.deepcopy({k: v for k, v in self.__dict__.items() if k != "program"})

    def _restore(self, snapshot: dict) -> None:
        self.__dict__.update(snapshot)


def _slice(takes: tuple[MTake, ...], start: int, end: int) -> tuple[MTake, ...]:
    out, offset = [], 0
    for take in takes:
        low, high = max(start, offset), min(end, offset + take.amount)
        if high > low:
            out.append(MTake(take.lot_id, take.expires_at, high - low))
        offset += take.amount
    return tuple(out)
