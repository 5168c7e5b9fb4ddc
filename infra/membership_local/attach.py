"""Point this process at the running local stack (its table and endpoints), for the
subcommands that work on the stack's data: reconcile, settle, seed."""
from __future__ import annotations

import sys

from .runtime import apply_environment, lambda_environment, stack_parameters
from .template import load_template


def attach_to_stack(table: str | None = None) -> dict:
    """Set the environment the handlers would see inside the running stack."""
    from .cli import read_stack

    stack = read_stack()
    if stack is None:
        print("membership-local: no running stack; start one with `make run`", file=sys.stderr)
        raise SystemExit(2)
    apply_environment(lambda_environment(
        load_template(), table_name=table or stack["table"],
        dynamodb_endpoint=stack["dynamodb_endpoint"], events_endpoint=stack["events_url"],
        event_bus_name=stack["event_bus"], region=stack["region"],
        refs=stack_parameters(stack),
    ))
    return stack
