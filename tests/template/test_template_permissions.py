"""The functions' IAM policies allow what their postings do.

A posting is one TransactWriteItems whose member item is an Update of the fields it
changed (docs/money.md §3), and IAM checks each action inside a transaction as its own
call. DynamoDB Local does not check IAM, so a function allowed to put but not to update
passes every other test and fails its first posting once deployed.
"""
from __future__ import annotations

from typing import Any

import pytest
from cfn_loader import load

TEMPLATE = load()
FUNCTIONS = {logical_id: resource["Properties"]
             for logical_id, resource in TEMPLATE["Resources"].items()
             if resource["Type"] == "AWS::Serverless::Function"}


def _table_actions(value: Any) -> set[str]:
    """Every DynamoDB action a function's inline statements allow."""
    found: set[str] = set()
    if isinstance(value, dict):
        actions = value.get("Action")
        if actions is not None:
            found.update(a for a in ([actions] if isinstance(actions, str) else actions)
                         if isinstance(a, str) and a.startswith("dynamodb:"))
        for inner in value.values():
            found |= _table_actions(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= _table_actions(inner)
    return found


@pytest.mark.parametrize("function_id", sorted(FUNCTIONS))
def test_a_function_that_puts_items_may_update_the_member_item(function_id):
    actions = _table_actions(FUNCTIONS[function_id].get("Policies"))
    if "dynamodb:PutItem" in actions:
        assert "dynamodb:UpdateItem" in actions, (
            f"{function_id} writes postings, whose member item is an Update")
