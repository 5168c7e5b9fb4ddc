"""The money oracle's coupons: which coupons a member should hold, in which state, and
what each template should count, under docs/coupons.md.

Written from the document, not from storage: a coupon is issued (claim, signup gift,
upgrade gift) while its template has stock and the member is below `perMemberLimit`;
`available → held` by one order; `held → used` when that order is paid, or
`available → used` when an order is paid without a hold; `held → available` when the
order is cancelled or its hold lapses; `used → available` when a full refund comes while
the coupon is still valid. `expired` is derived from the window at read time.

Borrowed from the domain: the discount arithmetic (domain/coupons.py, unit-tested
exhaustively), the validity rule (`validity_of`) and coupon ids (`coupon_id_for`: opaque
names derived from the source key), so the oracle is about where coupons go.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from money_model import MHold, MoneyModel, MOrder, Refused

from membership.domain import calendar
from membership.domain import coupons as rules
from membership.domain.checkout import OrderLine, allocate, coupon_lines
from membership.domain.coupons import TemplateSpec, claim_source_key, coupon_id_for, validity_of


@dataclass
class MCoupon:
    coupon_id: str
    template_id: str
    valid_from: datetime
    valid_until: datetime
    status: str = "available"  # available | held | used (expired is derived)
    order_id: str | None = None

    def status_at(self, now: datetime) -> str:
        if self.status == "available" and now > self.valid_until:
            return "expired"
        return self.status


@dataclass
class MTemplate:
    spec: TemplateSpec
    issued: int = 0
    redeemed: int = 0
    per_member: int = 0  # this model's one member


class CouponModel(MoneyModel):
    """MoneyModel plus the member's coupons and the templates they come from."""

    def __init__(self, program, member_id: str, now: datetime,
                 templates: dict[str, TemplateSpec] | None = None) -> None:
        self.templates: dict[str, MTemplate] = {
            t: MTemplate(spec) for t, spec in (templates or {}).items()}
        self.coupons: dict[str, MCoupon] = {}
        self.claims: dict[str, tuple[str, str | None]] = {}  # key -> (template, coupon id)
        self.order_coupons_used: dict[str, tuple[str, ...]] = {}
        self.hold_coupons: dict[str, tuple[str, ...]] = {}
        self.returned: set[str] = set()
        self.grants: dict[str, str] = {}  # grantId -> templateId
        self.plus_terms: list = []  # the PLUS terms (TermRecord) with their real term ids
        self.plus_kinds: list[str] = []
        self.packs: set[tuple[str, int]] = set()  # (term id, month) packs given
        self.charges: dict[int, tuple] = {}  # cycle -> (amount, reference, chargedAt)
        self.charge_refs: set[str] = set()
        super().__init__(program, member_id, now)
        for grant in program.signup_gift.coupons:
            self.gift(grant.template_id, grant.quantity, f"signup:{member_id}", 0, now)

    # ---- issuing ------------------------------------------------------------------------

    def _issue(self, template_id: str, source_key: str, now: datetime) -> MCoupon:
        t = self.templates[template_id]
        start, end = validity_of(t.spec, now, self.tz)
        coupon = MCoupon(coupon_id_for(source_key, now), template_id, start, end)
        self.coupons[coupon.coupon_id] = coupon
        t.issued += 1
        t.per_member += 1
        return coupon

    def claim(self, key: str, template_id: str, now: datetime) -> str:
        if key in self.claims:
            first, coupon_id = self.claims[key]
            if first != template_id:
                raise Refused("payload_mismatch")
            return coupon_id
        t = self.templates.get(template_id)
        if t is None:
            raise Refused("coupon_template_not_found")
        spec = t.spec
        if not spec.claimable or spec.paused:
            raise Refused("coupon_not_claimable")
        if t.issued >= spec.stock:
            raise Refused("coupon_out_of_stock")
        if t.per_member >= spec.per_member_limit:
            raise Refused("coupon_limit_reached")
        source = claim_source_key(self.member_id, key)
        coupon = self._issue(template_id, source, now)
        self.claims[key] = (template_id, coupon.coupon_id)
        return coupon.coupon_id

    def gift(self, template_id: str, quantity: int, source_key: str, n: int,
             now: datetime) -> None:
        """A gift pack's coupons: as many as stock and the limit allow; never refused."""
        t = self.templates.get(template_id)
        if t is None or t.spec.paused:
            return
        for i in range(quantity):
            if t.issued >= t.spec.stock or t.per_member >= t.spec.per_member_limit:
                return
            self._issue(template_id, f"{source_key}#{n}#{i}", now)

    def grant(self, grant_id: str, template_id: str, now: datetime) -> None:
        """An operator's coupon grant to this member: one coupon, once per grant, stock
        and the member's limit permitting (never refused for stock: reported); the same
        grantId with another template is refused."""
        if grant_id in self.grants:
            if self.grants[grant_id] != template_id:
                raise Refused("grant_id_reused")
            return
        self.grants[grant_id] = template_id
        self.gift(template_id, 1, f"grant:{grant_id}:{self.member_id}", 0, now)

    def change_tier(self, target, *, now, source_key, effective_at, gift_pending_until):
        before = dict(self.tier_gifts)
        gifts = super().change_tier(target, now=now, source_key=source_key,
                                    effective_at=effective_at,
                                    gift_pending_until=gift_pending_until)
        n = 0
        for tier in self.program.tiers:
            if self.tier_gifts.get(tier.id) != before.get(tier.id):
                for grant in tier.upgrade_gift.coupons:
                    self.gift(grant.template_id, grant.quantity, source_key, n, now)
                    n += 1
        self.packs_in_posting = n
        return gifts

    def birthday_gift(self, month: str, now: datetime, source_key: str) -> None:
        """The birthday pack's coupons follow the upgrade packs of the same settlement."""
        super().birthday_gift(month, now, source_key)
        for i, grant in enumerate(self.program.birthday_gift.coupons):
            self.gift(grant.template_id, grant.quantity, source_key,
                      self.packs_in_posting + i, now)

    # ---- the paid plan's monthly packs and automatic renewals (docs/subscriptions.md) ---

    def buy_plan(self, key: str, term: str, now: datetime) -> None:
        """MoneyModel's purchase, and the term as the schedule numbers it."""
        from membership.domain.subscriptions import subscription_id_for

        known = key in self.plan_purchases
        super().buy_plan(key, term, now)
        if not known:
            self._add_term(self.plan_term, subscription_id_for(self.member_id, "PLUS"))
            self.plus_kinds.append(term)

    def _add_term(self, record, subscription_id: str) -> None:
        from membership.domain.subscriptions import term_id_for

        seq = len(self.plus_terms) + 1
        self.plus_terms.append(record.model_copy(
            update={"term_id": term_id_for(subscription_id, seq)}))

    def plus_daily(self, now: datetime) -> None:
        """A daily run: every (term, month) pack whose month has begun by today's local date
        (and within its term) and was not given yet, in one posting keyed by the first."""
        from membership.domain.subscriptions import gift_month_starts, gift_pack_key, local_date

        on = local_date(now, self.tz)
        if self.plus_terms:  # the visit sees the run's end (a run always owes one)
            self.plan_counted = self.plan_run_active(now)
        due = []
        for t in self.plus_terms:
            if t.term == "trial":
                continue
            end_day = local_date(t.ends_at, self.tz)
            for month, start in enumerate(gift_month_starts(t, self.tz)):
                if start <= on and start <= end_day and (t.term_id, month) not in self.packs:
                    due.append((t.term_id, month))
        if not due:
            return
        self.packs.update(due)
        pack = self.program.paid_plans[0].monthly_gift
        source = f"subscription.pack:{gift_pack_key(*due[0])}"
        for grant in pack.coupons:
            self.gift(grant.template_id, grant.quantity * len(due), source, 0, now)

    def plan_charged(self, cycle: int, amount: int, reference: str, charged_at: datetime
                     ) -> None:
        """The provider's charge of cycle n (the n-th term): extends once with the latest
        paid term's kind at its exact price; a cycle that exists is a duplicate (nothing)."""
        from membership.domain.subscriptions import next_term, subscription_id_for

        payload = (amount, reference, charged_at)
        if cycle in self.charges:
            if self.charges[cycle] != payload:
                raise Refused("charge_refused")
            return
        if reference in self.charge_refs:
            raise Refused("payment_reference_used")
        seq = len(self.plus_terms)
        if seq == 0:
            raise Refused("subscription_not_found")
        if cycle <= seq:
            self.charges[cycle] = payload
            self.charge_refs.add(reference)
            return
        if cycle > seq + 1:
            raise Refused("charge_out_of_order")
        plan = self.program.paid_plans[0]
        term = next((k for k in reversed(self.plus_kinds) if k != "trial"), "monthly")
        if amount != getattr(plan.prices, term):
            raise Refused("charge_amount_mismatch")
        from membership.domain.subscriptions import TermRecord, latest_term

        span = next_term(plan, term, now=charged_at, tz=self.tz,
                         current=latest_term(self.plan_terms))

        self.plan_term = TermRecord(
            term_id=f"charge-{cycle}", plan_id=plan.id, term=term, price=amount,
            paid_at=charged_at, starts_at=span.starts_at, ends_at=span.ends_at,
            anchor=span.anchor, months_from_anchor=span.months_from_anchor)
        # MoneyModel's list of terms: the plan's end and the benefits at paidAt read it.
        self.plan_terms.append(self.plan_term)
        self._add_term(self.plan_term, subscription_id_for(self.member_id, plan.id))
        self.plus_kinds.append(term)
        self.charges[cycle] = payload
        self.charge_refs.add(reference)
        self.plan_counted = True

    # ---- holds --------------------------------------------------------------------------

    def _usable(self, coupon_id: str, now: datetime, order_id: str | None = None, *,
                started: bool = True) -> MCoupon:
        coupon = self.coupons.get(coupon_id)
        if coupon is None:
            raise Refused("coupon_not_applicable")
        status = coupon.status_at(now)
        if status == "held" and coupon.order_id == order_id:
            return coupon
        if status != "available" or (started and now < coupon.valid_from):
            raise Refused("coupon_not_applicable")
        return coupon

    def _check_stacking(self, coupon_ids) -> None:
        plain = [c for c in coupon_ids
                 if not self.templates[self.coupons[c].template_id].spec.stackable]
        if len(plain) > 1:
            raise Refused("coupon_not_applicable")

    def hold(self, order_id: str, points: int, balance: int, now: datetime,
             coupon_ids: tuple[str, ...] = ()) -> None:
        if order_id in self.holds:
            if sorted(self.hold_coupons.get(order_id, ())) != sorted(coupon_ids):
                raise Refused("hold_mismatch")
            return super().hold(order_id, points, balance, now)
        if points + balance == 0 and not coupon_ids:
            raise Refused("nothing_to_hold")
        for cid in coupon_ids:
            self._usable(cid, now, started=False)
        self._check_stacking(coupon_ids)
        super().hold(order_id, points, balance, now)
        for cid in coupon_ids:
            self.coupons[cid].status, self.coupons[cid].order_id = "held", order_id
        self.hold_coupons[order_id] = tuple(coupon_ids)

    def release(self, order_id: str, now: datetime) -> None:
        super().release(order_id, now)
        for cid in self.hold_coupons.get(order_id, ()):
            self.coupons[cid].status, self.coupons[cid].order_id = "available", None

    # ---- orders -------------------------------------------------------------------------

    def order_coupons(self, payload: dict, captured: MHold | None, now: datetime
                      ) -> list[int] | None:
        wanted = tuple(payload.get("couponIds") or ())
        a = payload["amounts"]
        order_id = payload["orderId"]
        held = self.hold_coupons.get(order_id, ()) if captured is not None else None
        if held is not None and (held or wanted):
            if sorted(held) != sorted(wanted):
                raise Refused("hold_mismatch")
        if not wanted and not a.get("couponDiscount"):
            return None
        if a.get("couponDiscount", 0) > a["discount"]:
            raise Refused("amounts_mismatch")
        paid_at = calendar.utc(datetime.fromisoformat(payload["paidAt"]))
        if held is None:
            chosen = [self._usable(cid, paid_at, order_id, started=False) for cid in wanted]
            if any(now < c.valid_from or paid_at > c.valid_until for c in chosen):
                raise Refused("coupon_not_applicable")
        else:
            chosen = [self.coupons[cid] for cid in wanted]
        self._check_stacking(wanted)
        lines = tuple(OrderLine.model_validate(line) for line in payload["lines"])
        other = allocate(a["discount"] - a.get("couponDiscount", 0),
                         [line.amount for line in lines])
        applied = rules.apply_coupons(
            [self.as_domain(c) for c in chosen], coupon_lines(lines, other),
            store_id=payload.get("storeId"), now=None)
        shares = rules.line_totals(applied, len(lines))
        if sum(shares) != a.get("couponDiscount", 0):
            raise Refused("amounts_mismatch")
        for c in chosen:
            c.status, c.order_id = "used", order_id
            self.templates[c.template_id].redeemed += 1
        self.order_coupons_used[order_id] = wanted
        return [o + s for o, s in zip(other, shares)]

    def order_refunded(self, order: MOrder, now: datetime) -> None:
        if order.order_id in self.returned:
            return
        full = all(order.refunded.get(s.line_id, 0) == s.quantity for s in order.splits)
        used = self.order_coupons_used.get(order.order_id, ())
        if not full or not used:
            return
        self.returned.add(order.order_id)
        for cid in used:
            coupon = self.coupons[cid]
            if now <= coupon.valid_until:
                coupon.status, coupon.order_id = "available", None
                self.templates[coupon.template_id].redeemed -= 1

    # ---- helpers ------------------------------------------------------------------------

    def as_domain(self, c: MCoupon) -> rules.Coupon:
        spec = self.templates[c.template_id].spec
        return rules.Coupon(coupon_id=c.coupon_id, member_id=self.member_id,
                            template_id=c.template_id, terms=spec.terms(), shard=0,
                            source="model", status="available", issued_at=c.valid_from,
                            valid_from=c.valid_from, valid_until=c.valid_until)

    def wallet(self, now: datetime) -> dict[str, tuple[str, str | None]]:
        return {cid: (c.status_at(now), c.order_id) for cid, c in self.coupons.items()}

    def counts(self) -> dict[str, tuple[int, int]]:
        return {t: (m.issued, m.redeemed) for t, m in self.templates.items()}

