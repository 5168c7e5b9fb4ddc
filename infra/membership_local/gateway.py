"""A local stand-in for the HTTP API: routes from template.yaml, a JWT authorizer, v2 events.

It behaves as API Gateway does where a client can tell: route selection before
authorization (an unknown route is 404 even without a token), 401 for a missing or bad
token, 403 when no route scope matches, and the payload 2.0 response rules.
"""
from __future__ import annotations

import base64
import decimal
import ipaddress
import json
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from . import jwt as devjwt
from .apigw import DEFAULT_AUDIENCE, http_event, jwt_authorizer_context, lambda_context
from .paths import node_package
from .runtime import Handlers
from .template import HttpRoute, function_timeout, http_routes

DEFAULT_PORT = 3000
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
LISTEN_BACKLOG = 128  # connections waiting to be accepted
SWAGGER_ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "application/javascript; charset=utf-8",
    "swagger-ui-standalone-preset.js": "application/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
DOCS_HTML = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Membership API (local)</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/swagger-ui-standalone-preset.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "/openapi.json",
      dom_id: "#swagger-ui",
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      layout: "StandaloneLayout",
      persistAuthorization: true
    });
  </script>
</body>
</html>
"""


@dataclass(frozen=True)
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


def json_response(status: int, payload: object, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(payload).encode()
    return Response(status, [("content-type", "application/json"), *(headers or {}).items()], body)


def error_response(status: int, code: str, message: str, **headers: str) -> Response:
    return json_response(status, {"code": code, "message": message}, headers)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    regex: re.Pattern | None  # None: the $default route
    params: tuple[str, ...]
    # Literal segments outrank {param}, which outranks {proxy+}; a method outranks ANY.
    rank: tuple
    spec: HttpRoute

    @property
    def route_key(self) -> str:
        return "$default" if self.regex is None else f"{self.method} {self.path}"

    @classmethod
    def compile(cls, spec: HttpRoute) -> Route:
        if spec.path == "$default":
            return cls("ANY", spec.path, None, (), (-1,), spec)
        parts, params, rank = [], [], []
        for segment in spec.path.strip("/").split("/"):
            if segment.startswith("{") and segment.endswith("+}"):
                parts.append("(.+)")
                params.append(segment[1:-2])
                rank.append(0)
            elif segment.startswith("{") and segment.endswith("}"):
                parts.append("([^/]+)")
                params.append(segment[1:-1])
                rank.append(1)
            else:
                parts.append(re.escape(segment))
                rank.append(2)
        regex = re.compile("^/" + "/".join(parts) + "$")
        method_rank = 0 if spec.method == "ANY" else 1
        return cls(spec.method, spec.path, regex, tuple(params), (*rank, method_rank), spec)

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.method not in ("ANY", method):
            return None
        if self.regex is None:
            return {}
        found = self.regex.match(path)
        if found is None:
            return None
        return {name: unquote(value) for name, value in zip(self.params, found.groups(), strict=True)}


class Gateway:
    """Routes requests to handlers; `handle` is plain data in and out, the server is separate."""

    def __init__(
        self,
        template: Mapping,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        issuer: str | None = None,
        audience: str = DEFAULT_AUDIENCE,
        key_file=None,
        handlers: Handlers | None = None,
        access_log: bool = False,
    ) -> None:
        if not is_loopback(host):
            raise ValueError(f"the local gateway only listens on loopback, not {host!r}")
        self.template = template
        self.host = host
        self.port = port
        self.issuer = issuer or devjwt.issuer_for(f"http://{host}:{port}")
        self.audience = audience
        self.key_file = key_file
        self.handlers = handlers or Handlers()
        self.access_log = access_log
        self.routes = [Route.compile(spec) for spec in http_routes(template)]
        self._timeouts = {r.spec.function_id: function_timeout(template, r.spec.function_id)
                          for r in self.routes}
        self._assets: dict[str, bytes] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- routing and authorization -----------------------------------------------------

    def select(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        best = None
        for route in self.routes:
            params = route.match(method, path)
            if params is not None and (best is None or route.rank > best[0].rank):
                best = (route, params)
        return best

    def authorize(self, route: Route, headers: Mapping[str, str]) -> dict | Response:
        """The authorizer context for the event, or the 401/403 response."""
        raw = headers.get("authorization", "").strip()
        token = raw[7:].strip() if raw[:7].lower() == "bearer " else raw
        if not token:
            return error_response(401, "unauthorized", "missing bearer token",
                                  **{"www-authenticate": "Bearer"})
        try:
            claims = devjwt.verify_token(token, issuer=self.issuer, audience=self.audience,
                                         key_file=self.key_file)
        except devjwt.InvalidToken as exc:
            return error_response(
                401, "unauthorized", f"invalid token: {exc}",
                **{"www-authenticate": f'Bearer error="invalid_token" error_description="{exc}"'},
            )
        required = route.spec.authorization_scopes or []
        scopes = devjwt.token_scopes(claims)
        if required and not set(required) & set(scopes):
            return error_response(
                403, "forbidden", f"token scopes do not include any of: {' '.join(required)}",
                **{"www-authenticate": f'Bearer error="insufficient_scope" scope="{" ".join(required)}"'},
            )
        # API Gateway fills `scopes` only for routes that declare authorization scopes.
        return jwt_authorizer_context(claims, scopes if required else None)

    # --- requests --------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes | None,
               client_ip: str = "127.0.0.1") -> Response:
        method = method.upper()
        path, _, query = target.partition("?")
        request_id = uuid.uuid4().hex[:16] + "="
        builtin = self._builtin(method, path)
        if builtin is not None:
            return builtin
        selected = self.select(method, path)
        if selected is None:
            return error_response(404, "route_not_found", "Not Found",
                                  **{"apigw-requestid": request_id})
        route, params = selected
        authorizer = None
        if route.spec.authorization_scopes is not None:
            outcome = self.authorize(route, headers)
            if isinstance(outcome, Response):
                return outcome
            authorizer = outcome
        event = http_event(
            method, path, body or None, headers=headers, query=query, route_key=route.route_key,
            path_parameters=params, authorizer=authorizer, source_ip=client_ip,
            domain_name=self.host, request_id=request_id,
        )
        context = lambda_context(route.spec.function_id,
                                 timeout=self._timeouts[route.spec.function_id])
        try:
            result = self.handlers.invoke(route.spec.handler, event, context)
            response = to_http_response(result)
        except Exception:  # noqa: BLE001 - a failed invocation is API Gateway's 500, not a crash
            print(f"{route.route_key} ({route.spec.handler}) failed:\n{traceback.format_exc()}",
                  file=sys.stderr)
            return error_response(500, "internal_error", "Internal Server Error",
                                  **{"apigw-requestid": request_id})
        response.headers.append(("apigw-requestid", request_id))
        return response

    def _builtin(self, method: str, path: str) -> Response | None:
        if method not in ("GET", "HEAD"):
            return None
        if path == "/openapi.json":
            return self._openapi()
        if path in ("/docs", "/docs/"):
            return self._docs_page()
        if path.startswith("/docs/"):
            return self._docs_asset(path[len("/docs/"):])
        if path == devjwt.ISSUER_PATH + "/.well-known/jwks.json":
            return json_response(200, devjwt.jwks(self.key_file))
        return None

    def _openapi(self) -> Response:
        try:
            from membership.handlers.openapi import build_openapi_document

            document = dict(build_openapi_document())
        except Exception as exc:  # noqa: BLE001 - the docs must not take the gateway down
            return error_response(503, "openapi_unavailable", f"{type(exc).__name__}: {exc}")
        document.setdefault("servers", [{"url": self.url, "description": "local gateway"}])
        return json_response(200, document)

    def _docs_page(self) -> Response:
        try:
            node_package("swagger-ui-dist")
        except FileNotFoundError as exc:
            return Response(503, [("content-type", "text/plain; charset=utf-8")],
                            str(exc).encode())
        return Response(200, [("content-type", "text/html; charset=utf-8")], DOCS_HTML.encode())

    def _docs_asset(self, name: str) -> Response:
        # Only the named files: nothing else of node_modules is reachable.
        if name not in SWAGGER_ASSETS:
            return error_response(404, "route_not_found", "Not Found")
        if name not in self._assets:
            try:
                self._assets[name] = (node_package("swagger-ui-dist") / name).read_bytes()
            except OSError as exc:
                return error_response(503, "docs_unavailable", str(exc))
        return Response(200, [("content-type", SWAGGER_ASSETS[name]),
                              ("cache-control", "max-age=3600")], self._assets[name])

    # --- serving ---------------------------------------------------------------------------

    def start(self) -> Gateway:
        server = _Server((self.host, self.port), _make_request_handler(self))
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="membership-gateway", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class _Server(ThreadingHTTPServer):
    # The listen backlog: socketserver's default of 5 makes a burst of clients (20 holds
    # at once) overflow the accept queue and see resets. Each connection gets a thread.
    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True


def to_http_response(result: object) -> Response:
    """A handler's return value as API Gateway's payload 2.0 format turns it into HTTP."""
    if isinstance(result, dict) and "statusCode" in result:
        status = result["statusCode"]
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError(f"invalid statusCode {status!r}")
        headers = [(str(k).lower(), str(v)) for k, v in (result.get("headers") or {}).items()]
        headers += [("set-cookie", str(c)) for c in result.get("cookies") or []]
        body = result.get("body")
        if body is None:
            data = b""
        elif not isinstance(body, str):
            raise ValueError("body must be a string")
        elif result.get("isBase64Encoded"):
            data = base64.b64decode(body)
        else:
            data = body.encode()
        return Response(status, headers, data)
    # No statusCode: API Gateway infers 200, application/json, and the result as JSON.
    body = json.dumps(result, default=_lambda_json_default).encode()
    return Response(200, [("content-type", "application/json")], body)


def _lambda_json_default(value: object) -> object:
    # The Python runtime serialises Decimal results; anything else unknown is an error.
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _make_request_handler(gateway: Gateway) -> type[BaseHTTPRequestHandler]:
    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as clients get from API Gateway
        # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and
        # the client's delayed ACK hold the body back ~40 ms on a kept-alive connection.
        disable_nagle_algorithm = True
        server_version = "membership-local"

        def _serve(self) -> None:
            started = time.perf_counter()
            headers: dict[str, str] = {}
            for name, value in self.headers.items():
                key = name.lower()
                # Repeated headers reach the handler comma-joined, as in API Gateway.
                headers[key] = f"{headers[key]},{value}" if key in headers else value
            try:
                body, too_large = self._read_body()
            except (ValueError, OSError):
                # A framing we cannot read (bad Content-Length or chunk size): answer, and
                # close, since the rest of the stream cannot be trusted.
                body, too_large = None, None
            if too_large is None:
                response = error_response(400, "bad_request", "Bad Request")
                self.close_connection = True
            elif too_large:
                response = error_response(413, "payload_too_large", "Request Entity Too Large")
                self.close_connection = True
            else:
                try:
                    response = gateway.handle(self.command, self.path, headers, body,
                                              self.client_address[0])
                except Exception:  # noqa: BLE001 - every request gets an answer, never a reset
                    print(f"gateway: {self.command} {self.path} failed:\n"
                          f"{traceback.format_exc()}", file=sys.stderr)
                    response = error_response(500, "internal_error", "Internal Server Error")
            self._write(response)
            if gateway.access_log:
                elapsed = (time.perf_counter() - started) * 1000
                # Without the query: it may carry personal data (an operator's ?phone=).
                print(f"{self.command} {self.path.partition('?')[0]} {response.status} "
                      f"{elapsed:.1f}ms", file=sys.stderr)

        def _read_body(self) -> tuple[bytes | None, bool]:
            if "chunked" in self.headers.get("transfer-encoding", "").lower():
                return self._read_chunked()
            length = int(self.headers.get("content-length") or 0)
            if length < 0:
                raise ValueError("negative Content-Length")
            if length > MAX_BODY_BYTES:
                return None, True
            return (self.rfile.read(length) if length else None), False

        def _read_chunked(self) -> tuple[bytes | None, bool]:
            data = bytearray()
            while True:  # bounded by MAX_BODY_BYTES
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return (bytes(data) or None), False
                if len(data) + size > MAX_BODY_BYTES:
                    return None, True
                data += self.rfile.read(size)
                self.rfile.readline()

        def _write(self, response: Response) -> None:
            self.send_response(response.status)
            for name, value in response.headers:
                if name not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(name, value)
            self.send_header("content-length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        def log_message(self, format: str, *args) -> None:
            pass  # one access line per request is printed by _serve when asked for

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

        def __getattr__(self, name: str):
            # Any other method (TRACE, CONNECT, made-up ones) is routed like the rest, so it
            # gets API Gateway's 404 rather than http.server's 501 HTML page.
            if name.startswith("do_"):
                return self._serve
            raise AttributeError(name)

    return RequestHandler
