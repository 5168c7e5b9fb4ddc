"""The money oracle extended by account closure (docs/privacy.md): a sink of value.

`ClosureModel.close` is the policy: refused while stored value or an open hold remains;
otherwise every lot's remaining points (available and pending) are forfeited and nothing
else moves. `ClosureMachine` adds a `close_account` rule to the money flow: after a
closure the stored member must hold what the model says (zero points, no lots, the same
balances, debts and growth) with a reconciling ledger and no personal data, a retry must
answer the first answer, and the run goes on with a new member who signs up with the
closed member's phone.
"""
from __future__ import annotations

import uuid
from collections import Counter
from typing import ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import rule
from money_machine import MoneyMachine
from money_model import MoneyModel, Refused

from membership.domain.members import SignupRequest, member_id_for
from membership.errors import DomainError


class ClosureModel(MoneyModel):
    def close(self, now=None) -> int:
        if self.principal or self.bonus:
            raise Refused("account_not_empty: stored value")
        if now is not None and self.plan_ends_at(now) is not None:
            raise Refused("account_not_empty: paid term")
        if self.open_holds():
            raise Refused("account_not_empty: open hold")
        forfeited = sum(lot.remaining for lot in self.lots.values())
        self.lots.clear()
        self.plan_counted = False  # a run that ended unseen is counted down
        return forfeited


class ClosureMachine(MoneyMachine):
    model_class = ClosureModel
    # How the closures of a test went: it must have seen both.
    outcomes: ClassVar[Counter] = Counter()

    def observe_closed(self) -> dict:
        from membership.domain.ledger import reconcile
        from membership.storage import ledger
        from membership.storage.members import get_member

        m = get_member(self.member_id, consistent=True, include_closed=True)
        lots = ledger.all_lots(self.member_id)
        return {
            "principal": m.balance_principal, "bonus": m.balance_bonus,
            "bonus_debt": m.bonus_debt, "available": m.points_available,
            "pending": m.points_pending, "points_debt": m.points_debt,
            "lots": {lot.lot_id: lot.remaining for lot in lots},
            "growth": {k: v for k, v in m.growth_months.items() if v}, "tier": m.tier_id,
            "personal": (m.phone, m.nickname, m.subject, m.birthday, m.gender),
            "status": m.status,
            "breaches": reconcile(m, ledger.all_entries(self.member_id), lots,
                                  ledger.all_holds(self.member_id)),
        }

    @rule(again=st.booleans())
    def close_account(self, again):
        from membership.services import privacy
        from membership.storage.members import get_member

        phone = get_member(self.member_id, consistent=True).phone
        forfeited: list[int] = []
        result = self.expect(lambda: forfeited.append(self.model.close(self.now)),
                             lambda: privacy.close(self.sub, now=self.now))
        if isinstance(result, DomainError):
            assert result.code == "account_not_empty", result.code
            self.outcomes["refused"] += 1
            return
        self.outcomes["closed"] += 1
        answer, replayed = result
        assert not replayed and answer["forfeitedPoints"] == forfeited[0]
        got, md = self.observe_closed(), self.model
        assert got["status"] == "closed"
        assert got["personal"] == (None, None, None, None, None), got["personal"]
        assert got["lots"] == {} and (got["available"], got["pending"]) == (0, 0), got
        assert (got["principal"], got["bonus"]) == (md.principal, md.bonus) == (0, 0)
        assert (got["bonus_debt"], got["points_debt"]) == (md.bonus_debt, md.points_debt)
        assert got["growth"] == {k: v for k, v in md.growth.items() if v}
        assert got["tier"] == md.tier
        assert got["breaches"] == [], got["breaches"]
        if again:
            assert privacy.close(self.sub, now=self.now) == (answer, True)
        self.check_what_closure_kept()
        self._next_member_with_the_same_phone(phone)

    def check_what_closure_kept(self) -> None:
        """What a capability keeps of a closed account, compared with its model (the
        money flow's part is checked above)."""

    def _next_member_with_the_same_phone(self, phone: str) -> None:
        """The closed member's phone signs up again: a new member, whose run goes on."""
        from membership.services import members
        from membership.storage.program import load_program

        self.sub = f"oracle-{self.run}-again-{uuid.uuid4().hex[:4]}"
        members.signup(self.sub, SignupRequest(phone=phone, nickname="o2", channel="app"),
                       now=self.now)
        assert member_id_for(self.sub) != self.member_id
        self.member_id = member_id_for(self.sub)
        self.model = self.model_class(load_program(), self.member_id, self.now)
        self.topup_refs, self.refund_refs, self.unpaid = [], [], []
        self.paid_orders, self.refunds, self.early = [], [], []
        self.settled = set()
