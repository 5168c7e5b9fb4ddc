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


@command("backfill-aggregates",
         "recompute order aggregates and rule tags of members from before them "
         "(idempotent, resumes from its checkpoints)", _arguments)
def run_backfill(args: argparse.Namespace) -> int:
    from .attach import attach_to_stack

    attach_to_stack(args.table)
    from membership.services.backfill import run

    try:
        report = run(args.segments)
    except ValueError as error:  # checkpoints of a run with another --segments
        print(error)
        return 2
    print(json.dumps(asdict(report)))
    return 1 if report.failed else 0


@command("backfill-plan-usage",
         "count the paid plans' active runs from before the plans' usage counters, so a "
         "plan someone holds cannot be removed (idempotent, resumes from its checkpoints)",
         _arguments)
def run_plan_usage_backfill(args: argparse.Namespace) -> int:
    from .attach import attach_to_stack

    attach_to_stack(args.table)
    from membership.services.plan_usage import run

    try:
        report = run(args.segments)
    except ValueError as error:  # checkpoints of a run with another --segments
        print(error)
        return 2
    print(json.dumps(asdict(report)))
    return 1 if report.failed else 0
