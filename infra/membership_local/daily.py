"""`membership-local daily`: what the paid plan's daily schedule does, on demand."""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from datetime import date

from .cli import command


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", help="default: the running stack's table")
    parser.add_argument("--date", type=date.fromisoformat,
                        help="the local day to run (YYYY-MM-DD, program time zone); "
                             "default: today")


@command("daily", "issue PLUS monthly packs, renewal notices and lapses that fell due",
         _arguments)
def run_daily(args: argparse.Namespace) -> int:
    from .attach import attach_to_stack

    attach_to_stack(args.table)
    from membership.services.subscription_schedule import run_daily as run

    report = run(on=args.date)
    print(json.dumps(asdict(report)))
    return 1 if report.failed else 0
