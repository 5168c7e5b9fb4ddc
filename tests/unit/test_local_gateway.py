"""The local HTTP gateway: routing, the JWT authorizer, v2 events and responses."""
import json
import sys
import textwrap
import types

import pytest
import requests

from membership_local import jwt as devjwt
from membership_local.dynamodb import free_port
from membership_local.gateway import Gateway, to_http_response
from membership_local.template import load_template

HANDLERS = textwrap.dedent(
    """
    import base64
    import json

    calls = []

    def echo(event, context):
        calls.append((event, context))
        return {"statusCode": 200, "headers": {"content-type": "application/json"},
                "body": json.dumps({"event": event, "function": context.function_name})}

    def plain(event, context):
        return {"hello": "world"}

    def text(event, context):
        return "hi"

    def fancy(event, context):
        return {"statusCode": 201, "headers": {"x-a": 1}, "cookies": ["a=1", "b=2"],
                "body": base64.b64encode(b"\\x00bin").decode(), "isBase64Encoded": True}

    def broken(event, context):
        raise RuntimeError("boom")
    """
)

TEMPLATE = textwrap.dedent(
    """
    Globals:
      Function:
        Timeout: 5
    Resources:
      Api:
        Type: AWS::Serverless::HttpApi
        Properties:
          Auth: {DefaultAuthorizer: Jwt}
      Echo:
        Type: AWS::Serverless::Function
        Properties:
          Handler: gw_fake_handlers.echo
          Events:
            Settlement:
              Type: HttpApi
              Properties:
                ApiId: !Ref Api
                Method: GET
                Path: /v1/admin/settlements/{period}
                Auth: {Authorizer: Jwt, AuthorizationScopes: [admin]}
            Members:
              Type: HttpApi
              Properties:
                ApiId: !Ref Api
                Method: POST
                Path: /v1/members
                Auth: {Authorizer: Jwt, AuthorizationScopes: [member, orders]}
            Files:
              Type: HttpApi
              Properties: {ApiId: !Ref Api, Method: ANY, Path: "/files/{proxy+}",
                           Auth: {Authorizer: NONE}}
            AnyScope:
              Type: HttpApi
              Properties: {ApiId: !Ref Api, Method: GET, Path: /whoami}
      Others:
        Type: AWS::Serverless::Function
        Properties:
          Handler: gw_fake_handlers.plain
          Events:
            Latest:
              Type: HttpApi
              Properties: {ApiId: !Ref Api, Method: GET, Path: /v1/admin/settlements/latest,
                           Auth: {Authorizer: NONE}}
      Text:
        Type: AWS::Serverless::Function
        Properties:
          Handler: gw_fake_handlers.text
          Events:
            T: {Type: HttpApi, Properties: {ApiId: !Ref Api, Method: GET, Path: /text,
                                            Auth: {Authorizer: NONE}}}
      Fancy:
        Type: AWS::Serverless::Function
        Properties:
          Handler: gw_fake_handlers.fancy
          Events:
            F: {Type: HttpApi, Properties: {ApiId: !Ref Api, Method: GET, Path: /fancy,
                                            Auth: {Authorizer: NONE}}}
      Broken:
        Type: AWS::Serverless::Function
        Properties:
          Handler: gw_fake_handlers.broken
          Events:
            B: {Type: HttpApi, Properties: {ApiId: !Ref Api, Method: GET, Path: /broken,
                                            Auth: {Authorizer: NONE}}}
    """
)


@pytest.fixture
def gateway(tmp_path, monkeypatch):
    (tmp_path / "gw_fake_handlers.py").write_text(HANDLERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "gw_fake_handlers", raising=False)
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    return Gateway(load_template(tmp_path / "template.yaml"), port=3999,
                   key_file=tmp_path / "key.pem")


def token(gw, sub="user-1", scopes=("member",), **kwargs):
    return devjwt.mint_token(sub, scopes, issuer=gw.issuer, key_file=gw.key_file, **kwargs)


def call(gw, method, target, body=None, bearer=None, headers=None):
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    if bearer:
        hdrs["authorization"] = f"Bearer {bearer}"
    if body is not None:
        hdrs.setdefault("content-type", "application/json")
        body = json.dumps(body).encode()
    return gw.handle(method, target, hdrs, body)


