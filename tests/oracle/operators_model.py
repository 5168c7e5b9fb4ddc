"""The money oracle's model of what operators do to a member (docs/operations.md).

Written from the operators' guide, not from the code: adjustments of points, growth and
bonus by reason code, idempotent by `adjustmentId`; bulk grants of points, once per
(grant, member) whatever the redelivery; and the freeze, which stops spending and not
earning. Every credit goes through `MoneyModel`'s helpers, so debts and expiry follow
the same policy as every other source of value.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from money_model import MoneyModel, Refused

from membership.domain import calendar


@dataclass
class MAdjustment:
    body: tuple  # what makes a retry the same request: (asset, amount, reason code, note)


@dataclass
class MGrant:
    body: tuple  # (points, reason code, member ids, tag)
    points: int
    includes_member: bool
    credited: bool = False
    tag: str | None = None
    expanded: bool = False  # a tag grant: its segment has been read (and frozen)


class OperatorsModel(MoneyModel):
    def __init__(self, program, member_id: str, now: datetime) -> None:
        super().__init__(program, member_id, now)
        self.adjustments: dict[str, MAdjustment] = {}
        self.grants: dict[str, MGrant] = {}
        self.frozen = False
        self.tags: set[str] = set()  # the operators' tags the member carries
        self.consent = True  # marketing consent, given at signup

    # ---- adjustments -------------------------------------------------------------------

    def adjust(self, adjustment_id: str, asset: str, amount: int, reason_code: str,
               note: str | None, now: datetime) -> None:
        """One posting; the same id with the same body is a replay, with another a refusal.
        Nothing goes below zero; principal never moves here."""
        body = (asset, amount, reason_code, note)
        seen = self.adjustments.get(adjustment_id)
        if seen is not None:
            if seen.body != body:
                raise Refused("adjustment_id_reused")
            return
        if reason_code not in self.program.reason_codes:
            raise Refused("unknown_reason_code")
        if asset == "points":
            if amount > 0:
                # A lot with the normal expiry; an available credit pays points debt first.
                self.credit_points(f"adjustment-{adjustment_id}", amount, now=now,
                                   effective_at=now)
            else:
                self.take_points(-amount, now)  # soonest-expiring first; refuses past zero
        elif asset == "growth":
            month = calendar.month_of(now, self.tz)
            if amount > 0:
                # Lands in this month and upgrades at once; the gift is not pending (no order
                # whose refund could take it back), and is paid once per 12 months.
                self.growth[month] = self.growth.get(month, 0) + amount
                qualified = self.qualified(self.rolling_growth(month))
                if self.tier_index(qualified) > self.tier_index(self.tier):
                    self.change_tier(qualified, now=now,
                                     source_key=f"adjustment:{adjustment_id}",
                                     effective_at=now, gift_pending_until=None)
            else:
                months = calendar.rolling_months(month)
                if -amount > sum(self.growth.get(m, 0) for m in months):
                    raise Refused("insufficient_growth")
                left = -amount
                for m in reversed(months):  # the newest months first; never a downgrade
                    take = min(left, self.growth.get(m, 0))
                    self.growth[m] = self.growth.get(m, 0) - take
                    left -= take
        elif amount > 0:
            self.credit_bonus(amount)  # pays the bonus debt first
        else:
            if -amount > self.bonus:
                raise Refused("insufficient_balance")
            self.bonus += amount
        self.adjustments[adjustment_id] = MAdjustment(body)

    # ---- bulk grants -------------------------------------------------------------------

    def create_grant(self, grant_id: str, points: int, reason_code: str,
                     member_ids: tuple[str, ...], tag: str | None = None) -> None:
        """Accepting a grant credits nobody yet: its chunks do, when they are applied."""
        body = (points, reason_code, member_ids, tag)
        seen = self.grants.get(grant_id)
        if seen is not None:
            if seen.body != body:
                raise Refused("grant_id_reused")
            return
        if reason_code not in self.program.reason_codes:
            raise Refused("unknown_reason_code")
        self.grants[grant_id] = MGrant(body, points, self.member_id in member_ids, tag=tag)

    def set_tag(self, tag: str, on: bool) -> None:
        (self.tags.add if on else self.tags.discard)(tag)

    def set_consent(self, on: bool) -> None:
        self.consent = on

    def expand_grant(self, grant_id: str) -> bool:
        """A tag grant's segment is read once (frozen): the member is in it iff they carry
        the tag and consent to marketing at that moment. A tag grant is a marketing
        reward: without consent, nothing. Whether the member is in the grant."""
        grant = self.grants[grant_id]
        if not grant.expanded:
            grant.includes_member = grant.tag in self.tags and self.consent
            grant.expanded = True
        return grant.includes_member

    def apply_grant_chunk(self, grant_id: str, member_ids: list[str], now: datetime) -> None:
        """A chunk delivered (again, or out of order): the member is credited once."""
        grant = self.grants[grant_id]
        if self.member_id in member_ids and not grant.credited:
            self.credit_points(f"grant-{grant_id}", grant.points, now=now, effective_at=now)
            grant.credited = True

    # ---- freeze: earning continues, spending stops -------------------------------------

    def set_status(self, frozen: bool) -> None:
        self.frozen = frozen

    def _refuse_if_frozen(self) -> None:
        if self.frozen:
            raise Refused("member_frozen")

    def top_up(self, reference: str, amount: int, now: datetime) -> None:
        if reference not in self.topups:
            self._refuse_if_frozen()
        super().top_up(reference, amount, now)

    def buy_plan(self, key: str, term: str, now: datetime) -> None:
        if key not in self.plan_purchases:
            self._refuse_if_frozen()
        super().buy_plan(key, term, now)

    def hold(self, order_id: str, points: int, balance: int, now: datetime) -> None:
        if order_id not in self.holds:
            self._refuse_if_frozen()
        super().hold(order_id, points, balance, now)

    def paid(self, payload: dict, now: datetime) -> None:
        order_id = payload["orderId"]
        a = payload["amounts"]
        held = self.holds.get(order_id)
        # Spending that a hold placed before the freeze reserved is not new spending.
        if (order_id not in self.orders and (held is None or held.status != "held")
                and (a["pointsUsed"] or a["balanceUsed"])):
            self._refuse_if_frozen()
        super().paid(payload, now)
