"""The local gateway answers every connection: bursts, bad framing, bytes that are not UTF-8."""
import base64
import json
import socket
import sys
import textwrap
import threading

import pytest

from membership_local.dynamodb import free_port
from membership_local.gateway import LISTEN_BACKLOG, Gateway
from membership_local.template import load_template

CONNECTIONS = 64

HANDLERS = textwrap.dedent(
    """
    import json
    import threading
    import time

    lock = threading.Lock()
    state = {"active": 0, "most": 0, "calls": 0}

    def slow(event, context):
        with lock:
            state["active"] += 1
            state["calls"] += 1
            state["most"] = max(state["most"], state["active"])
        time.sleep(0.005)
        with lock:
            state["active"] -= 1
        return {"statusCode": 200, "headers": {"content-type": "application/json"},
                "body": json.dumps({"body": event.get("body"),
                                    "isBase64Encoded": event["isBase64Encoded"]})}
    """
)

TEMPLATE = textwrap.dedent(
    """
    Resources:
      Slow:
        Type: AWS::Serverless::Function
        Properties:
          Handler: gw_connection_handlers.slow
          Events:
            Post: {Type: HttpApi, Properties: {Method: POST, Path: /work, Auth: {Authorizer: NONE}}}
    """
)


@pytest.fixture
def gateway(tmp_path, monkeypatch):
    (tmp_path / "gw_connection_handlers.py").write_text(HANDLERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "gw_connection_handlers", raising=False)
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    gw = Gateway(load_template(tmp_path / "template.yaml"), port=free_port(),
                 key_file=tmp_path / "key.pem").start()
    yield gw
    gw.stop()


def raw_request(gw: Gateway, request: bytes, timeout: float = 30) -> bytes:
    """Send bytes on a fresh connection and read the whole answer (the server closes)."""
    with socket.create_connection((gw.host, gw.port), timeout=timeout) as conn:
        conn.sendall(request)
        chunks = []
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def post(body: bytes, content_type: str = "application/json",
         length: str | None = None) -> bytes:
    return (f"POST /work HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {length if length is not None else len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def json_of(answer: bytes) -> dict:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])


def test_the_gateway_accepts_64_concurrent_connections_and_answers_each(gateway):
    assert LISTEN_BACKLOG >= CONNECTIONS
    barrier = threading.Barrier(CONNECTIONS)
    answers: list[bytes | Exception] = []

    def client(n: int) -> None:
        barrier.wait()
        try:
            answers.append(raw_request(gateway, post(json.dumps({"n": n}).encode())))
        except OSError as exc:  # a reset or a refused connection is the failure under test
            answers.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    errors = [a for a in answers if isinstance(a, Exception)]
    assert not errors, errors[:3]
    assert sorted(status_of(a) for a in answers) == [200] * CONNECTIONS
    assert sorted(json.loads(json_of(a)["body"])["n"] for a in answers) == list(
        range(CONNECTIONS))
    handlers = sys.modules["gw_connection_handlers"]
    # One invocation at a time, as in one Lambda container: handlers keep state in globals.
    assert handlers.state == {"active": 0, "most": 1, "calls": CONNECTIONS}


def test_a_body_that_is_not_utf8_is_answered_and_reaches_the_function_as_bytes(gateway):
    answer = raw_request(gateway, post(b'{"nickname": "\xff\xfe"}'))
    assert status_of(answer) == 200
    event = json_of(answer)
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b'{"nickname": "\xff\xfe"}'


@pytest.mark.parametrize("length", ["abc", "-5"])
def test_an_unreadable_content_length_is_answered_400_not_dropped(gateway, length):
    answer = raw_request(gateway, post(b"{}", length=length))
    assert status_of(answer) == 400
    assert json_of(answer)["code"] == "bad_request"
