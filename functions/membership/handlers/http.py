"""What every HTTP handler shares: the resolver, who is calling, and error responses.

Domain errors become HTTP responses here and nowhere else. Before a route sees a request,
the resolver refuses what no route should parse (`check_request`): a body that is not
JSON sent as `application/json`, not UTF-8, nested deeper or with longer numbers than any
model needs, and text with control or bidirectional characters anywhere (body, query,
path). Each is a 4xx with a stable code, and nothing is written.
"""
from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.metrics import MetricUnit

from membership.domain import text
from membership.domain.ledger import PostingTooLarge
from membership.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    Unauthenticated,
    Unavailable,
)
from membership.observability import logger, metrics

if TYPE_CHECKING:
    from pydantic import BaseModel

JSON = "application/json"
# The operators' scope: every /v1/admin route needs it.
ADMIN_SCOPE = "admin"
FORM = "application/x-www-form-urlencoded"
# Route decorators pass openapi_extensions={IDEMPOTENCY_EXTENSION: True} when the route
# needs an Idempotency-Key header; the OpenAPI document turns it into the header parameter.
IDEMPOTENCY_EXTENSION = "x-idempotency-key"
# Says whether an idempotent write's answer is the first one, sent again.
REPLAYED_HEADER = "Idempotent-Replayed"
# A member id in a path, for every route that takes one. Ids are "M" + 24 base32 characters
# (members.member_id_for); the pattern allows 8 to 64 of them, as the order system's bodies
# do (domain/checkout.py): a well-formed id of another length is an unknown member (404).
MemberId = Annotated[str, Path(pattern=r"^M[a-z2-7]{8,64}$", description="The member's id")]

