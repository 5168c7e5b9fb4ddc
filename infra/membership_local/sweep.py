"""`membership-local sweep`: what the five-minute schedule does, on demand."""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from .cli import command


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", help="default: the running stack's table")


@command("sweep", "release lapsed holds and pending points whose return window passed",
         _arguments)
def run_sweep(args: argparse.Namespace) -> int:
    from .attach import attach_to_stack

    attach_to_stack(args.table)
    from membership.services.sweeps import sweep

    report = sweep()
    print(json.dumps(asdict(report)))
    return 1 if report.failed else 0
