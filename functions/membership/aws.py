"""One botocore session per process, and one client per AWS service, made on first use.

Creating a client parses the service's model and the endpoint rules: the first DynamoDB
call of a cold start pays about as much for that as for importing boto3. So every
pynamodb model and every direct call (EventBridge, SQS, the settlement's scan) shares
the clients made here, across invocations. botocore clients are thread-safe once made;
making them is not, hence the lock. botocore alone: boto3's resource layer is not needed.
"""
from __future__ import annotations

import threading
from typing import Any

_lock = threading.RLock()
_session = None
_clients: dict[str, Any] = {}
# botocore's parsed JSON data (endpoints, service models), kept across reset().
_loader = None


def session():
    """The process's botocore session (credentials, region and endpoints from the env)."""
    global _session
    if _session is None:
        with _lock:
            if _session is None:
                import botocore.session

                made = botocore.session.get_session()
                if _loader is not None:
                    made.register_component("data_loader", _loader)
                _session = made
    return _session


def client(service: str):
    """The process's client for `service` ("events", "sqs"); DynamoDB goes through
    `membership.storage.table`, which makes it with pynamodb's settings on this session."""
    made = _clients.get(service)
    if made is None:
        with _lock:
            made = _clients.get(service)
            if made is None:
                made = _clients[service] = session().create_client(service)
    return made


def reset() -> None:
    """Forget the session and its clients: the next use reads the environment again
    (tests switch endpoints; a Lambda process never needs this). The data botocore parsed
    from its JSON files stays: reading it again was half of a test's CPU time."""
    global _session, _loader
    with _lock:
        if _session is not None:
            _loader = _session.get_component("data_loader")
        _session = None
        _clients.clear()
