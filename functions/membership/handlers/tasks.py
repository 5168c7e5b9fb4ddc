"""HTTP: a member reports a task (`POST /v1/members/me/tasks/{taskId}/completions`)."""
from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.metrics import MetricUnit

from membership.domain.tasks import TaskCompletionAnswer, TaskCompletionRequest
from membership.handlers.http import (
    build_app,
    error_responses,
    json_response,
    model_response,
    require_subject,
)
from membership.observability import logger, metrics, tracer
from membership.services import tasks

app = build_app()

TaskId = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,63}$",
                             description="A task id of the program (GET /v1/program)")]


@app.post(
    "/v1/members/me/tasks/<taskId>/completions",
    summary="Complete a task the app reports (e.g. profile_completed), once per its limit",
    description="Tasks are the program's `tasks`. Only tasks with trigger 'member' are "
                "reported here (422 task_not_reportable otherwise); their profileFields must "
                "be set (422 task_requirements_not_met); a per_order task needs the orderId "
                "of a paid order of the member (422 order_not_paid). A completion that "
                "happened already is 409 task_already_completed (details.first holds it).",
    responses={201: model_response(TaskCompletionAnswer, "Completed"),
               **error_responses(400, 403, 404, 409, 422, 503)},
    tags=["tasks"],
)
def complete_task(taskId: TaskId,
                  body: Annotated[TaskCompletionRequest | None, Body()] = None):
    subject = require_subject(app, "member")
    answer = tasks.complete(subject, taskId, body or TaskCompletionRequest())
    metrics.add_metric(name="TasksCompleted", unit=MetricUnit.Count, value=1)
    return json_response(201, answer)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
