"""`membership-local reconcile [--member ID]`: check that ledgers add up; non-zero on a breach."""
from __future__ import annotations

import argparse
import sys

from .cli import command


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--member", help="one member id (default: every member)")
    parser.add_argument("--table", help="default: the running stack's table")


def member_ids() -> list[str]:
    from membership.storage.models import MemberItem

    return [item.member_id for item in MemberItem.scan(
        MemberItem.SK == "MEMBER", attributes_to_get=["memberId"])]


def run_reconcile(ids: list[str]) -> int:
    """Prints each breach; returns how many members breach."""
    from membership.services.ledger import reconcile_member

    bad = 0
    for member_id in ids:
        breaches = reconcile_member(member_id)
        if breaches:
            bad += 1
            for b in breaches:
                print(f"{member_id}: {b.check} expected {b.expected}, found {b.actual}")
    return bad


@command("reconcile", "check every member's balances against entries and lots", _arguments)
def reconcile(args: argparse.Namespace) -> int:
    from .attach import attach_to_stack

    attach_to_stack(args.table)
    ids = [args.member] if args.member else member_ids()
    bad = run_reconcile(ids)
    print(f"reconciled {len(ids)} member(s): {bad} with breaches", file=sys.stderr)
    return 1 if bad else 0
