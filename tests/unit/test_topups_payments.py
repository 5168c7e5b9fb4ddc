"""The payment-verifier seam: the shipped test verifier and plugging in another one."""
import pytest

from membership.domain.topups import PaymentNotVerified, PaymentProviderNotConfigured
from membership.services.payments import (
    DEFAULT_VERIFIER,
    TEST_VERIFIER,
    NoPaymentProvider,
    PaymentClaim,
    PaymentVerifier,
    TestReferenceVerifier,
    VerifiedPayment,
    load_verifier,
)

CLAIM = PaymentClaim(member_id="Mabcdefghij", reference="test-1", amount=10_000,
                     channel="alipay")


class CapturedLess:
    """A provider that captured less than the member claims."""

    def verify(self, claim):
        return VerifiedPayment(reference=claim.reference, amount=claim.amount - 1,
                               channel=claim.channel)


def test_test_verifier_accepts_test_references_for_the_claimed_amount():
    assert TestReferenceVerifier().verify(CLAIM) == VerifiedPayment(
        reference="test-1", amount=10_000, channel="alipay")


@pytest.mark.parametrize("reference", ["wx4200002155", "TEST-1", "x-test-1", "test"])
def test_test_verifier_refuses_every_other_reference(reference):
    claim = PaymentClaim(member_id="M", reference=reference, amount=1, channel="alipay")
    with pytest.raises(PaymentNotVerified):
        TestReferenceVerifier().verify(claim)


def test_a_verifier_is_named_by_its_dotted_path():
    verifier = load_verifier(f"{__name__}.CapturedLess")
    assert isinstance(verifier, PaymentVerifier)
    assert verifier.verify(CLAIM).amount == 9_999


@pytest.mark.parametrize("path", ["NoModule", "membership.domain.topups.TopupRecord"])
def test_a_path_that_names_no_verifier_fails_at_load(path):
    with pytest.raises((ValueError, TypeError)):
        load_verifier(path)


def test_the_setting_picks_the_verifier(monkeypatch):
    from membership import config
    from membership.services import payments

    monkeypatch.setenv("PAYMENT_VERIFIER", f"{__name__}.CapturedLess")
    config.get_settings.cache_clear()
    try:
        assert isinstance(payments.verifier(), CapturedLess)
    finally:
        monkeypatch.undo()
        config.get_settings.cache_clear()


# ---- fail closed ---------------------------------------------------------------------

@pytest.mark.parametrize("reference", ["test-1", "wx4200002155", "anything"])
def test_the_default_verifier_refuses_every_payment(reference):
    claim = PaymentClaim(member_id="M", reference=reference, amount=100, channel="alipay")
    with pytest.raises(PaymentProviderNotConfigured) as refused:
        NoPaymentProvider().verify(claim)
    assert refused.value.code == "payment_provider_not_configured"
    assert "no payment provider is configured" in refused.value.message
    assert isinstance(refused.value, PaymentNotVerified)


def test_settings_without_a_verifier_name_the_refusing_default(monkeypatch):
    from membership.config import Settings

    monkeypatch.delenv("PAYMENT_VERIFIER", raising=False)
    assert Settings.from_environ().payment_verifier == DEFAULT_VERIFIER
    assert isinstance(load_verifier(DEFAULT_VERIFIER), NoPaymentProvider)


def test_a_default_deploy_names_the_refusing_verifier():
    from membership_local.template import load_template

    template = load_template()
    assert template["Parameters"]["PaymentVerifier"]["Default"] == DEFAULT_VERIFIER


def test_the_local_stack_opts_into_the_test_verifier_explicitly():
    from membership_local.runtime import lambda_environment
    from membership_local.template import load_template

    env = lambda_environment(load_template(), table_name="t",
                             dynamodb_endpoint="http://127.0.0.1:1")
    assert env["PAYMENT_VERIFIER"] == TEST_VERIFIER
