"""The OpenAPI document declares what every route really answers."""
import re

import pytest

from membership.domain.members import member_id_for
from membership.handlers.openapi import build_openapi_document

DOCUMENT = build_openapi_document()
OPERATIONS = [(method.upper(), path, operation)
              for path, item in DOCUMENT["paths"].items() for method, operation in item.items()]


@pytest.mark.parametrize("method, path, operation", OPERATIONS,
                         ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
def test_every_operation_declares_the_errors_of_the_layers_in_front_of_it(
        method, path, operation):
    declared = set(operation["responses"])
    assert {"400", "401", "422", "503"} <= declared
    # A route without the JWT authorizer (a provider's signed notification) has no scope
    # to refuse.
    assert ("403" in declared) is (operation.get("security") != [])
    if "requestBody" in operation:
        assert "415" in declared
    for status, response in operation["responses"].items():
        if int(status) >= 400:
            assert response["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"}


def test_the_one_error_schema_replaces_the_validation_error_shape():
    schemas = DOCUMENT["components"]["schemas"]
    assert schemas["Error"]["required"] == ["code", "message"]
    assert "HTTPValidationError" not in schemas
    assert "HTTPValidationError" not in str(DOCUMENT)


@pytest.mark.parametrize("path", ["/v1/members/me/topups", "/v1/admin/topups/{topupId}/refunds"])
def test_money_writes_declare_their_idempotency_key_header(path):
    parameters = DOCUMENT["paths"][path]["post"]["parameters"]
    (key,) = [p for p in parameters if p["name"] == "Idempotency-Key"]
    assert key["in"] == "header" and key["required"] is True
    assert key["schema"]["maxLength"] == 255
    assert not any(k.startswith("x-") for k in DOCUMENT["paths"][path]["post"])


def test_a_nickname_may_be_left_out_but_is_never_null():
    nickname = DOCUMENT["components"]["schemas"]["ProfileUpdate"]["properties"]["nickname"]
    assert nickname["type"] == "string" and "default" not in nickname
    store = DOCUMENT["components"]["schemas"]["ProfileUpdate"]["properties"]["storeId"]
    assert {"type": "null"} in store["anyOf"]


def test_only_the_providers_signed_notifications_go_without_a_bearer_token():
    open_routes = {(method, path) for method, path, operation in OPERATIONS
                   if operation.get("security") == []}
    assert open_routes == {("POST", "/v1/payments/wechatpay/notifications"),
                           ("POST", "/v1/payments/alipay/notifications")}


def test_every_member_id_in_a_path_has_one_schema_that_takes_the_ids_members_get():
    schemas = [parameter["schema"] for _, _, operation in OPERATIONS
               for parameter in operation.get("parameters", ())
               if parameter["in"] == "path" and parameter["name"] == "memberId"]
    assert len(schemas) >= 6 and all(schema == schemas[0] for schema in schemas)
    assert re.fullmatch(schemas[0]["pattern"], member_id_for("any-subject"))
