"""The one table: its name, the process's one DynamoDB client, and the transaction retries."""
from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from pynamodb.attributes import UnicodeAttribute
from pynamodb.connection import Connection, TableConnection
from pynamodb.models import Model

from membership import aws
from membership.config import get_settings

T = TypeVar("T")

_lock = threading.Lock()
_connection: Connection | None = None
_models: list[type[Model]] = []


class _SessionConnection(Connection):
    """pynamodb's connection on the process's botocore session (`membership.aws`)."""

    @property
    def session(self):
        return aws.session()


class _SharedClientConnection(Connection):
    """A model's connection: its own table schema, the process's one DynamoDB client."""

    @property
    def client(self):
        return connection().client


def connection() -> Connection:
    """The process's DynamoDB connection, for transactions and raw calls; made on first use.

    Its botocore client (pynamodb's settings: timeouts, retries, no parameter validation)
    is the only DynamoDB client of the process: every model's connection lends it.
    """
    global _connection
    with _lock:  # botocore's create_client is not thread-safe: make the client once, here
        if _connection is None:
            _connection = _SessionConnection()
        _connection.client  # noqa: B018
        return _connection


class TableModel(Model):
    """Base of every item type: string PK/SK on the single table."""

    class Meta:
        table_name = get_settings().table_name

    PK = UnicodeAttribute(hash_key=True)
    SK = UnicodeAttribute(range_key=True)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _models.append(cls)

    @classmethod
    def _get_connection(cls) -> TableConnection:
        # pynamodb gives every model class a connection, and each connection its own
        # botocore client: here they keep their schema and share the process's client.
        conn = super()._get_connection()
        if not isinstance(conn.connection, _SharedClientConnection):
            shared = _SharedClientConnection()
            shared.add_meta_table(conn.get_meta_table())
            conn.connection = shared
        return conn


def reset_connections() -> None:
    """Point every model at the configured table again, and forget the client, so the next
    call reads the environment again (tests switch tables and endpoints per test)."""
    global _connection
    with _lock:
        _connection = None
    aws.reset()
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
