"""The OpenAPI document of every HTTP route, merged from each function's resolver."""
from __future__ import annotations

import importlib

HTTP_HANDLER_MODULES = (
    "membership.handlers.members",
    "membership.handlers.program",
    "membership.handlers.topups",
    "membership.handlers.admin_topups",
    "membership.handlers.checkout",
    "membership.handlers.admin_settlements",
    "membership.handlers.payment_notifications",
)


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
    return document
