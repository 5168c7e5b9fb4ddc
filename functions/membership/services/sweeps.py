"""Time-driven work: holds that were never captured lapse, and pending points become
available once their return window has passed.

Both are found through the sparse GSI1 (sharded by member) and applied as ordinary
postings with deterministic source keys, so a sweep that runs twice, or overlaps an
order event, changes nothing twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from membership.domain import calendar
from membership.domain.ledger import HoldNotFound, LotNotFound
from membership.errors import DomainError
from membership.observability import logger
from membership.services.ledger import post_legs
from membership.storage.models import DUE_HOLDS, DUE_PENDING, DUE_SHARDS, DueItem


@dataclass
class SweepReport:
    holds_released: int = 0
    points_released: int = 0
    skipped: int = 0
    failed: int = 0


def due_items(prefix: str, now: datetime, shards: int = DUE_SHARDS):
    """Every GSI1 entry under `prefix` that fell due at or before `now`."""
    bound = calendar.iso(now) + "#~"  # '~' sorts after every id character
    for shard in range(shards):
        yield from DueItem.due.query(f"{prefix}#{shard}", DueItem.GSI1SK <= bound)


def _post(member_id: str, source_key: str, reason: str, now: datetime, apply) -> bool:
    return not post_legs(member_id, source_key, apply, source_type="sweep", reason=reason,
                         now=now).replayed


def sweep(now: datetime | None = None) -> SweepReport:
    now = now or datetime.now(UTC)
    report = SweepReport()
    for item in due_items(DUE_HOLDS, now):
        _, member_id, hold_id = item.due_parts()
        try:
            if _post(member_id, f"hold.expired:{hold_id}", "hold_expired", now,
                     lambda b, h=hold_id: b.release_hold(h, reason="hold_expired")):
                report.holds_released += 1
        except HoldNotFound:
            report.skipped += 1  # captured or released since the index was read
        except DomainError:
            report.failed += 1
            logger.exception("could not release an expired hold", extra={"hold": hold_id})
    for item in due_items(DUE_PENDING, now):
        _, member_id, lot_id = item.due_parts()
        try:
            if _post(member_id, f"points.available:{lot_id}", "return_window_passed", now,
                     lambda b, lot=lot_id: b.release_pending(lot,
                                                             reason="return_window_passed")):
                report.points_released += 1
        except LotNotFound:
            report.skipped += 1  # refunded or released by order.completed meanwhile
        except DomainError:
            report.failed += 1
            logger.exception("could not release pending points", extra={"lot": lot_id})
    return report
