"""Pure payment rules: the attach, yuan to fen, the notification window, what a provider's
answer must say before a top-up is credited or a plan term bought."""
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from membership.domain.members import member_id_for
from membership.domain.payments import (
    Merchant,
    NotificationExpired,
    PaymentAttach,
    PaymentAttachInvalid,
    PaymentKind,
    PaymentMerchantMismatch,
    PaymentState,
    PlanTerm,
    ProviderPayment,
    check_plan_term,
    check_sent_in_window,
    confirm_notified_payment,
    confirm_plan_payment,
    confirm_topup_payment,
    parse_attach,
    plan_attach,
    topup_attach,
    yuan_to_fen,
)
from membership.domain.topups import PaymentNotVerified

MEMBER = member_id_for("user-a")
OTHER = member_id_for("user-b")
MERCHANT = Merchant(merchant_id="1900000109", app_id="wx-app")
NOW = datetime(2026, 3, 14, 4, 0, tzinfo=UTC)


def payment(**changes) -> ProviderPayment:
    fields = {"channel": "wechat_pay", "reference": "WX1", "transaction_id": "4200",
              "amount": 10_000, "state": PaymentState.PAID, "currency": "CNY",
              "merchant_id": "1900000109", "app_id": "wx-app", "attach": topup_attach(MEMBER)}
    return ProviderPayment(**{**fields, **changes})


def test_topup_attach_round_trips():
    assert parse_attach(topup_attach(MEMBER)) == PaymentAttach(PaymentKind.TOPUP, MEMBER)


def test_plan_attach_round_trips_with_plan_kind_and_term_number():
    text = plan_attach(MEMBER, "PLUS", "monthly", 3)
    assert text == f"membership:v1:plan:{MEMBER}:PLUS:monthly-3"
    attach = parse_attach(text)
    assert (attach.kind, attach.member_id, attach.plan_id, attach.plan_term) == (
        PaymentKind.PLAN, MEMBER, "PLUS", PlanTerm("monthly", 3))


def test_the_longest_plan_attach_fits_wechat_pays_128_characters():
    text = plan_attach(MEMBER, "P" * 16, "quarterly", 9999)
    assert len(text) <= 128 and parse_attach(text).plan_term == PlanTerm("quarterly", 9999)


@pytest.mark.parametrize("term", [
    "monthly", "month-1", "monthly-0", "monthly-01", "monthly-10000", "trial-1", "Monthly-1",
    "monthly-1-2", "yearly-", "-1"])
def test_a_plan_attach_names_a_paid_kind_and_a_term_number(term):
    with pytest.raises(PaymentAttachInvalid):
        parse_attach(f"membership:v1:plan:{MEMBER}:PLUS:{term}")


def test_a_plan_attach_names_a_plan_id_as_the_program_writes_them():
    with pytest.raises(PaymentAttachInvalid):
        parse_attach(f"membership:v1:plan:{MEMBER}:{'P' * 17}:monthly-1")


@pytest.mark.parametrize("text", [
    None, "", "order-42", "membership:v2:topup:" + MEMBER, "membership:v1:gift:" + MEMBER,
    "membership:v1:topup:not-a-member", "membership:v1:topup:" + MEMBER + ":extra",
    "membership:v1:plan:" + MEMBER, "membership:v1:plan:" + MEMBER + ":PLUS:mon thly",
    "membership:v1:topup:" + MEMBER + "x" * 200,
])
def test_anything_but_a_membership_attach_is_refused(text):
    with pytest.raises(PaymentAttachInvalid):
        parse_attach(text)


@pytest.mark.parametrize(("text", "fen"), [
    ("0.01", 1), ("1", 100), ("88.8", 8880), ("88.88", 8888), ("100000.00", 10_000_000)])
def test_yuan_become_exact_fen(text, fen):
    assert yuan_to_fen(text) == fen


@given(st.integers(min_value=0, max_value=9_999_999_999))
def test_fen_written_as_yuan_read_back_exactly(fen):
    assert yuan_to_fen(f"{fen // 100}.{fen % 100:02d}") == fen


@pytest.mark.parametrize("text", ["", "1.001", "-1", "1e3", "NaN", "1,00", " 1", "１"])
def test_anything_but_yuan_with_two_decimals_is_refused(text):
    with pytest.raises(ValueError):
        yuan_to_fen(text)


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_a_notification_sent_within_the_window_is_accepted(offset):
    check_sent_in_window(NOW + timedelta(seconds=offset), NOW, 300)


@pytest.mark.parametrize("offset", [-301, 301, -86_400])
def test_a_notification_sent_outside_the_window_is_expired(offset):
    with pytest.raises(NotificationExpired):
        check_sent_in_window(NOW + timedelta(seconds=offset), NOW, 300)


