"""Schemathesis over every route of the OpenAPI document, against the local stack.

Each operation is called with a token of the scope its route requires (from
template.yaml), for a member who has signed up and holds points and stored value, with
data that follows the document and data that breaks it. Every answer must be no server
error, a status the document declares, and a body that matches the schema declared for
that status. Bounded: a fixed number of examples per operation and no shrinking, so the
suite stays fast; deterministic, so CI does not flake on a new random example.
"""
from __future__ import annotations

import os
import time
import uuid

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks as st_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi import checks as openapi_checks

from membership_local.template import http_routes, load_template

pytestmark = pytest.mark.e2e

MEMBER = "contract-member"
# Per operation and generation mode; CONTRACT_EXAMPLES=500 for a deeper run by hand.
EXAMPLES = int(os.environ.get("CONTRACT_EXAMPLES", "20"))
CHECKS = [
    st_checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.negative_data_rejection,
]
CONFIG = {
    "generation": {"mode": "all", "max-examples": EXAMPLES,
                   "deterministic": "CONTRACT_EXAMPLES" not in os.environ,
                   # The test sends a real token of the route's scope on every call; the
                   # gateway's 401 and 403 are tested in test_gateway.py.
                   "with-security-parameters": False, "no-shrink": True, "database": "none"},
    # Examples and the coverage phase's boundary cases, then bounded fuzzing.
    "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True},
               "fuzzing": {"enabled": True}, "stateful": {"enabled": False}},
}
ROUTE_SCOPES = {(r.method, r.path): (r.authorization_scopes or ["member"])[0]
                for r in http_routes(load_template())}
# Schemathesis also tries methods a path does not route (API Gateway answers 404).
PATH_SCOPES = {path: scope for (_, path), scope in ROUTE_SCOPES.items()}


@pytest.fixture(scope="session")
def contract_stack(stack):
    """The stack, with a member who has points, stored value and ledger pages to read."""
    auth = stack.auth(MEMBER, "member")
    signup = requests.post(f"{stack.api_url}/v1/members", headers=auth, timeout=30,
                           json={"phone": "13912340000", "nickname": "Contract",
                                 "channel": "app"})
    assert signup.status_code in (200, 201), signup.text
    topup = requests.post(f"{stack.api_url}/v1/members/me/topups", timeout=30,
                          headers={**auth, "Idempotency-Key": "contract-topup"},
                          json={"amount": 50_000, "paymentReference": "test-contract",
                                "channel": "alipay"})
    assert topup.status_code == 201, topup.text
    return stack


@pytest.fixture(scope="session")
def contract_report():
    """How long schemathesis takes in the suite, and how many calls it made."""
    report = {"calls": 0, "seconds": 0.0}
    yield report
    print(f"\nschemathesis: {report['calls']} calls in {report['seconds']:.1f}s")


def _document() -> dict:
    # The document the stack serves at /openapi.json, built from the same handler modules
    # (the test below checks they agree). Built at collection, the operations become test
    # ids before the stack is up.
    from membership.handlers.openapi import build_openapi_document

    return build_openapi_document()


schema = schemathesis.openapi.from_dict(_document(), config=SchemathesisConfig.from_dict(CONFIG))


def test_the_stack_serves_the_document_schemathesis_covers(contract_stack):
    served = requests.get(f"{contract_stack.api_url}/openapi.json", timeout=60).json()
    served.pop("servers")
    assert served == _document()
    assert {(m.upper(), p) for p, item in served["paths"].items() for m in item} == set(
        ROUTE_SCOPES), "every route of template.yaml is documented, and only those"


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None,
          derandomize="CONTRACT_EXAMPLES" not in os.environ, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_route_answers_as_its_document_says(case, contract_stack, contract_report):
    scope = ROUTE_SCOPES.get((case.method.upper(), case.path), PATH_SCOPES[case.path])
    sub = MEMBER if scope == "member" else f"contract-{scope}"
    headers = {"Authorization": f"Bearer {contract_stack.token(sub, scope)}"}
    if case.headers is None or "Idempotency-Key" not in case.headers:
        headers["Idempotency-Key"] = uuid.uuid4().hex
    started = time.perf_counter()
    try:
        case.call_and_validate(base_url=contract_stack.api_url, headers=headers, checks=CHECKS,
                               timeout=60)
    finally:
        contract_report["calls"] += 1
        contract_report["seconds"] += time.perf_counter() - started
