"""The ledger: every movement of stored value, points and growth, as pure rules.

A posting reads a member's state (member item, live points lots, open holds), applies
legs (credit, debit, hold, capture, release, reverse...) and produces a `Posting`: the
new member state, immutable entries, lot and hold changes, and outbound events. Storage
writes a posting as one conditional transaction with a guard keyed by its source key.

Invariants kept by construction here and checked by `reconcile`:
- balance bucket == sum of its entries; points bucket == sum of its entries; the debt
  buckets (`bonus_debt`, points `debt`) too;
- sum of live lots' remaining == points available + pending (held points live in holds);
- growth month == sum of that month's growth entries; nothing is ever negative.

Debt (docs/money.md): what a reversal should take back but cannot, because the value was
spent or sits in a hold, is recorded as debt of that asset. Every later credit of the
asset to the member (value coming back from a hold or a refund, or new value) pays the
debt first; only the rest reaches the member. So a bucket's net value (bucket - debt)
is the same whatever the order of credits and reversals.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from membership.domain import calendar
from membership.domain.members import Member
from membership.domain.program import Program
from membership.errors import Conflict, DomainError, InvalidRequest, NotFound

Asset = Literal["balance", "points", "growth"]
BALANCE_BUCKETS = ("principal", "bonus")
POINTS_BUCKETS = ("available", "pending")
BONUS_DEBT = "bonus_debt"  # balance bucket: bonus owed back (a refunded top-up's spent bonus)
POINTS_DEBT = "debt"  # points bucket: points owed back (written-off earned points, gifts)
# A take of points touches at most this many lots, so that its undo (a release, a lapse,
# the refund of the order that captured it) touches them again and still fits one
# transaction of 100 items: release <= 20 lots + 9 items; refund <= 2 x 20 lots + ~35.
MAX_TAKE_LOTS = 20


class InsufficientBalance(Conflict):
    code = "insufficient_balance"


class InsufficientPoints(Conflict):
    code = "insufficient_points"


class InsufficientGrowth(Conflict):
    code = "insufficient_growth"


class HoldNotFound(NotFound):
    code = "hold_not_found"


class HoldAlreadyCaptured(Conflict):
    code = "hold_already_captured"


class HoldAlreadyReleased(Conflict):
    code = "hold_already_released"


class HoldExpired(Conflict):
    code = "hold_expired"


class EntryAlreadyReversed(Conflict):
    code = "entry_already_reversed"


class EntryNotReversible(InvalidRequest):
    code = "entry_not_reversible"


class LotNotFound(NotFound):
    code = "lot_not_found"


class PointsTooFragmented(Conflict):
    """The points needed sit in more lots of different expiries than one undo can touch."""

    code = "points_too_fragmented"


class PayloadMismatch(Conflict):
    """A source applied before is presented again with another payload: never a replay."""

    code = "payload_mismatch"


class PostingTooLarge(DomainError):
    """More items than one transaction can carry, even after lots are consolidated."""

    code = "posting_too_large"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class LotTake(Frozen):
    lot_id: str
    expires_at: datetime
    amount: int


class Entry(Frozen):
    entry_id: str
    member_id: str
    asset: Asset
    bucket: str = Field(description="principal|bonus, available|pending, or the growth month")
    amount: int = Field(description="signed")
    balance_after: int
    source_type: str
    source_key: str
    reason: str
    actor: str
    created_at: datetime
    effective_at: datetime
    reverses: str | None = None
    hold_id: str | None = None
    lot_id: str | None = None
    lots: tuple[LotTake, ...] = ()


class Lot(Frozen):
    lot_id: str
    member_id: str
    amount: int
    remaining: int
    earned_at: datetime
    available_at: datetime | None = None
    expires_at: datetime
    pending: bool = False
    source_key: str
    version: int = 0

    def spendable(self, now: datetime) -> bool:
        return not self.pending and self.remaining > 0 and now <= self.expires_at


class HeldCoupon(Frozen):
    """A coupon a hold locks (or an order used): enough to move it and count it."""

    coupon_id: str
    template_id: str
    shard: int


class CouponMove(Frozen):
    """A coupon's status change inside a posting (domain/coupons.py; storage makes it a
    conditional update: only from `from_status`, and for an order's coupon only while it is
    that order's)."""

    coupon: HeldCoupon
    from_status: Literal["available", "held", "used"]
    to_status: Literal["available", "held", "used"]
    order_id: str | None = None


class CouponIssue(Frozen):
    """A gift pack's coupons to issue with a posting: storage reads the template's stock
    when it commits, and a template that ran out (or is paused, missing, or at the
    member's limit) is reported in the result without blocking the rest."""

    template_id: str
    quantity: int
    source: str


class Hold(Frozen):
    hold_id: str
    member_id: str
    source_key: str
    status: Literal["held", "captured", "released"] = "held"
    created_at: datetime
    expires_at: datetime
    principal: int = 0
    bonus: int = 0
    points: int = 0
    lots: tuple[LotTake, ...] = ()
    closed_by: str | None = None
    version: int = 0
    coupons: tuple[HeldCoupon, ...] = ()


