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
    # Bulk grants (docs/operations.md): the queue that fans out chunks of members, the
    # members per chunk (one SQS message, one progress item), and how many postings a
    # worker writes at once.
    grant_queue_url: str = ""
    grant_chunk_size: int = 100
    grant_write_concurrency: int = 8


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
