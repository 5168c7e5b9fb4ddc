"""The money oracle with coupons: the whole money flow of `MoneyMachine`, plus claims
(new, replayed, the key reused for another template), holds that lock coupons, orders
paid with coupons (through their hold or directly, and with a wrong couponDiscount),
and everything that returns them (cancel, lapse, full refund), against DynamoDB Local.

After every step the member's coupons (id → derived status, order) and each of the run's
templates' issued / redeemed counts must be what `CouponModel` says, beside everything
`MoneyMachine` checks.
"""
from __future__ import annotations

import functools
import uuid
from typing import ClassVar

from coupon_model import CouponModel
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule
from money_machine import START, MoneyMachine

from membership.domain import calendar
from membership.domain import coupons as rules
from membership.domain.checkout import HoldRequest, OrderLine, allocate, coupon_lines
from membership.domain.coupons import ClaimRequest, TemplateSpec
from membership.errors import DomainError


def run_templates(run: str) -> dict[str, TemplateSpec]:
    """Two small templates per run: A runs out of stock, B hits the member's limit."""
    a = TemplateSpec.model_validate({
        "templateId": f"A-{run}", "name": "10 off", "kind": "amount_off", "amountOff": 1_000,
        "validDays": 10, "stock": 3, "perMemberLimit": 5, "claimable": True})
    b = TemplateSpec.model_validate({
        "templateId": f"B-{run}", "name": "10% off B", "kind": "percent_off",
        "percentOffBps": 1_000, "maxDiscount": 2_000, "validDays": 40, "stock": 10,
        "perMemberLimit": 2, "claimable": True, "stackable": True,
        "scope": {"skus": ["B"]}})
    return {a.template_id: a, b.template_id: b}


