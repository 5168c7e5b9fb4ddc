"""`membership-local backfill-aggregates` (order aggregates for members from before them) and
`backfill-plan-usage` (the paid plans' usage counters for subscriptions from before them)."""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from .cli import command


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", help="default: the running stack's table")
    parser.add_argument("--segments", type=int, default=4)


def _run(args: argparse.Namespace, service: str) -> int:
    """Attach to the stack, run `membership.services.<service>.run`, print its report."""
    import importlib

    from .attach import attach_to_stack

    attach_to_stack(args.table)
    run = importlib.import_module(f"membership.services.{service}").run
    try:
        report = run(args.segments)
    except ValueError as error:  # checkpoints of a run with another --segments
        print(error)
        return 2
    print(json.dumps(asdict(report)))
    return 1 if report.failed else 0


@command("backfill-aggregates",
         "recompute order aggregates and rule tags of members from before them "
         "(idempotent, resumes from its checkpoints)", _arguments)
def run_backfill(args: argparse.Namespace) -> int:
    return _run(args, "backfill")


@command("backfill-plan-usage",
         "count the paid plans' active runs from before the plans' usage counters, so a "
         "plan someone holds cannot be removed (idempotent, resumes from its checkpoints)",
         _arguments)
def run_plan_usage_backfill(args: argparse.Namespace) -> int:
    return _run(args, "plan_usage")
