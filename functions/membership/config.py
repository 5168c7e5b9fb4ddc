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
    # How long a handler keeps the program rules before reading them again.
    program_cache_seconds: int = 60
    # Bounded retries for transaction conflicts and throttling.
    transaction_max_attempts: int = 40
    transaction_base_delay_ms: int = 10
    transaction_max_delay_ms: int = 250


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
