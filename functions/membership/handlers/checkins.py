"""HTTP: daily check-in, make-up check-ins and the calendar (`/v1/members/me/checkins`)."""
from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.metrics import MetricUnit

from membership.domain.checkins import CalendarView, CheckinAnswer, CheckinRequest, Month
from membership.handlers.http import (
    build_app,
    error_responses,
    json_response,
    model_response,
    require_subject,
    view_response,
)
from membership.observability import logger, metrics, tracer
from membership.services import checkins

app = build_app()


@app.post(
    "/v1/members/me/checkins",
    summary="Check in today, or make up a missed day with {\"date\": \"YYYY-MM-DD\"}",
    description="Once per day of the program's time zone. The same day again is 409 "
                "already_checked_in (details.first holds the first answer); a make-up that "
                "is refused is 422 makeup_not_allowed with details.reason: future, today, "
                "too_old, before_joined, already_checked_in, monthly_limit or "
                "not_enough_points. The day is the idempotency key: no header is needed.",
    responses={201: model_response(CheckinAnswer, "Checked in"),
               **error_responses(400, 403, 404, 409, 422, 503)},
    tags=["check-in"],
)
def check_in(body: Annotated[CheckinRequest | None, Body()] = None):
    subject = require_subject(app, "member")
    answer = checkins.check_in(subject, body or CheckinRequest())
    metrics.add_metric(name="MakeUpCheckins" if answer["makeUp"] else "Checkins",
                       unit=MetricUnit.Count, value=1)
    if answer["bonus"]:
        metrics.add_metric(name="CheckinStreakBonuses", unit=MetricUnit.Count, value=1)
    return json_response(201, answer)


@app.get(
    "/v1/members/me/checkins",
    summary="A month's check-in calendar (make-ups marked), the streak and the next bonus",
    description="month defaults to the current month of the program's time zone; the "
                "calendar covers the current month and the eleven before it.",
    responses={200: model_response(CalendarView, "Calendar"), **error_responses(403, 404, 422)},
    tags=["check-in"],
)
def get_calendar(month: Annotated[Month | None, Query(description="YYYY-MM")] = None):
    view = checkins.calendar(require_subject(app, "member"), month)
    return view_response(200, view)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
