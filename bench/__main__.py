"""Run every bench section, write bench/report.md and print it."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from bench import coldstart
from bench.operations import BenchContext, Check, Outcome

REPORT = Path(__file__).resolve().parent / "report.md"


def _row(*cells: object, width: int = 10) -> str:
    padded = [str(c).replace("|", "\\|") for c in cells] + [""] * (width - len(cells))
    return "| " + " | ".join(padded) + " |"


def _fmt_units(value: float, known: bool) -> str:
    return f"{value:g}" if known else "n/a"


def _operations_section(checks: list[Check], only: str | None = None
                        ) -> tuple[list[str], list[Outcome]]:
    lines = ["## DynamoDB calls per operation", ""]
    try:
        from membership_local.dynamodb import free_port, start_dynamodb
        from membership_local.template import create_table
    except ImportError as exc:
        return [*lines, f"not available yet: local DynamoDB helpers missing ({exc})"], []

    from bench import operations
    from bench.dynamo import DynamoDBCallCounter

    operations.load_operation_modules()

    counter = DynamoDBCallCounter()
    # Before any handler module is imported, so every client it creates is counted.
    counter.install()
    db = start_dynamodb(free_port())
    try:
        table = f"membership-bench-{uuid.uuid4().hex[:8]}"
        create_table(db.endpoint, table)
        _handler_environment(db.endpoint, table)
        ctx = BenchContext(db.endpoint, db.backend, table, counter)
        outcomes = operations.run(ctx, only)
    finally:
        db.stop()
        counter.uninstall()
    checks.extend(ctx.checks)

    lines += [
        (
            f"Through the real handlers with API Gateway v2 events, against {db.backend} "
            "(ReturnConsumedCapacity=TOTAL). Counted after a first call has warmed the "
            "process's caches; that first call is shown apart."
        ),
        "",
        _row(
            "operation",
            "route",
            "reads",
            "writes",
            "items written",
            "other",
            "RCU",
            "WCU",
            "calls",
            "first call in process",
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for outcome in outcomes:
        op = outcome.operation
        route = f"`{op.route}`" if op.route else ""
        calls = outcome.calls
        if outcome.status != "ok":
            lines.append(_row(op.name, route, outcome.status))
        elif calls is None:
            lines.append(_row(op.name, route, "(no call counts)"))
        else:
            known = calls.capacity_known
            first = outcome.first_calls.summary() if outcome.first_calls else ""
            lines.append(
                _row(
                    op.name,
                    route,
                    calls.reads,
                    calls.writes,
                    calls.items_written,
                    calls.other,
                    _fmt_units(calls.read_units, known),
                    _fmt_units(calls.write_units, known),
                    calls.summary(),
                    first,
                )
            )
        for note in outcome.notes:
            lines.append(_row("", f"↳ {note}"))
    lines += _capacity_caveat(outcomes)
    return lines, outcomes


def _capacity_caveat(outcomes: list[Outcome]) -> list[str]:
    """DynamoDB charges 2 WCU per item (per KB) in a transaction; say when the backend did not."""
    transactions = short = 0
    example = ""
    for outcome in outcomes:
        for call in outcome.calls.calls if outcome.calls else []:
            if call.operation != "TransactWriteItems":
                continue
            transactions += 1
            if call.write_units < 2 * call.items:
                short += 1
                example = example or (
                    f"{outcome.operation.name}: {call.items} items, {call.write_units:g} WCU"
                )
    if not short:
        return []
    return [
        "",
        (
            f"Note: for {short} of {transactions} transactions the backend reported less write "
            "capacity than DynamoDB charges (2 WCU per item per KB in a transaction), e.g. "
            f"{example}. Judge WCU per item from the items column."
        ),
    ]


def _handler_environment(endpoint: str, table: str) -> None:
    """The functions' environment from template.yaml, pointed at the local table."""
    from membership_local.runtime import LOCAL_PARAMETERS
    from membership_local.template import function_environment, load_template

    template = load_template()
    overrides = {**LOCAL_PARAMETERS, "MembershipTable": table, "MembershipEventBus": "membership"}
    env = function_environment(template, overrides)
    # The top-up benches pay with "test-" references: the local verifier, as the stack has.
    env.update(function_environment(template, overrides, "TopupsFunction"))
    os.environ.update(env)
    os.environ.update(
        AWS_ENDPOINT_URL_DYNAMODB=endpoint,
        TABLE_NAME=table,
        # No X-Ray daemon here, and metrics/logs would only pollute the report.
        POWERTOOLS_TRACE_DISABLED="true",
        POWERTOOLS_METRICS_DISABLED="true",
        POWERTOOLS_LOG_LEVEL="ERROR",
    )


def _targets_section(checks: list[Check]) -> list[str]:
    lines = ["## Targets", "", "| measure | value | target | |", "|---|---:|---:|---|"]
    for check in checks:
        verdict = "PASS" if check.ok else "MISS"
        lines.append(
            f"| {check.measure} | {check.value:g} | {check.op} {check.target:g} | {verdict} |"
        )
    if not checks:
        lines.append("| (nothing measured) | | | |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--skip-coldstart", "--skip-imports", action="store_true",
                        help="skip the cold-start runs (and the sam build of the sizes)")
    parser.add_argument("--coldstart-runs", type=int, default=coldstart.RUNS,
                        help="fresh processes per cold-start cell (median)")
    parser.add_argument("--only", metavar="NAME",
                        help="run only the operations whose name contains NAME")
    parser.add_argument("--callgrind", action="store_true",
                        help="also count the built cold starts' CPU instructions (slow)")
    args = parser.parse_args(argv)

    from membership_local.runtime import isolate_from_aws

    isolate_from_aws()  # before any client exists
    from membership_local.template import load_template

    started = time.monotonic()
    checks: list[Check] = []
    sections: list[list[str]] = []
    if not args.skip_coldstart:
        sections.append(coldstart.run(load_template(), checks, runs=args.coldstart_runs,
                                      callgrind=args.callgrind))
    op_lines, outcomes = _operations_section(checks, args.only)
    sections.append(op_lines)
    sections.insert(
        0,
        [
            "# Membership bench",
            "",
            (
                f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}, Python {platform.python_version()} "
                f"({platform.machine()}), {time.monotonic() - started:.0f} s."
            ),
        ],
    )
    sections.append(_targets_section(checks))

    report = "\n\n".join("\n".join(s) for s in sections) + "\n"
    REPORT.write_text(report, encoding="utf-8")
    print(report)

    errors = [o for o in outcomes if o.status.startswith("error")]
    missed = [c for c in checks if not c.ok]
    if errors:
        print(f"{len(errors)} operation(s) failed; see the report.", file=sys.stderr)
        return 1
    if missed and args.strict:
        print(f"{len(missed)} target(s) missed.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
