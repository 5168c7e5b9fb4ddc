"""Operations measured through the real handlers against DynamoDB Local.

Adding one is a decorated function; it sets up what it needs, then measures inside
`ctx.count()` and states its targets with `ctx.check`:

    @operation("top-up", requires=("membership.handlers.topups",))
    def topup(ctx: BenchContext) -> CallStats:
        sub = ctx.signed_up_member()
        event = ctx.member_event("POST", "/v1/members/me/topups", {...},
                                 headers={"Idempotency-Key": ctx.unique("key")}, sub=sub)
        with ctx.count() as calls:
            ctx.expect_status(ctx.invoke(TOPUPS, event), 201)
        ctx.check("DynamoDB write calls per top-up", calls.writes, "==", 1)
        return calls

Operations live here or in any other module of bench/ (e.g. bench/postings.py); every such
module is imported before the run, so registering is only the decorator.

An operation whose `requires` module does not exist yet is reported "not available yet";
anything else that goes wrong is an error, never hidden.

Timing-style measures (settlement throughput, API p99 ÷ raw GetItem p99) register the same
way and may return None: they report through `ctx.check` and `ctx.note` only.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import itertools
import json
import operator
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.dynamo import CallStats, DynamoDBCallCounter

if TYPE_CHECKING:
    from membership_local.dynamodb import LocalDynamoDB

MEMBERS = "membership.handlers.members.handler"

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
}


@dataclass
class Check:
    measure: str
    value: float
    op: str
    target: float

    @property
    def ok(self) -> bool:
        return _COMPARE[self.op](self.value, self.target)


@dataclass
class Operation:
    name: str
    fn: Callable[[BenchContext], CallStats | None]
    requires: tuple[str, ...]
    route: str | None = None


@dataclass
class Outcome:
    operation: Operation
    status: str  # "ok", "not available yet: ...", "error: ..."
    calls: CallStats | None = None
    first_calls: CallStats | None = None
    notes: list[str] = field(default_factory=list)


REGISTRY: list[Operation] = []
# Modules of this package that are machinery; every other one holds operations.
_NOT_OPERATIONS = {"__main__", "dynamo", "operations", "coldstart", "coldstart_probe",
                   "coldstart_seed"}


def load_operation_modules() -> None:
    """Import every operation module in bench/, so a new one needs no registration line."""
    import pkgutil

    import bench

    for info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda m: m.name):
        if info.name not in _NOT_OPERATIONS and not info.name.startswith("_"):
            importlib.import_module(f"bench.{info.name}")


def operation(
    name: str, *, requires: tuple[str, ...] = (), route: str | None = None
) -> Callable[[Callable[[BenchContext], CallStats | None]], Callable]:
    """Register `fn(ctx)` as a measured operation; `requires` lists modules it needs."""

    def register(fn: Callable[[BenchContext], CallStats | None]) -> Callable:
        REGISTRY.append(Operation(name, fn, requires, route))
        return fn

    return register


class BenchContext:
    """What an operation needs: the table, handler invocation, events and the counter."""

    def __init__(
        self, endpoint: str, backend: str, table_name: str, counter: DynamoDBCallCounter
    ) -> None:
        self.endpoint = endpoint
        self.backend = backend
        self.table_name = table_name
        self.counter = counter
        self.checks: list[Check] = []
        self._notes: list[str] = []
        self._first_calls: CallStats | None = None
        self._ids = itertools.count(1)
        self._handlers: dict[str, Callable] = {}

    # -- a DynamoDB Local of its own -------------------------------------------------------

    @contextlib.contextmanager
    def table_of_its_own(self, name: str, *, db_path: str | None = None,
                         create: bool = True) -> Iterator[LocalDynamoDB]:
        """A table on a fresh DynamoDB Local for an operation that seeds thousands of
        members; yields the server, and the process's settings and connections point at
        it meanwhile. Once one DynamoDB Local has held and dropped a large table it slows
        down by orders of magnitude (measured in a full run: 2 items/s written where a
        fresh one takes 1,600), so the big seeds never share the run's server.

        `db_path`: a directory for the server's database file (kept after it stops, to be
        copied); `create=False` when that file holds the table already."""
        from membership_local.dynamodb import free_port, start_dynamodb
        from membership_local.template import create_table

        server = start_dynamodb(free_port(), db_path=db_path)
        previous = (os.environ["AWS_ENDPOINT_URL_DYNAMODB"], os.environ["TABLE_NAME"])
        try:
            if create:
                create_table(server.endpoint, name)
            use_table(name, server.endpoint)
            yield server
        finally:
            use_table(previous[1], previous[0])
            server.stop()

    # -- measuring -----------------------------------------------------------------------

    @contextlib.contextmanager
    def count(self) -> Iterator[CallStats]:
        with self.counter.window() as stats:
            yield stats

    def check(self, measure: str, value: float, op: str, target: float) -> None:
        self.checks.append(Check(measure, value, op, target))

    def note(self, text: str) -> None:
        self._notes.append(text)

    def first_calls(self, stats: CallStats) -> None:
        """Record what the process's first call of this kind cost (caches cold)."""
        self._first_calls = stats

    def take_notes(self) -> tuple[list[str], CallStats | None]:
        notes, first = self._notes, self._first_calls
        self._notes, self._first_calls = [], None
        return notes, first

    # -- invoking handlers ---------------------------------------------------------------

    def handler(self, path: str) -> Callable:
        if path not in self._handlers:
            module, attribute = path.rsplit(".", 1)
            self._handlers[path] = getattr(importlib.import_module(module), attribute)
        return self._handlers[path]

    def invoke(self, handler_path: str, event: dict) -> dict:
        from membership_local.apigw import lambda_context

        # Powertools writes metrics and logs to stdout; keep them out of the report.
        with contextlib.redirect_stdout(io.StringIO()):
            return self.handler(handler_path)(event, lambda_context(function_name="bench"))

    @staticmethod
    def expect_status(response: dict, status: int) -> dict:
        if response.get("statusCode") != status:
            raise AssertionError(
                f"expected HTTP {status}, got {response.get('statusCode')}: {response.get('body')}"
            )
        body = response.get("body")
        return json.loads(body) if body else {}

    def member_event(self, method: str, path: str, body: object = None, **kwargs) -> dict:
        from membership_local.apigw import member_event

        return member_event(method, path, body, **kwargs)

    # -- data ----------------------------------------------------------------------------

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def new_phone(self) -> str:
        # 139 + eight digits: a valid mainland mobile number, unique within the run.
        return f"139{next(self._ids):08d}"

    def signup_body(self) -> dict:
        return {
            "phone": self.new_phone(),
            "nickname": "Bench",
            "channel": "app",
            "storeId": "store-001",
        }

    def signed_up_member(self) -> str:
        """A new member, signed up through the handler; returns its JWT subject."""
        sub = self.unique("bench-member")
        event = self.member_event("POST", "/v1/members", self.signup_body(), sub=sub)
        self.expect_status(self.invoke(MEMBERS, event), 201)
        return sub


