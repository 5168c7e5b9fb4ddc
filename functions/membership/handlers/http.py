"""What every HTTP handler shares: the resolver, who is calling, and error responses.

Domain errors become HTTP responses here and nowhere else.
"""
from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from membership.domain.ledger import PostingTooLarge
from membership.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidRequest,
    NotFound,
    Unauthenticated,
    Unavailable,
)
from membership.observability import logger

JSON = "application/json"

STATUS_BY_ERROR: tuple[tuple[type[DomainError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (PostingTooLarge, 422),
    (InvalidRequest, 422),
    (Unavailable, 503),
)

ERROR_SCHEMA = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                   "details": {"type": "object"}},
}


def error_response(status: int, code: str, message: str, **details: Any) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return Response(status_code=status, content_type=JSON, body=json.dumps(body, default=str))


def json_response(status: int, body: Any) -> Response:
    return Response(status_code=status, content_type=JSON, body=json.dumps(body, default=str))


def status_of(error: DomainError) -> int:
    for cls, status in STATUS_BY_ERROR:
        if isinstance(error, cls):
            return status
    return 400


def build_app() -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True)

    @app.exception_handler(DomainError)
    def _domain_error(exc: DomainError) -> Response:
        return error_response(status_of(exc), exc.code, exc.message, **exc.details)

    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "type": e.get("type"),
             "msg": e.get("msg")}
            for e in exc.errors()
        ]
        if any(e["type"] == "json_invalid" for e in errors):
            return error_response(400, "malformed_body", "the body is not valid JSON")
        return error_response(422, "validation_failed", "the request does not match its schema",
                              errors=errors)

    @app.not_found
    def _not_found(_exc: Exception) -> Response:
        return error_response(404, "route_not_found", "no such route")

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response:
        logger.exception("unhandled error")
        return error_response(500, "internal_error", "something went wrong on our side")

    return app


def _authorizer(app: APIGatewayHttpResolver):
    return app.current_event.request_context.authorizer


def caller_scopes(app: APIGatewayHttpResolver) -> set[str]:
    auth = _authorizer(app)
    scopes = set(auth.jwt_scopes or [])
    claim = (auth.jwt_claim or {}).get("scope") or (auth.jwt_claim or {}).get("scp") or ""
    if isinstance(claim, str):
        scopes.update(claim.split())
    elif isinstance(claim, list):
        scopes.update(claim)
    return scopes


def require_subject(app: APIGatewayHttpResolver, scope: str) -> str:
    """The verified JWT subject, when the token carries `scope`.

    API Gateway's authorizer already enforces route scopes; checking again here keeps a
    misconfigured route from exposing a member.
    """
    if scope not in caller_scopes(app):
        raise Forbidden(f"this route needs the '{scope}' scope")
    sub = (_authorizer(app).jwt_claim or {}).get("sub")
    if not sub or not isinstance(sub, str) or len(sub) > 256:
        raise Forbidden("the token has no subject")
    return sub


def error_responses(*statuses: int) -> dict[int, dict]:
    """OpenAPI entries for the error statuses a route can answer."""
    return {
        s: {"description": "Error", "content": {JSON: {"schema": ERROR_SCHEMA}}}
        for s in statuses
    }


def model_response(model, description: str) -> dict:
    return {"description": description, "content": {JSON: {"model": model}}}
