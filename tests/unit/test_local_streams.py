"""Stream delivery from DynamoDB Local to the template's stream functions."""
import sys
import textwrap

import pytest

from membership_local.streams import StreamPoller, lambda_record
from membership_local.template import load_template

# A poller reads the table's stream from its start: it must hold this test's records only.
pytestmark = pytest.mark.fresh_table

HANDLERS = textwrap.dedent(
    """
    batches = []
    behaviour = {"mode": "ok", "calls": 0}

    def handler(event, context):
        behaviour["calls"] += 1
        records = event["Records"]
        batches.append(records)
        mode = behaviour["mode"]
        if mode == "fail":
            raise RuntimeError("downstream down")
        if mode == "poison" and any(_pk(r) == "SOURCE#poison" for r in records):
            raise ValueError("poison record")
        if mode == "partial" and behaviour["calls"] == 1 and len(records) > 1:
            return {"batchItemFailures": [
                {"itemIdentifier": records[1]["dynamodb"]["SequenceNumber"]}]}
        if mode == "bad-report":
            return {"batchItemFailures": [{"itemIdentifier": "nope"}]}
        return {"batchItemFailures": []}

    def _pk(record):
        return record["dynamodb"]["Keys"]["PK"]["S"]
    """
)

TEMPLATE = textwrap.dedent(
    """
    Resources:
      Publisher:
        Type: AWS::Serverless::Function
        Properties:
          Handler: stream_fake_handlers.handler
          Timeout: 5
          Events:
            Outbox:
              Type: DynamoDB
              Properties:
                Stream: !GetAtt MembershipTable.StreamArn
                StartingPosition: TRIM_HORIZON
                BatchSize: 10
                MaximumRetryAttempts: 10
                BisectBatchOnFunctionError: true
                FunctionResponseTypes: [ReportBatchItemFailures]
                FilterCriteria:
                  Filters:
                    - Pattern: '{"eventName": ["INSERT"], "dynamodb": {"Keys": {"PK": {"S": [{"prefix": "SOURCE#"}]}}}}'
    """
)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    (tmp_path / "stream_fake_handlers.py").write_text(HANDLERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "stream_fake_handlers", raising=False)
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    import stream_fake_handlers

    return load_template(tmp_path / "template.yaml"), stream_fake_handlers


@pytest.fixture
def poller_for(dynamodb_local, fake):
    started = []

    def make(table_name, **kwargs):
        poller = StreamPoller(fake[0], endpoint=dynamodb_local.endpoint, table_name=table_name,
                              retry_delay=0.001, **kwargs)
        started.append(poller)
        return poller

    yield make
    for poller in started:
        poller.stop()


def record(pk, sequence, event_name="INSERT"):
    return {
        "eventID": f"id-{sequence}",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {"Keys": {"PK": {"S": pk}, "SK": {"S": "X"}}, "NewImage": {},
                     "SequenceNumber": str(sequence), "SizeBytes": 10,
                     "StreamViewType": "NEW_IMAGE"},
        "eventSourceARN": "arn:stream",
    }


def put(client, table, pk, **attrs):
    item = {"PK": {"S": pk}, "SK": {"S": "X"}, **{k: {"S": v} for k, v in attrs.items()}}
    client.put_item(TableName=table, Item=item)


def test_inserts_matching_the_filter_reach_the_function(table, dynamodb_local, fake, poller_for):
    _, handlers = fake
    client = dynamodb_local.client()
    put(client, table, "SOURCE#before-start", note="trim horizon")
    poller = poller_for(table).start()
    put(client, table, "SOURCE#order-1", note="n", blob="b")
    put(client, table, "MEMBER#m1")
    put(client, table, "SOURCE#order-1", note="changed")  # MODIFY: filtered out
    client.put_item(TableName=table, Item={"PK": {"S": "SOURCE#bin"}, "SK": {"S": "X"},
                                           "raw": {"B": b"\x00\x01"}, "empty": {"M": {}}})
    assert poller.drain(timeout=20)
    delivered = [r for batch in handlers.batches for r in batch]
    keys = [r["dynamodb"]["Keys"]["PK"]["S"] for r in delivered]
    assert keys == ["SOURCE#before-start", "SOURCE#order-1", "SOURCE#bin"]
    first = delivered[1]
    assert first["eventName"] == "INSERT"
    assert first["eventVersion"] == "1.1"
    assert first["eventSource"] == "aws:dynamodb"
    assert first["awsRegion"] == "us-east-1"
    assert first["eventSourceARN"] == poller.stream_arn
    assert first["dynamodb"]["StreamViewType"] == "NEW_IMAGE"
    assert first["dynamodb"]["NewImage"]["note"] == {"S": "n"}
    assert isinstance(first["dynamodb"]["ApproximateCreationDateTime"], int)
    assert {"SequenceNumber", "SizeBytes", "Keys"} <= first["dynamodb"].keys()
    assert delivered[2]["dynamodb"]["NewImage"]["raw"] == {"B": "AAE="}  # base64, as in Lambda
    assert delivered[2]["dynamodb"]["NewImage"]["empty"] == {"M": {}}
    assert poller.dlq == []


