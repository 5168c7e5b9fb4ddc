"""The deployment's configuration: one settings model, read once at init.

Domain code never reads the environment; handlers and storage receive values from here.
"""
from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    table_name: str = "membership"
    event_bus_name: str = "membership"
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
    # "package.module.ClassName" of the PaymentVerifier top-ups use (docs/topups.md); the
    # default accepts only "test-" references and must be replaced in production.
    payment_verifier: str = "membership.services.payments.TestReferenceVerifier"
    # How long an Idempotency-Key is remembered for its first response.
    idempotency_ttl_seconds: int = 24 * 3600
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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