def body_of(response):
    return json.loads(response.body)


def test_path_parameters_and_the_event_the_handler_gets(gateway):
    response = call(gateway, "GET", "/v1/admin/settlements/2025-01?x=1",
                    bearer=token(gateway, "op-1", ["admin"]))
    assert response.status == 200
    payload = body_of(response)
    event = payload["event"]
    assert payload["function"] == "Echo"
    assert event["routeKey"] == "GET /v1/admin/settlements/{period}"
    assert event["pathParameters"] == {"period": "2025-01"}
    assert event["rawPath"] == "/v1/admin/settlements/2025-01"
    assert event["queryStringParameters"] == {"x": "1"}
    jwt = event["requestContext"]["authorizer"]["jwt"]
    assert jwt["claims"]["sub"] == "op-1"
    assert jwt["claims"]["iss"] == "http://127.0.0.1:3999/local-issuer"
    assert jwt["scopes"] == ["admin"]
    assert event["headers"]["authorization"].startswith("Bearer ")
    assert ("apigw-requestid", event["requestContext"]["requestId"]) in response.headers


def test_static_route_beats_a_path_parameter(gateway):
    response = call(gateway, "GET", "/v1/admin/settlements/latest")
    assert (response.status, body_of(response)) == (200, {"hello": "world"})


def test_json_body_reaches_the_handler_as_text(gateway):
    response = call(gateway, "POST", "/v1/members", {"phone": "13812345678"},
                    bearer=token(gateway, scopes=["orders"]))
    event = body_of(response)["event"]
    assert json.loads(event["body"]) == {"phone": "13812345678"}
    assert event["isBase64Encoded"] is False
    assert event["requestContext"]["authorizer"]["jwt"]["scopes"] == ["orders"]


def test_greedy_path_and_any_method(gateway):
    response = call(gateway, "DELETE", "/files/a/b%20c.txt")
    event = body_of(response)["event"]
    assert event["pathParameters"] == {"proxy": "a/b c.txt"}
    assert event["routeKey"] == "ANY /files/{proxy+}"
    assert "authorizer" not in event["requestContext"]


def test_route_without_scopes_accepts_any_valid_token(gateway):
    response = call(gateway, "GET", "/whoami", bearer=token(gateway, scopes=[]))
    assert response.status == 200
    assert body_of(response)["event"]["requestContext"]["authorizer"]["jwt"]["scopes"] is None
    assert call(gateway, "GET", "/whoami").status == 401


def test_unknown_route_and_unknown_method_are_404_before_auth(gateway):
    for method, path in (("GET", "/nope"), ("GET", "/v1/members"), ("POST", "/v1/members/x")):
        response = call(gateway, method, path)
        assert response.status == 404
        assert body_of(response)["code"] == "route_not_found"


def test_missing_or_bad_token_is_401(gateway):
    missing = call(gateway, "POST", "/v1/members", {})
    assert missing.status == 401
    assert body_of(missing)["code"] == "unauthorized"
    assert ("www-authenticate", "Bearer") in missing.headers
    for bad in ("garbage", token(gateway, ttl=-5),
                devjwt.mint_token("x", issuer="http://127.0.0.1:1/local-issuer",
                                  key_file=gateway.key_file)):
        response = call(gateway, "POST", "/v1/members", {}, bearer=bad)
        assert response.status == 401, bad
        assert body_of(response)["code"] == "unauthorized"


def test_token_without_a_route_scope_is_403(gateway):
    response = call(gateway, "GET", "/v1/admin/settlements/2025-01",
                    bearer=token(gateway, scopes=["member", "orders"]))
    assert response.status == 403
    assert body_of(response)["code"] == "forbidden"


def test_token_without_bearer_prefix_is_accepted(gateway):
    response = call(gateway, "GET", "/whoami", headers={"authorization": token(gateway)})
    assert response.status == 200


def test_response_inference_for_plain_values(gateway):
    response = call(gateway, "GET", "/text")
    assert (response.status, response.body) == (200, b'"hi"')
    assert ("content-type", "application/json") in response.headers