def test_a_paid_topup_of_this_member_is_confirmed():
    attach = confirm_topup_payment(payment(), MERCHANT, MEMBER, "wechat_pay")
    assert attach.kind is PaymentKind.TOPUP


@pytest.mark.parametrize("state", [PaymentState.NOT_PAID, PaymentState.CLOSED,
                                   PaymentState.REFUNDED])
def test_an_unpaid_closed_or_refunded_payment_is_not_verified(state):
    with pytest.raises(PaymentNotVerified):
        confirm_topup_payment(payment(state=state), MERCHANT, MEMBER, "wechat_pay")


@pytest.mark.parametrize("changes", [{"merchant_id": "1900000999"}, {"app_id": "wx-other"}])
def test_a_payment_to_another_merchant_is_refused(changes):
    with pytest.raises(PaymentMerchantMismatch):
        confirm_topup_payment(payment(**changes), MERCHANT, MEMBER, "wechat_pay")


def test_a_payment_for_another_member_is_not_verified():
    with pytest.raises(PaymentNotVerified, match="another member"):
        confirm_topup_payment(payment(attach=topup_attach(OTHER)), MERCHANT, MEMBER,
                              "wechat_pay")


def test_a_plan_payment_is_not_a_topup():
    with pytest.raises(PaymentNotVerified, match="plan"):
        confirm_topup_payment(payment(attach=plan_attach(MEMBER, "PLUS", "monthly", 1)),
                              MERCHANT, MEMBER, "wechat_pay")


def test_a_payment_in_another_currency_is_not_verified():
    with pytest.raises(PaymentNotVerified, match="CNY"):
        confirm_notified_payment(payment(currency="USD"), MERCHANT)


def test_a_payment_through_another_channel_is_not_verified():
    with pytest.raises(PaymentNotVerified, match="channel"):
        confirm_topup_payment(payment(), MERCHANT, MEMBER, "alipay")


def test_a_notified_payment_is_confirmed_for_the_member_its_attach_names():
    assert confirm_notified_payment(payment(attach=topup_attach(OTHER)),
                                    MERCHANT).member_id == OTHER


# ---- a plan term's payment ---------------------------------------------------------------

def plan_payment(**changes) -> ProviderPayment:
    return payment(**{"amount": 1_900, "attach": plan_attach(MEMBER, "PLUS", "monthly", 2),
                      **changes})


def confirm_plan(p: ProviderPayment, *, member=MEMBER, channel="wechat_pay", plan="PLUS",
                 term="monthly", price=1_900) -> PlanTerm:
    return confirm_plan_payment(p, MERCHANT, member, channel, plan, term, price)


def test_a_paid_plan_payment_of_this_member_plan_kind_and_price_is_confirmed():
    assert confirm_plan(plan_payment()) == PlanTerm("monthly", 2)


@pytest.mark.parametrize(("changes", "claim", "why"), [
    ({"amount": 1_800}, {}, "price"),
    ({"amount": 2_000}, {}, "price"),
    ({"attach": plan_attach(OTHER, "PLUS", "monthly", 2)}, {}, "another member"),
    ({"attach": plan_attach(MEMBER, "GOLD", "monthly", 2)}, {}, "plan GOLD"),
    ({"attach": plan_attach(MEMBER, "PLUS", "yearly", 2)}, {}, "yearly"),
    ({"attach": topup_attach(MEMBER)}, {}, "not a paid plan"),
    ({"attach": None}, {}, "no membership attach"),
    ({"attach": "order-42"}, {}, "not a membership attach"),
    ({}, {"channel": "alipay"}, "channel"),
    ({"state": PaymentState.REFUNDED}, {}, "refunded"),
    ({"state": PaymentState.NOT_PAID}, {}, "not_paid"),
    ({"currency": "USD"}, {}, "CNY"),
])
def test_any_other_plan_payment_is_not_verified(changes, claim, why):
    with pytest.raises(PaymentNotVerified, match=why):
        confirm_plan(plan_payment(**changes), **claim)


def test_a_plan_payment_to_another_merchant_is_refused_as_for_topups():
    with pytest.raises(PaymentMerchantMismatch):
        confirm_plan(plan_payment(app_id="wx-other"))


def test_a_plan_payment_buys_the_term_it_names_and_no_other():
    check_plan_term(PlanTerm("monthly", 2), 2, "WX1")
    for seq in (1, 3):
        with pytest.raises(PaymentNotVerified, match="term 2"):
            check_plan_term(PlanTerm("monthly", 2), seq, "WX1")
