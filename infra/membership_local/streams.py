"""Deliver the table's DynamoDB stream to the template's stream functions, as Lambda's
event source mapping does: filters, batches, retries, bisection and an on-failure list.

Differences from Lambda, all on the side of simplicity: one reader feeds every function,
retries are capped by `max_retries` (the template's own limit applies when lower), and the
on-failure destination is the in-memory `dlq` list.
"""
from __future__ import annotations

import base64
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .apigw import ACCOUNT_ID, lambda_context
from .dynamodb import dynamodb_client
from .patterns import matches
from .runtime import Handlers
from .template import StreamFunction, function_timeout, stream_functions

DEFAULT_REGION = "us-east-1"
SHARD_REFRESH_SECONDS = 2.0


def lambda_record(raw: Mapping, region: str, stream_arn: str) -> dict:
    """A GetRecords record in the shape Lambda hands to the function."""
    ddb = raw["dynamodb"]
    record_ddb: dict[str, Any] = {}
    created = ddb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        created = int(created.timestamp())
    if created is not None:
        record_ddb["ApproximateCreationDateTime"] = created
    for key in ("Keys", "NewImage", "OldImage"):
        if key in ddb:
            record_ddb[key] = {name: _json_attribute(v) for name, v in ddb[key].items()}
    for key in ("SequenceNumber", "SizeBytes", "StreamViewType"):
        if key in ddb:
            record_ddb[key] = ddb[key]
    record = {
        "eventID": raw.get("eventID"),
        "eventName": raw.get("eventName"),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": record_ddb,
        "eventSourceARN": stream_arn,
    }
    if "userIdentity" in raw:  # TTL deletions
        record["userIdentity"] = raw["userIdentity"]
    return record


