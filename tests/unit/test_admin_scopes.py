"""Every admin route of the OpenAPI document refuses `member` and `orders` tokens, both at
the gateway (the route's authorization scopes) and in the function itself: its resolver is
built with the admin scope in the shared HTTP layer (handlers.http), which refuses before
it parses anything, whatever the body. Table-driven: a new admin route is covered the day
it is documented."""
from __future__ import annotations

import importlib
import json
import re

import pytest

from membership.handlers.openapi import build_openapi_document
from membership_local import jwt as devjwt
from membership_local.apigw import lambda_context, member_event
from membership_local.gateway import Gateway
from membership_local.template import http_routes, load_template

SAMPLE_PARAMS = {"memberId": "M" + "a" * 24, "grantId": "G-1", "version": "1",
                 "topupId": "T" + "A" * 24, "period": "2025-01",
                 "tag": "milk_powder", "templateId": "TPL-1",
                 "subscriptionId": "M" + "a" * 24 + ".PLUS"}
METHODS = ("get", "put", "post", "patch", "delete")


def admin_operations() -> list[tuple[str, str]]:
    paths = build_openapi_document()["paths"]
    return sorted((method.upper(), path) for path, item in paths.items()
                  if path.startswith("/v1/admin") for method in item if method in METHODS)


ADMIN = admin_operations()
ROUTES = {(r.method, r.path): r for r in http_routes(load_template())}


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE_PARAMS[m.group(1)], path)


def test_the_document_lists_every_admin_capability():
    paths = {path for _, path in ADMIN}
    assert {"/v1/admin/program", "/v1/admin/program/versions", "/v1/admin/members",
            "/v1/admin/members/{memberId}", "/v1/admin/members/{memberId}/adjustments",
            "/v1/admin/grants", "/v1/admin/grants/{grantId}",
            "/v1/admin/topups/{topupId}/refunds", "/v1/admin/settlements/{period}",
            "/v1/admin/subscriptions/{subscriptionId}/refunds"} <= paths
    assert all(p in SAMPLE_PARAMS for _, path in ADMIN for p in re.findall(r"\{(\w+)\}", path))


@pytest.mark.parametrize("method, path", ADMIN)
def test_the_template_route_needs_the_admin_scope(method, path):
    route = ROUTES.get((method, path))
    assert route is not None, f"{method} {path} is documented but not routed in template.yaml"
    assert route.authorization_scopes == ["admin"]


@pytest.mark.parametrize("scope", ["member", "orders"])
@pytest.mark.parametrize("method, path", ADMIN)
def test_the_function_refuses_other_scopes(method, path, scope):
    route = ROUTES[(method, path)]
    module, _, name = route.handler.rpartition(".")
    handler = getattr(importlib.import_module(module), name)
    event = member_event(method, concrete(path), None, sub="intruder", scopes=[scope],
                         route_key=f"{method} {path}")
    response = handler(event, lambda_context())
    assert response["statusCode"] == 403
    assert json.loads(response["body"])["code"] == "forbidden"


def _app_of(method: str, path: str):
    module, _, _name = ROUTES[(method, path)].handler.rpartition(".")
    return importlib.import_module(module).app


@pytest.mark.parametrize("method, path", ADMIN)
def test_the_function_is_built_with_the_admin_scope_in_the_shared_http_layer(method, path):
    # The check lives in handlers.http (GuardedResolver), not in each handler's code.
    assert _app_of(method, path).required_scope == "admin"


# Bodies every check after the scope would refuse with its own 4xx (400, 415, 422).
UNPARSED_BODIES = {
    "not_json": ("{", "application/json"),
    "wrong_media_type": ("grantId=x", "application/x-www-form-urlencoded"),
    "control_characters": ('{"note": "\u0007"}', "application/json"),
    "schema_violation": ('{"unexpected": true}', "application/json"),
}


@pytest.mark.parametrize("body", sorted(UNPARSED_BODIES))
@pytest.mark.parametrize("scope", ["member", "orders"])
@pytest.mark.parametrize("method, path", ADMIN)
def test_the_function_refuses_other_scopes_before_parsing_the_body(method, path, scope, body):
    raw, content_type = UNPARSED_BODIES[body]
    route = ROUTES[(method, path)]
    module, _, name = route.handler.rpartition(".")
    handler = getattr(importlib.import_module(module), name)
    event = member_event(method, concrete(path), None, sub="intruder", scopes=[scope],
                         route_key=f"{method} {path}", headers={"content-type": content_type})
    event["body"] = raw
    response = handler(event, lambda_context())
    assert response["statusCode"] == 403, response
    assert json.loads(response["body"])["code"] == "forbidden"


def test_a_token_without_any_scope_is_refused_by_an_admin_function():
    from membership.handlers import admin_members

    event = member_event("GET", concrete("/v1/admin/members/{memberId}"), None, sub="x",
                         scopes=[], route_key="GET /v1/admin/members/{memberId}")
    assert admin_members.handler(event, lambda_context())["statusCode"] == 403


def test_a_scoped_resolver_answers_its_scope_and_refuses_the_others():
    from membership.handlers.http import build_app

    app = build_app(scope="admin")
    called = []

    @app.get("/v1/admin/ping")
    def ping():
        called.append(True)
        return {"ok": True}

    def call(scopes):
        event = member_event("GET", "/v1/admin/ping", None, sub="op", scopes=scopes,
                             route_key="GET /v1/admin/ping")
        return app.resolve(event, lambda_context())["statusCode"]

    assert (call(["member"]), called) == (403, [])
    assert (call(["admin"]), called) == (200, [True])


def test_a_resolver_without_a_scope_leaves_authorization_to_its_routes():
    from membership.handlers.http import build_app

    assert build_app().required_scope is None


class RecordingHandlers:
    def __init__(self):
        self.invoked = []

    def invoke(self, dotted, event, context):
        self.invoked.append(event["routeKey"])
        return {"statusCode": 204}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    key = tmp_path_factory.mktemp("jwt") / "key.pem"
    handlers = RecordingHandlers()
    return Gateway(load_template(), port=3999, key_file=key, handlers=handlers), key, handlers


@pytest.mark.parametrize("scope", ["member", "orders", "admin"])
@pytest.mark.parametrize("method, path", ADMIN)
def test_the_gateway_refuses_other_scopes_before_the_function(gateway, method, path, scope):
    gw, key, handlers = gateway
    token = devjwt.mint_token("someone", [scope], issuer=gw.issuer, audience=gw.audience,
                              key_file=key)
    before = len(handlers.invoked)
    response = gw.handle(method, concrete(path), {"authorization": f"Bearer {token}"}, None)
    if scope == "admin":  # the control: the route and its parameters do match
        assert response.status == 204
        assert handlers.invoked[before:] == [f"{method} {path}"]
    else:
        assert response.status == 403
        assert len(handlers.invoked) == before
