"""The coupon oracle with account closure among its steps (docs/privacy.md, docs/coupons.md).

Closure is refused while a hold is open, and a coupon held by an order is an open hold;
otherwise it deletes the member's unused coupons (available, or expired unused) and keeps
the used ones with their orders, while each template's `issued` and `redeemed` counts stay
as they were. After a closure the closed member's stored coupons must be the model's, and
the run goes on with a new member (same phone) drawing on the same templates.
"""
from __future__ import annotations

from collections import Counter
from typing import ClassVar

from closure_machine import ClosureMachine, ClosureModel
from coupon_machine import CouponMachine
from coupon_model import CouponModel
from hypothesis import strategies as st
from hypothesis.stateful import initialize


class CouponClosureModel(CouponModel, ClosureModel):
    def close(self, now=None) -> int:
        forfeited = super().close(now)
        self.removed_coupons = [cid for cid, c in self.coupons.items()
                                if c.status == "available"]
        for cid in self.removed_coupons:
            del self.coupons[cid]
        return forfeited


class CouponClosureMachine(CouponMachine, ClosureMachine):
    coupon_model_class = CouponClosureModel
    # Stored value keeps an account open (test_closure_oracle.py searches that refusal):
    # without top-ups most closures go through, and the coupons they remove are seen.
    top_up = refund_top_up = None
    # Closures that removed coupons and closures that kept used ones: both must occur.
    coupon_outcomes: ClassVar[Counter] = Counter()

    @initialize(history=st.sampled_from(("fresh", "points_held", "welcome_coupon_used")))
    def start(self, history="fresh"):
        """welcome_coupon_used: the signup's coupon paid an order (closure keeps it)."""
        super().start("fresh" if history == "welcome_coupon_used" else history)
        if history == "welcome_coupon_used":
            welcome = next(iter(self.model.coupons))
            self._pay_with(self.next_id("SO"), 0, 0, 30_000, (welcome,))
            assert self.model.coupons[welcome].status == "used"
            self.owns_what_the_policies_say()

    def check_what_closure_kept(self) -> None:
        from membership.storage import coupons as store

        kept = {c.coupon_id: (c.status_at(self.now), c.order_id)
                for c in store.coupons_page(self.member_id, 100, None)[0]}
        assert kept == self.model.wallet(self.now), ("closed member's coupons", kept,
                                                     self.model.wallet(self.now))
        assert all(status == "used" for status, _ in kept.values()), kept
        if self.model.removed_coupons:
            self.coupon_outcomes["removed"] += 1
        if kept:
            self.coupon_outcomes["kept used"] += 1

    def _next_member_with_the_same_phone(self, phone: str) -> None:
        """The templates are shared: what they issued and redeemed carries over to the new
        member's model; the member's own limits, claims and grants start afresh."""
        counts = {t: (m.issued, m.redeemed) for t, m in self.model.templates.items()}
        super()._next_member_with_the_same_phone(phone)
        for template_id, (issued, redeemed) in counts.items():
            template = self.model.templates[template_id]
            template.issued += issued
            template.redeemed += redeemed
        self.claim_keys, self.grant_ids = [], []