class OutboundEvent(Frozen):
    detail_type: str
    detail: dict


class LedgerState(Frozen):
    """What a posting reads: one strongly consistent query of the member's partition."""

    member: Member
    lots: tuple[Lot, ...] = ()
    holds: tuple[Hold, ...] = ()


class LotChange(Frozen):
    before: Lot | None  # None: a new lot
    after: Lot | None  # None: the lot is used up and goes away


class HoldChange(Frozen):
    before: Hold | None
    after: Hold


class Posting(Frozen):
    source_key: str
    source_type: str
    member_before: Member
    member: Member
    entries: tuple[Entry, ...]
    lots: tuple[LotChange, ...]
    holds: tuple[HoldChange, ...]
    events: tuple[OutboundEvent, ...]
    extra_guards: tuple[str, ...] = ()
    result: dict = Field(default_factory=dict)
    created_at: datetime
    coupons: tuple[CouponMove, ...] = ()
    coupon_issues: tuple[CouponIssue, ...] = ()
    payload_hash: str | None = None  # kept on the guard: a replay must carry the same payload
    # Points credited as new value, by the program month of the posting's business time:
    # storage adds them to that month's metrics counter in this transaction (breakage).
    points_issued: dict[str, int] = Field(default_factory=dict)


def payload_hash(payload: BaseModel | dict) -> str:
    """A stable digest of what a source asked for: instants in UTC, keys sorted.

    Two deliveries of one source key that differ here are two different requests.
    """

    def plain(value):
        if isinstance(value, datetime):
            return calendar.iso(value)
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    data = payload.model_dump(mode="python") if isinstance(payload, BaseModel) else payload
    text = json.dumps(plain(data), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def entry_sort_id(created_at: datetime, source_key: str, index: int) -> str:
    """Time-ordered and deterministic per source, so entries sort newest first."""
    stamp = calendar.utc(created_at).strftime("%Y%m%dT%H%M%S%f")
    return f"{stamp}-{_short_hash(source_key)}-{index:03d}"


class PostingBuilder:
    """Applies legs to a member's state; `build()` returns the `Posting` to commit."""

    def __init__(self, state: LedgerState, program: Program, *, source_key: str,
                 source_type: str, reason: str, actor: str, now: datetime,
                 effective_at: datetime | None = None) -> None:
        self.program = program
        self.tz = program.time_zone
        self.source_key = source_key
        self.source_type = source_type
        self.reason = reason
        self.actor = actor
        self.now = calendar.utc(now)
        self.effective_at = calendar.utc(effective_at or now)
        self._before = state.member
        self._m: dict = state.member.model_dump()
        self._m["growth_months"] = dict(state.member.growth_months)
        self._m["tier_gifts"] = dict(state.member.tier_gifts)
        self._lots_before = {lot.lot_id: lot for lot in state.lots}
        self._lots = dict(self._lots_before)
        self._holds_before = {h.hold_id: h for h in state.holds}
        self._holds = dict(self._holds_before)
        self._entries: list[Entry] = []
        self._events: list[OutboundEvent] = []
        self._extra_guards: list[str] = []
        self._coupon_moves: dict[str, CouponMove] = {}
        self._coupon_issues: list[CouponIssue] = []
        self._lots_fully_known = True
        self._points_issued: dict[str, int] = {}
        self.result: dict = {}

    # ---- reading the state under construction ----

    @property
    def member(self) -> Member:
        return Member.model_validate(self._m)

    @property
    def member_id(self) -> str:
        return self._m["member_id"]

    def live_lots(self) -> list[Lot]:
        return sorted(self._lots.values(), key=lambda lot: (lot.expires_at, lot.earned_at, lot.lot_id))

    def hold(self, hold_id: str) -> Hold:
        try:
            return self._holds[hold_id]
        except KeyError:
            raise HoldNotFound(f"no open hold {hold_id}") from None

    # ---- entries ----

    def _entry(self, asset: Asset, bucket: str, amount: int, balance_after: int, *,
               reverses: str | None = None, hold_id: str | None = None,
               lot_id: str | None = None, lots: tuple[LotTake, ...] = (),
               reason: str | None = None) -> Entry:
        if amount == 0:
            raise ValueError("an entry moves something")
        if balance_after < 0:
            raise AssertionError("a bucket never goes negative")
        entry = Entry(
            entry_id=entry_sort_id(self.now, self.source_key, len(self._entries)),
            member_id=self.member_id, asset=asset, bucket=bucket, amount=amount,
            balance_after=balance_after, source_type=self.source_type,
            source_key=self.source_key, reason=reason or self.reason, actor=self.actor,
            created_at=self.now, effective_at=self.effective_at, reverses=reverses,
            hold_id=hold_id, lot_id=lot_id, lots=lots,
        )
        self._entries.append(entry)
        return entry

    # ---- stored value ----

    def credit_balance(self, bucket: str, amount: int, *, reason: str | None = None,
                       reverses: str | None = None, hold_id: str | None = None) -> Entry:
        """Credit a bucket; bonus pays the member's bonus debt first. Returns the last entry."""
        _positive(amount)
        key = f"balance_{_balance_bucket(bucket)}"
        entry = None
        if bucket == "bonus" and self._m["bonus_debt"]:
            pay = min(amount, self._m["bonus_debt"])
            self._m["bonus_debt"] -= pay
            entry = self._entry("balance", BONUS_DEBT, -pay, self._m["bonus_debt"],
                                reason=reason, reverses=reverses, hold_id=hold_id)
            amount -= pay
        if amount:
            self._m[key] += amount
            entry = self._entry("balance", bucket, amount, self._m[key], reason=reason,
                                reverses=reverses, hold_id=hold_id)
        return entry

    def record_bonus_debt(self, amount: int, *, reason: str | None = None) -> Entry:
        """Bonus that should come back but was spent or is held: owed, never negative."""
        _positive(amount)
        self._m["bonus_debt"] += amount
        return self._entry("balance", BONUS_DEBT, amount, self._m["bonus_debt"], reason=reason)

    def split_debit(self, amount: int) -> tuple[int, int]:
        """How a debit splits into (principal, bonus) under the program's spend order."""
        principal, bonus = self._m["balance_principal"], self._m["balance_bonus"]
        if amount > principal + bonus:
            raise InsufficientBalance(
                f"balance {principal + bonus} does not cover {amount}",
                available=principal + bonus, requested=amount)
        order = self.program.topup.spend_order
        if order == "principal_first":
            take_p = min(amount, principal)
            return take_p, amount - take_p
        if order == "bonus_first":
            take_b = min(amount, bonus)
            return amount - take_b, take_b
        # proportional: the bonus share is rounded down, so principal never runs short.
        take_b = amount * bonus // (principal + bonus) if principal + bonus else 0
        return amount - take_b, take_b

    def debit_balance(self, amount: int, *, reason: str | None = None,
                      hold_id: str | None = None) -> tuple[int, int]:
        _positive(amount)
        take_p, take_b = self.split_debit(amount)
        self.debit_buckets(take_p, take_b, reason=reason, hold_id=hold_id)
        return take_p, take_b

    def debit_buckets(self, principal: int = 0, bonus: int = 0, *, reason: str | None = None,
                      hold_id: str | None = None, reverses: str | None = None) -> None:
        for bucket, amount in (("principal", principal), ("bonus", bonus)):
            if amount < 0:
                raise ValueError("bucket debits are positive amounts")
            if amount == 0:
                continue
            key = f"balance_{bucket}"
            if self._m[key] < amount:
                raise InsufficientBalance(
                    f"{bucket} balance {self._m[key]} does not cover {amount}",
                    bucket=bucket, available=self._m[key], requested=amount)
            self._m[key] -= amount
            self._entry("balance", bucket, -amount, self._m[key], reason=reason,
                        hold_id=hold_id, reverses=reverses)

    # ---- points ----

    def _set_points(self, bucket: str, delta: int) -> int:
        key = f"points_{bucket}"
        if self._m[key] + delta < 0:
            raise InsufficientPoints(f"{bucket} points {self._m[key]} do not cover {-delta}")
        self._m[key] += delta
        return self._m[key]

    def credit_points(self, amount: int, *, lot_id: str, pending: bool = False,
                      expires_at: datetime | None = None, available_at: datetime | None = None,
                      reason: str | None = None, reverses: str | None = None,
                      hold_id: str | None = None) -> Lot:
        """A new lot; its expiry follows the program's rule from the business time.

        Every credit is new value issued (docs/metrics.md, breakage), counted whole even
        when part of it pays a points debt: points given back to their lots
        (`return_points`) or released from pending are not issued again.
        """
        _positive(amount)
        month = calendar.month_of(self.effective_at, self.tz)
        self._points_issued[month] = self._points_issued.get(month, 0) + amount
        expires = calendar.utc(expires_at) if expires_at else calendar.end_of_next_year(
            self.effective_at, self.tz)
        if not pending and self._m["points_debt"]:
            pay = min(amount, self._m["points_debt"])
            self._pay_points_debt((LotTake(lot_id=lot_id, expires_at=expires, amount=pay),),
                                  reason=reason, reverses=reverses, hold_id=hold_id)
            amount -= pay
            if amount == 0:
                return Lot(lot_id=lot_id, member_id=self.member_id, amount=0, remaining=0,
                           earned_at=self.effective_at, expires_at=expires,
                           source_key=self.source_key)
        if lot_id in self._lots or lot_id in self._lots_before:
            existing = self._lots.get(lot_id) or self._lots_before[lot_id]
            if existing.pending != pending or existing.expires_at != expires:
                raise Conflict(f"lot {lot_id} exists with other terms")
            lot = existing.model_copy(update={"remaining": existing.remaining + amount,
                                              "amount": existing.amount + amount})
        else:
            lot = Lot(lot_id=lot_id, member_id=self.member_id, amount=amount, remaining=amount,
                      earned_at=self.effective_at, available_at=available_at,
                      expires_at=expires, pending=pending, source_key=self.source_key)
        self._lots[lot_id] = lot
        bucket = "pending" if pending else "available"
        after = self._set_points(bucket, amount)
        self._entry("points", bucket, amount, after, lot_id=lot_id, reason=reason,
                    reverses=reverses, hold_id=hold_id,
                    lots=(LotTake(lot_id=lot_id, expires_at=expires, amount=amount),))
        return lot

    def _spendable(self) -> list[Lot]:
        return [lot for lot in self.live_lots() if lot.spendable(self.now)]

    def spendable_points(self) -> int:
        return sum(lot.remaining for lot in self._spendable())

    def take_points(self, amount: int, *, partial: bool = False) -> tuple[LotTake, ...]:
        """Soonest-expiring spendable lots first; pending and expired lots are never spent.

        A take touches at most MAX_TAKE_LOTS lots, so that its undo fits one transaction:
        when more would be needed, spendable lots of the same expiry are merged first
        (value-neutral). `partial` takes what fits (clawbacks: the rest becomes debt);
        otherwise a take that still does not fit is refused.
        """
        _positive(amount)
        spendable = self._spendable()
        if not partial and sum(lot.remaining for lot in spendable) < amount:
            raise InsufficientPoints(
                f"spendable points {sum(lot.remaining for lot in spendable)} do not cover "
                f"{amount}", requested=amount)
        if _lots_needed(spendable, amount) > MAX_TAKE_LOTS:
            self._merge_spendable()
            spendable = self._spendable()
        if not partial and _lots_needed(spendable, amount) > MAX_TAKE_LOTS:
            most = sum(lot.remaining for lot in spendable[:MAX_TAKE_LOTS])
            raise PointsTooFragmented(
                f"these points sit in more than {MAX_TAKE_LOTS} lots of different expiries; "
                f"at most {most} can be taken at once", requested=amount, maximum=most)
        takes, left = [], amount
        for lot in spendable[:MAX_TAKE_LOTS]:
            if left == 0:
                break
            take = min(lot.remaining, left)
            left -= take
            self._lots[lot.lot_id] = lot.model_copy(update={"remaining": lot.remaining - take})
            takes.append(LotTake(lot_id=lot.lot_id, expires_at=lot.expires_at, amount=take))
        return tuple(takes)

    def _merge_spendable(self) -> None:
        """Merge spendable lots that share an expiry into the first of them (no entry)."""
        by_expiry: dict[datetime, list[Lot]] = {}
        for lot in self._spendable():
            by_expiry.setdefault(lot.expires_at, []).append(lot)
        for lots in by_expiry.values():
            keep, rest = lots[0], lots[1:]
            if not rest:
                continue
            moved = sum(lot.remaining for lot in rest)
            self._lots[keep.lot_id] = keep.model_copy(update={
                "remaining": keep.remaining + moved, "amount": keep.amount + moved})
            for lot in rest:
                self._lots[lot.lot_id] = lot.model_copy(update={"remaining": 0})

    def debit_points(self, amount: int, *, reason: str | None = None,
                     hold_id: str | None = None, partial: bool = False) -> tuple[LotTake, ...]:
        """Spend points from lots; `partial` spends what one take can reach (may be none)."""
        takes = self.take_points(amount, partial=partial)
        taken = sum(t.amount for t in takes)
        if taken:
            after = self._set_points("available", -taken)
            self._entry("points", "available", -taken, after, reason=reason, hold_id=hold_id,
                        lots=takes)
        return takes

    def record_points_debt(self, amount: int, *, reason: str | None = None,
                           lot_id: str | None = None) -> Entry:
        """Points that should come back but were spent or are held: owed, never negative."""
        _positive(amount)
        self._m["points_debt"] += amount
        return self._entry("points", POINTS_DEBT, amount, self._m["points_debt"],
                           reason=reason, lot_id=lot_id)

    def _pay_points_debt(self, takes: tuple[LotTake, ...], *, reason: str | None,
                         reverses: str | None = None, hold_id: str | None = None) -> None:
        paid = sum(t.amount for t in takes)
        self._m["points_debt"] -= paid
        if self._m["points_debt"] < 0:
            raise AssertionError("a debt is never overpaid")
        self._entry("points", POINTS_DEBT, -paid, self._m["points_debt"], reason=reason,
                    reverses=reverses, hold_id=hold_id, lots=takes)

    def _split_for_debt(self, takes: list[LotTake]) -> tuple[tuple[LotTake, ...],
                                                           tuple[LotTake, ...]]:
        """(what pays the points debt, what goes to the lots): soonest-expiring pays first."""
        left = self._m["points_debt"]
        paying, rest = [], []
        for take in sorted(takes, key=lambda t: t.expires_at):
            pay = min(left, take.amount)
            left -= pay
            if pay:
                paying.append(take.model_copy(update={"amount": pay}))
            if take.amount - pay:
                rest.append(take.model_copy(update={"amount": take.amount - pay}))
        return tuple(paying), tuple(rest)

    def return_points(self, takes: tuple[LotTake, ...], *, reason: str | None = None,
                      reverses: str | None = None, hold_id: str | None = None) -> None:
        """Points go back to the lots they came from, keeping each lot's expiry.

        Points whose lot has expired meanwhile come back and expire at once (they are
        never offered again, nor do they pay debt); the rest pays the points debt first.
        """
        expired = tuple(t for t in takes if self.now > t.expires_at)
        live = [t for t in takes if self.now <= t.expires_at]
        if expired:
            amount = sum(t.amount for t in expired)
            after = self._set_points("available", amount)
            self._entry("points", "available", amount, after, reason=reason,
                        reverses=reverses, hold_id=hold_id, lots=expired)
            after = self._set_points("available", -amount)
            self._entry("points", "available", -amount, after, reason="expired",
                        hold_id=hold_id, lots=expired)
            self.emit("points.expired", {
                "memberId": self.member_id, "points": amount,
                "lots": [{"lotId": t.lot_id, "points": t.amount,
                          "expiredAt": calendar.wire(t.expires_at, self.tz)} for t in expired],
                "period": calendar.month_of(self.now, self.tz),
                "occurredAt": calendar.wire(self.now, self.tz),
            })
        paying, rest = self._split_for_debt(live)
        if paying:
            self._pay_points_debt(paying, reason=reason, reverses=reverses, hold_id=hold_id)
        for take in rest:
            lot = self._lots.get(take.lot_id)
            if lot is None:
                # The lot was used up and removed: it comes back with its own terms.
                lot = Lot(lot_id=take.lot_id, member_id=self.member_id, amount=take.amount,
                          remaining=0, earned_at=self.effective_at, expires_at=take.expires_at,
                          source_key=self.source_key)
            self._lots[take.lot_id] = lot.model_copy(
                update={"remaining": lot.remaining + take.amount})
        total = sum(t.amount for t in rest)
        if total:
            after = self._set_points("available", total)
            self._entry("points", "available", total, after, reason=reason, reverses=reverses,
                        hold_id=hold_id, lots=rest)

    def release_pending(self, lot_id: str, *, reason: str | None = None) -> int:
        """Pending points of one lot become available (order completed, window passed)."""
        lot = self._lots.get(lot_id)
        if lot is None:
            raise LotNotFound(f"no live lot {lot_id}")
        if not lot.pending:
            return 0
        pay = min(lot.remaining, self._m["points_debt"])
        self._lots[lot_id] = lot.model_copy(update={
            "pending": False, "available_at": None, "remaining": lot.remaining - pay})
        if lot.remaining:
            pend = self._set_points("pending", -lot.remaining)
            self._entry("points", "pending", -lot.remaining, pend, lot_id=lot_id, reason=reason)
            if pay:
                self._pay_points_debt(
                    (LotTake(lot_id=lot_id, expires_at=lot.expires_at, amount=pay),),
                    reason=reason)
            if lot.remaining - pay:
                avail = self._set_points("available", lot.remaining - pay)
                self._entry("points", "available", lot.remaining - pay, avail, lot_id=lot_id,
                            reason=reason)
        return lot.remaining

    def claw_back_points(self, lot_id: str, amount: int, *, reason: str | None = None,
                         reverses: str | None = None) -> int:
        """Take back up to `amount` of what one lot earned; returns what was taken."""
        lot = self._lots.get(lot_id)
        if lot is None or lot.remaining == 0 or amount <= 0:
            return 0
        take = min(lot.remaining, amount)
        self._lots[lot_id] = lot.model_copy(update={"remaining": lot.remaining - take})
        bucket = "pending" if lot.pending else "available"
        after = self._set_points(bucket, -take)
        self._entry("points", bucket, -take, after, lot_id=lot_id, reason=reason,
                    reverses=reverses,
                    lots=(LotTake(lot_id=lot_id, expires_at=lot.expires_at, amount=take),))
        return take

    def expire_lots(self, as_of: datetime, *, reason: str = "expired") -> list[LotTake]:
        """Every live lot whose expiry is before `as_of` loses what remains."""
        expired = []
        for lot in self.live_lots():
            if lot.remaining and lot.expires_at < as_of:
                take = LotTake(lot_id=lot.lot_id, expires_at=lot.expires_at, amount=lot.remaining)
                bucket = "pending" if lot.pending else "available"
                after = self._set_points(bucket, -lot.remaining)
                self._lots[lot.lot_id] = lot.model_copy(update={"remaining": 0})
                self._entry("points", bucket, -take.amount, after, lot_id=lot.lot_id,
                            reason=reason, lots=(take,))
                expired.append(take)
        return expired

    def forfeit_lot(self, lot_id: str, *, reason: str) -> int:
        """One live lot loses what remains, whatever its expiry (account closure in
        batches, domain/privacy.py); returns the points forfeited."""
        lot = self._lots.get(lot_id)
        if lot is None or not lot.remaining:
            return 0
        take = LotTake(lot_id=lot.lot_id, expires_at=lot.expires_at, amount=lot.remaining)
        bucket = "pending" if lot.pending else "available"
        after = self._set_points(bucket, -lot.remaining)
        self._lots[lot.lot_id] = lot.model_copy(update={"remaining": 0})
        self._entry("points", bucket, -take.amount, after, lot_id=lot.lot_id, reason=reason,
                    lots=(take,))
        return take.amount

    def consolidate_lots(self, limit: int = 90) -> int:
        """Merge available lots that share an expiry into one; returns how many merged away.

        Value-neutral (no entry moves anything), so a later debit touches fewer items.
        At most `limit` lots go per call, so the merge itself fits one transaction.
        """
        by_expiry: dict[datetime, list[Lot]] = {}
        for lot in self.live_lots():
            if lot.remaining and not lot.pending:
                by_expiry.setdefault(lot.expires_at, []).append(lot)
        merged, budget = 0, limit  # every touched lot is one transaction item
        for lots in by_expiry.values():
            if len(lots) < 2 or budget < 2:
                continue
            keep, rest = lots[0], lots[1:budget]
            budget -= 1 + len(rest)
            self._lots[keep.lot_id] = keep.model_copy(update={
                "remaining": keep.remaining + sum(lot.remaining for lot in rest),
                "amount": keep.amount + sum(lot.remaining for lot in rest)})
            for lot in rest:
                self._lots[lot.lot_id] = lot.model_copy(update={"remaining": 0})
            merged += len(rest)
        return merged

    # ---- growth ----

    def credit_growth(self, amount: int, *, month: str | None = None,
                      reason: str | None = None, reverses: str | None = None) -> Entry:
        _positive(amount)
        month = month or calendar.month_of(self.effective_at, self.tz)
        months = self._m["growth_months"]
        months[month] = months.get(month, 0) + amount
        return self._entry("growth", month, amount, months[month], reason=reason,
                           reverses=reverses)

    def debit_growth(self, amount: int, *, month: str, reason: str | None = None,
                     reverses: str | None = None) -> Entry:
        _positive(amount)
        months = self._m["growth_months"]
        if months.get(month, 0) < amount:
            raise InsufficientGrowth(f"growth of {month} is {months.get(month, 0)}")
        months[month] -= amount
        return self._entry("growth", month, -amount, months[month], reason=reason,
                           reverses=reverses)

    # ---- holds ----

    def place_hold(self, hold_id: str, *, points: int = 0, balance: int = 0,
                   expires_at: datetime, coupons: tuple[HeldCoupon, ...] = ()) -> Hold:
        """Reserve now: the funds leave the member's buckets into the hold, and its coupons
        are locked to the hold's order."""
        if hold_id in self._holds:
            raise Conflict(f"hold {hold_id} is already open")
        if points < 0 or balance < 0 or (points + balance == 0 and not coupons):
            raise InvalidRequest("a hold reserves a positive amount or a coupon")
        for coupon in coupons:
            self.move_coupon(coupon, "available", "held", order_id=hold_id)
        takes: tuple[LotTake, ...] = ()
        principal = bonus = 0
        if balance:
            principal, bonus = self.debit_balance(balance, reason="hold", hold_id=hold_id)
        if points:
            takes = self.debit_points(points, reason="hold", hold_id=hold_id)
        hold = Hold(hold_id=hold_id, member_id=self.member_id, source_key=self.source_key,
                    created_at=self.now, expires_at=calendar.utc(expires_at),
                    principal=principal, bonus=bonus, points=points, lots=takes,
                    coupons=tuple(coupons))
        self._holds[hold_id] = hold
        return hold

    def _open_hold(self, hold_id: str) -> Hold:
        hold = self.hold(hold_id)
        if hold.status == "captured":
            raise HoldAlreadyCaptured(f"hold {hold_id} was captured")
        if hold.status == "released":
            raise HoldAlreadyReleased(f"hold {hold_id} was released")
        return hold

    def capture_hold(self, hold_id: str) -> Hold:
        """The reserved funds are spent for good; a hold past its expiry cannot be."""
        hold = self._open_hold(hold_id)
        if self.now > hold.expires_at:
            raise HoldExpired(f"hold {hold_id} expired at {hold.expires_at.isoformat()}")
        for coupon in hold.coupons:
            self.move_coupon(coupon, "held", "used", order_id=hold_id)
        closed = hold.model_copy(update={"status": "captured", "closed_by": self.source_key})
        self._holds[hold_id] = closed
        return closed

    def release_hold(self, hold_id: str, *, reason: str = "hold_released") -> Hold:
        """Reserved funds go back to the buckets and lots they came from."""
        hold = self._open_hold(hold_id)
        if hold.principal or hold.bonus:
            for bucket, amount in (("principal", hold.principal), ("bonus", hold.bonus)):
                if amount:
                    self.credit_balance(bucket, amount, reason=reason, hold_id=hold_id)
        if hold.points:
            self.return_points(hold.lots, reason=reason, hold_id=hold_id)
        for coupon in hold.coupons:
            self.move_coupon(coupon, "held", "available", order_id=hold_id)
            self.emit("coupon.returned", {"couponId": coupon.coupon_id,
                                          "memberId": self.member_id,
                                          "templateId": coupon.template_id,
                                          "orderId": hold_id, "reason": reason})
        closed = hold.model_copy(update={"status": "released", "closed_by": self.source_key})
        self._holds[hold_id] = closed
        return closed

    # ---- coupons ----

    def move_coupon(self, coupon: HeldCoupon, from_status: str, to_status: str, *,
                    order_id: str | None) -> None:
        """One status change per coupon per posting: a second move of the same coupon
        (a lapsed hold released, then the coupon used by the order that paid anyway)
        joins the first, so storage writes the coupon once."""
        first = self._coupon_moves.get(coupon.coupon_id)
        if first is not None:
            if first.to_status != from_status:
                raise AssertionError(f"coupon {coupon.coupon_id} moves from "
                                     f"{first.to_status}, not {from_status}")
            from_status = first.from_status
        if from_status == to_status:
            self._coupon_moves.pop(coupon.coupon_id, None)
            return
        self._coupon_moves[coupon.coupon_id] = CouponMove(
            coupon=coupon, from_status=from_status, to_status=to_status, order_id=order_id)

    def issue_coupons(self, template_id: str, quantity: int, *, source: str) -> None:
        """A gift pack's coupons, issued in this posting's transaction (see CouponIssue)."""
        if quantity > 0:
            self._coupon_issues.append(CouponIssue(template_id=template_id, quantity=quantity,
                                                   source=source))

    def coupon_moves(self) -> tuple[CouponMove, ...]:
        return tuple(self._coupon_moves.values())

    # ---- reversal ----

    def reverse(self, entry: Entry, *, reason: str = "reversal") -> None:
        """A new entry (or entries) undoing `entry`, pointing at it; at most once per entry."""
        if entry.member_id != self.member_id:
            raise EntryNotReversible("entry belongs to another member")
        if entry.reverses is not None:
            raise EntryNotReversible("a reversal is not itself reversed; post anew")
        if entry.bucket in (BONUS_DEBT, POINTS_DEBT):
            raise EntryNotReversible("a debt is paid by later credits, not reversed")
        self._extra_guards.append(f"reversal:{entry.entry_id}")
        ref = entry.entry_id
        if entry.asset == "balance":
            if entry.amount > 0:
                self.debit_buckets(**{entry.bucket: entry.amount}, reason=reason, reverses=ref)
            else:
                self.credit_balance(entry.bucket, -entry.amount, reason=reason, reverses=ref)
        elif entry.asset == "growth":
            if entry.amount > 0:
                self.debit_growth(entry.amount, month=entry.bucket, reason=reason, reverses=ref)
            else:
                self.credit_growth(-entry.amount, month=entry.bucket, reason=reason,
                                   reverses=ref)
        elif entry.amount > 0:
            if entry.lot_id is None:
                raise EntryNotReversible("a points credit without its lot")
            lot = self._lots.get(entry.lot_id)
            if lot is None or lot.remaining < entry.amount:
                raise InsufficientPoints("the points of that credit were already spent")
            self.claw_back_points(entry.lot_id, entry.amount, reason=reason, reverses=ref)
        else:
            if entry.bucket != "available" or not entry.lots:
                raise EntryNotReversible("only spent points can be given back")
            self.return_points(entry.lots, reason=reason, reverses=ref)

    # ---- events and result ----

    def emit(self, detail_type: str, detail: dict) -> None:
        self._events.append(OutboundEvent(detail_type=detail_type, detail=detail))

    def set(self, **changes: object) -> None:
        """Non-ledger member fields a capability owns (tier, counters, paid plan)."""
        forbidden = {k for k in changes
                     if k.startswith(("balance_", "points_", "growth_")) or k == "bonus_debt"}
        if forbidden or "version" in changes or "member_id" in changes:
            raise ValueError(f"ledger fields move only through entries: {sorted(forbidden)}")
        self._m.update(changes)

    def build(self) -> Posting:
        self._refresh_next_expiry()
        self._m["version"] = self._before.version + 1
        self._m["updated_at"] = self.now
        member = Member.model_validate(self._m)
        for key in ("balance_principal", "balance_bonus", "points_available", "points_pending",
                    "points_debt", "bonus_debt"):
            if getattr(member, key) < 0:
                raise AssertionError(f"{key} went negative")
        lot_changes = []
        for lot_id in sorted(set(self._lots_before) | set(self._lots)):
            before, after = self._lots_before.get(lot_id), self._lots.get(lot_id)
            if before == after:
                continue
            if after is not None and after.remaining == 0 and not after.pending:
                after = None  # used-up lots leave the live set; entries keep their history
            elif after is not None:
                after = after.model_copy(update={"version": (before.version + 1) if before else 0})
            if before is None and after is None:
                continue
            lot_changes.append(LotChange(before=before, after=after))
        hold_changes = [
            HoldChange(before=self._holds_before.get(h), after=self._holds[h].model_copy(
                update={"version": self._holds_before[h].version + 1}
                if h in self._holds_before else {}))
            for h in sorted(self._holds)
            if self._holds_before.get(h) != self._holds[h]
        ]
        return Posting(
            source_key=self.source_key, source_type=self.source_type,
            member_before=self._before, member=member, entries=tuple(self._entries),
            lots=tuple(lot_changes), holds=tuple(hold_changes), events=tuple(self._events),
            extra_guards=tuple(self._extra_guards), result=self.result, created_at=self.now,
            coupons=self.coupon_moves(), coupon_issues=tuple(self._coupon_issues),
            points_issued=dict(self._points_issued),
        )

    def _refresh_next_expiry(self) -> None:
        """Soonest expiry among available lots, and how many points expire then."""
        upcoming = [lot for lot in self._lots.values() if lot.remaining and not lot.pending]
        if not upcoming:
            self._m["points_next_expiry_at"], self._m["points_next_expiry_amount"] = None, 0
            return
        soonest = min(lot.expires_at for lot in upcoming)
        self._m["points_next_expiry_at"] = soonest
        self._m["points_next_expiry_amount"] = sum(
            lot.remaining for lot in upcoming if lot.expires_at == soonest)


def _lots_needed(lots: list[Lot], amount: int) -> int:
    """How many of `lots`, in order, a take of `amount` touches."""
    left, count = amount, 0
    for lot in lots:
        if left <= 0:
            break
        left -= lot.remaining
        count += 1
    return count


def _positive(amount: int) -> None:
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise InvalidRequest("amounts are positive integers")


def _balance_bucket(bucket: str) -> str:
    if bucket not in BALANCE_BUCKETS:
        raise ValueError(f"unknown balance bucket {bucket}")
    return bucket


# ---- reconciliation -------------------------------------------------------------------

class Breach(Frozen):
    check: str
    expected: int
    actual: int


def reconcile(member: Member, entries: list[Entry], lots: list[Lot],
              holds: list[Hold] = ()) -> list[Breach]:
    """Every way the member item, its entries and its lots can disagree, or go negative."""
    breaches: list[Breach] = []

    def check(name: str, expected: int, actual: int) -> None:
        if expected != actual:
            breaches.append(Breach(check=name, expected=expected, actual=actual))

    def entry_sum(asset: str, bucket: str) -> int:
        return sum(e.amount for e in entries if e.asset == asset and e.bucket == bucket)

    check("balance.principal", entry_sum("balance", "principal"), member.balance_principal)
    check("balance.bonus", entry_sum("balance", "bonus"), member.balance_bonus)
    check("points.available", entry_sum("points", "available"), member.points_available)
    check("points.pending", entry_sum("points", "pending"), member.points_pending)
    check("points.debt", entry_sum("points", POINTS_DEBT), member.points_debt)
    check("balance.bonus_debt", entry_sum("balance", BONUS_DEBT), member.bonus_debt)
    check("lots.remaining", member.points_available + member.points_pending,
          sum(lot.remaining for lot in lots))
    check("lots.pending", member.points_pending,
          sum(lot.remaining for lot in lots if lot.pending))
    months = {e.bucket for e in entries if e.asset == "growth"} | set(member.growth_months)
    for month in sorted(months):
        check(f"growth.{month}", entry_sum("growth", month), member.growth_months.get(month, 0))
    open_holds = [h for h in holds if h.status == "held"]
    for h in open_holds:
        check(f"hold.{h.hold_id}.points", h.points, sum(t.amount for t in h.lots))
    for name, value in (("balance.principal", member.balance_principal),
                        ("balance.bonus", member.balance_bonus),
                        ("points.available", member.points_available),
                        ("points.pending", member.points_pending),
                        ("points.debt", member.points_debt),
                        ("balance.bonus_debt", member.bonus_debt),
                        *((f"growth.{m}", v) for m, v in member.growth_months.items()),
                        *((f"lot.{lot.lot_id}", lot.remaining) for lot in lots)):
        if value < 0:
            breaches.append(Breach(check=f"{name}.non_negative", expected=0, actual=value))
    return breaches
