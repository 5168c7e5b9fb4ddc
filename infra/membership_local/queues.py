"""A local SQS: the queues of template.yaml, fed by the real SQS calls, drained by the real
handlers as Lambda's event source mappings would.

Handlers send with botocore (`SendMessage`, `SendMessageBatch`) to `AWS_ENDPOINT_URL_SQS`,
which points here; the queue URLs in their environment (`!Ref GrantQueue`) resolve to
`http://127.0.0.1:<port>/<account>/<LogicalId>`. Every function whose template events
include `Type: SQS` on a queue gets that queue's messages in batches of its `BatchSize`,
at most `ScalingConfig.MaximumConcurrency` batches at once (capped locally). A failed
invocation, or the items it reports in `batchItemFailures`, come back after a short
delay; after the queue's `RedrivePolicy.maxReceiveCount` receives a message moves to the
dead-letter queue named there, and is also appended to a local file that
`membership-local queues` lists.

Differences from SQS, on the side of simplicity: visibility timeouts are squeezed into
`redelivery_delay`, there is no long polling, and nothing survives a restart.
"""
from __future__ import annotations

import argparse
import hashlib
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
from .runtime import Handlers
from .template import DEFAULT_REGION, _resources, function_timeout, functions

DEFAULT_PORT = 3002
DLQ_FILE = "queues-dlq.jsonl"
QUEUE_TYPE = "AWS::SQS::Queue"
MAX_BATCH_ENTRIES = 10
MAX_MESSAGE_BYTES = 256 * 1024
LOCAL_MAX_CONCURRENCY = 4
REDELIVERY_DELAY = 0.5


# --- what the template says ------------------------------------------------------------


def _logical_id(value: Any) -> str | None:
    """`!GetAtt Queue.Arn` or `!Ref Queue` -> "Queue"."""
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return (target[0] if isinstance(target, list) else str(target).split(".")[0])
        if "Ref" in value:
            return value["Ref"]
    return None


@dataclass(frozen=True)
class QueueSpec:
    name: str  # the logical id, used as the queue's name locally
    dead_letter: str | None
    max_receive_count: int | None


@dataclass(frozen=True)
class QueueSource:
    function_id: str
    handler: str
    queue: str
    batch_size: int
    report_batch_item_failures: bool
    max_concurrency: int


def queue_specs(template: Mapping) -> dict[str, QueueSpec]:
    specs = {}
    for logical_id, resource in _resources(template, QUEUE_TYPE).items():
        redrive = (resource.get("Properties") or {}).get("RedrivePolicy") or {}
        count = redrive.get("maxReceiveCount")
        specs[logical_id] = QueueSpec(
            name=logical_id, dead_letter=_logical_id(redrive.get("deadLetterTargetArn")),
            max_receive_count=int(count) if count is not None else None)
    return specs


def queue_sources(template: Mapping) -> list[QueueSource]:
    found = []
    for function_id, props in functions(template).items():
        for event in (props.get("Events") or {}).values():
            if event.get("Type") != "SQS":
                continue
            ev = event.get("Properties") or {}
            scaling = (ev.get("ScalingConfig") or {}).get("MaximumConcurrency")
            found.append(QueueSource(
                function_id=function_id, handler=props["Handler"],
                queue=_logical_id(ev.get("Queue")) or "",
                batch_size=int(ev.get("BatchSize", 10)),
                report_batch_item_failures="ReportBatchItemFailures"
                in (ev.get("FunctionResponseTypes") or []),
                max_concurrency=min(int(scaling or LOCAL_MAX_CONCURRENCY),
                                    LOCAL_MAX_CONCURRENCY)))
    return found


def queue_url(base_url: str, name: str) -> str:
    return f"{base_url}/{ACCOUNT_ID}/{name}"


def queue_arn(name: str, region: str = DEFAULT_REGION) -> str:
    return f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{name}"


def queue_refs(template: Mapping, base_url: str, region: str = DEFAULT_REGION) -> dict[str, str]:
    """What `Ref`/`GetAtt` of each queue resolve to locally (for the functions' environment)."""
    refs = {}
    for name in queue_specs(template):
        refs[name] = queue_url(base_url, name)
        refs[f"{name}.Arn"] = queue_arn(name, region)
        refs[f"{name}.QueueName"] = name
        refs[f"{name}.QueueUrl"] = queue_url(base_url, name)
    return refs


# --- the queues ------------------------------------------------------------------------


@dataclass
class Message:
    message_id: str
    body: str
    sent_at: float
    visible_at: float
    receive_count: int = 0
    first_received_at: float | None = None
    last_error: str = ""
    attributes: dict = field(default_factory=dict)

    @property
    def md5(self) -> str:
        return hashlib.md5(self.body.encode()).hexdigest()  # SQS's own checksum, not security


