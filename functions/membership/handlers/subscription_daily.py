"""Schedule target: the paid plan's daily run (monthly packs, renewal notices, lapses).

EventBridge Scheduler starts it once a day in the program's time zone and passes its
scheduled time, so a late or retried invocation runs the right day; an operator may pass
{"date": "YYYY-MM-DD"}. Each visit is its own posting and moves its subscription's next
due date, so a run that times out or fails part-way is finished by its retry, and a run
repeated gives nothing twice (docs/subscriptions.md).
"""
from __future__ import annotations

from dataclasses import asdict
from datetime import date

from aws_lambda_powertools.metrics import MetricUnit

from membership.domain import calendar
from membership.domain.subscriptions import local_date
from membership.observability import logger, metrics, tracer
from membership.services.subscription_schedule import run_daily, run_now
from membership.storage.program import load_program


def _day(event: dict) -> date | None:
    event = event or {}
    if event.get("date"):
        return date.fromisoformat(str(event["date"]))
    scheduled = event.get("scheduledTime")
    if scheduled:
        return local_date(calendar.parse_iso(scheduled), load_program().time_zone)
    return None


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    on = _day(event)
    report = run_daily(now=run_now(on, load_program()) if on else None)
    metrics.add_metric(name="PlusPacksIssued", unit=MetricUnit.Count, value=report.packs)
    metrics.add_metric(name="PlusRenewalNotices", unit=MetricUnit.Count,
                       value=report.renewal_due)
    metrics.add_metric(name="PlusLapses", unit=MetricUnit.Count, value=report.lapsed)
    summary = {k: v for k, v in asdict(report).items() if k != "not_issued"}
    logger.info("paid plan daily run done", extra=summary)
    if report.failed:
        # Failing sends the run to the schedule's retry and then its DLQ; what was done stays.
        raise RuntimeError(f"{report.failed} subscriptions could not be visited")
    return summary
