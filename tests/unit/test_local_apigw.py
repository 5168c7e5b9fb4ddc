"""API Gateway v2 events and Lambda contexts as the local stack builds them."""
import base64
import json
import time

from membership_local import apigw

SAM_TOP_LEVEL_KEYS = {"version", "routeKey", "rawPath", "rawQueryString", "headers",
                      "requestContext", "isBase64Encoded"}


def test_member_event_has_the_http_api_v2_shape():
    event = apigw.member_event("post", "/v1/members", {"phone": "13812345678"},
                               sub="user-1", scopes=["member", "orders"],
                               headers={"Idempotency-Key": "k1"})
    assert SAM_TOP_LEVEL_KEYS <= event.keys()
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /v1/members"
    assert event["rawPath"] == "/v1/members"
    assert event["headers"]["idempotency-key"] == "k1"  # API Gateway lower-cases names
    assert event["headers"]["content-type"] == "application/json"
    assert json.loads(event["body"]) == {"phone": "13812345678"}
    assert event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["stage"] == "$default"
    assert ctx["routeKey"] == "POST /v1/members"
    assert ctx["http"]["method"] == "POST"
    assert ctx["http"]["path"] == "/v1/members"
    assert {"accountId", "apiId", "domainName", "requestId", "time", "timeEpoch"} <= ctx.keys()
    jwt = ctx["authorizer"]["jwt"]
    assert jwt["scopes"] == ["member", "orders"]
    claims = jwt["claims"]
    assert claims["sub"] == "user-1"
    assert claims["scope"] == "member orders"
    assert claims["aud"] == apigw.DEFAULT_AUDIENCE
    # The authorizer hands every claim over as a string.
    assert all(isinstance(v, str) for v in claims.values())
    assert int(claims["exp"]) - int(claims["iat"]) == 3600


def test_get_without_body_or_query_omits_them():
    event = apigw.member_event("GET", "/v1/members/me")
    assert "body" not in event
    assert "queryStringParameters" not in event
    assert "pathParameters" not in event
    assert event["rawQueryString"] == ""


def test_query_string_and_path_parameters():
    event = apigw.http_event("GET", "/v1/admin/settlements/2025-01", query="a=1&a=2&b=",
                             route_key="GET /v1/admin/settlements/{period}",
                             path_parameters={"period": "2025-01"})
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}
    assert event["rawQueryString"] == "a=1&a=2&b="
    assert event["pathParameters"] == {"period": "2025-01"}
    assert event["routeKey"] == "GET /v1/admin/settlements/{period}"
    assert "authorizer" not in event["requestContext"]


def test_cookies_move_out_of_headers():
    event = apigw.http_event("GET", "/", headers={"Cookie": "a=1; b=2"})
    assert event["cookies"] == ["a=1", "b=2"]
    assert "cookie" not in event["headers"]


def test_binary_body_is_base64_encoded():
    event = apigw.http_event("POST", "/upload", b"\x00\x01",
                             headers={"content-type": "application/octet-stream"})
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\x00\x01"
    text = apigw.http_event("POST", "/t", b"hi", headers={"content-type": "text/plain"})
    assert (text["body"], text["isBase64Encoded"]) == ("hi", False)


def test_lambda_context():
    ctx = apigw.lambda_context("MembersFunction", timeout=10)
    assert ctx.function_name == "MembersFunction"
    assert ctx.invoked_function_arn.endswith(":function:MembersFunction")
    assert ctx.memory_limit_in_mb == 512
    assert 9000 < ctx.get_remaining_time_in_millis() <= 10000
    nxt = ctx.next_invocation()
    assert nxt.aws_request_id != ctx.aws_request_id
    assert nxt.function_name == ctx.function_name
    assert apigw.lambda_context().aws_request_id != apigw.lambda_context().aws_request_id


def test_remaining_time_counts_down():
    ctx = apigw.lambda_context(timeout=0.05)
    time.sleep(0.06)
    assert ctx.get_remaining_time_in_millis() == 0