def use_table(name: str, endpoint: str | None = None) -> None:
    """Point this process's settings and connections at another table (and endpoint)."""
    os.environ["TABLE_NAME"] = name
    if endpoint is not None:
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
    config = sys.modules.get("membership.config")
    if config is not None:
        config.get_settings.cache_clear()
    table = sys.modules.get("membership.storage.table")
    if table is not None:
        table.reset_connections()


def missing_module(names: tuple[str, ...]) -> str | None:
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False  # a parent package is missing
        if not found:
            return name
    return None


def run(ctx: BenchContext, only: str | None = None) -> list[Outcome]:
    """Every registered operation, or those whose name contains `only`."""
    outcomes = []
    for op in REGISTRY:
        if only is not None and only not in op.name:
            continue
        missing = missing_module(op.requires)
        if missing:
            outcomes.append(Outcome(op, f"not available yet: module {missing} does not exist"))
            continue
        try:
            calls = op.fn(ctx)
        except Exception as exc:  # noqa: BLE001 - one broken operation must not hide the rest
            notes, _ = ctx.take_notes()
            outcomes.append(Outcome(op, f"error: {type(exc).__name__}: {exc}", notes=notes))
            continue
        notes, first = ctx.take_notes()
        outcomes.append(Outcome(op, "ok", calls, first, notes))
    return outcomes


# ---------------------------------------------------------------------------- operations


@operation("signup", requires=("membership.handlers.members",), route="POST /v1/members")
def signup(ctx: BenchContext) -> CallStats:
    # The process's first signup loads the program rules and connections; count it apart.
    with ctx.count() as first:
        ctx.signed_up_member()
    ctx.first_calls(first)
    event = ctx.member_event(
        "POST", "/v1/members", ctx.signup_body(), sub=ctx.unique("bench-signup")
    )
    with ctx.count() as calls:
        ctx.expect_status(ctx.invoke(MEMBERS, event), 201)
    ctx.check("DynamoDB write calls per signup", calls.writes, "==", 1)
    return calls


@operation("profile read", requires=("membership.handlers.members",), route="GET /v1/members/me")
def profile_read(ctx: BenchContext) -> CallStats:
    sub = ctx.signed_up_member()
    event = ctx.member_event("GET", "/v1/members/me", sub=sub)
    with ctx.count() as calls:
        ctx.expect_status(ctx.invoke(MEMBERS, event), 200)
    ctx.check("DynamoDB read calls per profile read", calls.reads, "==", 1)
    return calls
