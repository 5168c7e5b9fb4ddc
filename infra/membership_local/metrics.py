"""`membership-local metrics --period YYYY-MM`: the program's metrics of a month."""
from __future__ import annotations

import argparse
import json

from .cli import command


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--period", required=True, help="YYYY-MM")
    parser.add_argument("--table", help="default: the running stack's table")


@command("metrics", "the program's metrics of a month (docs/metrics.md)", _arguments)
def run_metrics(args: argparse.Namespace) -> int:
    from .attach import attach_to_stack

    attach_to_stack(args.table)
    from membership.services.metrics import metrics

    print(json.dumps(metrics(args.period).model_dump(mode="json", by_alias=True), indent=2))
    return 0
