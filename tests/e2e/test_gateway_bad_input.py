"""The local stack over real sockets: bodies that are not UTF-8 and bursts of holds."""
import json
import random
import socket
import threading
import uuid
from urllib.parse import urlsplit

import pytest
import requests

pytestmark = pytest.mark.e2e

CONCURRENT = 64
POINTS_PER_HOLD = 10  # the signup gift of 100 points covers ten holds


def new_member(stack) -> tuple[str, str]:
    sub = f"burst-{uuid.uuid4().hex[:12]}"
    phone = "139" + "".join(random.choice("0123456789") for _ in range(8))
    created = requests.post(f"{stack.api_url}/v1/members", headers=stack.auth(sub), timeout=30,
                            json={"phone": phone, "nickname": "Burst", "channel": "app"})
    assert created.status_code == 201, created.text
    return sub, created.json()["memberId"]


def raw_post(stack, path: str, body: bytes, token: str) -> tuple[int, dict]:
    url = urlsplit(stack.api_url)
    request = (f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
               f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
    with socket.create_connection((url.hostname, url.port), timeout=60) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(payload)


def test_a_body_that_is_not_utf8_is_answered_400_and_changes_nothing(stack):
    sub, _ = new_member(stack)
    status, body = raw_post(stack, "/v1/members", b'{"nickname": "\xff\xfe", "phone": "1"}',
                            stack.token(sub, "member"))
    assert status == 400 and body["code"] == "malformed_body"
    status, body = raw_post(stack, "/v1/members/me/topups", b'{"amount": \xff}',
                            stack.token(sub, "member"))
    assert status == 400 and body["code"] == "malformed_body"
    profile = requests.get(f"{stack.api_url}/v1/members/me", headers=stack.auth(sub), timeout=30)
    assert profile.json()["nickname"] == "Burst" and profile.json()["balance"]["total"] == 0


def test_64_concurrent_holds_on_one_member_are_each_answered(stack):
    sub, member_id = new_member(stack)
    barrier = threading.Barrier(CONCURRENT)
    answers: list = []
    lock = threading.Lock()

    def hold(n: int) -> None:
        barrier.wait()
        try:
            answer = requests.post(f"{stack.api_url}/v1/checkout/holds", timeout=120,
                                   headers=stack.auth("order-system", "orders"),
                                   json={"orderId": f"SO-BURST-{n}", "memberId": member_id,
                                         "points": POINTS_PER_HOLD})
            result = (answer.status_code, answer.json().get("code"))
        except requests.RequestException as exc:  # a reset or a drop is the failure under test
            result = exc
        with lock:
            answers.append(result)

    threads = [threading.Thread(target=hold, args=(n,)) for n in range(CONCURRENT)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    errors = [a for a in answers if isinstance(a, Exception)]
    assert not errors, errors[:3]
    assert len(answers) == CONCURRENT
    held = [a for a in answers if a[0] == 201]
    refused = [a for a in answers if a[0] != 201]
    assert len(held) == 100 // POINTS_PER_HOLD
    assert set(refused) == {(409, "insufficient_points")}
    profile = requests.get(f"{stack.api_url}/v1/members/me", headers=stack.auth(sub), timeout=30)
    assert profile.json()["points"]["available"] == 0
