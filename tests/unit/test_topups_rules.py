"""Top-up and refund rules: offers, limits, stored-value status and the refund policy."""
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from membership.domain.ledger import LedgerState, PostingBuilder, reconcile
from membership.domain.members import Member, is_stored_value_member, member_benefits
from membership.domain.program import TopupOffer, default_program
from membership.domain.topups import (
    DailyTopupLimitExceeded,
    IdempotencyKeyRequired,
    RefundExceedsTopup,
    TopupAboveMaximum,
    TopupAlreadyRefunded,
    TopupBelowMinimum,
    TopupPrincipalSpent,
    TopupRecord,
    apply_refund,
    apply_topup,
    best_offer,
    bonus_for,
    check_idempotency_key,
    check_limits,
    plan_refund,
    topup_id_for,
)

# 12:00 in Shanghai.
NOW = datetime(2026, 3, 14, 4, 0, tzinfo=UTC)
PROGRAM = default_program()
RULES = PROGRAM.topup
TZ = PROGRAM.time_zone
YUAN = 100


def member(**changes) -> Member:
    base = {"member_id": "Mabcdefghij", "subject": "s", "phone": "+8613812345678",
            "nickname": "n", "channel": "app", "created_at": NOW, "updated_at": NOW,
            "tier_id": "V1", "tier_since": NOW}
    return Member(**{**base, **changes})


def rules_with(*offers, **changes):
    return RULES.model_copy(update={"offers": offers, **changes})


class Wallet:
    """Applies top-up and refund postings in memory, keeping every entry, as storage would."""

    def __init__(self, **member_changes):
        self.state = LedgerState(member=member(**member_changes))
        self.entries = []
        self.records = {}
        self.n = 0

    def builder(self, now=NOW):
        self.n += 1
        return PostingBuilder(self.state, PROGRAM, source_key=f"s{self.n}", source_type="test",
                              reason="test", actor="system", now=now)

    def commit(self, b):
        posting = b.build()
        self.entries.extend(posting.entries)
        self.state = LedgerState(member=posting.member)
        return posting

    def top_up(self, amount, ref=None, now=NOW):
        b = self.builder(now)
        record = apply_topup(b, PROGRAM, amount=amount, payment_reference=ref or f"test-{self.n}",
                             channel="wechat_pay")
        posting = self.commit(b)
        self.records[record.topup_id] = record
        return record, posting

    def spend(self, amount):
        b = self.builder()
        b.debit_balance(amount, reason="order")
        self.commit(b)

    def refund(self, topup_id, amount=None, ref="r"):
        b = self.builder()
        updated = apply_refund(b, PROGRAM, self.records[topup_id], amount=amount,
                               refund_reference=f"{ref}-{self.n}")
        posting = self.commit(b)
        self.records[topup_id] = updated
        return posting

    @property
    def member(self):
        return self.state.member


# ---- offers ---------------------------------------------------------------------------

@pytest.mark.parametrize("amount, bonus", [
    (1 * YUAN, 0),                 # the minimum top-up, below the first threshold
    (100 * YUAN - 1, 0),           # one fen below the first threshold
    (100 * YUAN, 5 * YUAN),        # exactly on the first threshold
    (499 * YUAN, 5 * YUAN),
    (500 * YUAN, 50 * YUAN),       # exactly on the second
    (999 * YUAN + 99, 50 * YUAN),
    (1_000 * YUAN, 120 * YUAN),    # exactly on the last
    (5_000 * YUAN, 120 * YUAN),    # far above the last: the highest offer, not a multiple
])
def test_bonus_is_the_highest_offer_the_amount_reaches(amount, bonus):
    assert bonus_for(RULES, amount, NOW) == bonus


def test_expired_offer_gives_way_to_the_next_lower_one():
    rules = rules_with(
        TopupOffer(minAmount=100 * YUAN, bonus=5 * YUAN),
        TopupOffer(minAmount=500 * YUAN, bonus=80 * YUAN, validUntil=NOW - timedelta(days=1)),
    )
    assert bonus_for(rules, 600 * YUAN, NOW) == 5 * YUAN


