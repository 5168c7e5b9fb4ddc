"""The paid plans' usage counters for subscriptions from before them (a one-off backfill).

Subscriptions written before the counters existed carry no `counted` flag. The first
purchase, charge, refund or daily visit of each counts it (domain/plan_usage.py), and
every active run owes the daily schedule a visit by its next monthly pack, renewal notice
or end, so the counters catch up within a month by themselves. The backfill counts them
all now: run it once on such a table before an operator removes a plan. Idempotent (a
counted subscription is skipped) and resumable (checkpoints per scan segment).
"""
from __future__ import annotations

from datetime import UTC, datetime

from membership.domain.plan_usage import run_active
from membership.errors import Unavailable
from membership.services.backfill import BackfillReport, run_segments
from membership.storage import backfill as checkpoints
from membership.storage import plan_usage as store
from membership.storage import subscriptions as subscriptions_store

NAME = "plan-usage"
MAX_ATTEMPTS = 5


def count_subscription(member_id: str, plan_id: str, now: datetime | None = None, *,
                       segment: int | None = None) -> bool:
    """True when the subscription was counted here (its flag was absent)."""
    now = now or datetime.now(UTC)
    for _ in range(MAX_ATTEMPTS):
        subscriptions, terms = subscriptions_store.read(member_id)
        item = subscriptions.get(plan_id)
        if item is None or item.counted is not None:
            return False
        active = run_active([p.record for p in terms.get(plan_id, [])], now)
        extras = subscriptions_store.usage_extras(member_id, plan_id, None, active, now)
        written = () if segment is None else (checkpoints.count_written(NAME, segment),)
        if store.commit(extras, written):
            return True
    raise Unavailable("the subscription kept changing while it was counted; run again",
                      memberId=member_id, planId=plan_id)


def run(segments: int = 4, *, page_limit: int = 200, now: datetime | None = None,
        should_stop=lambda: False) -> BackfillReport:
    """Every segment from its checkpoint to its end (or until `should_stop()`)."""
    return run_segments(
        NAME, store.scan_page,
        lambda row, segment: count_subscription(*row, now, segment=segment),
        segments, page_limit=page_limit, should_stop=should_stop)
