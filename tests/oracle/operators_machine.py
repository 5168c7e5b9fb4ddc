"""The money oracle with the operators in the flow (docs/operations.md).

`OperatorsMachine` adds to every money step of `MoneyMachine` what operators do to the
same member, through the real services against DynamoDB Local:

- adjustments of points, growth and bonus, credits and debits (half, all, one past all),
  replayed with the same body, and the same `adjustmentId` reused with another body;
- bulk grants of points to a list with the member, unknown ids and duplicates, cut into
  chunks of two; the chunks wait on a queue of the machine's own and are applied in any
  order, interleaved with every other step, and delivered again; a grant re-posted with
  the same body or another;
- bulk grants to a tag of the run's own, while operators tag and untag the member and the
  member gives and withdraws marketing consent: the expansion step waits on the same
  queue (and is delivered again), and the member is credited once iff they carried the
  tag and consented when the segment was read;
- freeze and unfreeze, with top-ups, holds and paid orders going on around them.

`OperatorsModel` predicts each step; the inherited invariant compares the stored member,
its lots, holds and debts with it after every step, and the ledger must reconcile.
"""
from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule
from money_machine import MoneyMachine
from operators_model import OperatorsModel

from membership.errors import DomainError

ACTOR = "ops-oracle"
REASONS = ("goodwill", "correction", "compensation", "campaign")


