"""The money oracle, extended to the payment providers (docs/payments.md).

A payment is made at the provider first; then its signed notification and the app's own
call may each arrive any number of times, in any order, or not at all, and the provider
refunds it by notification: WeChat Pay tells each refund's amount, Alipay the payment's
refunded total so far, and either may be delivered again or overtake an earlier one.
Whatever the order, a payment credits its top-up exactly once and a refund returns its
principal once (docs/topups.md); a refund notification for a payment not credited yet is
refused (404) so that the provider sends it again, and a refund whose total is already
covered changes nothing.

Notifications enter at `services.payment_notifications`, after the provider's module has
authenticated them: signatures, decryption and time windows have their own tests
(tests/unit/test_payment_providers.py), and here only what money they move is checked.

A PLUS term paid at the provider (attach `plan:<member>:PLUS:<kind>-<n>`) moves no stored
value, but it moves the plan's end, which the machine compares, and the benefits orders
get: the notification buys term n once, refused for another amount than the price or
another term number than the next; the app's call (the test verifier, which reads no
attach: it confirms the price and names no term number) and the notification buy one
term between them. A provider's refund of a plan payment moves nothing.
"""
from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule
from money_machine import MoneyMachine
from money_model import MoneyModel, Refused

from membership.domain.payments import (
    CURRENCY,
    Merchant,
    PaymentState,
    ProviderPayment,
    ProviderRefund,
    plan_attach,
    topup_attach,
)
from membership.domain.topups import TopupRequest

MERCHANT = Merchant(merchant_id="1900000001", app_id="wx-app-1")


class PaymentsMoneyModel(MoneyModel):
    """Top-ups credited by the provider's word as by the app's: one credit per payment; PLUS
    terms bought by it: one term per payment."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.plan_payments: set[str] = set()  # references that bought a PLUS term

    def notified_payment(self, reference: str, amount: int, now) -> None:
        self.top_up(reference, amount, now)  # the same rule, the same source of value

    def refund_by_amount(self, reference: str, refund_reference: str, amount: int) -> None:
        if reference not in self.topups:
            raise Refused("topup_not_found")  # the provider sends it again later
        self.refund_topup(reference, refund_reference, amount)

    def refund_to_total(self, reference: str, refund_reference: str, total: int) -> None:
        topup = self.topups.get(reference)
        if topup is None:
            raise Refused("topup_not_found")
        if refund_reference in topup.refunds:
            return  # delivered again
        if total <= topup.refunded:
            return  # an earlier notice (or an operator) covered it: acknowledged, no change
        self.refund_topup(reference, refund_reference, total - topup.refunded)

    def plan_bought_at_provider(self, reference: str, term: str, number: int | None,
                                amount: int, now) -> None:
        """A PLUS term paid at the provider, notified (`number` from the attach) or claimed
        by the app (no number): the price or nothing, the named term or nothing, once per
        payment. No stored value moves; the plan's end does."""
        plan = self.program.paid_plans[0]
        if amount != getattr(plan.prices, term):
            raise Refused("payment_not_verified")
        if reference in self.plan_payments:
            return  # the notification again, or after the app's call (or before it)
        if number is not None and number != len(self.plan_terms) + 1:
            raise Refused("payment_not_verified")
        self.add_plan_term(reference, term, amount, now)
        self.plan_payments.add(reference)

    def plan_refund_notified(self, reference: str) -> None:
        """Acknowledged, nothing moves; a payment not applied yet is sent again later."""
        if reference not in self.plan_payments:
            raise Refused("topup_not_found")


