"""Privacy rules (domain/privacy.py), pure: what blocks closure, what it forfeits, erases
and removes, what the export holds; and the log masking of phone numbers."""
from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from membership.domain import privacy
from membership.domain.ledger import Entry, Hold, LedgerState, Lot, LotTake, PostingBuilder
from membership.domain.members import Member, PaidPlanState
from membership.domain.program import default_program
from membership.observability import mask_phones

NOW = datetime(2025, 6, 2, 4, 0, tzinfo=UTC)
PROGRAM = default_program()


def member(**changes) -> Member:
    base = {"member_id": "Mabcdefgh", "subject": "sub-1", "phone": "+8613912345678",
            "nickname": "Lin", "channel": "app", "store_id": "S1", "referral_code": "R1",
            "birthday": "1990-07-15", "gender": "female", "updated_at": NOW,
            "created_at": NOW - timedelta(days=90), "tier_id": "V1",
            "tier_since": NOW - timedelta(days=90)}
    return Member(**{**base, **changes})


def lot(lot_id: str, remaining: int, *, pending: bool = False, days: int = 200) -> Lot:
    return Lot(lot_id=lot_id, member_id="Mabcdefgh", amount=remaining, remaining=remaining,
               earned_at=NOW - timedelta(days=10), expires_at=NOW + timedelta(days=days),
               pending=pending, available_at=NOW + timedelta(days=7) if pending else None,
               source_key=f"src-{lot_id}")


def hold(points: int = 0, principal: int = 0) -> Hold:
    return Hold(hold_id="SO-1", member_id="Mabcdefgh", source_key="hold:SO-1",
                created_at=NOW, expires_at=NOW + timedelta(minutes=30), points=points,
                principal=principal)


def closing(m: Member, lots=(), holds=()):
    state = LedgerState(member=m, lots=tuple(lots), holds=tuple(holds))
    builder = PostingBuilder(state, PROGRAM, source_key="closure:Mabcdefgh",
                             source_type="closure", reason="account_closed",
                             actor="member:Mabcdefgh", now=NOW)
    data = privacy.MemberData(member=m, lots=tuple(lots), holds=tuple(holds))
    return builder, data


# ---- what blocks closure ------------------------------------------------------------------

def test_an_empty_account_has_nothing_remaining():
    assert privacy.closure_blockers(privacy.MemberData(member=member()), NOW) == []


def test_stored_value_blocks_with_principal_and_bonus_apart():
    [r] = privacy.closure_blockers(
        privacy.MemberData(member=member(balance_principal=300, balance_bonus=20)), NOW)
    assert (r.kind, r.amount, r.principal, r.bonus) == ("stored_value", 320, 300, 20)


def test_bonus_alone_still_blocks():
    [r] = privacy.closure_blockers(privacy.MemberData(member=member(balance_bonus=1)), NOW)
    assert r.kind == "stored_value"


def test_an_open_hold_blocks_and_a_closed_one_does_not():
    open_hold, captured = hold(points=50), hold(points=50).model_copy(
        update={"status": "captured", "hold_id": "SO-2"})
    data = privacy.MemberData(member=member(), holds=(open_hold, captured))
    assert [(r.kind, r.id) for r in privacy.closure_blockers(data, NOW)] == [
        ("open_hold", "SO-1")]


def test_an_active_paid_term_blocks_and_an_ended_one_does_not():
    active = PaidPlanState(plan_id="PLUS", started_at=NOW, ends_at=NOW + timedelta(days=1))
    ended = PaidPlanState(plan_id="PLUS", started_at=NOW - timedelta(days=40),
                          ends_at=NOW - timedelta(seconds=1))
    blocked = privacy.closure_blockers(privacy.MemberData(member=member(paid_plan=active)), NOW)
    assert [r.kind for r in blocked] == ["paid_term"]
    assert privacy.closure_blockers(privacy.MemberData(member=member(paid_plan=ended)), NOW) == []


def test_a_refusal_lists_every_remaining_thing_in_its_details():
    data = privacy.MemberData(member=member(balance_principal=5), holds=(hold(points=1),))
    with pytest.raises(privacy.AccountNotEmpty) as refused:
        privacy.ensure_closable(data, NOW)
    assert [r["kind"] for r in refused.value.details["remaining"]] == [
        "stored_value", "open_hold"]


def test_a_closed_account_cannot_close_again():
    with pytest.raises(privacy.MemberClosed):
        privacy.ensure_closable(privacy.MemberData(member=member(status="closed")), NOW)


# ---- what closure does ------------------------------------------------------------------

