"""A local EventBridge: the PutEvents JSON API, routed by template.yaml's rules.

`aws events put-events --endpoint-url http://127.0.0.1:3001 --entries file://...` works
against it. Each accepted entry becomes a real EventBridge event envelope; every rule of
template.yaml (a function's EventBridgeRule event) whose bus and pattern match gets it,
asynchronously, as EventBridge delivers to a Lambda target. A failed invocation is retried
with backoff, bounded by the rule's RetryPolicy and by short local caps, then kept in a
local dead-letter file that `membership-local dlq` lists.
"""
from __future__ import annotations

import argparse
import heapq
import itertools
import json
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .apigw import ACCOUNT_ID, lambda_context
from .cli import command
from .paths import state_dir
from .patterns import matches
from .runtime import Handlers
from .template import (
    DEFAULT_REGION,
    EventRule,
    event_rules,
    function_timeout,
)

DEFAULT_PORT = 3001
DLQ_FILE = "eventbus-dlq.jsonl"
MAX_ENTRIES = 10  # PutEvents' limit per call
MAX_ENTRY_BYTES = 256 * 1024
# EventBridge retries for up to a day; locally the same schedule is squeezed into seconds.
LOCAL_MAX_ATTEMPTS = 8
LOCAL_MAX_AGE_SECONDS = 60.0
FIRST_RETRY_DELAY = 0.25
MAX_RETRY_DELAY = 4.0


@dataclass(frozen=True)
class Route:
    """One rule: which bus, which pattern, which handler, how to retry."""

    name: str  # "<FunctionId>.<EventId>", as SAM names the rule's target
    function_id: str
    handler: str
    bus: str
    pattern: dict
    max_attempts: int  # first delivery included
    max_age: float


@dataclass(order=True)
class Delivery:
    due: float
    seq: int
    route: Route = field(compare=False)
    event: dict = field(compare=False)
    attempts: int = field(default=0, compare=False)
    first_at: float = field(default=0.0, compare=False)
    last_error: str = field(default="", compare=False)


def _bus_name(value: str | None) -> str:
    """A bus given by name or ARN; absent means the account's default bus."""
    if not value:
        return "default"
    return value.rsplit("/", 1)[-1] if value.startswith("arn:") else value


def routes(template: Mapping, refs: Mapping[str, Any]) -> list[Route]:
    """The template's rules, Refs resolved against `refs` then the parameters' defaults."""
    return [_route(rule) for rule in event_rules(template, refs)]


def _route(rule: EventRule) -> Route:
    policy = rule.retry_policy or {}
    # EventBridge's defaults: 185 retries over 24 hours.
    retries = int(policy.get("MaximumRetryAttempts", 185))
    age = float(policy.get("MaximumEventAgeInSeconds", 86_400))
    return Route(
        name=f"{rule.function_id}.{rule.event_id}", function_id=rule.function_id,
        handler=rule.handler,
        bus=_bus_name(rule.event_bus_name),
        pattern=rule.pattern,
        max_attempts=1 + min(retries, LOCAL_MAX_ATTEMPTS - 1),
        max_age=min(age, LOCAL_MAX_AGE_SECONDS),
    )


