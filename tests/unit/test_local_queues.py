"""The local stack's SQS: the real botocore calls in, the template's SQS sources out."""
from __future__ import annotations

import json
import threading

import botocore.session
import pytest
import yaml

from membership_local.queues import LocalQueues, queue_refs, queue_sources, queue_specs
from membership_local.template import _CfnLoader, load_template

TEMPLATE = """
Resources:
  Work:
    Type: AWS::SQS::Queue
    Properties:
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt WorkDead.Arn
        maxReceiveCount: 3
  WorkDead:
    Type: AWS::SQS::Queue
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      Handler: fake.worker
      Events:
        Jobs:
          Type: SQS
          Properties:
            Queue: !GetAtt Work.Arn
            BatchSize: 2
            FunctionResponseTypes: [ReportBatchItemFailures]
"""


class FakeHandlers:
    """What the stack's Handlers does: invoke a function by its dotted name."""

    def __init__(self, fn):
        self.fn = fn

    def invoke(self, dotted, event, context):
        assert dotted == "fake.worker"
        return self.fn(event, context)


@pytest.fixture
def stack(tmp_path):
    started = []

    def start(fn):
        queues = LocalQueues(yaml.load(TEMPLATE, Loader=_CfnLoader), port=0,
                             handlers=FakeHandlers(fn), dlq_path=tmp_path / "dlq.jsonl",
                             redelivery_delay=0.01).start()
        started.append(queues)
        client = botocore.session.get_session().create_client(
            "sqs", region_name="us-east-1", endpoint_url=queues.url,
            aws_access_key_id="x", aws_secret_access_key="x")
        return queues, client

    yield start
    for queues in started:
        queues.stop()


def test_the_templates_queues_and_sources_are_found():
    template = load_template()
    specs = queue_specs(template)
    assert specs["GrantQueue"].dead_letter == "GrantDeadLetterQueue"
    assert specs["GrantQueue"].max_receive_count == 5
    sources = {s.function_id: s for s in queue_sources(template)}
    assert sources["GrantWorkerFunction"].queue == "GrantQueue"
    assert sources["GrantWorkerFunction"].report_batch_item_failures
    assert sources["SettlementWorkerFunction"].queue == "SettlementQueue"
    refs = queue_refs(template, "http://127.0.0.1:9")
    assert refs["GrantQueue"] == "http://127.0.0.1:9/123456789012/GrantQueue"


def test_messages_sent_with_botocore_reach_the_function_in_batches_of_at_most_batch_size(stack):
    batches = []
    queues, sqs = stack(lambda event, ctx: batches.append(
        [json.loads(r["body"]) for r in event["Records"]]) or {"batchItemFailures": []})
    url = queues.queue_url("Work")
    answer = sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": str(n), "MessageBody": json.dumps({"n": n})} for n in range(5)])
    assert len(answer["Successful"]) == 5 and not answer.get("Failed")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": 5}))
    assert queues.drain(10)
    assert sorted(m["n"] for batch in batches for m in batch) == list(range(6))
    # How many a poll finds depends on timing; never more than the mapping's BatchSize.
    assert 1 <= max(len(b) for b in batches) <= 2


def test_reported_failures_come_back_and_then_go_to_the_dead_letter_queue(stack, tmp_path):
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def worker(event, ctx):
        failures = []
        for r in event["Records"]:
            body = json.loads(r["body"])
            with lock:
                seen[body["id"]] = seen.get(body["id"], 0) + 1
            if body["id"] == "poison" or (body["id"] == "flaky" and seen["flaky"] < 2):
                failures.append({"itemIdentifier": r["messageId"]})
        return {"batchItemFailures": failures}

    queues, sqs = stack(worker)
    url = queues.queue_url("Work")
    for name in ("ok", "flaky", "poison"):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"id": name}))
    assert queues.drain(10)
    assert seen == {"ok": 1, "flaky": 2, "poison": 3}
    assert queues.depth("WorkDead") == 1
    [record] = [json.loads(line) for line in (tmp_path / "dlq.jsonl").read_text().splitlines()]
    assert (record["queue"], record["receiveCount"]) == ("Work", 3)


def test_a_raising_function_fails_the_whole_batch(stack):
    calls = []

    def worker(event, ctx):
        calls.append(len(event["Records"]))
        if len(calls) == 1:
            raise RuntimeError("cold start went wrong")
        return {"batchItemFailures": []}

    queues, sqs = stack(worker)
    sqs.send_message(QueueUrl=queues.queue_url("Work"), MessageBody="{}")
    assert queues.drain(10)
    assert calls == [1, 1]


def test_an_unknown_queue_is_the_sqs_error(stack):
    queues, sqs = stack(lambda event, ctx: None)
    with pytest.raises(sqs.exceptions.ClientError) as refused:
        sqs.send_message(QueueUrl=f"{queues.url}/123456789012/Nope", MessageBody="x")
    assert "Nope" in str(refused.value)