class QueueError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class LocalQueues:
    """Serves SendMessage(Batch) on loopback and delivers to the template's SQS sources."""

    def __init__(self, template: Mapping, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 handlers: Handlers | None = None, region: str = DEFAULT_REGION,
                 dlq_path: Path | None = None,
                 redelivery_delay: float = REDELIVERY_DELAY) -> None:
        self.template = template
        self.host, self.port, self.region = host, port, region
        self.handlers = handlers or Handlers()
        self.specs = queue_specs(template)
        self.sources = [s for s in queue_sources(template) if s.queue in self.specs]
        self.redelivery_delay = redelivery_delay
        self.dlq_path = dlq_path or state_dir() / DLQ_FILE
        self._messages: dict[str, list[Message]] = {name: [] for name in self.specs}
        self._running: dict[str, int] = {s.function_id: 0 for s in self.sources}
        self._cv = threading.Condition()
        self._stop = threading.Event()
        workers = max(1, sum(s.max_concurrency for s in self.sources))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="queues")
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._dlq_lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def queue_url(self, name: str) -> str:
        return queue_url(self.url, name)

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> LocalQueues:
        self._server = ThreadingHTTPServer((self.host, self.port), _request_handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        for target, name in ((self._server.serve_forever, "queues-http"),
                             (self._dispatch, "queues-dispatch")):
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

    def drain(self, timeout: float = 60.0) -> bool:
        """Wait until every consumed queue is empty and nothing runs; False on timeout."""
        consumed = {s.queue for s in self.sources}
        deadline = time.monotonic() + timeout
        with self._cv:
            while any(self._messages[q] for q in consumed) or any(self._running.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(min(left, 0.1))
        return True

    def depth(self, name: str) -> int:
        with self._cv:
            return len(self._messages[name])

    # --- the SQS API -------------------------------------------------------------------

    def _queue_of(self, url: Any) -> str:
        name = str(url or "").rstrip("/").rsplit("/", 1)[-1]
        if name not in self.specs:
            raise QueueError("AWS.SimpleQueueService.NonExistentQueue",
                             f"the local stack has no queue {url!r}")
        return name

    def send(self, name: str, body: str) -> Message:
        if not isinstance(body, str) or not body:
            raise QueueError("MissingParameter", "MessageBody is required")
        if len(body.encode()) > MAX_MESSAGE_BYTES:
            raise QueueError("InvalidParameterValue", "the message is larger than 256 KB")
        now = time.monotonic()
        message = Message(message_id=str(uuid.uuid4()), body=body, sent_at=time.time(),
                          visible_at=now)
        with self._cv:
            self._messages[name].append(message)
            self._cv.notify_all()
        return message

    def call(self, operation: str, request: Mapping) -> dict:
        if operation == "SendMessage":
            message = self.send(self._queue_of(request.get("QueueUrl")),
                                request.get("MessageBody"))
            return {"MessageId": message.message_id, "MD5OfMessageBody": message.md5}
        if operation == "SendMessageBatch":
            name = self._queue_of(request.get("QueueUrl"))
            entries = request.get("Entries")
            if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_BATCH_ENTRIES:
                raise QueueError("AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
                                 f"a batch holds 1 to {MAX_BATCH_ENTRIES} entries")
            done, failed = [], []
            for entry in entries:
                try:
                    message = self.send(name, entry.get("MessageBody"))
                except QueueError as exc:
                    failed.append({"Id": entry.get("Id"), "SenderFault": True,
                                   "Code": exc.code, "Message": exc.message})
                    continue
                done.append({"Id": entry.get("Id"), "MessageId": message.message_id,
                             "MD5OfMessageBody": message.md5})
            return {"Successful": done, "Failed": failed}
        if operation == "GetQueueUrl":
            name = self._queue_of(request.get("QueueName"))
            return {"QueueUrl": self.queue_url(name)}
        if operation == "GetQueueAttributes":
            name = self._queue_of(request.get("QueueUrl"))
            now = time.monotonic()
            with self._cv:
                visible = sum(1 for m in self._messages[name] if m.visible_at <= now)
                total = len(self._messages[name])
            return {"Attributes": {"ApproximateNumberOfMessages": str(visible),
                                   "ApproximateNumberOfMessagesNotVisible": str(total - visible),
                                   "QueueArn": queue_arn(name, self.region)}}
        raise QueueError("UnsupportedOperation",
                         f"the local queues serve SendMessage, SendMessageBatch, GetQueueUrl "
                         f"and GetQueueAttributes, not {operation}")

    # --- delivery ----------------------------------------------------------------------

    def _dispatch(self) -> None:
        while not self._stop.is_set():
            with self._cv:
                started = self._start_batches()
                if not started:
                    self._cv.wait(self._next_wake())

    def _next_wake(self) -> float:
        now = time.monotonic()
        soonest = [m.visible_at - now for msgs in self._messages.values() for m in msgs
                   if m.visible_at > now]
        return max(0.01, min([0.5, *soonest]))

    def _start_batches(self) -> bool:
        """Hand visible messages to free consumers (called with the lock held)."""
        started = False
        now = time.monotonic()
        for source in self.sources:
            while self._running[source.function_id] < source.max_concurrency:
                visible = [m for m in self._messages[source.queue] if m.visible_at <= now]
                if not visible:
                    break
                batch = visible[:source.batch_size]
                for m in batch:
                    m.visible_at = float("inf")  # in flight
                    m.receive_count += 1
                    m.first_received_at = m.first_received_at or time.time()
                self._running[source.function_id] += 1
                self._pool.submit(self._deliver, source, batch)
                started = True
        return started

    def _record(self, source: QueueSource, m: Message) -> dict:
        return {
            "messageId": m.message_id,
            "receiptHandle": f"{m.message_id}#{m.receive_count}",
            "body": m.body,
            "attributes": {
                "ApproximateReceiveCount": str(m.receive_count),
                "SentTimestamp": str(int(m.sent_at * 1000)),
                "SenderId": ACCOUNT_ID,
                "ApproximateFirstReceiveTimestamp": str(int((m.first_received_at or 0) * 1000)),
            },
            "messageAttributes": {},
            "md5OfBody": m.md5,
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn(source.queue, self.region),
            "awsRegion": self.region,
        }

    def _deliver(self, source: QueueSource, batch: list[Message]) -> None:
        failed_ids: set[str] = set()
        error = ""
        try:
            context = lambda_context(function_name=source.function_id,
                                     timeout=float(function_timeout(self.template,
                                                                    source.function_id)))
            event = {"Records": [self._record(source, m) for m in batch]}
            result = self.handlers.invoke(source.handler, json.loads(json.dumps(event)), context)
            if source.report_batch_item_failures and isinstance(result, dict):
                failed_ids = {f.get("itemIdentifier") for f in
                              result.get("batchItemFailures") or []}
                error = "reported in batchItemFailures"
        except Exception as exc:  # noqa: BLE001 - a failed invocation fails the whole batch
            failed_ids = {m.message_id for m in batch}
            error = f"{type(exc).__name__}: {exc}"
            print(f"queues: {source.function_id} failed on {source.queue}: {error}\n"
                  f"{traceback.format_exc()[-1500:]}", file=sys.stderr)
        with self._cv:
            for m in batch:
                if m.message_id not in failed_ids:
                    self._messages[source.queue].remove(m)
                    continue
                m.last_error = error
                self._retry_or_dead_letter(source.queue, m)
            self._running[source.function_id] -= 1
            self._cv.notify_all()

    def _retry_or_dead_letter(self, name: str, m: Message) -> None:
        spec = self.specs[name]
        if spec.max_receive_count and m.receive_count >= spec.max_receive_count \
                and spec.dead_letter in self._messages:
            self._messages[name].remove(m)
            m.visible_at = time.monotonic()
            self._messages[spec.dead_letter].append(m)
            record = {"queue": name, "deadLetterQueue": spec.dead_letter,
                      "messageId": m.message_id, "receiveCount": m.receive_count,
                      "failedAt": datetime.now(UTC).isoformat(), "error": m.last_error,
                      "body": m.body}
            with self._dlq_lock, self.dlq_path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(record) + "\n")
            print(f"queues: a message of {name} failed {m.receive_count} times; moved to "
                  f"{spec.dead_letter}", file=sys.stderr)
            return
        m.visible_at = time.monotonic() + self.redelivery_delay * min(2 ** (m.receive_count - 1),
                                                                      16)


def _request_handler(queues: LocalQueues) -> type[BaseHTTPRequestHandler]:
    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            target = self.headers.get("X-Amz-Target", "")
            try:
                if not target.startswith("AmazonSQS."):
                    raise QueueError("UnknownOperationException",
                                     "the local queues speak SQS's JSON protocol only")
                try:
                    request = json.loads(raw or b"{}")
                except ValueError:
                    raise QueueError("SerializationException", "not JSON") from None
                self._send(200, queues.call(target.split(".", 1)[1], request))
            except QueueError as exc:
                self._send(exc.status, {"__type": exc.code, "message": exc.message})

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args) -> None:
            pass

    return RequestHandler


def read_dlq(path: Path | None = None) -> list[dict]:
    path = path or state_dir() / DLQ_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


# --- `membership-local queues` ---------------------------------------------------------


def _queues_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON record per line")
    parser.add_argument("--clear", action="store_true", help="forget the records after listing")


@command("queues", "list messages the local queues moved to a dead-letter queue",
         _queues_arguments)
def queues_command(args: argparse.Namespace) -> int:
    records = read_dlq()
    for record in records:
        if args.json:
            print(json.dumps(record))
            continue
        print(f"{record['failedAt']}  {record['queue']} -> {record['deadLetterQueue']}  "
              f"receives={record['receiveCount']}  {record['error']}")
    if not records and not args.json:
        print("no local queue moved a message to its dead-letter queue")
    if args.clear:
        (state_dir() / DLQ_FILE).unlink(missing_ok=True)
    return 0
