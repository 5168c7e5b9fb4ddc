"""EventBridge-style pattern matching for stream filters and event rules."""
import pytest

from membership_local.patterns import UnsupportedPattern, matches

RECORD = {
    "eventName": "INSERT",
    "dynamodb": {
        "Keys": {"PK": {"S": "SOURCE#order-1#paid"}, "SK": {"S": "GUARD"}},
        "NewImage": {"amount": {"N": "100"}, "tags": {"L": [{"S": "a"}]}},
    },
}
OUTBOX = {"eventName": ["INSERT"], "dynamodb": {"Keys": {"PK": {"S": [{"prefix": "SOURCE#"}]}}}}


def test_template_outbox_filter():
    assert matches(OUTBOX, RECORD)
    assert not matches(OUTBOX, {**RECORD, "eventName": "MODIFY"})
    other = {"eventName": "INSERT", "dynamodb": {"Keys": {"PK": {"S": "MEMBER#1"}}}}
    assert not matches(OUTBOX, other)
    assert not matches(OUTBOX, {"eventName": "INSERT"})  # nested field missing


def test_exact_values_and_arrays_in_the_event():
    event = {"source": "orders", "detail": {"lines": ["a", "b"], "n": 5, "ok": True, "x": None}}
    assert matches({"source": ["orders", "other"]}, event)
    assert matches({"detail": {"lines": ["b"]}}, event)
    assert matches({"detail": {"n": [5]}}, event)
    assert matches({"detail": {"ok": [True]}}, event)
    assert not matches({"detail": {"n": [True]}}, {"detail": {"n": 1}})
    assert matches({"detail": {"x": [None]}}, event)
    assert not matches({"detail": {"y": [None]}}, event)
    assert matches({}, event)


def test_operators():
    event = {"type": "order.paid", "amount": 120, "region": "CN-North"}
    assert matches({"type": [{"prefix": "order."}]}, event)
    assert matches({"type": [{"suffix": ".paid"}]}, event)
    assert matches({"region": [{"equals-ignore-case": "cn-north"}]}, event)
    assert matches({"type": [{"anything-but": ["order.cancelled"]}]}, event)
    assert not matches({"type": [{"anything-but": "order.paid"}]}, event)
    assert not matches({"type": [{"anything-but": {"prefix": "order."}}]}, event)
    assert matches({"amount": [{"numeric": [">", 100, "<=", 120]}]}, event)
    assert not matches({"amount": [{"numeric": [">", 120]}]}, event)
    assert not matches({"type": [{"numeric": [">", 0]}]}, event)


def test_exists():
    event = {"detail": {"orderId": "o1"}}
    assert matches({"detail": {"orderId": [{"exists": True}]}}, event)
    assert not matches({"detail": {"refundId": [{"exists": True}]}}, event)
    assert matches({"detail": {"refundId": [{"exists": False}]}}, event)
    assert not matches({"detail": {"orderId": [{"exists": False}]}}, event)


def test_or():
    pattern = {"$or": [{"type": ["a"]}, {"kind": ["b"]}]}
    assert matches(pattern, {"kind": "b"})
    assert not matches(pattern, {"type": "b"})


def test_unsupported_operators_fail_loudly():
    with pytest.raises(UnsupportedPattern):
        matches({"type": [{"wildcard": "order.*"}]}, {"type": "order.paid"})
    with pytest.raises(UnsupportedPattern):
        matches({"type": "order.paid"}, {"type": "order.paid"})