def test_offer_ends_at_its_valid_until_instant():
    until = NOW + timedelta(seconds=1)
    rules = rules_with(TopupOffer(minAmount=100 * YUAN, bonus=9 * YUAN, validUntil=until))
    assert bonus_for(rules, 100 * YUAN, until - timedelta(microseconds=1)) == 9 * YUAN
    assert bonus_for(rules, 100 * YUAN, until) == 0


def test_offer_not_yet_valid_gives_nothing_until_it_starts():
    start = NOW + timedelta(hours=1)
    rules = rules_with(TopupOffer(minAmount=100 * YUAN, bonus=9 * YUAN, validFrom=start))
    assert bonus_for(rules, 100 * YUAN, NOW) == 0
    assert bonus_for(rules, 100 * YUAN, start) == 9 * YUAN


def test_two_offers_on_one_threshold_give_the_larger_bonus():
    rules = rules_with(TopupOffer(minAmount=100 * YUAN, bonus=5 * YUAN),
                       TopupOffer(minAmount=100 * YUAN, bonus=7 * YUAN))
    assert best_offer(rules, 100 * YUAN, NOW).bonus == 7 * YUAN


def test_no_offers_means_no_bonus():
    assert bonus_for(rules_with(), 5_000 * YUAN, NOW) == 0


# ---- limits ---------------------------------------------------------------------------

def test_below_minimum_is_refused():
    with pytest.raises(TopupBelowMinimum):
        check_limits(RULES, member(), RULES.min_amount - 1, NOW, TZ)


def test_above_maximum_is_refused():
    with pytest.raises(TopupAboveMaximum):
        check_limits(RULES, member(), RULES.max_amount + 1, NOW, TZ)


def test_limits_are_inclusive():
    check_limits(RULES, member(), RULES.min_amount, NOW, TZ)
    check_limits(RULES, member(), RULES.max_amount, NOW, TZ)


def test_daily_maximum_counts_todays_top_ups():
    today = member(topup_day="2026-03-14", topup_day_amount=RULES.daily_max - 100)
    check_limits(RULES, today, 100, NOW, TZ)
    with pytest.raises(DailyTopupLimitExceeded) as raised:
        check_limits(RULES, today, 101, NOW, TZ)
    assert raised.value.details["remaining"] == 100


def test_daily_maximum_resets_at_midnight_in_the_program_time_zone():
    # 23:59:59 on the 14th in Shanghai is 15:59:59 UTC; midnight is 16:00 UTC.
    before_midnight = datetime(2026, 3, 14, 15, 59, 59, tzinfo=UTC)
    midnight = datetime(2026, 3, 14, 16, 0, tzinfo=UTC)
    full = member(topup_day="2026-03-14", topup_day_amount=RULES.daily_max)
    with pytest.raises(DailyTopupLimitExceeded):
        check_limits(RULES, full, RULES.min_amount, before_midnight, TZ)
    check_limits(RULES, full, RULES.min_amount, midnight, TZ)


def test_top_up_records_the_program_day_not_the_utc_day():
    wallet = Wallet()
    # 01:30 on the 15th in Shanghai, still the 14th in UTC.
    wallet.top_up(100 * YUAN, now=datetime(2026, 3, 14, 17, 30, tzinfo=UTC))
    assert wallet.member.topup_day == "2026-03-15"
    assert wallet.member.topup_day_amount == 100 * YUAN


# ---- crediting ------------------------------------------------------------------------

def test_top_up_credits_principal_and_bonus_apart():
    wallet = Wallet()
    record, posting = wallet.top_up(500 * YUAN, ref="test-abc")
    assert (wallet.member.balance_principal, wallet.member.balance_bonus) == (50_000, 5_000)
    assert record.topup_id == topup_id_for("test-abc")
    assert [(e.bucket, e.amount) for e in posting.entries] == [("principal", 50_000),
                                                               ("bonus", 5_000)]
    assert posting.result["balance"] == {"principal": 50_000, "bonus": 5_000, "total": 55_000}
    assert reconcile(wallet.member, wallet.entries, []) == []


