"""The OpenAPI document of every HTTP route, merged from each function's resolver.

Beside what each route declares, every operation answers what the layers in front of
its code answer: the JWT authorizer (401, 403), the request gate of `handlers.http`
(400 for refused text or a malformed body, 415 for a body that is not JSON, 422 for a
body or parameter its model refuses) and a store or program that cannot serve it now
(503). Routes that take an Idempotency-Key declare it as a header parameter.
"""
from __future__ import annotations

import importlib

from membership.domain.topups import IDEMPOTENCY_KEY_MAX
from membership.handlers.http import ERROR_SCHEMA, IDEMPOTENCY_EXTENSION, JSON

HTTP_HANDLER_MODULES = (
    "membership.handlers.members",
    "membership.handlers.program",
    "membership.handlers.topups",
    "membership.handlers.subscriptions",
    "membership.handlers.admin_topups",
    "membership.handlers.admin_subscriptions",
    "membership.handlers.checkout",
    "membership.handlers.admin_settlements",
    "membership.handlers.admin_program",
    "membership.handlers.admin_members",
    "membership.handlers.admin_grants",
    "membership.handlers.checkins",
    "membership.handlers.tasks",
    "membership.handlers.admin_tags",
    "membership.handlers.admin_portrait",
    "membership.handlers.admin_metrics",
    "membership.handlers.privacy",
    "membership.handlers.coupons",
    "membership.handlers.admin_coupons",
    "membership.handlers.payment_notifications",
)
EVERY_ROUTE_ERRORS = {
    400: "Malformed request (refused text in a parameter, a body that is not valid JSON)",
    401: "Missing or invalid bearer token",
    403: "The token lacks the route's scope",
    422: "The request does not match its schema or breaks a rule",
    503: "Temporarily unavailable; retry later",
}
BODY_ERRORS = {415: "The body is not application/json"}
IDEMPOTENCY_KEY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "description": "The same key with the same body answers the first response again; with "
                   "another body it is refused. Printable ASCII.",
    "schema": {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX,
               "pattern": "^[!-~]([ -~]*[!-~])?$"},
}


ERROR_REF = {"$ref": "#/components/schemas/Error"}
# Powertools declares its own validation error shape; ours is the one error shape.
POWERTOOLS_ERROR_SCHEMAS = ("HTTPValidationError", "ValidationError", "ResponseValidationError")


def _error(description: str) -> dict:
    return {"description": description, "content": {JSON: {"schema": dict(ERROR_REF)}}}


def _complete(operation: dict) -> None:
    responses = operation.setdefault("responses", {})
    errors = dict(EVERY_ROUTE_ERRORS)
    if operation.get("security") == []:
        # No authorizer in front: the route authenticates the caller itself (a provider's
        # signature), and there is no scope to lack.
        errors.pop(403)
        errors[401] = "The caller could not be authenticated (e.g. an invalid signature)"
    if "requestBody" in operation:
        errors.update(BODY_ERRORS)
    for status, description in errors.items():
        responses.setdefault(str(status), _error(description))
    for status, response in responses.items():
        if int(status) >= 400:  # every error answers {code, message, details?}
            description = response.get("description") or "Error"
            responses[status] = _error(EVERY_ROUTE_ERRORS.get(int(status), description)
                                       if description in ("Error", "Validation Error")
                                       else description)
    if operation.pop(IDEMPOTENCY_EXTENSION, None):
        parameters = operation.setdefault("parameters", [])
        if not any(p.get("name") == "Idempotency-Key" for p in parameters):
            parameters.append(dict(IDEMPOTENCY_KEY_PARAMETER))


def build_openapi_document() -> dict:
    document: dict = {
        "openapi": "3.1.0",
        "info": {"title": "Membership API", "version": "1.0.0",
                 "description": "Members, stored value, points, growth and tiers."},
        "paths": {},
        "components": {
            "schemas": {},
            "securitySchemes": {"jwt": {"type": "http", "scheme": "bearer",
                                        "bearerFormat": "JWT"}},
        },
        "security": [{"jwt": []}],
    }
    for name in HTTP_HANDLER_MODULES:
        app = importlib.import_module(name).app
        schema = app.get_openapi_schema().model_dump(
            mode="json", by_alias=True, exclude_none=True)
        for path, item in schema.get("paths", {}).items():
            document["paths"].setdefault(path, {}).update(item)
        document["components"]["schemas"].update(
            schema.get("components", {}).get("schemas", {}))
        # Routes authenticated otherwise (a provider's signature) override the bearer token.
        for method, path in getattr(importlib.import_module(name), "UNAUTHENTICATED_ROUTES", ()):
            document["paths"][path][method]["security"] = []
    for item in document["paths"].values():
        for operation in item.values():
            _complete(operation)
    schemas = document["components"]["schemas"]
    for name in POWERTOOLS_ERROR_SCHEMAS:
        schemas.pop(name, None)
    schemas["Error"] = ERROR_SCHEMA
    return document
