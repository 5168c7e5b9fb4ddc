"""Backfill of the order aggregates for members who existed before them (docs/tags.md).

For each member whose aggregates are not `complete`, recompute them from the member's
paid orders (the ORDER# items: every refund advances them) and re-evaluate the rule tags,
in one transaction conditional on the member's version: an order posting that lands
meanwhile moves the version and the member is recomputed again. Idempotent (a complete
member is skipped; recomputing gives the same figures) and resumable (a checkpoint per
scan segment after each page).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from membership.domain import aggregates, tags
from membership.errors import DomainError
from membership.observability import logger
from membership.storage import backfill as store
from membership.storage.program import load_program
from membership.storage.tags import change_member

NAME = "aggregates"


@dataclass(frozen=True)
class BackfillReport:
    segments: int
    seen: int
    updated: int
    failed: int


def backfill_member(member_id: str, now: datetime | None = None, *,
                    segment: int | None = None) -> bool:
    """True when the member's aggregates were written (counted in `segment`'s checkpoint,
    in the same transaction, when given)."""
    now = now or datetime.now(UTC)
    program = load_program()

    def change(member):
        if member.order_stats.complete:
            return member
        # Read after the member (change_member reads it first): an order paid between the
        # two reads moved the version, so the commit below fails and this runs again.
        stats = aggregates.recompute(store.member_orders(member_id), now=now,
                                     tz=program.time_zone)
        member = member.model_copy(update={"order_stats": stats, "updated_at": now})
        return member.model_copy(update={
            "tags": tags.evaluate(tags.facts_of(member), program, now)})

    counted = () if segment is None else (store.count_written(NAME, segment),)
    before, after = change_member(member_id, change, what="the backfill", also_update=counted)
    return before != after


def run(segments: int = 4, *, page_limit: int = 200, now: datetime | None = None,
        should_stop=lambda: False) -> BackfillReport:
    """Every segment from its checkpoint to its end (or until `should_stop()`).

    A segment whose last pass met members it could not backfill is passed over again by
    the next run (its complete members are skipped): `seen` and `failed` are the latest
    pass's, `updated` counts every member the backfill wrote."""
    def apply(row: tuple[str, bool], segment: int) -> bool:
        member_id, complete = row
        return not complete and backfill_member(member_id, now, segment=segment)

    return run_segments(NAME, store.scan_page, apply, segments, page_limit=page_limit,
                        should_stop=should_stop)


def run_segments(name: str, scan_page: Callable, apply: Callable, segments: int, *,
                 page_limit: int, should_stop=lambda: False) -> BackfillReport:
    """A checkpointed scan, segment by segment: `scan_page(segment, segments, cursor, limit)`
    gives rows and the next cursor, `apply(row, segment)` writes one (True) or skips it;
    a DomainError fails that row (logged, counted) and the segment is passed over again by
    the next run."""
    seen = updated = failed = 0
    for segment in range(segments):
        cp = store.load(name, segment)
        if cp.of is not None and cp.of != segments:
            # A scan cursor belongs to its segmentation: another count would skip members.
            raise ValueError(f"the backfill's checkpoints were written by a run of {cp.of} "
                             f"segments; resume it with --segments {cp.of}")
        cp.of = segments
        if cp.done and cp.failed:
            cp.cursor, cp.done, cp.seen, cp.failed = None, False, 0, 0
        while not cp.done and not should_stop():
            rows, cursor = scan_page(segment, segments, cp.cursor, page_limit)
            for row in rows:
                try:
                    if apply(row, segment):
                        cp.updated += 1
                except DomainError:
                    logger.exception("row not backfilled", extra={"backfill": name,
                                                                  "row": str(row)})
                    cp.failed += 1
            cp.seen += len(rows)
            cp.cursor, cp.done = cursor, cursor is None
            store.save(name, cp)
        seen += cp.seen
        updated += cp.updated
        failed += cp.failed
    return BackfillReport(segments=segments, seen=seen, updated=updated, failed=failed)
