"""The deployment's configuration: one settings model, read once at init.

Domain code never reads the environment; handlers and storage receive values from here.
Each field is read from the environment variable of the same name in upper case
(`table_name` ← `TABLE_NAME`), validated by pydantic. A plain model over `os.environ`
rather than pydantic-settings, whose import (dotenv, secrets and cloud sources) costs a
Lambda cold start more than every setting here put together.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, field_validator

from membership.domain.calendar import check_zone


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    table_name: str = "membership"
    event_bus_name: str = "membership"
    # The program's calendar (the `ProgramTimeZone` stack parameter, which also times the
    # monthly settlement's schedule): the one source of truth for the program's time zone.
    program_time_zone: str = "Asia/Shanghai"
    # Powertools Tracer subsegments (X-Ray SDK); off keeps cold starts short.
    detailed_tracing: bool = False
    # How long a handler keeps the program rules before reading them again.
    program_cache_seconds: int = 60
    # Monthly settlement (docs/settlement.md): the queue that fans out scan segments, how
    # many segments, items evaluated per scan page (one checkpoint per page), and how long
    # before its timeout a worker hands the rest of its segment to a fresh invocation.
    settlement_queue_url: str = ""
    settlement_segments: int = 64
    settlement_page_limit: int = 1000
    settlement_stop_margin_ms: int = 60_000
    # Changed members written at once by a worker while it reads the next page.
    settlement_write_concurrency: int = 4
    # Bounded retries for transaction conflicts and throttling.
    transaction_max_attempts: int = 40
    transaction_base_delay_ms: int = 10
    transaction_max_delay_ms: int = 250
    # "package.module.ClassName" of the PaymentVerifier top-ups use (docs/topups.md). The
    # default refuses every payment: a deployment credits nothing until a provider is named.
    payment_verifier: str = "membership.services.payments.NoPaymentProvider"
    # How long an Idempotency-Key is remembered for its first response.
    idempotency_ttl_seconds: int = 24 * 3600
    # Bulk grants (docs/operations.md): the queue that fans out chunks of members, the
    # members per chunk (one SQS message, one progress item), and how many postings a
    # worker writes at once.
    grant_queue_url: str = ""
    grant_chunk_size: int = 100
    grant_write_concurrency: int = 8
    # Payment providers (docs/payments.md): the Secrets Manager secret of each (empty: that
    # provider is not configured), how long a read secret is kept, the providers' API
    # endpoints, the timeout of one call to them, and how far a notification's signing
    # time may be from now.
    wechatpay_secret_name: str = ""
    alipay_secret_name: str = ""
    payment_secret_cache_seconds: int = 300
    wechatpay_endpoint: str = "https://api.mch.weixin.qq.com"
    alipay_endpoint: str = "https://openapi.alipay.com/gateway.do"
    payment_provider_timeout_seconds: float = 4.0
    payment_notification_window_seconds: int = 300

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings named in `environ` (default `os.environ`); names match in any case."""
        by_name = {k.lower(): v for k, v in (os.environ if environ is None else environ).items()}
        return cls.model_validate(
            {name: by_name[name] for name in cls.model_fields if name in by_name})

    @field_validator("program_time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_zone(value)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_environ()