def test_failing_function_is_retried_then_dead_lettered(fake, poller_for):
    _, handlers = fake
    handlers.behaviour["mode"] = "fail"
    poller = poller_for("unused", max_retries=2)
    poller.deliver([record("SOURCE#a", 1)])
    assert handlers.behaviour["calls"] == 3  # first try + 2 retries
    (failure,) = poller.dlq
    assert failure.function_id == "Publisher"
    assert failure.error == "RuntimeError: downstream down"
    message = failure.destination_message()
    assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert message["DDBStreamBatchInfo"]["startSequenceNumber"] == "1"


def test_partial_batch_failure_retries_from_the_failed_record(fake, poller_for):
    _, handlers = fake
    handlers.behaviour["mode"] = "partial"
    poller = poller_for("unused")
    poller.deliver([record("SOURCE#a", 1), record("SOURCE#b", 2), record("SOURCE#c", 3)])
    sequences = [[r["dynamodb"]["SequenceNumber"] for r in b] for b in handlers.batches]
    assert sequences == [["1", "2", "3"], ["2", "3"]]
    assert poller.dlq == []


def test_bisection_isolates_a_poison_record(fake, poller_for):
    _, handlers = fake
    handlers.behaviour["mode"] = "poison"
    poller = poller_for("unused", max_retries=3)
    batch = [record("SOURCE#ok1", 1), record("SOURCE#poison", 2), record("SOURCE#ok3", 3),
             record("SOURCE#ok4", 4)]
    poller.deliver(batch)
    (failure,) = poller.dlq
    assert [r["dynamodb"]["Keys"]["PK"]["S"] for r in failure.records] == ["SOURCE#poison"]
    succeeded = [b for b in handlers.batches
                 if all(r["dynamodb"]["Keys"]["PK"]["S"] != "SOURCE#poison" for r in b)]
    assert sorted(r["dynamodb"]["SequenceNumber"] for b in succeeded for r in b) == ["1", "3", "4"]


def test_invalid_batch_item_failures_fail_the_whole_batch(fake, poller_for):
    _, handlers = fake
    handlers.behaviour["mode"] = "bad-report"
    poller = poller_for("unused", max_retries=0)
    poller.deliver([record("SOURCE#a", 1)])
    assert "invalid batchItemFailures" in poller.dlq[0].error


def test_batches_respect_batch_size_and_filters(fake, poller_for):
    _, handlers = fake
    poller = poller_for("unused")
    records = [record(f"SOURCE#{i}", i) for i in range(25)] + [record("MEMBER#1", 99)]
    poller.deliver(records)
    assert [len(b) for b in handlers.batches] == [10, 10, 5]


def test_table_without_stream_degrades_with_a_warning(dynamodb_local, fake, poller_for, capsys):
    client = dynamodb_local.client()
    client.create_table(TableName="no-stream", BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
                        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}])
    poller = poller_for("no-stream").start()
    assert not poller.running
    assert "has no stream" in capsys.readouterr().err
    assert poller.drain(timeout=0.1) is False


def test_lambda_record_converts_binary_sets_and_nested_values():
    raw = {"eventID": "e", "eventName": "INSERT", "awsRegion": "ddblocal",
           "dynamodb": {"Keys": {"PK": {"S": "A"}},
                        "NewImage": {"m": {"M": {"b": {"B": b"\x01"}}}, "empty": {},
                                     "l": {"L": [{"BS": [b"\x02"]}, {"N": "1"}]}},
                        "SequenceNumber": "7", "SizeBytes": 3, "StreamViewType": "NEW_IMAGE"}}
    converted = lambda_record(raw, "us-east-1", "arn:s")
    assert converted["awsRegion"] == "us-east-1"
    assert converted["dynamodb"]["NewImage"] == {
        "m": {"M": {"b": {"B": "AQ=="}}}, "empty": {"M": {}},
        "l": {"L": [{"BS": ["Ag=="]}, {"N": "1"}]}}