class PaymentsMoneyMachine(MoneyMachine):
    model_class = PaymentsMoneyModel

    def with_history(self, history: str) -> None:
        # Payments made at the provider: reference -> (amount, channel).
        self.at_provider: dict[str, tuple[int, str]] = {}
        # Refund notifications sent: (channel, payment reference, refund reference, amount
        # for WeChat Pay / refunded total for Alipay).
        self.refund_notices: list[tuple[str, str, str, int]] = []
        self.provider_refunded: dict[str, int] = {}
        # PLUS payments made at the provider: reference -> (channel, kind, term number in
        # the attach, amount); the model's references that bought a term.
        self.plans_at_provider: dict[str, tuple[str, str, int, int]] = {}
        super().with_history(history)

    def _credited(self, reference: str) -> None:
        """A credited provider payment may also be refunded by an operator (base rules)."""
        if reference in self.model.topups and reference in self.at_provider:
            entry = (reference, self.at_provider[reference][0])
            if entry not in self.topup_refs:
                self.topup_refs.append(entry)

    # ---- payments ----------------------------------------------------------------------

    def _notify(self, reference: str, merchant: str = "ours") -> None:
        from membership.services import payment_notifications

        amount, channel = self.at_provider[reference]
        payment = ProviderPayment(
            channel=channel, reference=reference, transaction_id=f"tx-{reference}",
            state=PaymentState.PAID, amount=amount, currency=CURRENCY,
            merchant_id=MERCHANT.merchant_id if merchant == "ours" else "1900000999",
            app_id=MERCHANT.app_id, attach=topup_attach(self.member_id))

        def model():
            if merchant != "ours":
                raise Refused("payment_merchant_mismatch")
            self.model.notified_payment(reference, amount, self.now)

        self.expect(model, lambda: payment_notifications.apply_payment(payment, MERCHANT,
                                                                       now=self.now))
        self._credited(reference)

    def _app_call(self, reference: str) -> None:
        from membership.services import topups

        amount, channel = self.at_provider[reference]
        request = TopupRequest(amount=amount, paymentReference=reference, channel=channel)
        self.expect(lambda: self.model.top_up(reference, amount, self.now),
                    lambda: topups.top_up(self.sub, f"app-{self.next_id('k')}", request,
                                          now=self.now))
        self._credited(reference)

    ARRIVALS = ((), ("notification",), ("app",), ("notification", "app"),
                ("app", "notification"), ("notification", "notification"),
                ("app", "notification", "notification"))

    @rule(amount=st.sampled_from([10_000, 5_000, 50_000]),
          channel=st.sampled_from(["wechat_pay", "alipay"]), arrivals=st.sampled_from(ARRIVALS))
    def payer_pays_at_the_provider(self, amount, channel, arrivals):
        """The member pays at the provider (test- so that the app's call verifies); then
        the notification and the app's call arrive in one of the orders, or not yet."""
        reference = f"test-{self.next_id('wx' if channel == 'wechat_pay' else 'ali')}"
        self.at_provider[reference] = (amount, channel)
        for arrival in arrivals:
            if arrival == "notification":
                self._notify(reference)
            else:
                self._app_call(reference)

    @precondition(lambda self: self.at_provider)
    @rule(data=st.data(), merchant=st.sampled_from(["ours", "ours", "ours", "other"]))
    def notification_arrives(self, data, merchant):
        """A paid notification later: first, again, or after the app's call, between other
        events. One made to another merchant account is refused and moves nothing."""
        self._notify(data.draw(st.sampled_from(sorted(self.at_provider))), merchant)

    @precondition(lambda self: self.at_provider)
    @rule(data=st.data())
    def apps_call_arrives(self, data):
        """The app claims a payment later (another Idempotency-Key each time)."""
        self._app_call(data.draw(st.sampled_from(sorted(self.at_provider))))

    def _notify_plan(self, reference: str) -> None:
        from membership.services import payment_notifications

        channel, term, number, amount = self.plans_at_provider[reference]
        payment = ProviderPayment(
            channel=channel, reference=reference, transaction_id=f"tx-{reference}",
            state=PaymentState.PAID, amount=amount, currency=CURRENCY,
            merchant_id=MERCHANT.merchant_id, app_id=MERCHANT.app_id,
            attach=plan_attach(self.member_id, "PLUS", term, number))
        self.expect(lambda: self.model.plan_bought_at_provider(reference, term, number,
                                                               amount, self.now),
                    lambda: payment_notifications.apply_payment(payment, MERCHANT,
                                                                now=self.now))

    def _app_buys_plan(self, reference: str) -> None:
        from membership.domain.subscriptions import SubscriptionRequest
        from membership.services import subscriptions

        channel, term, _, _ = self.plans_at_provider[reference]
        price = getattr(self.model.program.paid_plans[0].prices, term)
        request = SubscriptionRequest.model_validate(
            {"planId": "PLUS", "term": term, "paymentReference": reference, "channel": channel})
        self.expect(lambda: self.model.plan_bought_at_provider(reference, term, None, price,
                                                               self.now),
                    lambda: subscriptions.purchase(self.sub, f"app-{self.next_id('k')}",
                                                   request, now=self.now))

    @rule(term=st.sampled_from(["monthly", "quarterly", "yearly"]),
          number=st.sampled_from(["next", "next", "next", "taken", "ahead"]),
          price=st.sampled_from([True, True, True, False]),
          channel=st.sampled_from(["wechat_pay", "alipay"]), arrivals=st.sampled_from(ARRIVALS))
    def member_pays_for_plus_at_the_provider(self, term, number, price, channel, arrivals):
        """The member pays for the next PLUS term (or, from a stale screen, for a term that
        exists now or one beyond the next; or another amount); then the notification and
        the app's call arrive in one of the orders, or not yet."""
        seq = len(self.model.plan_terms) + 1
        n = {"next": seq, "taken": seq - 1 if seq > 1 else seq + 1, "ahead": seq + 1}[number]
        amount = getattr(self.model.program.paid_plans[0].prices, term)
        reference = f"test-{self.next_id('plus')}"
        self.plans_at_provider[reference] = (channel, term, n, amount if price else amount + 1)
        for arrival in arrivals:
            if arrival == "notification":
                self._notify_plan(reference)
            else:
                self._app_buys_plan(reference)

    @precondition(lambda self: self.plans_at_provider)
    @rule(data=st.data(), arrival=st.sampled_from(["notification", "notification", "app"]))
    def plus_payment_arrives_later(self, data, arrival):
        """A PLUS payment's notification (first, again, or after the app's call) or the
        app's call, between other events."""
        reference = data.draw(st.sampled_from(sorted(self.plans_at_provider)))
        if arrival == "notification":
            self._notify_plan(reference)
        else:
            self._app_buys_plan(reference)

    @precondition(lambda self: self.plans_at_provider)
    @rule(data=st.data())
    def plus_payment_is_refunded_at_the_provider(self, data):
        """The provider refunds a PLUS payment and says so: acknowledged, nothing moves (an
        operator's refund of the term is what moves the plan's end)."""
        from membership.services import payment_notifications

        reference = data.draw(st.sampled_from(sorted(self.plans_at_provider)))
        channel, _, _, amount = self.plans_at_provider[reference]
        figure = {"amount": amount} if channel == "wechat_pay" else {"refunded_total": amount}
        refund = ProviderRefund(channel=channel, payment_reference=reference,
                                refund_reference=self.next_id("prf"), **figure)
        self.expect(lambda: self.model.plan_refund_notified(reference),
                    lambda: payment_notifications.apply_refund(refund, now=self.now))

    # ---- refunds -----------------------------------------------------------------------

    @precondition(lambda self: self.at_provider or self.refund_notices)
    @rule(data=st.data(), part=st.sampled_from(["half", "rest", 1_000]),
          again=st.sampled_from([False, False, True]))
    def provider_refund_is_notified(self, data, part, again):
        """The provider refunds part of a payment and says so; or an earlier refund notice
        arrives again, possibly after a later one."""
        from membership.services import payment_notifications

        if again and self.refund_notices:
            channel, reference, refund_ref, figure = data.draw(
                st.sampled_from(self.refund_notices))
        else:
            if not self.at_provider:
                return
            reference = data.draw(st.sampled_from(sorted(self.at_provider)))
            amount, channel = self.at_provider[reference]
            refunded = self.provider_refunded.get(reference, 0)
            left = amount - refunded
            if left == 0:
                return
            size = {"half": amount // 2, "rest": left}.get(part, part)
            size = min(size, left)
            self.provider_refunded[reference] = refunded + size
            refund_ref = self.next_id("prf")
            figure = size if channel == "wechat_pay" else refunded + size
            self.refund_notices.append((channel, reference, refund_ref, figure))
        if channel == "wechat_pay":
            refund = ProviderRefund(channel=channel, payment_reference=reference,
                                    refund_reference=refund_ref, amount=figure)
            model = lambda: self.model.refund_by_amount(reference, refund_ref, figure)  # noqa: E731
        else:
            refund = ProviderRefund(channel=channel, payment_reference=reference,
                                    refund_reference=refund_ref, refunded_total=figure)
            model = lambda: self.model.refund_to_total(reference, refund_ref, figure)  # noqa: E731
        self.expect(model, lambda: payment_notifications.apply_refund(refund, now=self.now))