class OperatorsMachine(MoneyMachine):
    model_class = OperatorsModel

    def with_history(self, history: str) -> None:
        self.adjusted: list[tuple[str, tuple]] = []  # (adjustmentId, request body)
        self.granted: list[tuple[str, dict]] = []  # (grantId, request body)
        self.queue: list[dict] = []  # grant chunks not yet delivered (or to deliver again)
        super().with_history(history)

    # ---- adjustments -------------------------------------------------------------------

    def _available(self, asset: str) -> int:
        md = self.model
        if asset == "points":
            return sum(lot.remaining for lot in md.spendable(self.now))
        if asset == "growth":
            from membership.domain import calendar

            return md.rolling_growth(calendar.month_of(self.now, md.tz))
        return md.bonus

    def _adjust(self, adjustment_id: str, body: tuple):
        from membership.domain.adjustments import AdjustmentRequest
        from membership.services import adjustments

        asset, amount, reason_code, note = body
        request = AdjustmentRequest(adjustmentId=adjustment_id, asset=asset, amount=amount,
                                    reasonCode=reason_code, note=note)
        return self.expect(
            lambda: self.model.adjust(adjustment_id, asset, amount, reason_code, note,
                                      self.now),
            lambda: adjustments.adjust(self.member_id, request, actor=ACTOR, now=self.now))

    @rule(data=st.data(), asset=st.sampled_from(["points", "growth", "balance_bonus"]),
          size=st.sampled_from(["+small", "+upgrade", "-half", "-all", "-past_all"]),
          reason=st.sampled_from(REASONS), again=st.sampled_from([None, None, "same", "other"]))
    def adjust(self, data, asset, size, reason, again):
        """An operator's adjustment; or one again: the same body is a replay (even after
        the balance moved), another body under the same id is refused."""
        if again and self.adjusted:
            adjustment_id, body = data.draw(st.sampled_from(self.adjusted))
            if again == "other":
                asset, amount, reason_code, note = body
                body = (asset, amount + 1 if amount != -1 else 1, reason_code, note)
            self._adjust(adjustment_id, body)
            return
        have = self._available(asset)
        amount = {"+small": 300, "+upgrade": 6_000, "-half": -(have // 2), "-all": -have,
                  "-past_all": -(have + 1)}[size] or -(have + 1)
        adjustment_id = self.next_id("ADJ")
        body = (asset, amount, reason, f"oracle {size}")
        if not isinstance(self._adjust(adjustment_id, body), DomainError):
            self.adjusted.append((adjustment_id, body))

    # ---- bulk grants -------------------------------------------------------------------

    def _create_grant(self, grant_id: str, body: dict):
        from membership.domain.grants import GrantRequest
        from membership.services import grants

        request = GrantRequest.model_validate({"grantId": grant_id, **body})
        return self.expect(
            lambda: self.model.create_grant(grant_id, body["points"], body["reasonCode"],
                                            tuple(body.get("memberIds", ())),
                                            body.get("tag")),
            lambda: grants.create(request, actor=ACTOR, enqueue=self.queue.extend,
                                  now=self.now))

    @rule(data=st.data(), points=st.sampled_from([88, 500]),
          members=st.sampled_from(["member", "with_unknown", "duplicated", "others_only",
                                   "tag_a", "tag_b"]),
          again=st.sampled_from([None, None, "same", "other"]))
    def grant(self, data, points, members, again):
        """POST /v1/admin/grants: its chunks go to the queue and credit nobody yet; or the
        same grantId again: the same body answers the grant, another body is refused."""
        if again and self.granted:
            grant_id, body = data.draw(st.sampled_from(self.granted))
            if again == "other":
                body = dict(body, points=body["points"] + 1)
            self._create_grant(grant_id, body)
            return
        grant_id = self.next_id("G")
        if members.startswith("tag_"):
            body = {"points": points, "reasonCode": "campaign",
                    "tag": self._tag(members[-1])}
            if not isinstance(self._create_grant(grant_id, body), DomainError):
                self.granted.append((grant_id, body))
            return
        unknown = [f"Mnobody{self.run}{self.n}x{i}" for i in range(3)]
        member_ids = {"member": [self.member_id],
                      "with_unknown": [unknown[0], self.member_id, unknown[1], unknown[2]],
                      "duplicated": [self.member_id, unknown[0], self.member_id],
                      "others_only": unknown}[members]
        body = {"points": points, "reasonCode": "campaign", "memberIds": member_ids}
        if not isinstance(self._create_grant(grant_id, body), DomainError):
            self.granted.append((grant_id, body))

    @precondition(lambda self: self.queue)
    @rule(data=st.data(), again=st.booleans())
    def deliver_grant_chunk(self, data, again):
        """The worker applies any waiting chunk (out of order); `again` keeps it on the
        queue, as SQS does when a delivery's result is lost."""
        from membership.services import grants

        message = data.draw(st.sampled_from(self.queue))
        if not again:
            self.queue.remove(message)
        if "expand" in message:
            self._expand(message, again)
            return
        grant_id, member_ids = message["grantId"], message["memberIds"]
        tally = self.expect(
            lambda: self.model.apply_grant_chunk(grant_id, member_ids, self.now),
            lambda: grants.apply_chunk(grant_id, message["chunk"], member_ids, now=self.now))
        # Unknown ids are failures of the chunk, never a crash of it.
        unknown = [m for m in member_ids if m != self.member_id]
        assert (tally.done, tally.failed) == (len(member_ids) - len(unknown), len(unknown)), tally

    def _tag(self, which: str) -> str:
        """A tag of this run's own: the segment holds no member of other runs."""
        return f"o{self.run}-{which}"

    def _expand(self, message: dict, again: bool) -> None:
        """A tag grant's expansion step: the segment read (or its frozen pages read back)
        and cut into chunks, which join the queue."""
        from membership.services import tag_grants

        grant_id = message["grantId"]
        included = self.model.expand_grant(grant_id)
        produced: list[dict] = []
        tag_grants.expand(grant_id, int(message["expand"]), produced.extend)
        listed = [m for chunk in produced for m in chunk.get("memberIds", [])]
        assert listed == ([self.member_id] if included else []), (listed, included)
        self.queue.extend(produced)

    @rule(which=st.sampled_from("ab"), on=st.booleans())
    def tag_member(self, which, on):
        """An operator tags or untags the member (no money moves)."""
        from membership.services import tags

        self.model.set_tag(self._tag(which), on)
        (tags.put_tag if on else tags.delete_tag)(self.member_id, self._tag(which),
                                                   now=self.now)

    @rule(on=st.booleans())
    def set_consent(self, on):
        """The member gives or withdraws marketing consent (a tag's segment follows it)."""
        from membership.domain.members import ProfileUpdate
        from membership.services import members

        self.model.set_consent(on)
        # The real clock: consent records are keyed by their instant, and the machine's
        # clock does not move between two consent steps.
        members.edit_profile(self.sub, ProfileUpdate(marketingConsent=on))

    # ---- freeze ------------------------------------------------------------------------

    @rule(frozen=st.booleans())
    def set_status(self, frozen):
        """PATCH /v1/admin/members/{memberId}: spending stops, earning goes on."""
        from membership.domain.member_status import StatusChange
        from membership.services import admin_members

        change = StatusChange(status="frozen" if frozen else "active", reason="oracle")
        self.expect(lambda: self.model.set_status(frozen),
                    lambda: admin_members.change_status(self.member_id, change, actor=ACTOR,
                                                        now=self.now))
