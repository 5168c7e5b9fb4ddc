"""One botocore client per process: every pynamodb model and every direct call share it.

A fresh interpreter, as a Lambda process: it counts every client botocore makes, then
serves several invocations through the real handlers against DynamoDB Local, touching
most item types (member, phone, subject, guard, entry, lot, top-up, idempotency key,
program, hold).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = """
import collections, contextlib, io, json
import botocore.session

made = collections.Counter()
create_client = botocore.session.Session.create_client

def counting(session, service_name, *args, **kwargs):
    made[service_name] += 1
    return create_client(session, service_name, *args, **kwargs)

botocore.session.Session.create_client = counting

from membership_local.apigw import lambda_context, member_event
from membership.domain.members import member_id_for
from membership.handlers import checkout, members, topups

def call(handler, event):
    with contextlib.redirect_stdout(io.StringIO()):
        return handler(event, lambda_context())["statusCode"]

member_id = member_id_for("one-client")
orders = dict(sub="order-system", scopes=("orders",))
statuses = [
    call(members.handler, member_event("POST", "/v1/members", {
        "phone": "13900001111", "nickname": "One", "channel": "app"}, sub="one-client")),
    call(members.handler, member_event("GET", "/v1/members/me", sub="one-client")),
    call(topups.handler, member_event("POST", "/v1/members/me/topups", {
        "amount": 50000, "paymentReference": "test-one-client", "channel": "alipay"},
        sub="one-client", headers={"Idempotency-Key": "one-client-key"})),
    call(checkout.handler, member_event("POST", "/v1/checkout/quote", {
        "memberId": member_id, "balanceToUse": 1000, "lines": [
            {"lineId": "1", "sku": "S", "category": "c", "brand": "b", "quantity": 1,
             "unitPrice": 9900}]},
        **orders)),
    call(checkout.handler, member_event("POST", "/v1/checkout/holds", {
        "orderId": "SO-one-client", "memberId": member_id, "balance": 1000}, **orders)),
]
print(json.dumps({"statuses": statuses, "clients": dict(made)}))
"""


def test_a_process_makes_one_dynamodb_client_for_every_item_type_and_invocation(table):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "functions"),
               POWERTOOLS_LOG_LEVEL="ERROR")
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["statuses"] == [201, 200, 201, 200, 201]
    assert result["clients"] == {"dynamodb": 1}


def test_direct_clients_are_made_once_per_service_and_shared(monkeypatch):
    import botocore.session

    from membership import aws
    from membership.handlers import publisher, settlement

    made = []
    create_client = botocore.session.Session.create_client

    def counting(session, service_name, *args, **kwargs):
        made.append(service_name)
        return create_client(session, service_name, *args, **kwargs)

    monkeypatch.setattr(botocore.session.Session, "create_client", counting)
    aws.reset()
    try:
        assert publisher._events_client() is publisher._events_client()
        assert settlement._sqs_client() is settlement._sqs_client()
        assert aws.client("events") is publisher._events_client()
    finally:
        aws.reset()
    assert sorted(made) == ["events", "sqs"]
