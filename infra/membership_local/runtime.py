"""Run the real handlers in this process, as Lambda would: same environment, same entry points.

Handlers cannot tell they run locally: only the endpoints and the dummy credentials in
the environment differ.
"""
from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from .paths import repo_root
from .template import function_environment, functions

DEFAULT_REGION = "us-east-1"
DEFAULT_EVENTS_ENDPOINT = "http://127.0.0.1:3001"
# Template parameters the local stack sets on purpose. A deploy's default verifier refuses
# every payment; locally, "test-" references stand for payments a provider confirmed.
LOCAL_PARAMETERS = {
    "PaymentVerifier": "membership.services.payments.TestReferenceVerifier",
}

Handler = Callable[[Any, Any], Any]


def lambda_environment(
    template: Mapping,
    *,
    table_name: str,
    dynamodb_endpoint: str,
    events_endpoint: str = DEFAULT_EVENTS_ENDPOINT,
    event_bus_name: str = "membership",
    region: str = DEFAULT_REGION,
    refs: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Every function's template environment, pointed at the local table, bus and endpoints."""
    resolved = {**LOCAL_PARAMETERS, "MembershipTable": table_name,
                "MembershipEventBus": event_bus_name, "AWS::Region": region, **(refs or {})}
    env: dict[str, str] = {}
    # The handlers share one process, so their variables are merged; the template keeps
    # per-function variables distinct in practice.
    for function_id in functions(template):
        env.update(function_environment(template, resolved, function_id))
    env.update(function_environment(template, resolved))
    env.update(
        AWS_REGION=region,
        AWS_DEFAULT_REGION=region,
        # Always dummies: a developer's real credentials must never ride along.
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_ENDPOINT_URL_DYNAMODB=dynamodb_endpoint,
        AWS_ENDPOINT_URL_DYNAMODB_STREAMS=dynamodb_endpoint,
        # botocore reads the EventBridge endpoint from ..._EVENTBRIDGE (its service id);
        # ..._EVENTS is set too for code that looks it up by the client's name.
        AWS_ENDPOINT_URL_EVENTBRIDGE=events_endpoint,
        AWS_ENDPOINT_URL_EVENTS=events_endpoint,
        AWS_EC2_METADATA_DISABLED="true",
        # No X-Ray daemon locally; the tracer would only log connection errors.
        POWERTOOLS_TRACE_DISABLED="true",
    )
    return env


def stack_parameters(stack: Mapping[str, object]) -> dict[str, str]:
    """Template parameters a running stack was started with (see `up`), for attaching to it."""
    zone = stack.get("program_time_zone")
    return {"ProgramTimeZone": str(zone)} if zone else {}


def isolate_from_aws() -> None:
    """Dummy credentials and a fixed region before any client exists: never a real account.

    For processes that talk only to the local stack (tests, the bench)."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        os.environ.pop(name, None)
    os.environ.update(
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_EC2_METADATA_DISABLED="true",
    )


def apply_environment(env: Mapping[str, str]) -> None:
    """Set `env` before any handler module is imported: modules read settings at import."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(env)


class Handlers:
    """Imports each handler module once (as a warm Lambda container would) and caches it.

    `invoke` runs one invocation at a time, as a Lambda container does: the functions share
    module-level state in this one process (Powertools Logger keys and the Metrics buffer
    that each invocation flushes), which parallel invocations would mix up. The gateway,
    the event bus and the stream poller all invoke through it.
    """

    def __init__(self) -> None:
        self._cache: dict[str, Handler] = {}
        self._lock = threading.Lock()
        self._invocation = threading.Lock()
        code_dir = str(repo_root() / "functions")
        if code_dir not in sys.path:
            sys.path.insert(0, code_dir)

    def get(self, dotted: str) -> Handler:
        handler = self._cache.get(dotted)
        if handler is None:
            with self._lock:
                handler = self._cache.get(dotted)
                if handler is None:
                    module_name, _, attr = dotted.rpartition(".")
                    handler = getattr(importlib.import_module(module_name), attr)
                    self._cache[dotted] = handler
        return handler

    def invoke(self, dotted: str, event: Any, context: Any) -> Any:
        """Call the handler `dotted` with one invocation at a time in this process."""
        handler = self.get(dotted)
        with self._invocation:
            return handler(event, context)
