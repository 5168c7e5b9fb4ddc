"""Schedule target: release lapsed holds and pending points whose return window passed."""
from __future__ import annotations

from dataclasses import asdict

from aws_lambda_powertools.metrics import MetricUnit

from membership.observability import logger, metrics, tracer
from membership.services.sweeps import sweep


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    report = sweep()
    metrics.add_metric(name="HoldsExpired", unit=MetricUnit.Count, value=report.holds_released)
    metrics.add_metric(name="PendingPointsReleased", unit=MetricUnit.Count,
                       value=report.points_released)
    logger.info("sweep done", extra=asdict(report))
    if report.failed:
        # Failing the invocation sends it to the schedule's retry and then its DLQ.
        raise RuntimeError(f"{report.failed} due items could not be applied")
    return asdict(report)