def test_top_up_announces_itself_with_the_new_balance():
    wallet = Wallet()
    _, posting = wallet.top_up(100 * YUAN, ref="test-x")
    (event,) = posting.events
    assert event.detail_type == "topup.credited"
    assert event.detail["balance"] == {"principal": 10_000, "bonus": 500, "total": 10_500}
    assert event.detail["occurredAt"].endswith("+08:00")


def test_top_up_without_bonus_writes_no_bonus_entry():
    wallet = Wallet()
    _, posting = wallet.top_up(50 * YUAN)
    assert [e.bucket for e in posting.entries] == ["principal"]


def test_refused_top_up_changes_nothing():
    wallet = Wallet(topup_day="2026-03-14", topup_day_amount=RULES.daily_max)
    b = wallet.builder()
    with pytest.raises(DailyTopupLimitExceeded):
        apply_topup(b, PROGRAM, amount=100, payment_reference="test-x", channel="alipay")
    posting = b.build()
    assert posting.entries == () and posting.events == ()


def test_topup_id_is_stable_per_payment_and_differs_between_payments():
    assert topup_id_for("test-a") == topup_id_for("test-a") != topup_id_for("test-b")


# ---- stored-value members -------------------------------------------------------------

def test_cumulative_top_ups_reaching_the_threshold_make_a_stored_value_member():
    wallet = Wallet()
    threshold = RULES.stored_value_member_threshold
    _, first = wallet.top_up(threshold - 100)
    assert first.result["storedValueMember"] is False
    _, second = wallet.top_up(100)
    assert second.result["storedValueMember"] is True
    codes = {b.code for b in member_benefits(wallet.member, PROGRAM, NOW)}
    assert {b.code for b in RULES.stored_value_member_benefits} <= codes


def test_refund_below_the_threshold_ends_stored_value_membership():
    wallet = Wallet()
    record, _ = wallet.top_up(RULES.stored_value_member_threshold)
    assert is_stored_value_member(wallet.member, PROGRAM)
    wallet.refund(record.topup_id, amount=1)
    assert not is_stored_value_member(wallet.member, PROGRAM)


# ---- refunds --------------------------------------------------------------------------

def test_refund_of_an_unspent_top_up_returns_principal_and_claws_back_all_bonus():
    wallet = Wallet()
    record, _ = wallet.top_up(500 * YUAN)
    posting = wallet.refund(record.topup_id)
    assert posting.result["principal"] == 50_000
    assert posting.result["bonusClawedBack"] == 5_000
    assert posting.result["bonusForgiven"] == 0
    assert (wallet.member.balance_principal, wallet.member.balance_bonus) == (0, 0)
    assert wallet.member.topup_total == 0
    assert reconcile(wallet.member, wallet.entries, []) == []


def test_full_refund_after_a_partial_spend_is_refused_with_what_is_refundable():
    wallet = Wallet()
    record, _ = wallet.top_up(500 * YUAN)
    wallet.spend(200 * YUAN)  # principal first: 300 yuan of principal left
    with pytest.raises(TopupPrincipalSpent) as refused:
        wallet.refund(record.topup_id)
    assert refused.value.details["refundable"] == 30_000


def test_refund_of_the_unspent_part_after_a_partial_spend_claws_back_bonus_in_proportion():
    wallet = Wallet()
    record, _ = wallet.top_up(500 * YUAN)
    wallet.spend(200 * YUAN)
    posting = wallet.refund(record.topup_id, amount=30_000)
    assert posting.result["principal"] == 30_000
    assert posting.result["bonusClawedBack"] == 3_000  # 50 yuan × 300/500
    assert (wallet.member.balance_principal, wallet.member.balance_bonus) == (0, 2_000)
    assert posting.result["topup"]["refundedPrincipal"] == 30_000


