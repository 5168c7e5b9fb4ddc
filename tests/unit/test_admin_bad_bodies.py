"""Whatever an operator's client sends to a write route, a bad body is a clear 4xx."""
from __future__ import annotations

import json

import pytest

from membership.handlers import admin_grants, admin_members, admin_program
from membership_local.apigw import http_event, jwt_authorizer_context, lambda_context

MEMBER = "M" + "a" * 24
ROUTES = [
    (admin_program, "PUT", "/v1/admin/program"),
    (admin_members, "PATCH", f"/v1/admin/members/{MEMBER}"),
    (admin_members, "POST", f"/v1/admin/members/{MEMBER}/adjustments"),
    (admin_grants, "POST", "/v1/admin/grants"),
]
BODIES = [None, "", "null", "[]", '"text"', "{", "{}", '{"a": 1}', "1e999", '{"amount": 1e400}',
          json.dumps({"status": "frozen", "reason": "x" * 501}),
          json.dumps({"grantId": "G", "points": 10**30, "reasonCode": "x", "memberIds": ["M"]}),
          json.dumps({"adjustmentId": "A", "asset": "points", "amount": "1",
                      "reasonCode": "goodwill"}),
          "\u0000\ufffe"]


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("module, method, path", ROUTES)
def test_a_bad_body_is_a_clear_4xx(module, method, path, body):
    claims = {"sub": "ops", "scope": "admin"}
    event = http_event(method, path, body, headers={"content-type": "application/json",
                                                    "if-match": '"0"'},
                       authorizer=jwt_authorizer_context(claims, ["admin"]),
                       route_key=f"{method} {path}")
    response = module.handler(event, lambda_context())
    assert 400 <= response["statusCode"] < 500, response
    answer = json.loads(response["body"])
    assert answer["code"] in {"malformed_body", "validation_failed"}
