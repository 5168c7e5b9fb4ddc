"""The payment-verifier seam: the shipped test verifier and plugging in another one."""
import pytest

from membership.domain.topups import PaymentNotVerified
from membership.services.payments import (
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
        monkeypatch.delenv("PAYMENT_VERIFIER")
        config.get_settings.cache_clear()