STATUS_BY_ERROR: tuple[tuple[type[DomainError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (PostingTooLarge, 422),
    (InvalidRequest, 422),
    (Unavailable, 503),
    (PreconditionFailed, 412),
    (PreconditionRequired, 428),
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


def view_response(status: int, view: BaseModel,
                  headers: Mapping[str, str] | None = None) -> Response:
    """A pydantic model as the answer's JSON body, by alias (what `model_response` declares
    in the OpenAPI document)."""
    return Response(status_code=status, content_type=JSON,
                    body=json.dumps(view.model_dump(mode="json", by_alias=True), default=str),
                    headers=dict(headers) if headers else None)


def answer(status: int, body: dict, replayed: bool) -> Response:
    """An idempotent write's answer, with the header that tells a replay from the first."""
    return Response(status_code=status, content_type=JSON, body=json.dumps(body),
                    headers={REPLAYED_HEADER: "true" if replayed else "false"})


def status_of(error: DomainError) -> int:
    for cls, status in STATUS_BY_ERROR:
        if isinstance(error, cls):
            return status
    return 400


# ---- requests no route parses ----------------------------------------------------------

class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def _number(literal: str) -> int | float:
    if len(literal) > text.MAX_NUMBER_CHARS:
        raise ValueError(f"a number has more than {text.MAX_NUMBER_CHARS} characters")
    return float(literal) if any(c in literal for c in ".eE") else int(literal)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: str) -> Any:
    """json.loads with the limits every body shares; ValueError with the reason."""
    try:
        return json.loads(raw, parse_int=_number, parse_float=_number,
                          parse_constant=_no_constant)
    except RecursionError:
        raise ValueError(f"nested deeper than {text.MAX_DEPTH} levels") from None


def _is_json(content_type: str) -> bool:
    media, _, params = content_type.partition(";")
    if media.strip().lower() != JSON:
        return False
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
                "utf-8", "utf8"):
            return False
    return True


def _header(headers: Mapping[str, Any], name: str) -> str:
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == name:
            return str(value)
    return ""


def _check_text(values: object, where: str) -> None:
    if not isinstance(values, Mapping):
        return
    for name, value in values.items():
        for item in (name, value):
            if isinstance(item, str) and text.unsafe_character(item) is not None:
                raise Refusal(400, "invalid_text", f"the {where} may not contain control or "
                              "bidirectional characters", location=where)


def _is_form(content_type: str) -> bool:
    return content_type.partition(";")[0].strip().lower() == FORM


def _path(event: Mapping[str, Any]) -> str:
    return str(event.get("rawPath") or
               ((event.get("requestContext") or {}).get("http") or {}).get("path") or "")


def check_request(event: Mapping[str, Any], form_paths: frozenset[str] = frozenset()) -> None:
    """Raise Refusal for what no route of this API accepts, whatever its schema.

    `form_paths` take a form-encoded body instead (a payment provider's notification): it
    must be UTF-8, and the route reads and authenticates its fields itself."""
    _check_text(event.get("queryStringParameters"), "query")
    _check_text(event.get("pathParameters"), "path")
    body = event.get("body")
    if body is None or body == "":
        return
    if not isinstance(body, str):
        raise Refusal(400, "malformed_body", "the body is not text")
    content_type = _header(event.get("headers") or {}, "content-type")
    form = _is_form(content_type) and _path(event) in form_paths
    if not form and not _is_json(content_type):
        raise Refusal(415, "unsupported_media_type",
                      "send the body as application/json (UTF-8)")
    try:
        raw = (base64.b64decode(body, validate=True) if event.get("isBase64Encoded")
               else body.encode("utf-8"))
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeError is a ValueError
        raise Refusal(400, "malformed_body", "the body is not valid UTF-8") from None
    if form:
        return
    try:
        document = parse_json(decoded)
    except ValueError as exc:
        raise Refusal(400, "malformed_body", f"the body is not valid JSON: {exc}") from None
    try:
        text.check_document(document)
    except text.UnsafeDocument as exc:
        status, code = ((400, "malformed_body") if exc.reason.startswith("nested")
                        else (422, "invalid_text"))
        raise Refusal(status, code, f"the body is refused: {exc.reason}",
                      field=exc.path) from None
    # Every request body of this API is an object. Powertools would read some other
    # documents as one (a list's first element), so a list is refused here, for every route.
    if document is not None and not isinstance(document, dict):
        raise Refusal(422, "validation_failed", "the body must be a JSON object")


class GuardedResolver(APIGatewayHttpResolver):
    """The resolver every HTTP function uses: the function's scope (if it has one), then
    `check_request`, run before any route.

    Powertools keeps the request being resolved on the resolver (the event on a class
    attribute shared by every router, route arguments and validated values in
    `self.context`). Lambda resolves one request per process at a time; tests and the
    local stack call handlers from several threads, where those would be another
    request's. Here they are per thread.
    """

    _per_thread = threading.local()
    # Paths whose body is form-encoded rather than JSON (see check_request).
    form_paths: frozenset[str] = frozenset()

    def __init__(self, *args, required_scope: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.required_scope = required_scope

    @property
    def current_event(self):
        return self._per_thread.event

    @current_event.setter
    def current_event(self, value) -> None:
        self._per_thread.event = value

    @property
    def lambda_context(self):
        return getattr(self._per_thread, "lambda_context", None)

    @lambda_context.setter
    def lambda_context(self, value) -> None:
        self._per_thread.lambda_context = value

    @property
    def context(self) -> dict:
        if not hasattr(self._per_thread, "context"):
            self._per_thread.context = {}
        return self._per_thread.context

    @context.setter
    def context(self, value: dict) -> None:
        self._per_thread.context = value

    def resolve(self, event, context):
        # A token without the function's scope learns nothing, not even whether its body
        # would have parsed: refused before any check of the request.
        if self.required_scope is not None:
            refused = refuse_without_scope(event, self.required_scope)
            if refused is not None:
                return refused
        try:
            check_request(event, self.form_paths)
        except Refusal as refused:
            response = error_response(refused.status, refused.code, refused.message,
                                      **refused.details)
            return {"statusCode": response.status_code, "body": response.body,
                    "headers": {"Content-Type": JSON}, "isBase64Encoded": False}
        self.current_event = self._to_proxy_event(event)
        self.lambda_context = context
        self.context = {}
        return super().resolve(event, context)


def build_app(scope: str | None = None,
              form_paths: tuple[str, ...] = ()) -> GuardedResolver:
    """The function's resolver; with `scope`, every route of it needs that scope (the
    admin functions: `build_app(scope=ADMIN_SCOPE)`), checked before anything else.
    `form_paths` are the paths whose body is form-encoded rather than JSON."""
    app = GuardedResolver(enable_validation=True, required_scope=scope)
    app.form_paths = frozenset(form_paths)

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

    @app.exception_handler(UnicodeDecodeError)
    def _undecodable(_exc: UnicodeDecodeError) -> Response:
        # A base64-encoded (binary) body that is not UTF-8 fails before validation sees it.
        return error_response(400, "malformed_body", "the body is not valid JSON")

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


def _scopes(jwt_scopes, claims) -> set[str]:
    scopes = set(jwt_scopes or [])
    claim = (claims or {}).get("scope") or (claims or {}).get("scp") or ""
    if isinstance(claim, str):
        scopes.update(claim.split())
    elif isinstance(claim, list):
        scopes.update(claim)
    return scopes


def caller_scopes(app: APIGatewayHttpResolver) -> set[str]:
    auth = _authorizer(app)
    return _scopes(auth.jwt_scopes, auth.jwt_claim)


def refuse_without_scope(event: dict, scope: str) -> dict | None:
    """A 403 for an event whose token lacks `scope`, read from the raw event before the
    body is even parsed (GuardedResolver.resolve, for functions built with a scope)."""
    jwt = ((event or {}).get("requestContext") or {}).get("authorizer") or {}
    jwt = jwt.get("jwt") or {}
    if scope in _scopes(jwt.get("scopes"), jwt.get("claims")):
        return None
    return {"statusCode": 403, "headers": {"Content-Type": JSON},
            "body": json.dumps({"code": Forbidden.code,
                                "message": f"this route needs the '{scope}' scope"})}


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


class Written(Protocol):
    """What an idempotent write returns: its answer's body, and whether it is a replay."""

    @property
    def body(self) -> dict: ...

    @property
    def replayed(self) -> bool: ...


@dataclass(frozen=True)
class Answered:
    """A `Written` for a service whose outcome names its parts otherwise."""

    body: dict
    replayed: bool


def member_post(app: APIGatewayHttpResolver, write: Callable[[str, str], Written],
                metric: str) -> Response:
    """A member's idempotent POST: `write(subject, idempotency_key)`, one count of `metric`
    when it wrote (not on a replay), and 201 with the Idempotent-Replayed header."""
    # Here rather than at the top: most functions take no member write and would otherwise
    # load the top-up rules at init.
    from membership.domain.topups import check_idempotency_key

    subject = require_subject(app, "member")
    key = check_idempotency_key(app.current_event.headers.get("idempotency-key"))
    written = write(subject, key)
    if not written.replayed:
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
    return answer(201, written.body, written.replayed)


def error_responses(*statuses: int) -> dict[int, dict]:
    """OpenAPI entries for the error statuses a route can answer."""
    return {
        s: {"description": "Error", "content": {JSON: {"schema": ERROR_SCHEMA}}}
        for s in statuses
    }


def model_response(model, description: str) -> dict:
    return {"description": description, "content": {JSON: {"model": model}}}