# A live lot has points left, or is pending (a clawed-back pending lot may hold none).
lots_strategy = st.lists(
    st.tuples(st.integers(0, 5_000), st.booleans(), st.integers(1, 700)).filter(
        lambda spec: spec[0] > 0 or spec[1]),
    max_size=12)


@given(lots_strategy)
def test_closure_forfeits_every_lot_by_entries_and_leaves_no_lot(spec):
    lots = [lot(f"L{i}", remaining, pending=pending, days=days)
            for i, (remaining, pending, days) in enumerate(spec)]
    m = member(points_available=sum(x.remaining for x in lots if not x.pending),
               points_pending=sum(x.remaining for x in lots if x.pending))
    builder, data = closing(m, lots)
    plan = privacy.close_account(builder, data)
    posting = builder.build()
    forfeited = sum(x.remaining for x in lots)
    assert plan.summary["forfeitedPoints"] == forfeited
    assert (posting.member.points_available, posting.member.points_pending) == (0, 0)
    assert all(change.after is None for change in posting.lots)
    assert {change.before.lot_id for change in posting.lots} == {x.lot_id for x in lots}
    assert not [x for x in lots if x.pending and x.remaining == 0] or posting.lots
    assert sum(e.amount for e in posting.entries) == -forfeited
    assert all(e.reason == "account_closed" and e.asset == "points" for e in posting.entries)


def test_closure_erases_every_personal_field_and_the_check_in_calendar():
    m = member(checkin_months={"2025-05": 7}, checkin_since="2025-01", checkin_carry=3,
               marketing_consent=True)
    builder, data = closing(m)
    privacy.close_account(builder, data)
    after = builder.build().member
    assert all(getattr(after, name) is None for name in privacy.PERSONAL_FIELDS)
    assert (after.checkin_months, after.checkin_since, after.checkin_carry) == ({}, None, 0)
    assert (after.status, after.closed_at, after.marketing_consent) == ("closed", NOW, False)
    assert (after.member_id, after.tier_id, after.created_at) == (
        m.member_id, m.tier_id, m.created_at)


def test_closure_removes_the_phone_and_subject_items_and_emits_member_closed():
    builder, data = closing(member())
    plan = privacy.close_account(builder, data)
    posting = builder.build()
    assert [(r.kind, r.key) for r in plan.removals] == [
        ("phone", "+8613912345678"), ("subject", "sub-1")]
    [event] = posting.events
    assert event.detail_type == "member.closed"
    assert event.detail["removed"] == {"profile": 2}
    assert "phone" not in str(event.detail) and "Lin" not in str(event.detail)


def test_a_registered_part_adds_its_removals_and_blockers(monkeypatch):
    monkeypatch.setattr(privacy, "PARTS", list(privacy.PARTS))
    privacy.register(privacy.PrivacyPart(
        capability="coupons", kept="used coupons",
        blockers=lambda data, now: [],
        removes=lambda data: [privacy.Removal(kind="own", key=f"COUPON#{i}") for i in range(3)],
        exports=lambda data, tz: {"coupons": ["c1"]}))
    builder, data = closing(member())
    plan = privacy.close_account(builder, data)
    assert plan.summary["removed"] == {"profile": 2, "coupons": 3}
    assert privacy.export_document(data, "Asia/Shanghai", NOW)["coupons"] == ["c1"]


# ---- export -----------------------------------------------------------------------------

def test_the_export_groups_entries_by_asset_and_holds_the_full_profile():
    entries = tuple(
        Entry(entry_id=f"E{i}", member_id="Mabcdefgh", asset=asset, bucket="available"
              if asset == "points" else "principal" if asset == "balance" else "2025-05",
              amount=10, balance_after=10, source_type="test", source_key=f"k{i}",
              reason="r", actor="system", created_at=NOW, effective_at=NOW)
        for i, asset in enumerate(("points", "balance", "growth", "points")))
    data = privacy.MemberData(member=member(), entries=entries, lots=(lot("L1", 5),),
                              other={"coupon": [{"SK": "COUPON#1"}]})
    doc = privacy.export_document(data, "Asia/Shanghai", NOW)
    assert doc["profile"]["phone"] == "+8613912345678"
    assert doc["profile"]["birthday"] == "1990-07-15"
    assert {k: len(v) for k, v in doc["ledger"].items()} == {
        "balance": 1, "points": 2, "growth": 1}
    assert doc["exportedAt"].endswith("+08:00")
    assert doc["otherRecords"] == {"coupon": [{"SK": "COUPON#1"}]}
    assert doc["checkins"] == {"months": {}, "streakCarriedIn": 0, "postings": []}
    assert (doc["taskCompletions"], doc["adjustments"], doc["grantsReceived"],
            doc["operatorActions"]) == ([], [], [], [])


