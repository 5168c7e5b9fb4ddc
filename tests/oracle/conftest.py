"""One way to set up an oracle run: a fresh table, the test payment verifier (top-ups
verify their payment; the oracles opt into the test verifier explicitly), the oracle's
own environment, and bounded hypothesis settings (ORACLE_EXAMPLES / ORACLE_STEPS raise
the bounds to search longer, e.g. before a release)."""
import os

import pytest
from hypothesis import HealthCheck, settings


@pytest.fixture
def oracle_settings(table, monkeypatch, reset_caches):
    """`oracle_settings(examples, steps, **environment)` → hypothesis settings."""

    def make(examples: int, steps: int, **environment: str) -> settings:
        monkeypatch.setenv("PAYMENT_VERIFIER",
                           "membership.services.payments.TestReferenceVerifier")
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        reset_caches()
        return settings(max_examples=int(os.environ.get("ORACLE_EXAMPLES", examples)),
                        stateful_step_count=int(os.environ.get("ORACLE_STEPS", steps)),
                        deadline=None, derandomize=True, database=None,
                        suppress_health_check=list(HealthCheck))

    yield make
    monkeypatch.undo()
    reset_caches()
