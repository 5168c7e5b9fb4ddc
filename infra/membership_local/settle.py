"""`membership-local settle --period YYYY-MM`: the monthly settlement against the local stack.

Runs the real coordinator and worker code (membership.services.settlement) in this
process: the coordinator's segment messages go to a thread pool instead of SQS, and each
thread settles one segment page by page with its checkpoints, as a Lambda worker does.
Progress goes to stderr; the report to stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from .cli import command


class ProgressBar:
    """A one-line bar on stderr: redrawn at most ten times a second."""

    def __init__(self, label: str, total: int | None, stream=None, width: int = 30) -> None:
        self.label, self.total, self.width = label, total, width
        self.stream = stream or sys.stderr
        self.count = 0
        self.extra = ""
        self.started = time.monotonic()
        self._drawn = 0.0
        self._lock = threading.Lock()

    def update(self, count: int | None = None, *, advance: int = 0, extra: str = "") -> None:
        with self._lock:
            self.count = count if count is not None else self.count + advance
            if extra:
                self.extra = extra
            now = time.monotonic()
            if now - self._drawn >= 0.1 or (self.total and self.count >= self.total):
                self._drawn = now
                self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-9)
        if self.total:
            done = min(self.count / self.total, 1.0)
            filled = int(done * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            head = f"{self.label} [{bar}] {self.count}/{self.total}"
        else:
            head = f"{self.label} {self.count}"
        self.stream.write(f"\r{head} {self.extra} {elapsed:.0f}s ")
        self.stream.flush()

    def close(self) -> None:
        with self._lock:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()


def progress_bar(label: str, total: int | None) -> ProgressBar:
    return ProgressBar(label, total)


def connect():
    """A DynamoDB client and the table of the running stack (or the environment's).

    The handlers' environment is applied first, so membership modules imported after
    this see the local table.
    """
    from .cli import read_stack
    from .runtime import apply_environment, lambda_environment, stack_parameters
    from .template import load_template

    stack = read_stack() or {}
    endpoint = (stack.get("dynamodb_endpoint") or os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
                or "http://127.0.0.1:8000")
    table = stack.get("table") or os.environ.get("TABLE_NAME") or "membership"
    region = stack.get("region") or "us-east-1"
    apply_environment(lambda_environment(
        load_template(), table_name=table, dynamodb_endpoint=endpoint,
        event_bus_name=stack.get("event_bus", "membership"), region=region,
        refs=stack_parameters(stack)))
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    import botocore.session

    client = botocore.session.get_session().create_client(
        "dynamodb", region_name=region, endpoint_url=endpoint)
    return client, table


def settle(period: str | None, *, segments: int | None = None, workers: int = 8,
           page_limit: int | None = None, show_progress: bool = True) -> dict:
    """Start (or resume) the period's run and settle every segment; returns the report."""
    from membership.services import settlement

    messages: list[dict] = []
    run = settlement.start(period, segments=segments, enqueue=messages.extend)
    bar = ProgressBar(f"settle {run.period}", run.segments) if show_progress else None
    done_segments = run.segments - len(messages)
    processed = 0
    lock = threading.Lock()

    def on_page(tally) -> None:
        nonlocal processed
        with lock:
            processed += tally.processed
            if bar is not None:
                rate = processed / max(time.monotonic() - bar.started, 1e-9)
                bar.update(done_segments, extra=f"segments, {processed} members "
                                                f"({rate:.0f}/s)")

    def work(message: dict) -> None:
        nonlocal done_segments
        settlement.settle_segment(message["period"], message["segment"], message["segments"],
                                  page_limit=page_limit, on_page=on_page)
        with lock:
            done_segments += 1
            if bar is not None:
                bar.update(done_segments)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for future in [pool.submit(work, m) for m in messages]:
            future.result()
    if bar is not None:
        bar.close()
    settlement.finish_if_done(run.period)
    return settlement.report(run.period).model_dump(mode="json", by_alias=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--period", help="the month to settle, YYYY-MM (default: the month "
                        "that ended last)")
    parser.add_argument("--segments", type=int, help="parallel-scan segments of a new run "
                        "(default: SETTLEMENT_SEGMENTS or 64)")
    parser.add_argument("--workers", type=int, default=8, help="segments settled at once")
    parser.add_argument("--page-limit", type=int, help="items evaluated per scan page")
    parser.add_argument("--no-progress", action="store_true")


@command("settle", "settle a month's tiers, expiry and plans against the local stack",
         add_arguments)
def run(args: argparse.Namespace) -> int:
    connect()
    from membership.errors import DomainError

    try:
        report = settle(args.period, segments=args.segments, workers=args.workers,
                        page_limit=args.page_limit, show_progress=not args.no_progress)
    except DomainError as exc:
        print(f"membership-local settle: {exc.message}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 0