class CouponMachine(MoneyMachine):
    coupon_model_class: ClassVar[type[CouponModel]] = CouponModel

    @initialize(history=st.sampled_from(MoneyMachine.HISTORIES))
    def start(self, history="fresh"):
        from membership.services import coupons
        from membership.storage.coupons import seed_default_templates

        self.template_run = uuid.uuid4().hex[:6]
        seed_default_templates(START)
        self.run_templates = run_templates(self.template_run)
        for spec in self.run_templates.values():
            coupons.create_template(spec, now=START)
        templates = {s.template_id: s for s in rules.default_templates()}
        templates.update(self.run_templates)
        self.model_class = functools.partial(self.coupon_model_class, templates=templates)
        self.claim_keys: list[tuple[str, str]] = []
        self.grant_ids: list[tuple[str, str]] = []
        super().start(history)

    # ---- the comparison ----------------------------------------------------------------

    def observe(self) -> dict:
        from membership.storage import coupons as store

        got = super().observe()
        got["coupons"] = {c.coupon_id: (c.status_at(self.now), c.order_id)
                          for c in store.coupons_page(self.member_id, 100, None)[0]}
        counts = {}
        for template_id in self.run_templates:
            _, shards = store.read_template(template_id)
            view = rules.stock_view(shards)
            counts[template_id] = (view.issued, view.redeemed)
        got["counts"] = counts
        return got

    def expected(self) -> dict:
        want = super().expected()
        want["coupons"] = self.model.wallet(self.now)
        want["counts"] = {t: c for t, c in self.model.counts().items()
                          if t in self.run_templates}
        return want

    @invariant()
    def owns_what_the_policies_say(self):
        super().owns_what_the_policies_say()
        if not hasattr(self, "model"):
            return
        got, want = self.observe(), self.expected()
        assert got["coupons"] == want["coupons"], ("coupons", got["coupons"], want["coupons"])
        assert got["counts"] == want["counts"], ("template counts", got["counts"],
                                                 want["counts"])

    # ---- claims -------------------------------------------------------------------------

    @rule(data=st.data(), which=st.sampled_from(["A", "B"]),
          again=st.sampled_from([None, None, "same", "other template"]))
    def claim(self, data, which, again):
        from membership.services import coupons

        template_id = f"{which}-{self.template_run}"
        if again and self.claim_keys:
            key, first = data.draw(st.sampled_from(self.claim_keys))
            template_id = first if again == "same" else next(
                t for t in self.run_templates if t != first)
        else:
            key = self.next_id("claim")
            self.claim_keys.append((key, template_id))
        self.expect(lambda: self.model.claim(key, template_id, self.now),
                    lambda: coupons.claim(self.sub, key, ClaimRequest(templateId=template_id),
                                          now=self.now))

    # ---- operators' coupon grants ------------------------------------------------------

    @rule(data=st.data(), which=st.sampled_from(["A", "B"]),
          again=st.sampled_from([None, None, "redelivered", "other template"]))
    def grant_coupon(self, data, which, again):
        """A bulk grant of one coupon to the member (with an unknown member beside it),
        its chunk delivered again, or its grantId re-posted with another template."""
        from membership.domain.grants import GrantRequest
        from membership.services import (
            coupon_grants,  # noqa: F401 (registers the kind)
            grants,
        )

        template_id = f"{which}-{self.template_run}"
        if again and self.grant_ids:
            grant_id, first = data.draw(st.sampled_from(self.grant_ids))
            template_id = first if again == "redelivered" else next(
                t for t in self.run_templates if t != first)
        else:
            grant_id = self.next_id("grant")
            self.grant_ids.append((grant_id, template_id))
        request = GrantRequest(grantId=grant_id, templateId=template_id,
                               reasonCode="campaign",
                               memberIds=(self.member_id, "M" + "z" * 24))

        def system():
            messages: list[dict] = []
            grants.create(request, actor="ops", enqueue=messages.extend, now=self.now)
            for m in messages:
                grants.apply_chunk(m["grantId"], m["chunk"], m["memberIds"], now=self.now)
            if again == "redelivered":  # create() enqueues once: deliver the chunk again
                grants.apply_chunk(grant_id, 0, [self.member_id], now=self.now)

        self.expect(lambda: self.model.grant(grant_id, template_id, self.now), system)

    # ---- the paid plan's daily schedule and automatic renewals --------------------------

    @rule(again=st.sampled_from([False, False, True]))
    def plus_daily(self, again):
        """The daily run at this instant (for this member, found through the due index),
        sometimes run twice: each (term, month) pack once."""
        from membership.services import subscription_schedule as daily
        from membership.storage import subscription_schedule as index
        from membership.storage.program import load_program

        self.model.plus_daily(self.now)
        program = load_program()
        on = daily.local_date(self.now, program.time_zone)
        for _ in range(2 if again else 1):
            report = daily.DailyReport(on=on.isoformat())
            for _day, member_id, plan_id in index.due_subscriptions(on):
                if member_id == self.member_id:
                    daily.visit(member_id, plan_id, self.now, program, report)
            assert report.failed == 0, report

    @precondition(lambda self: hasattr(self, "model") and self.model.plus_terms)
    @rule(data=st.data(), kind=st.sampled_from(["next", "next", "again", "paid", "wrong"]))
    def plan_charged(self, data, kind):
        """subscription.charged from the provider: the next cycle, one delivered again, a
        cycle already paid (by hand), or the next cycle for a wrong amount."""
        from membership.domain.subscription_charges import SubscriptionCharged, renewal_term
        from membership.domain.subscriptions import term_price
        from membership.services import subscription_charges
        from membership.storage import subscriptions as store

        seq = len(self.model.plus_terms)
        if kind == "again" and self.model.charges:
            cycle = data.draw(st.sampled_from(sorted(self.model.charges)))
            amount, reference, charged_at = self.model.charges[cycle]
        else:
            cycle = data.draw(st.integers(1, seq)) if kind == "paid" else seq + 1
            terms = store.read(self.member_id)[1].get("PLUS", [])
            amount = term_price(self.model.program.paid_plans[0], renewal_term(terms))
            amount += 1 if kind == "wrong" else 0
            reference, charged_at = f"test-{self.next_id('auto')}", self.now
        charge = SubscriptionCharged.model_validate({
            "subscriptionId": f"{self.member_id}.PLUS", "cycle": cycle,
            "paymentReference": reference, "amount": amount,
            "chargedAt": calendar.iso(charged_at)})
        self.expect(lambda: self.model.plan_charged(cycle, amount, reference, charged_at),
                    lambda: subscription_charges.apply(charge, now=self.now))

    # ---- checkout with coupons ---------------------------------------------------------

    def _draw_coupons(self, data) -> tuple[str, ...]:
        # In the order they were issued: coupon ids derive from the run's random member id,
        # so sorting them would make the same draws pick other coupons in another run.
        ids = list(self.model.coupons)
        if not ids:
            return ()
        first = data.draw(st.sampled_from(ids), label="coupon")
        second = data.draw(st.sampled_from([None, *ids]), label="second coupon")
        return (first,) if second in (None, first) else (first, second)

    @rule(data=st.data(), points=st.sampled_from(["none", "half"]),
          balance=st.sampled_from(["none", "half"]))
    def hold_coupons(self, data, points, balance):
        """A new order holds coupons (any of the member's: available, held by another
        order, used, expired), with or without points and stored value."""
        from membership.services import checkout

        coupon_ids = self._draw_coupons(data)
        if not coupon_ids:
            return
        p = self._amount(points, sum(lot.remaining for lot in self.model.spendable(self.now)))
        b = self._amount(balance, self.model.principal + self.model.bonus)
        order_id = self.next_id("SO")
        self.unpaid.append(order_id)
        request = HoldRequest(orderId=order_id, memberId=self.member_id, points=p, balance=b,
                              couponIds=coupon_ids)
        self.expect(lambda: self.model.hold(order_id, p, b, self.now, coupon_ids),
                    lambda: checkout.hold(request, now=self.now))

    def _coupon_discount(self, payload: dict, coupon_ids: tuple[str, ...]) -> int:
        """What the order system computes from our quote: the coupons on these lines."""
        lines = tuple(OrderLine.model_validate(line) for line in payload["lines"])
        chosen = [self.model.as_domain(self.model.coupons[c]) for c in coupon_ids]
        try:
            applied = rules.apply_coupons(chosen, coupon_lines(
                lines, allocate(0, [line.amount for line in lines])), store_id="s1", now=None)
        except DomainError:
            return 0
        return sum(d.discount for d in applied)

    @rule(data=st.data(), cash=st.sampled_from([30_000, 80_000]),
          points=st.sampled_from(["none", "half"]), balance=st.sampled_from(["none", "half"]),
          wrong=st.sampled_from([False, False, False, True]))
    def pay_with_coupons(self, data, cash, points, balance, wrong):
        """order.paid with couponIds: of an order holding coupons (its hold's amounts and
        coupons), or of a new order using coupons directly; sometimes with a
        couponDiscount the coupons do not give."""
        held = [o for o in self.unpaid if self.model.hold_coupons.get(o)
                and o in self.model.holds]
        if held and data.draw(st.booleans(), label="of an order holding coupons"):
            order_id = data.draw(st.sampled_from(held))
            hold = self.model.holds[order_id]
            p, b = hold.points, hold.balance
            coupon_ids = self.model.hold_coupons[order_id]
        else:
            coupon_ids = self._draw_coupons(data)
            if not coupon_ids:
                return
            order_id = self.next_id("SO")
            p = self._amount(points, sum(lot.remaining for lot in self.model.spendable(self.now)))
            b = self._amount(balance, self.model.principal + self.model.bonus)
        self._pay_with(order_id, p, b, cash, coupon_ids, wrong)

    def _pay_with(self, order_id: str, points: int, balance: int, cash: int,
                  coupon_ids: tuple[str, ...], wrong: bool = False) -> None:
        payload = self._payload(order_id, points, balance, cash)
        discount = self._coupon_discount(payload, coupon_ids) + (100 if wrong else 0)
        a = payload["amounts"]
        payload["couponIds"] = list(coupon_ids)
        payload["amounts"] = dict(a, discount=discount, couponDiscount=discount,
                                  cashPaid=a["cashPaid"] - discount)
        self._deliver("order.paid", payload)
        if order_id in self.model.orders and order_id not in self.paid_orders:
            self.paid_orders.append(order_id)
            if order_id in self.unpaid:
                self.unpaid.remove(order_id)

    @precondition(lambda self: self.model.coupons if hasattr(self, "model") else False)
    @rule(data=st.data())
    def quote_never_goes_below_zero(self, data):
        """A quote with a coupon the member may use answers a payable of zero or more."""
        from membership.domain.checkout import QuoteRequest
        from membership.services import checkout

        usable = [c for c, (status, _) in self.model.wallet(self.now).items()
                  if status == "available" and self.now >= self.model.coupons[c].valid_from]
        if not usable:
            return
        coupon_id = data.draw(st.sampled_from(usable))
        lines = self._payload("Q", 0, 0, data.draw(st.sampled_from([500, 30_000])))["lines"]
        try:
            q = checkout.quote(QuoteRequest(memberId=self.member_id, lines=lines,
                                            storeId="s1", couponIds=(coupon_id,)),
                               now=self.now)
        except DomainError as exc:
            assert exc.code == "coupon_not_applicable", exc.code
            return
        assert q.payable >= 0 and q.coupon_discount <= q.subtotal - q.tier_discount
