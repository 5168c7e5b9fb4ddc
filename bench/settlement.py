"""Monthly settlement: throughput against a raw parallel scan, and what the metrics add.

Seeds BENCH_SETTLEMENT_MEMBERS members (default 5,000, about 4 minutes on 2 shared cores;
20,000 took 21 minutes there, and DynamoDB Local's scans slow down more than linearly with
the table, so run BENCH_SETTLEMENT_MEMBERS=100000 on a machine of its own) once, with the
month's 16 metric counter shards and the previous month's completed run, then settles
identical copies of that table. Each run starts a fresh server on its own copy and
measures:

1. the read floor: a plain parallel Scan of the table, same segments, same page limit
   (it also warms the fresh server alike for every run);
2. the settlement: the real worker code over the same segments, one thread per segment;
3. after a run with the metrics, `GET /v1/admin/metrics?period=` through its handler.

It reports members per second, settlement ÷ floor, the DynamoDB calls and units per
member (changed and unchanged members apart), and metrics ÷ settlement alone.

**What the metrics add, and how it is isolated.** Issue 14 asks that the month's metrics
cost at most 10 % over the settlement alone, with no scan of their own. Their stocks ride
on the settlement: its Scan also returns the paid-plan term items and eight more
attributes (the members' points and stored value, the terms' dates), the worker tallies
each member's stocks and each term's state, and the checkpoints carry them; the flows are
read from counter shards. The denominator is the same worker with
`settle_segment(..., tally_metrics=False)`: the settlement as it ran before the metrics,
member rows only (the term items filtered out by DynamoDB, which charges the same read
units for them either way), its own attributes, no stock tally. That keyword is the
only difference between the two variants and production never passes it. Skipping only
the per-member tally would leave the term rows and the extra attributes in the
denominator and hide the part of the cost that grows with the data, so it is not the
measure. The numerator is the settlement with the metrics plus the metrics read.

A settlement changes the members it settles, so every run needs the seeded table as it
was: the seed goes into a DynamoDB Local whose database file sits on a RAM disk (written
as fast as `-inMemory`), and each run copies that file. The machine is shared and timings
move by tens of percent from one minute to the next, so the variants run twice,
interleaved (alone, with, with, alone); the check takes the pooled ratio (total time
with ÷ total time alone), and both rounds are reported, with the CPU seconds of this
process and of the server's JVM beside the wall clock.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bench.dynamo import CallStats
from bench.operations import BenchContext, operation

PERIOD = "2025-02"  # not a year end: expiry is rare, tiers drift as in most months
# The run as the schedule starts it, 00:05 on the 1st after PERIOD in Shanghai: only the
# month that ended last can be settled.
RUN_AT = datetime(2025, 2, 28, 16, 5, tzinfo=UTC)
MEMBERS_ENV = "BENCH_SETTLEMENT_MEMBERS"
DEFAULT_MEMBERS = 5_000
SEGMENTS = 8
PAGE_LIMIT = 1_000
RATIO_TARGET = 1.5
METRICS_TARGET = 1.1
ADMIN_METRICS = "membership.handlers.admin_metrics.handler"
# A RAM disk where Linux has one: a database file there is written as fast as memory.
RAM_DISK = "/dev/shm"
ORDER = (False, True, True, False)  # tally_metrics of each run: two rounds, interleaved


@dataclass
class Run:
    metrics: bool
    floor: float  # the raw parallel scan, seconds
    scanned: int
    elapsed: float  # the settlement, seconds
    cpu: tuple[float, float | None]  # this process, the server's JVM (None: unknown)
    calls: CallStats
    report: object  # SettlementReport
    pages: int
    read: float = 0.0  # GET /v1/admin/metrics, seconds
    read_cpu: float | None = None  # its CPU seconds, this process and the server
    read_calls: CallStats | None = None
    answer: dict | None = None

    @property
    def cpu_total(self) -> float | None:
        """The settlement's CPU seconds, with the metrics read after it if any."""
        if self.cpu[1] is None or (self.metrics and self.read_cpu is None):
            return None
        return self.cpu[0] + self.cpu[1] + (self.read_cpu or 0.0)

    @property
    def scans(self) -> int:
        return sum(1 for c in self.calls.calls if c.operation == "Scan")


def _raw_scan(client, table: str) -> int:
    def segment(s: int) -> int:
        items, kwargs = 0, {"TableName": table, "Segment": s, "TotalSegments": SEGMENTS,
                            "Limit": PAGE_LIMIT}
        for _ in range(1_000_000):
            page = client.scan(**kwargs)
            items += len(page["Items"])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        raise RuntimeError("scan did not end")

    with ThreadPoolExecutor(max_workers=SEGMENTS) as pool:
        return sum(pool.map(segment, range(SEGMENTS)))


