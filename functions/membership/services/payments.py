"""Checking a payment before its money becomes stored value.

A brand plugs in its provider by writing a class with the `PaymentVerifier` shape and
naming it in the `PAYMENT_VERIFIER` setting ("package.module.ClassName"); the class is
built once per container with no arguments (read its own configuration from Settings
or the environment there). See docs/topups.md.

Nothing fails open: the default, `NoPaymentProvider`, refuses every payment (422
payment_provider_not_configured), so a deployment that names no provider credits nothing.
`TestReferenceVerifier` accepts references that start with "test-"; the local stack and
the tests opt into it explicitly. Production deployments name their provider's verifier.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, runtime_checkable

from membership.config import get_settings
from membership.domain.payments import (
    Merchant,
    PlanTerm,
    ProviderPayment,
    confirm_plan_payment,
    confirm_topup_payment,
)
from membership.domain.topups import PaymentNotVerified, PaymentProviderNotConfigured

TEST_PREFIX = "test-"
DEFAULT_VERIFIER = "membership.services.payments.NoPaymentProvider"
TEST_VERIFIER = "membership.services.payments.TestReferenceVerifier"


@dataclass(frozen=True)
class PlanClaim:
    """A paid plan's term: the payment must have been made for it (docs/payments.md)."""

    plan_id: str
    term: str  # monthly | quarterly | yearly


@dataclass(frozen=True)
class PaymentClaim:
    """What the member says they paid: a top-up, or with `plan` one term of a plan (its
    `amount` is then the term's price)."""

    member_id: str
    reference: str
    amount: int  # fen
    channel: str
    plan: PlanClaim | None = None


@dataclass(frozen=True)
class VerifiedPayment:
    """What the provider confirms: the amount actually captured for the reference and, for
    a plan, the term its attach names (None from a verifier that reads no attach)."""

    reference: str
    amount: int  # fen
    channel: str
    plan_term: PlanTerm | None = None


@runtime_checkable
class PaymentVerifier(Protocol):
    def verify(self, claim: PaymentClaim) -> VerifiedPayment:
        """The confirmed payment, or raise PaymentNotVerified (unknown, unpaid, refunded).

        Raise membership.errors.Unavailable when the provider cannot be reached, so the
        client retries later instead of being told the payment is bad.
        """
        ...


class NoPaymentProvider:
    """The default: no provider is configured, so no payment is ever confirmed."""

    def verify(self, claim: PaymentClaim) -> VerifiedPayment:
        raise PaymentProviderNotConfigured(
            "no payment provider is configured for this deployment, so no payment can be "
            "verified; the operator sets the PaymentVerifier stack parameter "
            "(docs/topups.md)")


class TestReferenceVerifier:
    """Accepts "test-<anything>" for the claimed amount and channel; refuses the rest."""

    __test__ = False  # a name pytest would otherwise collect

    def verify(self, claim: PaymentClaim) -> VerifiedPayment:
        if not claim.reference.startswith(TEST_PREFIX):
            raise PaymentNotVerified(
                "the payment could not be verified with the provider",
                paymentReference=claim.reference)
        return VerifiedPayment(reference=claim.reference, amount=claim.amount,
                               channel=claim.channel)


def verify_by_query(claim: PaymentClaim, *, channel: str, provider: str,
                    query: Callable[[str], ProviderPayment | None],
                    merchant: Callable[[], Merchant]) -> VerifiedPayment:
    """A claim confirmed by the provider's own query: the deployment's channel, a payment
    the provider knows, of exactly this top-up (confirm_topup_payment) or this plan term
    (confirm_plan_payment) for this merchant."""
    if claim.channel != channel:
        raise PaymentNotVerified(f"this deployment verifies {channel} payments only here",
                                 channel=claim.channel)
    payment = query(claim.reference)
    if payment is None:
        raise PaymentNotVerified(f"{provider} knows no payment with this reference",
                                 paymentReference=claim.reference)
    if claim.plan is not None:
        term = confirm_plan_payment(payment, merchant(), claim.member_id, channel,
                                    claim.plan.plan_id, claim.plan.term, claim.amount)
        return VerifiedPayment(reference=payment.reference, amount=payment.amount,
                               channel=channel, plan_term=term)
    confirm_topup_payment(payment, merchant(), claim.member_id, channel)
    return VerifiedPayment(reference=payment.reference, amount=payment.amount, channel=channel)


def load_verifier(path: str) -> PaymentVerifier:
    module_name, _, class_name = path.rpartition(".")
    if not module_name:
        raise ValueError(f"PAYMENT_VERIFIER must be 'package.module.ClassName', not {path!r}")
    verifier = getattr(importlib.import_module(module_name), class_name)()
    if not isinstance(verifier, PaymentVerifier):
        raise TypeError(f"{path} has no verify(claim) method")
    return verifier


@lru_cache(maxsize=4)
def _verifier_for(path: str) -> PaymentVerifier:
    return load_verifier(path)


def verifier() -> PaymentVerifier:
    """The configured verifier, built once per container."""
    return _verifier_for(get_settings().payment_verifier)
