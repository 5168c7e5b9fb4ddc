"""Count every DynamoDB API call a piece of code makes, with the capacity it consumed.

pynamodb, boto3 and plain botocore all create their clients through
`botocore.session.Session.create_client`, each from a session of its own; wrapping that one
method reaches every client created after `install()`, whoever owns the session. On each
DynamoDB client we register botocore event handlers:

- before-parameter-build: note how many items the request names, and ask for
  ReturnConsumedCapacity=TOTAL when the caller did not;
- before-call: record the call (once per API call, however many HTTP retries follow);
- after-call: read ConsumedCapacity from the parsed response (errors included).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

READ_OPERATIONS = {"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"}
WRITE_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


@dataclass
class Call:
    operation: str
    items: int = 0  # items the request names (0 for Query/Scan: not known up front)
    counter_items: int = 0  # of which metrics counter shards (METRICS# keys)
    read_units: float = 0.0
    write_units: float = 0.0
    capacity_reported: bool = False
    error: str | None = None


@dataclass
class CallStats:
    calls: list[Call] = field(default_factory=list)

    @property
    def reads(self) -> int:
        return sum(1 for c in self.calls if c.operation in READ_OPERATIONS)

    @property
    def writes(self) -> int:
        return sum(1 for c in self.calls if c.operation in WRITE_OPERATIONS)

    @property
    def other(self) -> int:
        return len(self.calls) - self.reads - self.writes

    @property
    def items_written(self) -> int:
        return sum(c.items for c in self.calls if c.operation in WRITE_OPERATIONS)

    @property
    def counter_items_written(self) -> int:
        return sum(c.counter_items for c in self.calls if c.operation in WRITE_OPERATIONS)

    @property
    def read_units(self) -> float:
        return sum(c.read_units for c in self.calls)

    @property
    def write_units(self) -> float:
        return sum(c.write_units for c in self.calls)

    @property
    def capacity_known(self) -> bool:
        data_calls = [c for c in self.calls if c.operation in READ_OPERATIONS | WRITE_OPERATIONS]
        return all(c.capacity_reported for c in data_calls)

    def summary(self) -> str:
        """e.g. "GetItem, TransactWriteItems×1 (TransactionCanceled)"."""
        counts = Counter(c.operation for c in self.calls)
        errors = sorted({c.error for c in self.calls if c.error})
        text = ", ".join(f"{op}×{n}" for op, n in counts.items()) or "none"
        return f"{text} ({', '.join(errors)})" if errors else text


class DynamoDBCallCounter:
    """Process-wide: install once, then scope with `with counter.window() as stats:`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: list[CallStats] = []
        self._original = None

    def install(self) -> None:
        import botocore.session

        if self._original is not None:
            return
        original = botocore.session.Session.create_client
        counter = self

        def create_client(session, service_name, *args, **kwargs):
            client = original(session, service_name, *args, **kwargs)
            if client.meta.service_model.service_name == "dynamodb":
                counter._attach(client)
            return client

        botocore.session.Session.create_client = create_client
        self._original = original

    def uninstall(self) -> None:
        import botocore.session

        if self._original is not None:
            botocore.session.Session.create_client = self._original
            self._original = None

    @contextmanager
    def window(self) -> Iterator[CallStats]:
        stats = CallStats()
        with self._lock:
            self._windows.append(stats)
        try:
            yield stats
        finally:
            with self._lock:
                self._windows.remove(stats)

    # -- botocore event handlers ---------------------------------------------------------

    def _attach(self, client) -> None:
        events = client.meta.events
        # Prefix names: botocore's emitter matches every operation under them.
        events.register("before-parameter-build.dynamodb", _before_parameter_build)
        events.register("before-call.dynamodb", self._before_call)
        events.register("after-call.dynamodb", self._after_call)

    def _before_call(self, model, context, **_) -> None:
        call = Call(operation=model.name, items=context.get("bench_items", 0),
                    counter_items=context.get("bench_counter_items", 0))
        context["bench_call"] = call
        with self._lock:
            for stats in self._windows:
                stats.calls.append(call)

    @staticmethod
    def _after_call(parsed, model, context, **_) -> None:
        call: Call | None = context.get("bench_call")
        if call is None or not isinstance(parsed, dict):
            return
        error = (parsed.get("Error") or {}).get("Code")
        if error:
            call.error = error
        consumed = parsed.get("ConsumedCapacity")
        if consumed is None:
            return
        call.capacity_reported = True
        for entry in consumed if isinstance(consumed, list) else [consumed]:
            read = entry.get("ReadCapacityUnits")
            write = entry.get("WriteCapacityUnits")
            if read is None and write is None:
                # TOTAL without a split: attribute the units by what the call does.
                total = float(entry.get("CapacityUnits") or 0)
                if model.name in READ_OPERATIONS:
                    read = total
                else:
                    write = total
            call.read_units += float(read or 0)
            call.write_units += float(write or 0)


def _items_named(operation: str, params: dict) -> int:
    if operation in {"TransactWriteItems", "TransactGetItems"}:
        return len(params.get("TransactItems") or [])
    if operation == "BatchWriteItem":
        return sum(len(reqs) for reqs in (params.get("RequestItems") or {}).values())
    if operation == "BatchGetItem":
        return sum(len(t.get("Keys") or []) for t in (params.get("RequestItems") or {}).values())
    if operation in {"GetItem", "PutItem", "UpdateItem", "DeleteItem"}:
        return 1
    return 0


def _counter_items_named(operation: str, params: dict) -> int:
    """Metrics counter shards among the items a write transaction names."""
    if operation != "TransactWriteItems":
        return 0
    count = 0
    for entry in params.get("TransactItems") or []:
        for action in entry.values():
            key = action.get("Key") or action.get("Item") or {}
            pk = key.get("PK")
            text = pk.get("S") if isinstance(pk, dict) else pk
            if isinstance(text, str) and text.startswith("METRICS#"):
                count += 1
    return count


def _before_parameter_build(params, model, context, **_) -> None:
    # The API parameters as the caller gave them (before-call sees the serialised body).
    context["bench_items"] = _items_named(model.name, params)
    context["bench_counter_items"] = _counter_items_named(model.name, params)
    if "ReturnConsumedCapacity" in model.input_shape.members:
        params.setdefault("ReturnConsumedCapacity", "TOTAL")