def _server_cpu(pid: int | None) -> float | None:
    """CPU seconds the server process has used so far (Linux /proc), else None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, TypeError, IndexError):
        return None
    # utime and stime are the 14th and 15th fields; the split starts at the 3rd.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _work_dir() -> str:
    return tempfile.mkdtemp(prefix="bench-settlement-",
                            dir=RAM_DISK if os.path.isdir(RAM_DISK) else None)


def _month_around(members: int) -> None:
    """What a real month has beside the members: its 16 counter shards (the metrics read
    them) and the previous month's completed run (conversion's denominator)."""
    from membership.domain import settlement as rules
    from membership.storage import settlement as store
    from membership.storage.metrics import COUNTER_SHARDS, CounterItem

    per_shard = max(members // COUNTER_SHARDS, 1)
    for shard in range(COUNTER_SHARDS):
        CounterItem(*CounterItem.key(PERIOD, shard), member_orders=2 * per_shard,
                    member_spend=9_000 * per_shard, guest_orders=per_shard,
                    guest_spend=4_000 * per_shard, new_members=per_shard // 50,
                    points_issued=180 * per_shard, paid_starts=per_shard // 400,
                    renewals=per_shard // 200).save()
    before = "2025-01"
    started = RUN_AT - timedelta(days=28)
    store.create_run(before, SEGMENTS, started)
    total = rules.Tally()
    share = members // SEGMENTS
    for segment in range(SEGMENTS):
        tally = rules.Tally(processed=share, members_closed=0, paying_at_close=share // 25,
                            terms_ended=share // 100)
        total = total + tally
        store.finish_segment(store.Checkpoint(before, segment),
                             store.Checkpoint(before, segment, tally=tally, pages=1),
                             started + timedelta(minutes=5))
    report = rules.report_of(before, total, status="completed", segments=SEGMENTS,
                             segments_done=SEGMENTS, started_at=started,
                             completed_at=started + timedelta(minutes=6), tz="Asia/Shanghai")
    store.complete_run(before, report.model_dump(mode="json", by_alias=True),
                       started + timedelta(minutes=6), rules.completed_event(report))


def _settle(ctx: BenchContext, table: str, seeded: str, metrics: bool) -> Run:
    """One run on a fresh server over a copy of the seeded table."""
    import botocore.session

    from membership.services import settlement as service
    from membership.storage import settlement as store
    from membership.storage.program import forget_cached_program

    copy = _work_dir()
    try:
        shutil.copytree(seeded, copy, dirs_exist_ok=True)
        with ctx.table_of_its_own(table, db_path=copy, create=False) as server:
            client = botocore.session.get_session().create_client(
                "dynamodb", region_name="us-east-1", endpoint_url=server.endpoint)
            started = time.monotonic()
            scanned = _raw_scan(client, table)
            floor = time.monotonic() - started

            forget_cached_program()
            service.start(PERIOD, now=RUN_AT, segments=SEGMENTS)
            cpu = (time.process_time(), _server_cpu(server.pid))
            with ctx.count() as calls:
                started = time.monotonic()
                with ThreadPoolExecutor(max_workers=SEGMENTS) as pool:
                    # On the schedule's clock: the rule tags' recency is judged at the
                    # run's time, as in production (the real clock would retag nearly
                    # every member).
                    list(pool.map(lambda s: service.settle_segment(
                        PERIOD, s, SEGMENTS, page_limit=PAGE_LIMIT, clock=lambda: RUN_AT,
                        tally_metrics=metrics), range(SEGMENTS)))
                elapsed = time.monotonic() - started
            server_cpu = _server_cpu(server.pid)
            run = Run(metrics=metrics, floor=floor, scanned=scanned, elapsed=elapsed,
                      cpu=(time.process_time() - cpu[0],
                           None if server_cpu is None or cpu[1] is None
                           else server_cpu - cpu[1]),
                      calls=calls, report=service.report(PERIOD),
                      pages=sum(cp.pages for cp in store.checkpoints(PERIOD)))
            if metrics:
                _read_metrics(ctx, run, server.pid)
        return run
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def _read_metrics(ctx: BenchContext, run: Run, pid: int | None) -> None:
    """The month's figures through the route, as an operator reads them after the run: a
    first call warms the route (imports, validation), the counted one reads the program
    again too, as a fresh Lambda would."""
    from membership.storage.program import forget_cached_program

    event = ctx.member_event("GET", "/v1/admin/metrics", query={"period": PERIOD},
                             sub="bench-operator", scopes=["admin"])
    ctx.expect_status(ctx.invoke(ADMIN_METRICS, event), 200)
    forget_cached_program()
    cpu = (time.process_time(), _server_cpu(pid))
    with ctx.count() as calls:
        started = time.monotonic()
        run.answer = ctx.expect_status(ctx.invoke(ADMIN_METRICS, event), 200)
        run.read = time.monotonic() - started
    server_cpu = _server_cpu(pid)
    if server_cpu is not None and cpu[1] is not None:
        run.read_cpu = time.process_time() - cpu[0] + server_cpu - cpu[1]
    run.read_calls = calls


def _ops(calls: CallStats) -> dict[str, tuple[int, float]]:
    ops: dict[str, tuple[int, float]] = {}
    for call in calls.calls:
        count, units = ops.get(call.operation, (0, 0.0))
        ops[call.operation] = (count + 1, units + call.read_units + call.write_units)
    return ops


def _cpu_text(run: Run) -> str:
    """The settlement's CPU seconds (the metrics read apart)."""
    process, server = run.cpu
    if server is None:
        return f"CPU {process:.1f} s (this process; the server's unknown)"
    return f"CPU {process + server:.1f} s ({process:.1f} this process + {server:.1f} server)"


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("inf")