def test_an_entry_decodes_from_the_wire_as_the_model_would():
    from membership.storage.models import EntryItem
    from membership.storage.privacy import entry_from_raw

    entry = Entry(entry_id="E1", member_id="Mabcdefgh", asset="points", bucket="available",
                  amount=-5, balance_after=95, source_type="hold", source_key="hold:SO-1",
                  reason="hold", actor="orders", created_at=NOW, effective_at=NOW,
                  reverses="E0", hold_id="SO-1", lot_id="L1",
                  lots=(LotTake(lot_id="L1", expires_at=NOW, amount=5),))
    raw = EntryItem.from_domain(entry).serialize()
    assert entry_from_raw(raw) == EntryItem.from_raw_data(raw).to_domain() == entry


# ---- logs -------------------------------------------------------------------------------

text = st.text(alphabet=string.ascii_letters + " :,{}\"=", max_size=20)
mobile = st.tuples(st.sampled_from("3456789"), st.text(string.digits, min_size=9,
                                                          max_size=9))


@given(text, mobile, text, st.sampled_from(["", "+86", "+86 ", "86"]))
def test_a_mobile_number_anywhere_in_a_log_line_is_masked(before, digits, after, prefix):
    number = "1" + digits[0] + digits[1]
    line = mask_phones(before + prefix + number + after)
    assert number not in line
    assert number[-4:] in line


# The price of masking: an 11-digit id that looks like a mobile number is masked too.
@pytest.mark.parametrize("kept", ["2025-06-02T04:00:00.123456+08:00", "Mabcdefgh2345677",
                                  "order 1381234567890", "amount 500000"])
def test_timestamps_ids_and_long_numbers_are_left_alone(kept):
    assert mask_phones(kept) == kept


def test_the_export_lists_each_posting_of_a_source_type_with_what_it_moved():
    def entry(i, source_type, key, asset, bucket, amount):
        return Entry(entry_id=f"E{i}", member_id="Mabcdefgh", asset=asset, bucket=bucket,
                     amount=amount, balance_after=max(amount, 0), source_type=source_type,
                     source_key=key, reason="goodwill", actor="ops-lin", created_at=NOW,
                     effective_at=NOW)

    entries = (entry(1, "adjustment", "adjustment:A1", "points", "available", 300),
               entry(2, "grant", "grant:G1:M", "points", "available", 88),
               entry(3, "checkin", "checkin:M:2025-05-01", "points", "available", 5),
               entry(4, "checkin", "checkin:M:2025-05-01", "growth", "2025-05", 1),
               entry(5, "task", "task:M:review:SO-1", "points", "available", 20))
    data = privacy.MemberData(member=member(), entries=entries, audit=(
        {"action": "frozen", "actor": "ops-lin", "at": NOW, "reason": "dispute",
         "details": {"status": "frozen"}},))
    doc = privacy.export_document(data, "Asia/Shanghai", NOW)
    assert [p["amounts"] for p in doc["checkins"]["postings"]] == [
        {"points": 5, "growth.2025-05": 1}]
    assert [p["sourceKey"] for p in doc["adjustments"]] == ["adjustment:A1"]
    assert doc["grantsReceived"][0]["amounts"] == {"points": 88}
    assert doc["taskCompletions"][0]["sourceKey"] == "task:M:review:SO-1"
    assert doc["operatorActions"][0]["action"] == "frozen"


def test_a_frozen_account_cannot_close():
    from membership.domain.member_status import MemberFrozen

    with pytest.raises(MemberFrozen) as refused:
        privacy.ensure_closable(privacy.MemberData(member=member(status="frozen")), NOW)
    assert refused.value.details["action"] == "account_closure"


def test_a_forfeit_batch_touches_at_most_its_limit_of_lots_and_forfeits_them_whole():
    lots = [lot(f"L{i:03d}", 5, pending=i % 2 == 0, days=100 + i) for i in range(50)]
    m = member(points_available=125, points_pending=125)
    builder, data = closing(m, lots)
    assert privacy.forfeit_batch(builder, data, limit=40) == 40
    posting = builder.build()
    assert len(posting.lots) == 40 and all(c.after is None for c in posting.lots)
    assert sum(e.amount for e in posting.entries) == -200
    assert posting.member.points_available + posting.member.points_pending == 50


def test_records_are_retained_three_calendar_years_from_closure():
    assert privacy.retained_until(NOW) == NOW.replace(year=2028)
    leap = datetime(2028, 2, 29, 12, 0, tzinfo=UTC)
    assert privacy.retained_until(leap) == datetime(2031, 3, 1, 12, 0, tzinfo=UTC)