def test_bonus_already_spent_is_forgiven_not_taken_from_principal():
    wallet = Wallet()
    record, _ = wallet.top_up(500 * YUAN)
    b = wallet.builder()
    b.debit_buckets(bonus=4_000, reason="order")  # e.g. a bonus-first program spent it
    wallet.commit(b)
    posting = wallet.refund(record.topup_id)
    assert posting.result["bonusClawedBack"] == 1_000
    assert posting.result["bonusForgiven"] == 4_000
    assert wallet.member.balance_principal == 0


def test_partial_refunds_never_claw_back_more_than_the_bonus():
    wallet = Wallet()
    record, _ = wallet.top_up(100 * YUAN + 1)  # bonus 500 over 10,001 fen: shares round
    for _ in range(3):
        wallet.refund(record.topup_id, amount=3_333)
    wallet.refund(record.topup_id)  # the rest
    final = wallet.records[record.topup_id]
    assert final.clawed_back_bonus == 500
    assert wallet.member.balance_bonus == 0


def test_refund_of_a_fully_refunded_top_up_is_refused():
    wallet = Wallet()
    record, _ = wallet.top_up(100 * YUAN)
    wallet.refund(record.topup_id)
    with pytest.raises(TopupAlreadyRefunded):
        wallet.refund(record.topup_id)


def test_refund_above_what_is_left_of_the_top_up_is_refused():
    wallet = Wallet()
    record, _ = wallet.top_up(100 * YUAN)
    wallet.top_up(100 * YUAN)  # the member holds more than this top-up
    with pytest.raises(RefundExceedsTopup):
        wallet.refund(record.topup_id, amount=100 * YUAN + 1)


def test_refund_announces_itself():
    wallet = Wallet()
    record, _ = wallet.top_up(100 * YUAN)
    posting = wallet.refund(record.topup_id)
    (event,) = posting.events
    assert event.detail_type == "topup.refunded"
    assert event.detail["principal"] == 10_000 and event.detail["bonusClawedBack"] == 500


@settings(max_examples=150, deadline=None)
@given(amount=st.integers(min_value=RULES.min_amount, max_value=RULES.max_amount),
       spent=st.integers(min_value=0, max_value=100),
       parts=st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=5))
def test_refunds_keep_the_ledger_whole_and_never_exceed_the_top_up(amount, spent, parts):
    """Whatever was spent and however the refund is split, balances reconcile, nothing goes
    negative, and principal and bonus returned never exceed what the top-up gave."""
    wallet = Wallet()
    record, _ = wallet.top_up(amount)
    spend = (amount + record.bonus) * spent // 100
    if spend:
        wallet.spend(spend)
    for part in parts:
        left = wallet.records[record.topup_id].refundable_principal
        if left == 0:
            break
        requested = max(1, left * part // 100)
        try:
            wallet.refund(record.topup_id, amount=requested)
        except TopupPrincipalSpent:
            assert wallet.member.balance_principal < requested
    final = wallet.records[record.topup_id]
    assert final.refunded_principal <= record.principal
    assert final.clawed_back_bonus + final.forgiven_bonus <= record.bonus
    if final.refunded_principal == record.principal:
        assert final.clawed_back_bonus + final.forgiven_bonus == record.bonus
    assert reconcile(wallet.member, wallet.entries, []) == []


def test_plan_refund_counts_held_balance_as_spent():
    record = TopupRecord(topup_id="T1", member_id="Mabcdefghij", payment_reference="test-1",
                         channel="alipay", principal=10_000, bonus=500, created_at=NOW)
    # The member's principal is in an open hold: not in the bucket, so not refundable.
    with pytest.raises(TopupPrincipalSpent):
        plan_refund(record, member(balance_principal=0, balance_bonus=500), None)


# ---- the Idempotency-Key header -------------------------------------------------------

@pytest.mark.parametrize("value", [None, "", "   ", "x" * 256, "ключ", "a\tb"])
def test_missing_or_malformed_idempotency_key_is_refused(value):
    with pytest.raises(IdempotencyKeyRequired):
        check_idempotency_key(value)


def test_idempotency_key_is_trimmed():
    assert check_idempotency_key("  k-1 ") == "k-1"