@operation("monthly settlement", requires=("membership.services.settlement",
                                           "membership_local.seed"))
def settlement(ctx: BenchContext) -> CallStats:
    import botocore.session

    from membership_local.seed import seed_members

    members = int(os.environ.get(MEMBERS_ENV) or DEFAULT_MEMBERS)
    table = f"{ctx.table_name}-settle"
    ctx.handler(ADMIN_METRICS)  # imported before any timing
    seeded = _work_dir()
    load = [os.getloadavg()[0]]  # the machine's load, to judge the timings by
    try:
        with ctx.table_of_its_own(table, db_path=seeded) as server:
            client = botocore.session.get_session().create_client(
                "dynamodb", region_name="us-east-1", endpoint_url=server.endpoint)
            started = time.monotonic()
            items = seed_members(client, table, members, PERIOD, threads=16)
            _month_around(members)
            seed_time = time.monotonic() - started
        runs = []
        for metrics in ORDER:
            load.append(os.getloadavg()[0])
            runs.append(_settle(ctx, table, seeded, metrics))
        load.append(os.getloadavg()[0])
    finally:
        shutil.rmtree(seeded, ignore_errors=True)

    alone = [r for r in runs if not r.metrics]
    tallied = [r for r in runs if r.metrics]
    first = tallied[0]
    outcome = [(r.report.members_changed, r.report.upgrades, r.report.downgrades,
                r.report.plans_lapsed, r.report.failures, r.scanned) for r in runs]
    if len(set(outcome)) != 1 or first.report.members_processed != members:
        # Not the same work: the ratio would compare two different settlements.
        raise AssertionError(f"the runs settled differently: {outcome}")

    report = first.report
    changed, processed = report.members_changed, report.members_processed
    unchanged = processed - changed
    ops = _ops(first.calls)
    scans, scan_units = ops.get("Scan", (0, 0.0))
    puts = ops.get("PutItem", (0, 0.0))[0]
    transactions, transaction_units = ops.get("TransactWriteItems", (0, 0.0))
    # Bookkeeping: a PutItem checkpoint per page but the last, a transaction per segment's
    # end and one for the report. Every other transaction is a changed member's posting
    # (or its retry after a conflict); any other write would be an unchanged member's.
    postings = transactions - SEGMENTS - 1
    other_writes = [r.calls.writes - _ops(r.calls).get("TransactWriteItems", (0, 0.0))[0]
                    - _ops(r.calls).get("PutItem", (0, 0.0))[0] for r in runs]
    member_reads = ops.get("Query", (0, 0.0))[0] + ops.get("GetItem", (0, 0.0))[0]
    floor_ratio = _ratio(sum(r.elapsed for r in tallied), sum(r.floor for r in tallied))
    paying = first.answer["paidMembers"]["paying"]
    ended = first.answer["renewal"]["ended"]

    ctx.note(f"{members} members seeded ({items} items, the month's counters and the "
             f"previous month's run) in {seed_time:.1f} s; period {PERIOD}, {SEGMENTS} "
             f"segments, page limit {PAGE_LIMIT} items; {len(runs)} runs, each on a fresh "
             "server over a copy of the seeded table; load average (1 min) at the seed, "
             f"before each run and at the end: {', '.join(f'{x:.1f}' for x in load)} on "
             f"{os.cpu_count()} cores")
    for i, run in enumerate(runs):
        name = "settlement with metrics" if run.metrics else "settlement alone"
        ctx.note(f"run {i + 1}, {name}: raw parallel scan {run.scanned} items in "
                 f"{run.floor:.2f} s; settlement {run.report.members_processed} members in "
                 f"{run.elapsed:.2f} s = {run.report.members_processed / run.elapsed:.0f} "
                 f"members/s, {_cpu_text(run)}; {run.pages} pages; {run.calls.summary()}")
    cpu_known = all(r.cpu_total is not None for r in runs)
    for r, (a, w) in enumerate(zip(alone, tallied, strict=True)):
        cpu = f"; CPU {_ratio(w.cpu_total, a.cpu_total):.3f}" if cpu_known else ""
        ctx.note(f"round {r + 1}: (settlement with metrics {w.elapsed:.2f} s + metrics read "
                 f"{w.read * 1000:.0f} ms) ÷ settlement alone {a.elapsed:.2f} s = "
                 f"{(w.elapsed + w.read) / a.elapsed:.3f} wall clock{cpu}")
    ratio = _ratio(sum(w.elapsed + w.read for w in tallied), sum(a.elapsed for a in alone))
    pooled_cpu = ""
    if cpu_known:
        cpu_ratio = _ratio(sum(w.cpu_total for w in tallied),
                           sum(a.cpu_total for a in alone))
        pooled_cpu = f", {cpu_ratio:.3f} CPU"
    ctx.note(f"metrics ÷ settlement alone, both rounds pooled: {ratio:.3f} wall clock"
             f"{pooled_cpu}; Scan calls with metrics {[w.scans for w in tallied]}, alone "
             f"{[a.scans for a in alone]}; Scan read units with metrics "
             f"{_ops(first.calls).get('Scan', (0, 0.0))[1]:g}, alone "
             f"{_ops(alone[0].calls).get('Scan', (0, 0.0))[1]:g}")
    read_ops = _ops(first.read_calls)
    ctx.note(f"GET /v1/admin/metrics?period={PERIOD} after each run with metrics: "
             f"{' and '.join(f'{w.read * 1000:.0f} ms' for w in tallied)}; "
             f"{first.read_calls.summary()}, {first.read_calls.read_units:g} RCU (program "
             f"cache cold); it answered members.total {first.answer['members']['total']}, "
             f"paidMembers.paying {paying}, renewal.ended {ended}, conversion.freeAtStart "
             f"{first.answer['conversion']['freeAtStart']}")
    ctx.note(f"changed {changed}, unchanged {unchanged}; upgrades {report.upgrades}, "
             f"downgrades {report.downgrades}, points expired {report.points_expired}, "
             f"plans lapsed {report.plans_lapsed}, failures {report.failures}")
    ctx.note(f"every member: {scans / max(processed, 1):.4f} Scan calls, "
             f"{scan_units / max(processed, 1):.2f} RCU (its share of the scan)")
    ctx.note(f"unchanged members: 0 reads and {max(max(other_writes), 0)} writes beyond the "
             "scan")
    ctx.note(f"changed members: {postings / max(changed, 1):.2f} TransactWriteItems "
             f"({(transaction_units / max(transactions, 1)):.1f} WCU per transaction on "
             f"average) and at most {member_reads / max(changed, 1):.2f} Query/GetItem each")
    ctx.note(f"checkpoints: {puts} PutItem + {SEGMENTS} closing transactions for "
             f"{first.pages} pages")
    ctx.check("monthly settlement ÷ raw parallel scan", round(floor_ratio, 2), "<=",
              RATIO_TARGET)
    ctx.check("settlement writes for unchanged members", max(max(other_writes), 0), "==", 0)
    ctx.check("metrics ÷ settlement alone", round(ratio, 3), "<=", METRICS_TARGET)
    ctx.check("Scan calls of GET /v1/admin/metrics", read_ops.get("Scan", (0, 0))[0], "==", 0)
    ctx.check("metrics read calls other than Query/GetItem",
              sum(n for op, (n, _) in read_ops.items() if op not in {"Query", "GetItem"}),
              "==", 0)
    extra_scans = max(w.scans - a.scans + read_ops.get("Scan", (0, 0))[0]
                      for a, w in zip(alone, tallied, strict=True))
    ctx.check("extra Scan calls per month for the metrics", extra_scans, "==", 0)
    return first.calls