def _json_attribute(value: Mapping) -> dict:
    # boto3 decodes binary attributes to bytes; the Lambda event carries them base64-encoded.
    if not value:
        # DynamoDB Local writes an empty map into stream records as {}; DynamoDB sends {"M": {}}.
        return {"M": {}}
    (kind, inner), = value.items()
    if kind == "B":
        return {"B": base64.b64encode(inner).decode()}
    if kind == "BS":
        return {"BS": [base64.b64encode(b).decode() for b in inner]}
    if kind == "M":
        return {"M": {k: _json_attribute(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [_json_attribute(v) for v in inner]}
    return {kind: inner}


@dataclass
class Failure:
    """What Lambda sends to an on-failure destination, plus the records and the error."""

    function_id: str
    records: list[dict]
    error: str
    attempts: int

    def destination_message(self) -> dict:
        first, last = self.records[0]["dynamodb"], self.records[-1]["dynamodb"]
        return {
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(),
            "requestContext": {"functionArn": f"arn:aws:lambda:{DEFAULT_REGION}:{ACCOUNT_ID}"
                                              f":function:{self.function_id}",
                               "condition": "RetryAttemptsExhausted",
                               "approximateInvokeCount": self.attempts},
            "responseContext": {"functionError": "Unhandled", "executedVersion": "$LATEST"},
            "DDBStreamBatchInfo": {
                "batchSize": len(self.records),
                "startSequenceNumber": first.get("SequenceNumber"),
                "endSequenceNumber": last.get("SequenceNumber"),
                "streamArn": self.records[0]["eventSourceARN"],
            },
        }


class StreamPoller:
    """Polls one table's stream in a daemon thread; `start()`, `drain()`, `stop()`."""

    def __init__(
        self,
        template: Mapping,
        *,
        endpoint: str,
        table_name: str,
        region: str = DEFAULT_REGION,
        handlers: Handlers | None = None,
        poll_interval: float = 0.1,
        max_retries: int = 2,
        retry_delay: float = 0.05,
    ) -> None:
        self.functions = stream_functions(template)
        self._timeouts = {f.function_id: function_timeout(template, f.function_id)
                          for f in self.functions}
        self.endpoint = endpoint
        self.table_name = table_name
        self.region = region
        self.handlers = handlers or Handlers()
        self.poll_interval = poll_interval
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.dlq: list[Failure] = []
        self.invocations: dict[str, int] = {f.function_id: 0 for f in self.functions}
        self.stream_arn: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._round = 0
        self._quiet_round = -1  # last round that read nothing
        self._progress = threading.Condition()

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> StreamPoller:
        if not self.functions:
            return self
        client = dynamodb_client(self.endpoint, self.region)
        try:
            table = client.describe_table(TableName=self.table_name)["Table"]
        except Exception as exc:  # noqa: BLE001 - the stack runs on without stream consumers
            _warn(f"cannot describe {self.table_name}: {exc}; stream functions will not run")
            return self
        self.stream_arn = table.get("LatestStreamArn")
        if not self.stream_arn:
            _warn(f"{self.table_name} has no stream on this backend; stream functions "
                  f"({', '.join(self.invocations)}) will not run")
            return self
        self._thread = threading.Thread(target=self._run, name="membership-streams", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until a whole polling round, begun after this call, read nothing new."""
        if not self.running:
            return False
        deadline = time.monotonic() + timeout
        with self._progress:
            # +2: the round under way may have begun before the caller's last write.
            target = self._round + 2
            while self._quiet_round < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.running:
                    return False
                self._progress.wait(min(remaining, 0.5))
        return True

    # --- reading the stream ------------------------------------------------------------

    def _run(self) -> None:
        streams = dynamodb_client(self.endpoint, self.region, "dynamodbstreams")
        iterators: dict[str, str] = {}
        last_sequence: dict[str, str] = {}
        finished: set[str] = set()
        first_type = ("TRIM_HORIZON"
                      if any(f.starting_position == "TRIM_HORIZON" for f in self.functions)
                      else "LATEST")
        refreshed = 0.0
        failures = 0
        while not self._stop.is_set():
            read = 0
            try:
                if time.monotonic() - refreshed > SHARD_REFRESH_SECONDS or not iterators:
                    self._open_shards(streams, iterators, finished, first_type)
                    refreshed = time.monotonic()
                    first_type = "TRIM_HORIZON"  # shards found later start at their beginning
                for shard_id in list(iterators):
                    read += self._read_shard(streams, shard_id, iterators, last_sequence,
                                             finished)
                failures = 0
            except Exception as exc:  # noqa: BLE001 - keep polling; the backend may recover
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    _warn(f"stream polling failed ({failures}x): {exc}")
                self._stop.wait(min(5.0, self.poll_interval * 2 ** min(failures, 6)))
                continue
            with self._progress:
                self._round += 1
                if read == 0:
                    self._quiet_round = self._round
                self._progress.notify_all()
            if read == 0:
                self._stop.wait(self.poll_interval)

    def _open_shards(self, streams, iterators: dict, finished: set, iterator_type: str) -> None:
        shards: list[dict] = []
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn}
        for _ in range(100):  # pages of shards; a local stream has a handful
            description = streams.describe_stream(**kwargs)["StreamDescription"]
            shards += description.get("Shards", [])
            last = description.get("LastEvaluatedShardId")
            if not last:
                break
            kwargs["ExclusiveStartShardId"] = last
        known = {s["ShardId"] for s in shards}
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id in iterators or shard_id in finished:
                continue
            parent = shard.get("ParentShardId")
            if parent and parent in known and parent not in finished:
                continue  # a child waits until its parent is read to the end, keeping order
            iterators[shard_id] = streams.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType=iterator_type,
            )["ShardIterator"]

    def _read_shard(self, streams, shard_id: str, iterators: dict, last_sequence: dict,
                    finished: set) -> int:
        try:
            page = streams.get_records(ShardIterator=iterators[shard_id], Limit=1000)
        except streams.exceptions.ExpiredIteratorException:
            resume = ({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                       "SequenceNumber": last_sequence[shard_id]}
                      if shard_id in last_sequence else {"ShardIteratorType": "TRIM_HORIZON"})
            iterators[shard_id] = streams.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard_id, **resume)["ShardIterator"]
            return 0
        records = page.get("Records", [])
        next_iterator = page.get("NextShardIterator")
        if next_iterator:
            iterators[shard_id] = next_iterator
        else:  # the shard is closed and read to its end: its children may start
            del iterators[shard_id]
            finished.add(shard_id)
        if records:
            last_sequence[shard_id] = records[-1]["dynamodb"]["SequenceNumber"]
            try:
                self.deliver([lambda_record(r, self.region, self.stream_arn) for r in records])
            except Exception as exc:  # noqa: BLE001 - never re-read the same records forever
                _warn(f"skipped {len(records)} record(s) of shard {shard_id}: "
                      f"{type(exc).__name__}: {exc}")
        return len(records)

    # --- invoking the functions --------------------------------------------------------

    def deliver(self, records: list[dict]) -> None:
        """Filter `records` for each stream function and invoke it batch by batch."""
        for function in self.functions:
            selected = [r for r in records if _selected(function, r)]
            for start in range(0, len(selected), function.batch_size):
                self._deliver_batch(function, selected[start:start + function.batch_size])

    def _deliver_batch(self, function: StreamFunction, batch: list[dict]) -> None:
        limit = self.max_retries
        if function.maximum_retry_attempts >= 0:
            limit = min(limit, function.maximum_retry_attempts)
        pending = deque([(batch, 0)])
        # Bounded: each piece is retried at most `limit` times, and bisection halves it.
        while pending:
            records, retries = pending.popleft()
            failed_from, error = self._invoke(function, records)
            if failed_from is None:
                continue
            remaining = records[failed_from:]
            if retries >= limit or self._stop.is_set():
                self.dlq.append(Failure(function.function_id, remaining, error, retries + 1))
                _warn(f"{function.function_id}: {len(remaining)} record(s) sent to the local "
                      f"DLQ after {retries + 1} attempt(s): {error}")
                continue
            self._stop.wait(self.retry_delay * 2 ** retries)
            if function.bisect_on_error and failed_from == 0 and len(remaining) > 1:
                middle = len(remaining) // 2
                pending.appendleft((remaining[middle:], retries + 1))
                pending.appendleft((remaining[:middle], retries + 1))
            else:
                pending.appendleft((remaining, retries + 1))

    def _invoke(self, function: StreamFunction, records: list[dict]) -> tuple[int | None, str]:
        """(None, "") on success, else (index of the first record to retry, the error)."""
        self.invocations[function.function_id] += 1
        context = lambda_context(function.function_id,
                                 timeout=self._timeouts[function.function_id])
        try:
            result = self.handlers.invoke(function.handler, {"Records": records}, context)
        except Exception as exc:  # noqa: BLE001 - a function error is retried, as Lambda does
            return 0, f"{type(exc).__name__}: {exc}"
        if not function.report_batch_item_failures or not isinstance(result, Mapping):
            return None, ""
        failures = result.get("batchItemFailures") or []
        if not failures:
            return None, ""
        sequence_numbers = [r["dynamodb"].get("SequenceNumber") for r in records]
        failed = [f.get("itemIdentifier") if isinstance(f, Mapping) else None for f in failures]
        if any(f not in sequence_numbers for f in failed):
            # Lambda treats an unknown or empty identifier as a failure of the whole batch.
            return 0, f"invalid batchItemFailures {failures!r}"
        return min(sequence_numbers.index(f) for f in failed), f"batchItemFailures {failed!r}"


def _selected(function: StreamFunction, record: dict) -> bool:
    return not function.filter_patterns or any(
        matches(pattern, record) for pattern in function.filter_patterns
    )


def _warn(message: str) -> None:
    print(f"membership-local streams: {message}", file=sys.stderr)
