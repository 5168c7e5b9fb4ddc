"""Monthly settlement: start a run, settle one scan segment page by page, report.

A run is one period. The coordinator creates it and hands out its scan segments; a
worker settles a segment page by page, and after each page stores the scan cursor and
the page's tally in one conditional write. A worker killed mid-page starts again from the
last cursor: members it had changed already carry `settled_period` and their guard holds
what was done, so they are counted the same and written no second time.
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from membership.config import get_settings
from membership.domain import calendar
from membership.domain import settlement as rules
from membership.domain import tags as tag_rules
from membership.domain.ledger import LedgerState, PostingBuilder
from membership.domain.program import Program
from membership.errors import DomainError, MemberClosed
from membership.observability import logger
from membership.storage import ledger
from membership.storage import settlement as store
from membership.storage.program import load_program
from membership.storage.tags import facts_from_raw

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SegmentOutcome:
    period: str
    segment: int
    done: bool
    pages: int
    tally: rules.Tally


def start(period: str | None = None, *, now: datetime | None = None,
          segments: int | None = None,
          enqueue: Callable[[list[dict]], None] | None = None) -> store.Run:
    """Create (or pick up) the period's run and hand out the segments not yet done.

    Without a period, the month that ended before `now` on the program's clock. Only that
    month can be settled: settling an older one would judge today's tiers on an old
    window, so an older period is report-only (its completed run is answered as it is).
    """
    now = now or _now()
    program = load_program()
    last_ended = rules.period_before(now, program.time_zone)
    period = rules.check_period(period or last_ended)
    if period > last_ended:
        raise rules.InvalidPeriod(f"{period} has not ended yet")
    if period < last_ended:
        old = store.get_run(period)
        if old is not None and old.status == "completed":
            return old
        raise rules.PeriodNotSettleable(
            f"only {last_ended}, the month that ended last, can be settled; {period} is "
            "report-only", period=period, settleable=last_ended)
    run = store.create_run(period, segments or get_settings().settlement_segments, now)
    if run.status == "completed":
        return run
    done = {cp.segment for cp in store.checkpoints(period) if cp.done}
    messages = [{"period": period, "segment": s, "segments": run.segments}
                for s in range(run.segments) if s not in done]
    if enqueue is not None and messages:
        enqueue(messages)
    if not messages:
        finish_if_done(period)  # every segment finished but the report was not written
    return run


def settle_member(snapshot: rules.Snapshot, program: Program, period: str,
                  clock: Clock) -> dict | None:
    """Decide in memory; write only when something changes.

    Returns what this period did to the member (the guard's result), None if nothing.
    """
    decision = rules.decide(snapshot, program, period)
    if decision.already_settled:
        if snapshot.settled_period == period:
            # Changed by this period before (a resumed page, a re-run): count what it did.
            return store.settled_result(period, snapshot.member_id)
        return None
    if not decision.changes:
        return None
    key = rules.source_key(period, snapshot.member_id)

    def build(state: LedgerState):
        builder = PostingBuilder(state, program, source_key=key, source_type="settlement",
                                 reason="settlement", actor="system", now=clock())
        rules.apply(builder, program, period)
        added, removed = tag_rules.retag(builder, program)
        builder.result = {**builder.result, "tagsAdded": added, "tagsRemoved": removed}
        return builder.build()

    try:
        return ledger.post(snapshot.member_id, key, build).result
    except (rules.NothingToSettle, MemberClosed):  # a closed account keeps its last state
        return None


def _needs_io(snapshot: rules.Snapshot, program: Program, period: str) -> bool:
    decision = rules.decide(snapshot, program, period)
    return decision.changes or snapshot.settled_period == period


def _settle_and_retag(snapshot: rules.Snapshot, facts, program: Program, period: str,
                      clock: Clock) -> tuple[dict | None, int, int]:
    """The settlement, then the rule tags if the scan row shows them out of date and no
    settlement posting re-evaluated them (docs/tags.md: recency decays without orders)."""
    result = None
    if _needs_io(snapshot, program, period):
        result = settle_member(snapshot, program, period, clock)
    if result:
        return result, int(result.get("tagsAdded", 0)), int(result.get("tagsRemoved", 0))
    now = clock()
    if tag_rules.evaluate(facts, program, now) == facts.tags:
        return result, 0, 0
    from membership.services.tags import retag

    return (result, *retag(facts, program, now))


def _stock(page: rules.TallyBuilder, raw: dict, snapshot: rules.Snapshot,
           result: dict | None, close: datetime) -> None:
    """The member's liabilities at the period's close: the scanned row, less the points this
    period's settlement expired (docs/metrics.md)."""

    def number(name: str) -> int:
        return int(raw.get(name, {}).get("N", "0"))

    expired = int(result.get("pointsExpired", 0)) if result else 0
    lapsed = bool(result.get("planLapsed")) if result else False
    plan_end = snapshot.paid_plan_ends_at
    page.stock(max(number("ptsA") - expired, 0), number("ptsP"), number("balP"),
               number("balB"), plan_end is not None and plan_end >= close and not lapsed,
               closed=raw.get("status", {}).get("S") == "closed")


def _tags_stale(facts, program: Program, clock: Clock) -> bool:
    return tag_rules.evaluate(facts, program, clock()) != facts.tags


def settle_segment(period: str, segment: int, segments: int, *,
                   should_stop: Callable[[], bool] = lambda: False,
                   page_limit: int | None = None, clock: Clock = _now,
                   on_member: Callable[[int], None] | None = None,
                   on_page: Callable[[rules.Tally], None] | None = None,
                   tally_metrics: bool = True) -> SegmentOutcome:
    """Settle one scan segment from its last checkpoint until it ends or `should_stop()`.

    The next page is read while this one's changed members are written, a few at a time,
    so a page costs about the longer of the two rather than their sum. `on_member(n)` is
    called after the n-th member of this invocation (progress, and the tests' crash
    injection); `on_page(tally)` after each checkpoint with that page's tally.

    `tally_metrics=False` settles as the run did before the metrics rode on it: the scan
    returns member rows only, without the stocks' attributes, and no stock is tallied. It
    exists so the bench can measure what the metrics add (bench/settlement.py); such a
    run serves no metrics (its stocks read as those of a run from before them).
    """
    rules.check_period(period)
    if store.get_run(calendar.shift_month(period, 1)) is not None:
        # A later month's run has started: this one is stale (e.g. a message redriven from
        # the dead-letter queue weeks later) and must not move tiers that one decided.
        raise rules.PeriodNotSettleable(
            f"{period} is report-only: {calendar.shift_month(period, 1)} has been settled",
            period=period)
    program = load_program()
    settings = get_settings()
    limit = page_limit if page_limit is not None else settings.settlement_page_limit
    checkpoint = store.load_checkpoint(period, segment)
    period_end = rules.period_close(period, program.time_zone)
    seen = 0
    with ThreadPoolExecutor(max_workers=settings.settlement_write_concurrency + 1) as pool:

        def fetch(cursor: dict | None) -> Future:
            return pool.submit(store.scan_members_page, segment, segments, cursor, limit,
                               metrics=tally_metrics)

        pending = None if checkpoint.done else fetch(checkpoint.cursor)
        while not checkpoint.done and pending is not None:
            if should_stop():
                break
            rows, cursor = pending.result()
            pending = fetch(cursor) if cursor is not None else None
            page = rules.TallyBuilder(stocks=tally_metrics)
            if tally_metrics:
                # Term rows only count (conversion and renewal, docs/metrics.md); members
                # settle.
                for raw in rows:
                    if not store.is_member_row(raw):
                        page.term(*rules.term_at_close(*store.term_from_raw(raw), period,
                                                       program.time_zone))
                rows = [raw for raw in rows if store.is_member_row(raw)]
            failed: list[str] = []
            snapshots = [store.snapshot_from_raw(raw) for raw in rows]
            facts = {raw["memberId"]["S"]: facts_from_raw(raw) for raw in rows}
            raws = {raw["memberId"]["S"]: raw for raw in rows} if tally_metrics else {}
            # Members that need a read or a write go to the pool; the rest cost nothing.
            work = {s.member_id: pool.submit(_settle_and_retag, s, facts[s.member_id],
                                             program, period, clock)
                    for s in snapshots
                    if _needs_io(s, program, period)
                    or _tags_stale(facts[s.member_id], program, clock)}
            for snapshot in snapshots:
                future = work.get(snapshot.member_id)
                try:
                    result, added, removed = (future.result() if future is not None
                                              else (None, 0, 0))
                    page.retagged(added, removed)
                except DomainError:
                    # Left for a retry (a re-run settles it); the rest of the page goes on.
                    logger.exception("member not settled", extra={
                        "memberId": snapshot.member_id, "period": period})
                    page.failed()
                    failed.append(snapshot.member_id)
                    result = False
                if result is None:
                    page.unchanged(program.tier(snapshot.tier_id).id)
                elif result:
                    page.settled(result)
                if tally_metrics:
                    _stock(page, raws[snapshot.member_id], snapshot, result or None,
                           period_end)
                seen += 1
                if on_member is not None:
                    on_member(seen)
            page_tally = page.tally()
            after = replace(checkpoint, cursor=cursor, tally=checkpoint.tally + page_tally,
                            pages=checkpoint.pages + 1,
                            failed_members=checkpoint.failed_members + tuple(failed))
            if cursor is None:
                checkpoint = store.finish_segment(checkpoint, after, clock())
            else:
                checkpoint = store.save_checkpoint(checkpoint, after, clock())
            if on_page is not None:
                on_page(page_tally)
    if checkpoint.done:
        finish_if_done(period, clock)
    return SegmentOutcome(period=period, segment=segment, done=checkpoint.done,
                          pages=checkpoint.pages, tally=checkpoint.tally)


def finish_if_done(period: str, clock: Clock = _now) -> bool:
    """Write the report and the `settlement.completed` event once every segment is done."""
    run = store.get_run(period)
    if run is None or run.status != "running" or run.segments_done < run.segments:
        return False
    cps = [cp for cp in store.checkpoints(period) if cp.done]
    if len(cps) < run.segments:
        return False
    total = rules.Tally()
    for cp in cps:
        total = total + cp.tally
    completed_at = clock()
    tz = load_program().time_zone
    report = rules.report_of(period, total, status="completed", segments=run.segments,
                             segments_done=len(cps), started_at=run.started_at,
                             completed_at=completed_at, tz=tz)
    return store.complete_run(period, report.model_dump(mode="json", by_alias=True),
                              completed_at, rules.completed_event(report))


def report(period: str) -> rules.SettlementReport:
    """The run's report; while it runs, the progress so far."""
    rules.check_period(period)
    run = store.get_run(period)
    if run is None:
        raise store.SettlementNotFound(f"no settlement for {period}")
    if run.report is not None:
        return rules.SettlementReport.model_validate(run.report)
    total = rules.Tally()
    cps = store.checkpoints(period)
    for cp in cps:
        total = total + cp.tally
    return rules.report_of(period, total, status=run.status, segments=run.segments,
                           segments_done=sum(1 for cp in cps if cp.done),
                           started_at=run.started_at, completed_at=None,
                           tz=load_program().time_zone)