class PutEventsError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class EventBus:
    """Serves PutEvents on loopback and delivers to the template's rule targets."""

    def __init__(self, template: Mapping, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 handlers: Handlers | None = None, region: str = DEFAULT_REGION,
                 refs: Mapping[str, Any] | None = None, dlq_path: Path | None = None,
                 workers: int = 4, first_retry_delay: float = FIRST_RETRY_DELAY) -> None:
        self.template = template
        self.host, self.port, self.region = host, port, region
        self.handlers = handlers or Handlers()
        self.routes = routes(template, refs or {})
        self.dlq_path = dlq_path or state_dir() / DLQ_FILE
        self.first_retry_delay = first_retry_delay
        self.delivered: list[tuple[str, dict]] = []  # (route name, event) that succeeded
        self._heap: list[Delivery] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._in_flight = 0
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eventbus")
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._dlq_lock = threading.Lock()

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> EventBus:
        self._server = ThreadingHTTPServer((self.host, self.port), _request_handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        for target, name in ((self._server.serve_forever, "eventbus-http"),
                             (self._dispatch, "eventbus-dispatch")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until nothing is queued or running; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._heap or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(min(left, 0.1))
        return True

    # --- PutEvents -------------------------------------------------------------------------

    def put_events(self, request: Mapping) -> dict:
        entries = request.get("Entries")
        if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_ENTRIES:
            raise PutEventsError("ValidationException",
                                 f"Entries must hold 1 to {MAX_ENTRIES} entries")
        results, failed = [], 0
        for entry in entries:
            try:
                event, bus = self._envelope(entry)
            except PutEventsError as exc:
                failed += 1
                results.append({"ErrorCode": exc.code, "ErrorMessage": exc.message})
                continue
            self.publish(event, bus)
            results.append({"EventId": event["id"]})
        return {"FailedEntryCount": failed, "Entries": results}

    def _envelope(self, entry: Any) -> tuple[dict, str]:
        if not isinstance(entry, Mapping):
            raise PutEventsError("MalformedDetail", "an entry is an object")
        for name in ("Source", "DetailType", "Detail"):
            if not isinstance(entry.get(name), str) or not entry[name]:
                raise PutEventsError("InvalidArgument", f"{name} is required")
        if len(json.dumps(entry).encode()) > MAX_ENTRY_BYTES:
            raise PutEventsError("InvalidArgument", "the entry is larger than 256 KB")
        try:
            detail = json.loads(entry["Detail"])
        except ValueError:
            raise PutEventsError("MalformedDetail", "Detail is not valid JSON") from None
        if not isinstance(detail, dict):
            raise PutEventsError("MalformedDetail", "Detail must be a JSON object")
        when = entry.get("Time")
        if isinstance(when, int | float):
            stamp = datetime.fromtimestamp(when, UTC)
        else:
            stamp = datetime.now(UTC)
        event = {
            "version": "0", "id": str(uuid.uuid4()), "detail-type": entry["DetailType"],
            "source": entry["Source"], "account": ACCOUNT_ID,
            "time": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": self.region,
            "resources": list(entry.get("Resources") or []), "detail": detail,
        }
        return event, _bus_name(entry.get("EventBusName"))

    def publish(self, event: dict, bus: str) -> int:
        """Queue `event` for every matching rule on `bus`; returns how many matched."""
        matched = [r for r in self.routes if r.bus == bus and matches(r.pattern, event)]
        now = time.monotonic()
        with self._cv:
            for route in matched:
                heapq.heappush(self._heap, Delivery(now, next(self._seq), route, event,
                                                    first_at=now))
            self._cv.notify_all()
        return len(matched)

    # --- delivery --------------------------------------------------------------------------

    def _dispatch(self) -> None:
        while not self._stop.is_set():
            with self._cv:
                if not self._heap:
                    self._cv.wait(0.5)
                    continue
                wait = self._heap[0].due - time.monotonic()
                if wait > 0:
                    self._cv.wait(min(wait, 0.5))
                    continue
                delivery = heapq.heappop(self._heap)
                self._in_flight += 1
            self._pool.submit(self._deliver, delivery)

    def _deliver(self, delivery: Delivery) -> None:
        route = delivery.route
        delivery.attempts += 1
        try:
            context = lambda_context(function_name=route.function_id,
                                     timeout=float(function_timeout(self.template,
                                                                    route.function_id)))
            self.handlers.invoke(route.handler, json.loads(json.dumps(delivery.event)), context)
            self.delivered.append((route.name, delivery.event))
        except Exception as exc:  # noqa: BLE001 - any failure is a failed invocation
            delivery.last_error = f"{type(exc).__name__}: {exc}"
            self._failed(delivery, exc)
        finally:
            with self._cv:
                self._in_flight -= 1
                self._cv.notify_all()

    def _failed(self, delivery: Delivery, exc: Exception) -> None:
        route = delivery.route
        age = time.monotonic() - delivery.first_at
        delay = min(MAX_RETRY_DELAY, self.first_retry_delay * 2 ** (delivery.attempts - 1))
        if delivery.attempts < route.max_attempts and age + delay <= route.max_age:
            print(f"eventbus: {route.name} failed (attempt {delivery.attempts}): "
                  f"{delivery.last_error}; retrying in {delay:.2f}s", file=sys.stderr)
            delivery.due = time.monotonic() + delay
            with self._cv:
                heapq.heappush(self._heap, delivery)
                self._cv.notify_all()
            return
        print(f"eventbus: {route.name} failed {delivery.attempts} times; "
              f"kept in the DLQ: {delivery.last_error}", file=sys.stderr)
        record = {
            "rule": route.name, "function": route.function_id, "attempts": delivery.attempts,
            "failedAt": datetime.now(UTC).isoformat(), "error": delivery.last_error,
            "trace": "".join(traceback.format_exception(exc))[-2000:],
            "event": delivery.event,
        }
        with self._dlq_lock, self.dlq_path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")


def read_dlq(path: Path | None = None) -> list[dict]:
    path = path or state_dir() / DLQ_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


def _request_handler(bus: EventBus) -> type[BaseHTTPRequestHandler]:
    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            target = self.headers.get("X-Amz-Target", "")
            try:
                if target != "AWSEvents.PutEvents":
                    raise PutEventsError("UnknownOperationException",
                                         f"the local bus serves PutEvents only, not {target!r}")
                try:
                    request = json.loads(raw or b"{}")
                except ValueError:
                    raise PutEventsError("SerializationException", "not JSON") from None
                self._send(200, bus.put_events(request))
            except PutEventsError as exc:
                self._send(exc.status, {"__type": exc.code, "message": exc.message})

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args) -> None:
            pass

    return RequestHandler


# --- `membership-local dlq` ----------------------------------------------------------------


def _dlq_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON record per line")
    parser.add_argument("--clear", action="store_true", help="empty the DLQ after listing")


@command("dlq", "list events the local bus could not deliver after its retries",
         _dlq_arguments)
def dlq(args: argparse.Namespace) -> int:
    records = read_dlq()
    for record in records:
        if args.json:
            print(json.dumps(record))
            continue
        event = record["event"]
        print(f"{record['failedAt']}  {record['rule']}  {event.get('detail-type')}  "
              f"attempts={record['attempts']}  {record['error']}")
    if not records and not args.json:
        print("the local DLQ is empty")
    if args.clear:
        (state_dir() / DLQ_FILE).unlink(missing_ok=True)
    return 0
