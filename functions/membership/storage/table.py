"""The one table: its name, the shared connection, and the retry policy for transactions."""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from pynamodb.attributes import UnicodeAttribute
from pynamodb.connection import Connection
from pynamodb.models import Model

from membership.config import get_settings

T = TypeVar("T")

_connection: Connection | None = None
_models: list[type[Model]] = []


class TableModel(Model):
    """Base of every item type: string PK/SK on the single table."""

    class Meta:
        table_name = get_settings().table_name

    PK = UnicodeAttribute(hash_key=True)
    SK = UnicodeAttribute(range_key=True)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _models.append(cls)


def connection() -> Connection:
    """A low-level connection for transactions, created on first use."""
    global _connection
    if _connection is None:
        _connection = Connection()
    return _connection


def reset_connections() -> None:
    """Point every model at the configured table again (tests switch tables per test)."""
    global _connection
    _connection = None
    table_name = get_settings().table_name
    for model in [TableModel, *_models]:
        model.Meta.table_name = table_name
        model._connection = None


class Retry(Exception):
    """Raised inside `with_retries` to try again: a conflict or throttle, not a failure."""


def with_retries(attempt: Callable[[], T], on_exhausted: Callable[[], Exception]) -> T:
    """Bounded retries with full-jitter exponential backoff."""
    settings = get_settings()
    for n in range(settings.transaction_max_attempts):
        try:
            return attempt()
        except Retry:
            cap = min(settings.transaction_max_delay_ms,
                      settings.transaction_base_delay_ms * (2 ** min(n, 10)))
            time.sleep(random.uniform(0, cap) / 1000)
    raise on_exhausted()