def test_status_code_response_with_cookies_and_binary_body(gateway):
    response = call(gateway, "GET", "/fancy")
    assert response.status == 201
    assert response.body == b"\x00bin"
    assert ("x-a", "1") in response.headers
    assert [v for k, v in response.headers if k == "set-cookie"] == ["a=1", "b=2"]


def test_handler_error_is_500(gateway, capsys):
    response = call(gateway, "GET", "/broken")
    assert response.status == 500
    assert body_of(response)["message"] == "Internal Server Error"
    assert "RuntimeError: boom" in capsys.readouterr().err


def test_to_http_response_rejects_malformed_results():
    with pytest.raises(ValueError):
        to_http_response({"statusCode": "200"})
    with pytest.raises(ValueError):
        to_http_response({"statusCode": 200, "body": {"not": "a string"}})
    assert to_http_response(None).body == b"null"
    assert to_http_response({"statusCode": 204}).body == b""


def test_openapi_document_is_served_with_the_local_server(gateway, monkeypatch):
    module = types.ModuleType("membership.handlers.openapi")
    module.build_openapi_document = lambda: {"openapi": "3.1.0", "paths": {}}
    monkeypatch.setitem(sys.modules, "membership.handlers.openapi", module)
    response = call(gateway, "GET", "/openapi.json")
    assert response.status == 200
    assert body_of(response) == {"openapi": "3.1.0", "paths": {},
                                 "servers": [{"url": "http://127.0.0.1:3999",
                                              "description": "local gateway"}]}


def test_openapi_failure_is_503(gateway, monkeypatch):
    monkeypatch.setitem(sys.modules, "membership.handlers.openapi", None)
    response = call(gateway, "GET", "/openapi.json")
    assert response.status == 503
    assert body_of(response)["code"] == "openapi_unavailable"


def test_docs_are_served_offline(gateway):
    page = call(gateway, "GET", "/docs")
    assert page.status == 200
    assert b"/openapi.json" in page.body and b"swagger-ui-bundle.js" in page.body
    bundle = call(gateway, "GET", "/docs/swagger-ui-bundle.js")
    assert bundle.status == 200 and len(bundle.body) > 100_000
    assert call(gateway, "GET", "/docs/../package.json").status == 404
    assert call(gateway, "GET", "/docs/package.json").status == 404


def test_jwks_is_published(gateway):
    response = call(gateway, "GET", "/local-issuer/.well-known/jwks.json")
    assert body_of(response)["keys"][0]["kty"] == "RSA"


def test_only_loopback_hosts_are_accepted():
    with pytest.raises(ValueError, match="loopback"):
        Gateway(load_template(), host="0.0.0.0")


def test_serves_over_http_with_keep_alive(tmp_path, monkeypatch):
    (tmp_path / "gw_fake_handlers.py").write_text(HANDLERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "gw_fake_handlers", raising=False)
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    gw = Gateway(load_template(tmp_path / "template.yaml"), port=free_port(),
                 key_file=tmp_path / "key.pem").start()
    try:
        with requests.Session() as session:
            bearer = {"Authorization": f"Bearer {token(gw, scopes=['member'])}"}
            first = session.post(f"{gw.url}/v1/members", json={"a": 1}, headers=bearer, timeout=5)
            assert first.status_code == 200
            assert json.loads(first.json()["event"]["body"]) == {"a": 1}
            assert session.get(f"{gw.url}/nope", timeout=5).status_code == 404
            fancy = session.get(f"{gw.url}/fancy", timeout=5)
            assert fancy.content == b"\x00bin"
            assert fancy.cookies.get("a") == "1"
            head = session.head(f"{gw.url}/docs", timeout=5)
            assert head.status_code == 200 and head.content == b""
            chunked = session.post(f"{gw.url}/v1/members", data=iter([b'{"b":', b"2}"]),
                                   headers={**bearer, "content-type": "application/json"},
                                   timeout=5)
            assert json.loads(chunked.json()["event"]["body"]) == {"b": 2}
    finally:
        gw.stop()
