"""The money oracle: random sequences of the whole money flow against DynamoDB Local.

`MoneyMachine` drives the real services (top-ups and their refunds, holds, order.paid /
cancelled / completed / refunded per line, the sweep, the monthly settlement, paid-plan
terms bought from stored value) for a new
member per run, with redeliveries, payloads reused under a key, and events that
overtake their order's payment (retried later, as EventBridge does). `MoneyModel`
(money_model.py) says what the member should own; after every step the stored member,
its lots and open holds are compared with it, and the ledger must reconcile.

A new capability extends both: subclass `MoneyModel` with its operations, subclass
`MoneyMachine` with `model_class = ThatModel` and `@rule`s that call the service and
`self.expect(...)` the model's operation, and (if it owns new state) override `observe`,
`expected` and `compare` (`ActivityMachine` in activity_machine.py does all of this).
"""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from money_model import MoneyModel, Refused

from membership.domain import calendar
from membership.domain.checkout import (
    HoldRequest,
    OrderCancelled,
    OrderCompleted,
    OrderPaid,
    OrderRefunded,
)
from membership.domain.members import SignupRequest, member_id_for
from membership.domain.topups import RefundRequest, TopupRequest, topup_id_for
from membership.errors import DomainError

TZ = "Asia/Shanghai"
START = datetime(2022, 6, 14, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, mid-month
LAST = START + timedelta(days=3 * 365)  # stays in the past, whatever validates paidAt


def birthday_gift_for_every_tier(program):
    """The program with the birthday gift listed on every tier: a bounded run's member
    rarely reaches Silver, the first tier that lists it in the default program."""
    from membership.domain.program import Benefit

    gift = Benefit(code="birthday_gift", name="Birthday gift")
    tiers = tuple(t if any(b.code == gift.code for b in t.benefits)
                  else t.model_copy(update={"benefits": (*t.benefits, gift)})
                  for t in program.tiers)
    return program.model_copy(update={"tiers": tiers})


class MoneyMachine(RuleBasedStateMachine):
    """One new member per run, on the test's table; the model predicts every outcome.

    Runs share the table (a table per run costs a second of new clients each), so every
    id a run makes (subject, phone, payment and order ids) carries the run's number.
    """

    model_class = MoneyModel
    counter = 0

    # ---- setup and teardown ------------------------------------------------------------

    # Where a run starts: bounded runs reach deep states from a member with a past.
    HISTORIES = ("fresh", "ordered", "spent_and_refilled", "points_held", "birthday_month",
                 "plus_member")

    @initialize(history=st.sampled_from(HISTORIES))
    def start(self, history="fresh"):
        from membership.services import members
        from membership.storage.program import load_program

        MoneyMachine.counter += 1
        self.run = f"{MoneyMachine.counter}{uuid.uuid4().hex[:4]}"
        self.now = START
        self.sub = f"oracle-{self.run}"
        phone = f"139{MoneyMachine.counter % 100_000_000:08d}"
        members.signup(self.sub, SignupRequest(phone=phone, nickname="o", channel="app"),
                       now=self.now)
        self.member_id = member_id_for(self.sub)
        self.model = self.model_class(load_program(), self.member_id, self.now)
        # Earlier runs' members stay counted in PLUS's usage counter (the table is shared
        # by a test's runs): this run's member moves it from here.
        self.plan_count_before = self._plan_count()
        self.n = 0
        self.topup_refs: list[tuple[str, int]] = []
        # Top-ups the app itself asked for (channel alipay, the test verifier): the ones
        # `top_up` may deliver again. A subclass's other payments (a provider's notice with
        # its own channel) join topup_refs only, for refunds.
        self.app_topup_refs: list[tuple[str, int]] = []
        self.refund_refs: list[tuple[str, str, int | None]] = []
        self.unpaid: list[str] = []  # orders created (held or not) but not paid
        self.paid_orders: list[str] = []
        self.refunds: list[tuple[str, str, list | None]] = []
        self.early: list[tuple[str, dict]] = []  # events that overtook their payment
        self.settled: set[str] = set()
        self.plan_keys: list[tuple[str, str]] = []  # (Idempotency-Key, term) of purchases
        self.plan_refund_ids: list[str] = []  # refund references applied
        self.with_history(history)

    def with_history(self, history: str) -> None:
        """Run the steps of a past through the same checks as any other step.

        ordered: a top-up with its bonus, an order paid and completed;
        spent_and_refilled: a top-up with its bonus, all of it held for an order, then a
        refill below the bonus threshold (what an attacker of the bonus does first);
        points_held: an order's points completed, then every point held for another order;
        birthday_month: the member's birthday is in this month, whose settlement runs
        and gives the gift;
        plus_member: a top-up, a PLUS month paid from it, then a quarter that extends it.
        """
        def top_up(amount):
            reference = f"test-{self.next_id('pay')}"
            self._top_up(reference, amount, f"key-{reference}")
            self.topup_refs.append((reference, amount))
            self.app_topup_refs.append((reference, amount))

        def paid_and_completed(cash):
            order_id = self.next_id("SO")
            self._deliver("order.paid", self._payload(order_id, 0, 0, cash))
            self.paid_orders.append(order_id)
            self._deliver("order.completed", {"orderId": order_id, "memberId": self.member_id})

        if history == "ordered":
            top_up(10_000)
            paid_and_completed(30_000)
        elif history == "spent_and_refilled":
            top_up(10_000)
            MoneyMachine.hold(self, None, "none", "all", False)
            top_up(5_000)
        elif history == "birthday_month":
            self._set_birthday(f"1990-{calendar.month_of(self.now, TZ)[5:7]}-14")
            self.settle()  # the run of this month's 1st: the gift
        elif history == "points_held":
            paid_and_completed(30_000)
            MoneyMachine.hold(self, None, "all", "none", False)
        elif history == "plus_member":
            top_up(10_000)
            self._buy_plan(self.next_id("plan"), "monthly")
            self._buy_plan(self.next_id("plan"), "quarterly")
        self.owns_what_the_policies_say()

    # ---- the comparison ----------------------------------------------------------------

    def next_id(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}-{self.run}-{self.n}"

    def expect(self, model_op, system_op):
        """Apply the model's operation and the system's; they must agree on refusing."""
        snapshot = self.model._snapshot()
        try:
            model_op()
            refused = None
        except Refused as exc:
            self.model._restore(snapshot)
            refused = exc.why
        try:
            result = system_op()
        except DomainError as exc:
            assert refused is not None, (
                f"the system refused ({exc.code}: {exc.message}) what the policy allows")
            return exc
        assert refused is None, f"the system accepted what the policy refuses ({refused})"
        return result

    def observe(self) -> dict:
        """The stored state in two queries: the live range and the entries."""
        from membership.domain.ledger import reconcile
        from membership.storage import ledger

        state = ledger.read_live_range(self.member_id)
        m = self.observed_member = state.member  # subclasses observe more of it
        lots: dict = {}
        for lot in state.lots:
            if lot.remaining:
                key = (calendar.iso(lot.expires_at), lot.pending)
                lots[key] = lots.get(key, 0) + lot.remaining
        return {
            "principal": m.balance_principal, "bonus": m.balance_bonus,
            "bonus_debt": getattr(m, "bonus_debt", None),
            "available": m.points_available, "pending": m.points_pending,
            "points_debt": getattr(m, "points_debt", None),
            "lots": lots,
            "growth": {k: v for k, v in m.growth_months.items() if v},
            "tier": m.tier_id,
            "holds": {h.hold_id: (h.principal, h.bonus, h.points)
                      for h in state.holds if h.status == "held"},
            "plan_ends": (m.paid_plan.ends_at if m.paid_plan is not None
                          and self.now < m.paid_plan.ends_at else None),
            "breaches": reconcile(m, ledger.all_entries(self.member_id), list(state.lots),
                                  list(state.holds)),
            "plan_counted": self._plan_counted(),
        }

    @staticmethod
    def _plan_count() -> int:
        from membership.storage import usage

        return usage.read_usage(usage.PLAN, "PLUS").count

    def _plan_counted(self) -> tuple[bool, int]:
        """The subscription's `counted` flag and what the member adds to PLUS's counter."""
        from membership.storage import subscriptions

        item = subscriptions.read(self.member_id)[0].get("PLUS")
        return (bool(item is not None and item.counted),
                self._plan_count() - self.plan_count_before)

    def expected(self) -> dict:
        md = self.model
        return {
            "principal": md.principal, "bonus": md.bonus, "bonus_debt": md.bonus_debt,
            "available": md.points_available, "pending": md.points_pending,
            "points_debt": md.points_debt, "lots": md.lots_by_expiry(),
            "growth": {k: v for k, v in md.growth.items() if v}, "tier": md.tier,
            "holds": md.open_holds(), "plan_ends": md.plan_ends_at(self.now),
            "plan_counted": (md.plan_counted, int(md.plan_counted)),
        }

    @invariant()
    def owns_what_the_policies_say(self):
        if not hasattr(self, "model"):
            return
        self.compare(self.observe(), self.expected())

    def compare(self, got: dict, want: dict) -> None:
        # One assertion per asset, so that distinct defects are reported apart.
        assert got["principal"] == want["principal"], ("principal", got, want)
        assert got["bonus"] == want["bonus"], ("bonus", got, want)
        assert got["available"] == want["available"], ("points available", got, want)
        assert got["pending"] == want["pending"], ("points pending", got, want)
        assert got["lots"] == want["lots"], ("lots", got, want)
        assert got["growth"] == want["growth"], ("growth", got, want)
        assert got["tier"] == want["tier"], ("tier", got, want)
        assert got["holds"] == want["holds"], ("open holds", got, want)
        assert got["plan_ends"] == want["plan_ends"], ("paid plan end", got, want)
        # A plan is removable only when no one is counted: never less than an active run.
        assert got["plan_counted"] == want["plan_counted"], ("PLUS usage counter", got, want)
        if got["bonus_debt"] is not None:  # a store that records debt at all
            assert got["bonus_debt"] == want["bonus_debt"], ("bonus debt", got, want)
        if got["points_debt"] is not None:
            assert got["points_debt"] == want["points_debt"], ("points debt", got, want)
        # And the ledger adds up: balances = sum of entries, lots = points, nothing < 0.
        assert got["breaches"] == [], ("reconcile", got["breaches"])

    # ---- stored value ------------------------------------------------------------------

    def _top_up(self, reference: str, amount: int, key: str):
        from membership.services import topups

        request = TopupRequest(amount=amount, paymentReference=reference, channel="alipay")
        self.expect(lambda: self.model.top_up(reference, amount, self.now),
                    lambda: topups.top_up(self.sub, key, request, now=self.now))

    # 100 yuan earns a bonus, 50 does not: an attacker refills below the bonus threshold.
    @rule(data=st.data(), amount=st.sampled_from([10_000, 5_000, 50_000]),
          again=st.booleans())
    def top_up(self, data, amount, again):
        """A top-up, or the same payment delivered again (another key): credited once."""
        if again and self.app_topup_refs:
            reference, amount = data.draw(st.sampled_from(self.app_topup_refs))
            self._top_up(reference, amount, f"again-{self.next_id('k')}")
            return
        reference = f"test-{self.next_id('pay')}"
        self._top_up(reference, amount, f"key-{reference}")
        self.topup_refs.append((reference, amount))
        self.app_topup_refs.append((reference, amount))

    @precondition(lambda self: self.topup_refs)
    @rule(data=st.data(), part=st.sampled_from([1_000, "whole", "half"]),
          again=st.sampled_from([None, None, "same", "other amount"]))
    def refund_top_up(self, data, part, again):
        """A refund (whole, half or 10 yuan), or a refund reference again: the same refund
        once, another amount refused."""
        from membership.services import topups

        if again and self.refund_refs:
            reference, refund_ref, amount = data.draw(st.sampled_from(self.refund_refs))
            if again == "other amount":
                amount = (amount or 2) - 1 or None
        else:
            reference, total = data.draw(st.sampled_from(self.topup_refs))
            refund_ref = self.next_id("rf")
            amount = {"whole": None, "half": total // 2}.get(part, part)
            self.refund_refs.append((reference, refund_ref, amount))
        # The whole refund leaves `amount` out: an explicit null is refused as bad input.
        request = RefundRequest(refundReference=refund_ref,
                                **({} if amount is None else {"amount": amount}))
        self.expect(lambda: self.model.refund_topup(reference, refund_ref, amount),
                    lambda: topups.refund(topup_id_for(reference), request,
                                          actor="operator", now=self.now))

    # ---- the paid plan (a sink of stored value) ------------------------------------------

    @rule(data=st.data(), term=st.sampled_from(["monthly", "quarterly", "yearly"]),
          again=st.booleans())
    def buy_plan(self, data, term, again):
        """PLUS paid from stored value (extending the plan while active), or a purchase's
        key sent again: the balance is debited once."""
        if again and self.plan_keys:
            key, term = data.draw(st.sampled_from(self.plan_keys))
        else:
            key = self.next_id("plan")
        self._buy_plan(key, term)

    def _buy_plan(self, key: str, term: str):
        from membership.domain.subscriptions import SubscriptionRequest
        from membership.services import subscriptions

        if (key, term) not in self.plan_keys:
            self.plan_keys.append((key, term))
        request = SubscriptionRequest.model_validate(
            {"planId": "PLUS", "term": term, "payWith": "balance"})
        return self.expect(lambda: self.model.buy_plan(key, term, self.now),
                           lambda: subscriptions.purchase(self.sub, key, request, now=self.now))

    # ---- checkout ----------------------------------------------------------------------

    def _amount(self, mode: str, have: int) -> int:
        return {"none": 0, "half": have // 2, "all": have}[mode]

    @rule(data=st.data(), points=st.sampled_from(["all", "none", "half"]),
          balance=st.sampled_from(["all", "none", "half"]), again=st.booleans())
    def hold(self, data, points, balance, again):
        """Reserve for a new order; or the order system asks again for an earlier hold,
        which answers `held` only while the hold still holds funds."""
        from membership.services import checkout

        # Holds of points or balance (a hold of coupons alone is asked again by its own
        # request in the coupon machine: this request would hold nothing).
        asked = [o for o in self.unpaid if o in self.model.holds
                 and (self.model.holds[o].points or self.model.holds[o].balance)]
        if again and asked:
            order_id = data.draw(st.sampled_from(asked))
            p, b = self.model.holds[order_id].points, self.model.holds[order_id].balance
        else:
            p = self._amount(points, sum(lot.remaining for lot in self.model.spendable(self.now)))
            b = self._amount(balance, self.model.principal + self.model.bonus)
            if p + b == 0:
                return
            order_id = self.next_id("SO")
            self.unpaid.append(order_id)
        request = HoldRequest(orderId=order_id, memberId=self.member_id, points=p, balance=b)
        self.expect(lambda: self.model.hold(order_id, p, b, self.now),
                    lambda: checkout.hold(request, now=self.now))

    def _payload(self, order_id: str, points: int, balance: int, cash: int) -> dict:
        from membership.domain.checkout import points_value

        subtotal = points_value(points, self.model.program) + balance + cash
        if subtotal == 0:
            subtotal = cash = 3_000
        a = subtotal // 3  # line 1: two units of a; line 2: one unit of the rest
        return {
            "orderId": order_id, "memberId": self.member_id, "storeId": "s1",
            "paidAt": calendar.wire(self.now, TZ),
            "lines": [
                {"lineId": "1", "sku": "A", "category": "c", "brand": "b", "quantity": 2,
                 "unitPrice": a},
                {"lineId": "2", "sku": "B", "category": "c", "brand": "b", "quantity": 1,
                 "unitPrice": subtotal - 2 * a},
            ],
            "amounts": {"subtotal": subtotal, "discount": 0, "pointsUsed": points,
                        "balanceUsed": balance, "cashPaid": cash},
        }

    def _deliver(self, kind: str, payload: dict):
        from membership.services import orders

        if kind == "order.paid":
            return self.expect(lambda: self.model.paid(payload, self.now),
                               lambda: orders.paid(OrderPaid.model_validate(payload),
                                                   now=self.now))
        if kind == "order.cancelled":
            return self.expect(lambda: self.model.cancelled(payload["orderId"], self.now),
                               lambda: orders.cancelled(OrderCancelled.model_validate(payload),
                                                        now=self.now))
        if kind == "order.completed":
            return self.expect(lambda: self.model.completed(payload["orderId"]),
                               lambda: orders.completed(OrderCompleted.model_validate(payload),
                                                        now=self.now))
        return self.expect(
            lambda: self.model.refunded(payload["orderId"], payload["refundId"],
                                        payload.get("lines"), self.now),
            lambda: orders.refunded(OrderRefunded.model_validate(payload), now=self.now))

    @rule(data=st.data(), cash=st.sampled_from([30_000, 0, 80_000, 150_000]),
          points=st.sampled_from(["all", "none", "half"]),
          balance=st.sampled_from(["all", "none", "half"]),
          again=st.sampled_from([None, None, "same", "other"]))
    def pay(self, data, cash, points, balance, again):
        """order.paid: of a held order (its hold's amounts), of a new one, or delivered
        again with the same payload (a replay) or another (an error, never a replay)."""
        if again and self.paid_orders:
            order_id = data.draw(st.sampled_from(self.paid_orders))
            payload = dict(self.model.orders[order_id].payload)
            if again == "other":
                lines = [dict(line) for line in payload["lines"]]
                lines[1]["unitPrice"] += 100
                amounts = payload["amounts"]
                payload.update(lines=lines, amounts=dict(
                    amounts, subtotal=amounts["subtotal"] + 100,
                    cashPaid=amounts["cashPaid"] + 100))
            self._deliver("order.paid", payload)
            return
        held = [o for o in self.unpaid if o in self.model.holds]
        if held and data.draw(st.booleans(), label="of a held order"):
            order_id = data.draw(st.sampled_from(held))
            hold = self.model.holds[order_id]
            p, b = hold.points, hold.balance
        else:
            order_id = self.next_id("SO")
            p = self._amount(points, sum(lot.remaining for lot in self.model.spendable(self.now)))
            b = self._amount(balance, self.model.principal + self.model.bonus)
        self._deliver("order.paid", self._payload(order_id, p, b, cash))
        if order_id in self.model.orders and order_id not in self.paid_orders:
            self.paid_orders.append(order_id)
            if order_id in self.unpaid:
                self.unpaid.remove(order_id)

    @precondition(lambda self: self.unpaid or self.paid_orders)
    @rule(data=st.data())
    def cancel(self, data):
        order_id = data.draw(st.sampled_from(self.unpaid + self.paid_orders))
        self._deliver("order.cancelled", {"orderId": order_id, "memberId": self.member_id})

    @precondition(lambda self: self.unpaid or self.paid_orders)
    @rule(data=st.data())
    def complete(self, data):
        order_id = data.draw(st.sampled_from(self.unpaid + self.paid_orders))
        payload = {"orderId": order_id, "memberId": self.member_id}
        if isinstance(self._deliver("order.completed", payload), DomainError):
            if order_id not in self.model.orders:
                self.early.append(("order.completed", payload))

    @precondition(lambda self: self.unpaid or self.paid_orders)
    @rule(data=st.data(), lines=st.sampled_from(["whole", "line1", "line2", "both"]),
          again=st.sampled_from([None, None, "same", "other"]))
    def refund(self, data, lines, again):
        """order.refunded, whole or per line; or a refundId again: with the same lines a
        replay, with other lines an error, never a replay."""
        choices = {"whole": None, "line1": [{"lineId": "1", "quantity": 1}],
                   "line2": [{"lineId": "2", "quantity": 1}],
                   "both": [{"lineId": "1", "quantity": 1}, {"lineId": "2", "quantity": 1}]}
        if again and self.refunds:
            order_id, refund_id, chosen = data.draw(st.sampled_from(self.refunds))
            if again == "other":
                chosen = choices["line2"] if chosen != choices["line2"] else choices["line1"]
        else:
            order_id = data.draw(st.sampled_from(self.unpaid + self.paid_orders))
            refund_id = self.next_id("RF")
            chosen = choices[lines]
        payload = {"orderId": order_id, "memberId": self.member_id, "refundId": refund_id}
        if chosen is not None:
            payload["lines"] = chosen
        if isinstance(self._deliver("order.refunded", payload), DomainError):
            if order_id not in self.model.orders:
                self.early.append(("order.refunded", payload))
            return
        if not again:
            self.refunds.append((order_id, refund_id, chosen))

    @precondition(lambda self: self.early)
    @rule()
    def retry_early_event(self):
        """EventBridge retries an event that overtook its order's payment."""
        kind, payload = self.early.pop(0)
        if isinstance(self._deliver(kind, payload), DomainError):
            if payload["orderId"] not in self.model.orders:
                self.early.append((kind, payload))
            return
        if kind == "order.refunded":
            self.refunds.append((payload["orderId"], payload["refundId"],
                                 payload.get("lines")))

    # ---- the birthday (the settlement of its month gives the gift) ------------------------

    @rule(ahead=st.sampled_from([0, 1, 1, 2, 7]), day=st.sampled_from([1, 15, 28]),
          same=st.booleans())
    def set_birthday(self, ahead, day, same):
        """The member sets a birthday a few months ahead (once: the same date again is
        accepted, another date refused)."""
        if same and self.model.birthday is not None:
            birthday = self.model.birthday
        else:
            month = calendar.shift_month(calendar.month_of(self.now, TZ), ahead)
            birthday = f"1990-{month[5:7]}-{day:02d}"
        self._set_birthday(birthday)

    def _set_birthday(self, birthday: str) -> None:
        from membership.domain.members import ProfileUpdate
        from membership.services import members

        self.expect(lambda: self.model.set_birthday(birthday),
                    lambda: members.edit_profile(
                        self.sub, ProfileUpdate.model_validate({"birthday": birthday}),
                        now=self.now))

    # ---- time ----------------------------------------------------------------------------

    @precondition(lambda self: self.now < LAST)
    @rule(minutes=st.sampled_from([31, 10, 24 * 60, 8 * 24 * 60]))
    def time_passes(self, minutes):
        self.now += timedelta(minutes=minutes)

    @precondition(lambda self: self.now < LAST)
    @rule(minute=st.sampled_from([3, 5, 60]), months=st.sampled_from([1, 1, 1, 7]))
    def next_month_begins(self, minute, months):
        """To minute `minute` of the 1st of a later month (00:03: before its settlement)."""
        month = calendar.shift_month(calendar.month_of(self.now, TZ), months)
        self.now = calendar.month_start(month, TZ) + timedelta(minutes=minute)

    @rule()
    def sweep(self):
        from membership.services import sweeps

        self.model.sweep(self.now)
        sweeps.sweep(now=self.now)

    @rule()
    def settle(self):
        """The month that ended last, for this member, as a segment worker settles it."""
        from membership.domain.settlement import period_before, snapshot_of
        from membership.services import settlement
        from membership.storage import ledger
        from membership.storage.program import load_program

        period = period_before(self.now, TZ)
        if period in self.settled:
            return
        self.settled.add(period)
        self.model.settle(period, self.now)
        member = ledger.read_live_range(self.member_id).member
        settlement.settle_member(snapshot_of(member), load_program(), period,
                                 clock=lambda: self.now)


class PlanRefundRules:
    """The operator's refund of a paid-plan term as a rule of the money flow (a source of
    stored value). A mixin: the machines whose derandomized runs check coverage of their
    own outcomes (closure) keep their rule set."""

    @rule(data=st.data(), again=st.booleans())
    def refund_plan(self, data, again):
        """An operator refunds the latest unrefunded term (a source of stored value: the
        documented amount back to the balance the term was paid from), or a refund
        reference sent again: applied once."""
        from membership.domain.subscription_refunds import SubscriptionRefundRequest
        from membership.domain.subscriptions import subscription_id_for
        from membership.services import subscription_refunds

        if not self.model.plan_terms:
            return
        # (this member's references: a closure's next member starts a new model)
        known = [r for r in self.plan_refund_ids if r in self.model.plan_refunds]
        if again and known:
            refund_id = data.draw(st.sampled_from(known))
        else:
            refund_id = self.next_id("PRF")
        request = SubscriptionRefundRequest.model_validate(
            {"refundId": refund_id, "reason": "oracle"})
        result = self.expect(
            lambda: self.model.refund_plan(refund_id, self.now),
            lambda: subscription_refunds.refund(subscription_id_for(self.member_id, "PLUS"),
                                                request, actor="admin:oracle", now=self.now))
        if not isinstance(result, DomainError):
            assert result.body["amount"] == self.model.plan_refunds[refund_id], (
                "refund amount", result.body, self.model.plan_refunds[refund_id])
            if refund_id not in self.plan_refund_ids:
                self.plan_refund_ids.append(refund_id)
