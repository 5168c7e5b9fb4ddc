"""API Gateway HTTP API (payload format 2.0) events and Lambda contexts.

Shared by the local gateway and the tests, so a handler sees the same shapes in both,
and the same shapes as behind the real JWT authorizer.
"""
from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode

ACCOUNT_ID = "123456789012"
API_ID = "local"
REGION = "us-east-1"
DEFAULT_ISSUER = "http://127.0.0.1:3000/local-issuer"
DEFAULT_AUDIENCE = "membership-local"
# Content types API Gateway passes as text; anything else arrives base64-encoded.
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript",
              "application/x-www-form-urlencoded", "application/problem+json")


def _is_utf8(data: bytes) -> bool:
    # A "text" body that is not UTF-8 cannot travel as a JSON string: it goes base64-encoded,
    # and the function sees the bytes it was sent.
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def jwt_authorizer_context(claims: Mapping[str, object], scopes: list[str] | None) -> dict:
    """requestContext.authorizer as the JWT authorizer fills it: every claim as a string."""
    return {"jwt": {"claims": {k: _claim_string(v) for k, v in claims.items()}, "scopes": scopes}}


def _claim_string(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + " ".join(str(v) for v in value) + "]"
    return json.dumps(value)


def dev_claims(
    sub: str,
    scopes: Iterable[str],
    *,
    issuer: str = DEFAULT_ISSUER,
    audience: str = DEFAULT_AUDIENCE,
    ttl: int = 3600,
    now: int | None = None,
) -> dict:
    issued = int(time.time()) if now is None else now
    return {
        "sub": sub,
        "scope": " ".join(scopes),
        "iss": issuer,
        "aud": audience,
        "iat": issued,
        "exp": issued + ttl,
    }


def http_event(
    method: str,
    path: str,
    body: object = None,
    *,
    headers: Mapping[str, str] | None = None,
    query: str | Mapping[str, str] | None = None,
    route_key: str | None = None,
    path_parameters: Mapping[str, str] | None = None,
    authorizer: dict | None = None,
    source_ip: str = "127.0.0.1",
    domain_name: str = "127.0.0.1",
    is_base64_encoded: bool | None = None,
    request_id: str | None = None,
) -> dict:
    """A payload v2 event, the shape `sam local generate-event apigateway http-api-proxy` gives.

    `body` may be str, bytes (sent base64-encoded) or any JSON value (serialised, and a
    JSON content-type added). Keys API Gateway omits when empty (body, cookies,
    queryStringParameters, pathParameters) are omitted here too.
    """
    method = method.upper()
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    if body is not None and not isinstance(body, str | bytes):
        body = json.dumps(body, separators=(",", ":"))
        hdrs.setdefault("content-type", "application/json")
    if isinstance(body, bytes):
        text_type = hdrs.get("content-type", "").startswith(TEXT_TYPES)
        if is_base64_encoded is None:
            is_base64_encoded = not text_type or not _is_utf8(body)
        body = base64.b64encode(body).decode() if is_base64_encoded else body.decode()
    hdrs.setdefault("host", domain_name)
    hdrs.setdefault("user-agent", "membership-local")
    hdrs.setdefault("x-forwarded-proto", "http")
    if isinstance(query, Mapping):
        query = urlencode(query)
    raw_query = query or ""
    now = datetime.now(UTC)
    request_id = request_id or uuid.uuid4().hex[:16] + "="
    route_key = route_key or f"{method} {path}"
    event: dict = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": raw_query,
    }
    cookie_header = hdrs.pop("cookie", None)
    if cookie_header:
        event["cookies"] = [c.strip() for c in cookie_header.split(";") if c.strip()]
    event["headers"] = hdrs
    if raw_query:
        params: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            # Repeated parameters arrive joined by commas, as API Gateway does it.
            params[key] = f"{params[key]},{value}" if key in params else value
        event["queryStringParameters"] = params
    context: dict = {
        "accountId": ACCOUNT_ID,
        "apiId": API_ID,
        "domainName": domain_name,
        "domainPrefix": domain_name.split(".")[0],
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": hdrs["user-agent"],
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": "$default",
        "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now.timestamp() * 1000),
    }
    if authorizer is not None:
        context["authorizer"] = authorizer
    event["requestContext"] = context
    if body is not None:
        event["body"] = body
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    event["isBase64Encoded"] = bool(is_base64_encoded)
    return event


def member_event(
    method: str,
    path: str,
    body: object = None,
    *,
    sub: str = "demo-user",
    scopes: Iterable[str] = ("member",),
    headers: Mapping[str, str] | None = None,
    claims: Mapping[str, object] | None = None,
    **kwargs,
) -> dict:
    """`http_event` as behind the JWT authorizer, for a token with `sub` and `scopes`."""
    scopes = list(scopes)
    token_claims = {**dev_claims(sub, scopes), **(claims or {})}
    return http_event(method, path, body, headers=headers,
                      authorizer=jwt_authorizer_context(token_claims, scopes), **kwargs)


@dataclass(frozen=True)
class LambdaContext:
    """The attributes of the Python runtime's context object that handlers and Powertools read."""

    function_name: str = "membership-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    timeout_seconds: float = 10.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)
    region: str = REGION

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{self.aws_request_id.replace('-', '')}"

    identity = None
    client_context = None

    def get_remaining_time_in_millis(self) -> int:
        elapsed = time.monotonic() - self.started
        return max(0, int((self.timeout_seconds - elapsed) * 1000))

    def next_invocation(self) -> LambdaContext:
        """The context of the next invocation of the same function: new id, full time."""
        return replace(self, aws_request_id=str(uuid.uuid4()), started=time.monotonic())


def lambda_context(function_name: str = "membership-local", timeout: float = 10.0,
                   memory_mb: int = 512) -> LambdaContext:
    return LambdaContext(function_name=function_name, timeout_seconds=timeout,
                         memory_limit_in_mb=memory_mb)
