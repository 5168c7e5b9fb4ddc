"""Every dead-letter queue of template.yaml has a CloudWatch alarm that tells a person.

A dead-letter queue is any queue that something sends its failures to: an SQS queue's
RedrivePolicy, a function's on-failure destination (EventInvokeConfig) or DeadLetterQueue,
an event source's DestinationConfig.OnFailure, or an EventBridge rule's or schedule's
DeadLetterConfig. A message in one is money, points or events that did not land; nobody
notices it unless an alarm fires on the queue's depth and notifies someone.
"""

from __future__ import annotations

from typing import Any

import pytest
from cfn_loader import REPO_ROOT, load, loads

SAM_FUNCTION = "AWS::Serverless::Function"
ALARM = "AWS::CloudWatch::Alarm"
QUEUE = "AWS::SQS::Queue"
DEPTH_METRICS = {"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"}


def _queue_of(value: Any) -> str | None:
    """The logical id a Ref / GetAtt (or a Sub of one) names."""
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return target[0] if isinstance(target, list) else str(target).split(".", 1)[0]
    return None


def dead_letter_queues(template: dict) -> dict[str, list[str]]:
    """Queue logical id -> what sends its failures there."""
    resources = template.get("Resources") or {}
    found: dict[str, list[str]] = {}

    def add(value: Any, why: str) -> None:
        queue = _queue_of(value)
        if queue is not None and (resources.get(queue) or {}).get("Type") == QUEUE:
            found.setdefault(queue, []).append(why)

    for logical_id, resource in resources.items():
        props = resource.get("Properties") or {}
        if resource.get("Type") == QUEUE:
            add((props.get("RedrivePolicy") or {}).get("deadLetterTargetArn"),
                f"{logical_id} RedrivePolicy")
        if resource.get("Type") != SAM_FUNCTION:
            continue
        on_failure = (((props.get("EventInvokeConfig") or {}).get("DestinationConfig") or {})
                      .get("OnFailure") or {})
        add(on_failure.get("Destination"), f"{logical_id} EventInvokeConfig")
        add((props.get("DeadLetterQueue") or {}).get("TargetArn"), f"{logical_id} DLQ")
        for event_id, event in (props.get("Events") or {}).items():
            ev = event.get("Properties") or {}
            add(((ev.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination"),
                f"{logical_id}.{event_id} OnFailure")
            add((ev.get("DeadLetterConfig") or {}).get("Arn"),
                f"{logical_id}.{event_id} DeadLetterConfig")
    return found


def _alarm_queue(alarm: dict) -> str | None:
    props = alarm.get("Properties") or {}
    if props.get("Namespace") != "AWS/SQS" or props.get("MetricName") not in DEPTH_METRICS:
        return None
    for dimension in props.get("Dimensions") or []:
        if dimension.get("Name") == "QueueName":
            return _queue_of(dimension.get("Value"))
    return None


def check_dead_letter_alarms(template: dict) -> list[str]:
    """Each DLQ: an alarm on its depth that fires on the first message and notifies."""
    resources = template.get("Resources") or {}
    alarms: dict[str, list[tuple[str, dict]]] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") == ALARM:
            queue = _alarm_queue(resource)
            if queue is not None:
                alarms.setdefault(queue, []).append((logical_id, resource["Properties"]))
    problems = []
    for queue, senders in sorted(dead_letter_queues(template).items()):
        found = alarms.get(queue)
        if not found:
            problems.append(f"{queue} (dead letters of {', '.join(senders)}) has no alarm")
            continue
        for alarm_id, props in found:
            first_message = {("GreaterThanOrEqualToThreshold", 1), ("GreaterThanThreshold", 0)}
            fires_at = (props.get("ComparisonOperator"), props.get("Threshold"))
            if (props.get("MetricName") == "ApproximateNumberOfMessagesVisible"
                    and fires_at not in first_message):
                problems.append(f"{alarm_id}: must fire on the first message in {queue}")
            if not props.get("AlarmActions"):
                problems.append(f"{alarm_id}: no AlarmActions, so nobody is told")
    return problems


@pytest.fixture(scope="module")
def template() -> dict:
    return load()


def test_the_template_has_dead_letter_queues_to_check(template):
    # Guards the check below from passing vacuously on a template it misread.
    queues = dead_letter_queues(template)
    assert {"PaymentEventsDeadLetterQueue", "OrderEventsDeadLetterQueue",
            "PublisherDeadLetterQueue", "SettlementDeadLetterQueue",
            "SweepDeadLetterQueue"} <= set(queues)


def test_every_dead_letter_queue_has_an_alarm_that_notifies(template):
    problems = check_dead_letter_alarms(template)
    assert not problems, "\n".join(problems)


def test_every_dead_letter_queue_has_an_operator_runbook(template):
    runbook = (REPO_ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    missing = [q for q in dead_letter_queues(template) if f"`{q}`" not in runbook]
    assert not missing, f"docs/operations.md says nothing about {missing}"


# ------------------------------------------------------------- the checker itself

TINY = """
Resources:
  Work:
    Type: AWS::SQS::Queue
    Properties:
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt WorkDlq.Arn
        maxReceiveCount: 3
  WorkDlq:
    Type: AWS::SQS::Queue
  FnDlq:
    Type: AWS::SQS::Queue
  RuleDlq:
    Type: AWS::SQS::Queue
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      EventInvokeConfig:
        DestinationConfig:
          OnFailure:
            Type: SQS
            Destination: !GetAtt FnDlq.Arn
      Events:
        Rule:
          Type: EventBridgeRule
          Properties:
            DeadLetterConfig:
              Arn: !GetAtt RuleDlq.Arn
%s
"""

ALARM_OF = """
  Alarm%(q)s:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Namespace: AWS/SQS
      MetricName: ApproximateNumberOfMessagesVisible
      Dimensions:
        - Name: QueueName
          Value: !GetAtt %(q)s.QueueName
      Threshold: %(threshold)s
      ComparisonOperator: GreaterThanOrEqualToThreshold
      AlarmActions: %(actions)s
"""


def _tiny(*alarms: str) -> dict:
    return loads(TINY % "".join(alarms))


def _alarm(queue: str, threshold: int = 1, actions: str = "[!Ref Topic]") -> str:
    return ALARM_OF % {"q": queue, "threshold": threshold, "actions": actions}


def test_checker_finds_each_kind_of_dead_letter_queue():
    assert set(dead_letter_queues(_tiny())) == {"WorkDlq", "FnDlq", "RuleDlq"}


def test_checker_reports_a_dead_letter_queue_without_an_alarm():
    problems = check_dead_letter_alarms(_tiny(_alarm("WorkDlq"), _alarm("FnDlq")))
    assert len(problems) == 1 and problems[0].startswith("RuleDlq")


def test_checker_accepts_one_alarm_per_dead_letter_queue():
    alarms = [_alarm(q) for q in ("WorkDlq", "FnDlq", "RuleDlq")]
    assert check_dead_letter_alarms(_tiny(*alarms)) == []


def test_checker_wants_the_first_message_to_fire_and_someone_to_be_told():
    problems = check_dead_letter_alarms(_tiny(
        _alarm("WorkDlq", threshold=10), _alarm("FnDlq", actions="[]"), _alarm("RuleDlq")))
    assert any("first message in WorkDlq" in p for p in problems)
    assert any("AlarmFnDlq: no AlarmActions" in p for p in problems)
    assert len(problems) == 2
