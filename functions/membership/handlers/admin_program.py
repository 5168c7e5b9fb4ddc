"""HTTP: operators read and change the program's rules (`/v1/admin/program`)."""
from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.metrics import MetricUnit

from membership.domain.program_admin import (
    ProgramDocument,
    ProgramVersionsPage,
    ProgramVersionView,
)
from membership.handlers.http import (
    ADMIN_SCOPE,
    build_app,
    error_responses,
    model_response,
    require_subject,
    view_response,
)
from membership.observability import logger, metrics, tracer
from membership.services import program_admin

app = build_app(scope=ADMIN_SCOPE)


def _with_etag(body: ProgramVersionView, tag: str) -> Response:
    return view_response(200, body, headers={"ETag": tag})


@app.get(
    "/v1/admin/program",
    summary="The program's rules in force, with their version (also the ETag)",
    responses={200: model_response(ProgramVersionView, "The current version"),
               **error_responses(403)},
    tags=["admin", "program"],
)
def get_program():
    require_subject(app, "admin")
    view, tag = program_admin.current()
    return _with_etag(view, tag)


@app.put(
    "/v1/admin/program",
    summary="Replace the program's rules (If-Match: the version you read)",
    description=(
        "The body is the whole program (the `program` of GET). Needs `If-Match` with the "
        "version read: 428 precondition_required without it, 412 precondition_failed when "
        "someone changed the program since. Every failing path is listed (422 "
        "validation_failed). A change that would strand members (removing a tier someone "
        "holds, changing the time zone or the id) is 409 program_change_refused with "
        "`details.refusals`. Every version is kept (GET /v1/admin/program/versions); "
        "running functions use a new version within PROGRAM_CACHE_SECONDS (60 s)."),
    responses={200: model_response(ProgramVersionView, "The version now in force"),
               **error_responses(400, 403, 409, 412, 422, 428, 503)},
    tags=["admin", "program"],
)
def put_program(body: ProgramDocument):
    subject = require_subject(app, "admin")
    view, tag, changed = program_admin.replace(
        body.as_program(), app.current_event.headers.get("if-match"), actor=subject)
    if changed:
        metrics.add_metric(name="ProgramVersions", unit=MetricUnit.Count, value=1)
        logger.info("program changed", extra={"version": view.version, "by": subject,
                                              "changes": view.changes})
    return _with_etag(view, tag)


@app.get(
    "/v1/admin/program/versions",
    summary="Every version of the program, newest first (who, when, what changed)",
    responses={200: model_response(ProgramVersionsPage, "A page of versions"),
               **error_responses(403, 422)},
    tags=["admin", "program"],
)
def get_versions(
    limit: Annotated[int, Query(ge=1, le=program_admin.MAX_VERSIONS_PAGE)] = 20,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
):
    require_subject(app, "admin")
    page = program_admin.versions(limit, cursor)
    return view_response(200, page)


@app.get(
    "/v1/admin/program/versions/<version>",
    summary="One version of the program, as it was in force",
    responses={200: model_response(ProgramVersionView, "The version"),
               **error_responses(403, 404, 422)},
    tags=["admin", "program"],
)
def get_version(version: Annotated[int, Path(ge=0, le=10**9)]):
    require_subject(app, "admin")
    view = program_admin.version(version)
    return view_response(200, view)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
