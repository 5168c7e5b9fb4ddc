"""Cold starts: every function's import and first invocation, against `import boto3`.

For each function of template.yaml, fresh interpreters import its handler module and
invoke it once with a representative event against DynamoDB Local (SQS and EventBridge
on moto), as a Lambda cold start does. The baseline, in the same run and interleaved
with them, is `import boto3` + `boto3.client("dynamodb")` + one GetItem. Reported as
ratios of medians:

- import ÷ `import boto3`;
- cold total (import + first invocation) ÷ (`import boto3` + client + GetItem);

twice: from source (the dev virtualenv) and from the built artifact, i.e. the Makefiles
`sam build` runs (layers/, functions/) with the runtime's python3.12 and this machine's
wheels, run with python3.12 on the sys.path Lambda gives (the function, then the
layer) and the AWS SDK as the runtime ships it, never writing bytecode (Lambda's file
system is read-only: a module without its .pyc is compiled at every cold start).

Then the package sizes from a real `sam build` (arm64), and whether every .py it ships
has its checked-hash .pyc. With --callgrind, CPU instruction counts of the built
artifact's cold starts too, which do not drift with the machine's load.
"""

from __future__ import annotations

import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.operations import Check

REPO_ROOT = Path(__file__).resolve().parents[1]
PROBE = (Path(__file__).resolve().parent / "coldstart_probe.py").read_text(encoding="utf-8")
RUNS = 7
# Reference points, sampled like the functions: probe target → what the row says.
REFERENCES = {
    "boto3": "baseline: `import boto3` + client + GetItem",
    "libraries": "floor: pynamodb + pydantic (one model) + client + GetItem",
    "powertools": "floor + Powertools (Logger, Metrics, Tracer, HTTP resolver)",
}
COLD_TOTAL_TARGET = 1.3
PACKAGE_MB_TARGET = 15.0
QUEUE = "membership-settlement"
BUS = "membership"
MB = 1_000_000


@dataclass
class Series:
    """Samples of one target in one mode, one per fresh process: import and first
    invocation, in wall-clock ms and in the process's CPU ms."""

    imports: list[float] = field(default_factory=list)
    firsts: list[float] = field(default_factory=list)
    cpu_imports: list[float] = field(default_factory=list)
    cpu_firsts: list[float] = field(default_factory=list)
    error: str | None = None

    def import_ms(self, cpu: bool = False) -> float:
        return statistics.median(self.cpu_imports if cpu else self.imports)

    def total_ms(self, cpu: bool = False) -> float:
        imports, firsts = (self.cpu_imports, self.cpu_firsts) if cpu else (self.imports,
                                                                           self.firsts)
        return statistics.median(i + f for i, f in zip(imports, firsts, strict=True))


@dataclass
class Scenario:
    name: str
    function_id: str
    handler: str
    events: list[Path]
    waited_for: bool = False  # behind the HTTP API: a member or an operator waits
    series: dict[str, Series] = field(default_factory=dict)  # by mode


@dataclass
class Mode:
    """How a cold start runs: the interpreter, its flags and its environment."""

    name: str
    python: str
    flags: list[str]
    env_extra: dict[str, str]


# ---- environment ---------------------------------------------------------------------


def lambda_environment(template: dict, function_id: str | None) -> dict[str, str]:
    """What a Lambda process sees at init: template variables plus the runtime's own."""
    from membership_local.template import function_environment

    name = function_id or "bench"
    env = {
        # A clean base: nothing from the caller's shell (profiles, endpoints) leaks in.
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
    }
    # The deployed default verifies no payment at all (fail closed): the top-up probe pays
    # with test references, as the local stack does.
    overrides = {"MembershipTable": "membership", "MembershipEventBus": BUS,
                 "PaymentVerifier": "membership.services.payments.TestReferenceVerifier"}
    env.update(function_environment(template, overrides, function_id))
    return env


@dataclass
class Stack:
    dynamodb_endpoint: str
    moto_endpoint: str
    table: str
    queue_url: str

    def endpoints(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb_endpoint,
            "AWS_ENDPOINT_URL_SQS": self.moto_endpoint,
            "AWS_ENDPOINT_URL_EVENTBRIDGE": self.moto_endpoint,
            "TABLE_NAME": self.table,
            "EVENT_BUS_NAME": BUS,
            "SETTLEMENT_QUEUE_URL": self.queue_url,
        }


@contextmanager
def local_stack() -> Iterator[Stack]:
    """DynamoDB Local with the template's table; moto for the SQS queue and the bus."""
    import botocore.session
    from moto.server import ThreadedMotoServer

    from membership_local.dynamodb import free_port, start_dynamodb
    from membership_local.template import create_table

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    db = start_dynamodb(free_port())
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    try:
        table = f"membership-cold-{uuid.uuid4().hex[:8]}"
        create_table(db.endpoint, table)
        endpoint = f"http://127.0.0.1:{port}"
        session = botocore.session.get_session()
        sqs = session.create_client("sqs", region_name="us-east-1", endpoint_url=endpoint)
        queue_url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
        events = session.create_client("events", region_name="us-east-1", endpoint_url=endpoint)
        events.create_event_bus(Name=BUS)
        yield Stack(db.endpoint, endpoint, table, queue_url)
    finally:
        moto.stop()
        db.stop()


# ---- the artifact --------------------------------------------------------------------


def build_artifact(root: Path, python: str) -> list[str]:
    """The function and its layer as `sam build` makes them (this machine's wheels), and
    the AWS SDK as the runtime ships it; returns the sys.path a Lambda process has."""
    from membership_local.build import build_here

    built = build_here(root / "build")
    runtime = root / "runtime"
    proc = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--target", str(runtime), "boto3"],
        capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"installing the runtime's boto3 failed: {proc.stderr[-2000:]}")
    return [*built.sys_path(), str(runtime)]


# ---- sampling ------------------------------------------------------------------------


_LINE = re.compile(r"^@@cold (\S+) (\S+) (\S+) (\S+) (\S+)$", re.MULTILINE)


def _probe(mode: Mode, env: dict[str, str], target: str, event: Path | None,
           cwd: Path) -> tuple[float, float, float, float, str]:
    argv = [mode.python, *mode.flags, "-c", PROBE, target]
    if event is not None:
        argv.append(str(event))
    proc = subprocess.run(argv, env={**env, **mode.env_extra}, cwd=cwd, capture_output=True,
                          text=True, timeout=300, check=False)
    found = _LINE.search(proc.stdout)
    if proc.returncode != 0 or not found:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"exit {proc.returncode}: {tail}")
    return (float(found.group(1)), float(found.group(2)), float(found.group(3)),
            float(found.group(4)), found.group(5))


def _sample(series: Series, mode: Mode, env: dict[str, str], target: str, event: Path | None,
            cwd: Path, keep: bool) -> None:
    if series.error:
        return
    try:
        imported, first, cpu_imported, cpu_first, outcome = _probe(mode, env, target, event,
                                                                   cwd)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        series.error = str(exc)
        return
    if outcome != "ok":
        series.error = f"first invocation answered {outcome}"
    elif keep:
        series.imports.append(imported)
        series.firsts.append(first)
        series.cpu_imports.append(cpu_imported)
        series.cpu_firsts.append(cpu_first)


# ---- instruction counts --------------------------------------------------------------


def _instructions(argv: list[str], env: dict[str, str], cwd: Path) -> int:
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=1800, check=False)
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"callgrind failed: {proc.stderr.strip()[-300:]}")
    return int(found.group(1))


def _callgrind(mode: Mode, envs: dict[str, dict[str, str]], scenarios: list[Scenario],
               baseline_event: Path, cwd: Path) -> list[str]:
    """Instructions of each cold start (less the bare interpreter's), built artifact."""
    base_env = {**envs["baseline"], **mode.env_extra}
    bare = _instructions([mode.python, *mode.flags, "-c", "pass"], base_env, cwd)

    def count(env: dict[str, str], target: str, event: Path | None) -> float:
        argv = [mode.python, *mode.flags, "-c", PROBE, target, *([str(event)] if event else [])]
        return (_instructions(argv, {**env, **mode.env_extra}, cwd) - bare) / 1e6

    boto_import = count(envs["baseline"], "boto3", None)
    boto_total = count(envs["baseline"], "boto3", baseline_event)
    lines = [
        "",
        "Instruction counts (valgrind callgrind, million instructions, the interpreter's "
        "own start-up subtracted), built artifact, one process each:",
        "",
        "| function | first invocation | import | ÷ boto3 | cold total | ÷ baseline |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for target, label in REFERENCES.items():
        name, _, what = label.partition(": ")
        try:
            imported = count(envs["baseline"], target, None) if target != "boto3" \
                else boto_import
            total = count(envs["baseline"], target, baseline_event) if target != "boto3" \
                else boto_total
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            lines.append(f"| {name} | {what} | failed: {exc} | | | |")
            continue
        lines.append(f"| {name} | {what} | {imported:.0f} | {imported / boto_import:.2f} | "
                     f"{total:.0f} | {total / boto_total:.2f} |")
    for sc in scenarios:
        try:
            imported = count(envs[sc.function_id], sc.handler, None)
            total = count(envs[sc.function_id], sc.handler, sc.events[-1]) if sc.events else 0
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            lines.append(f"| {sc.function_id} | {sc.name} | failed: {exc} | | | |")
            continue
        lines.append(f"| {sc.function_id} | {sc.name} | {imported:.0f} | "
                     f"{imported / boto_import:.2f} | {total:.0f} | {total / boto_total:.2f} |")
    return lines


# ---- sizes and bytecode --------------------------------------------------------------


def _uncompiled(root: Path) -> list[str]:
    """.py files under `root` without a checked-hash cpython-312 .pyc beside them."""
    missing = []
    for source in root.rglob("*.py"):
        pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-312.pyc"
        if not pyc.is_file() or int.from_bytes(pyc.read_bytes()[4:8], "little") != 0b11:
            missing.append(str(source.relative_to(root)))
    return missing


def _sizes_section(template: dict, checks: list[Check], work: Path) -> list[str]:
    from membership_local.build import function_layers, sam_build, tree_bytes

    lines = ["### Packages (`sam build`, arm64)", ""]
    sam = os.environ.get("SAM_CLI") or str(REPO_ROOT / ".venv-sam" / "bin" / "sam")
    if not Path(sam).is_file():
        checks.append(Check("sam build for the package sizes (SAM CLI missing)", 1, "==", 0))
        return [*lines, f"SAM CLI not found at {sam}: run `make bench`, which installs it."]
    build_dir = sam_build(work / "sam", sam)
    layer_bytes = {p.name: tree_bytes(p) for p in build_dir.iterdir()
                   if p.is_dir() and (p / "python").is_dir()}
    default = function_layers(template)
    traced = function_layers(template, {"DetailedTracing": "true"})
    lines += [
        "Unzipped bytes: the function's own package plus the layers it loads (each shared "
        "layer is one upload for every function).",
        "",
        "| package | MB | .py without checked-hash .pyc |",
        "|---|---:|---:|",
    ]
    uncompiled = 0
    for name, size in sorted(layer_bytes.items()):
        missing = _uncompiled(build_dir / name)
        uncompiled += len(missing)
        lines.append(f"| layer {name} | {size / MB:.2f} | {len(missing)} |")
    heaviest = heaviest_traced = 0.0
    code_sizes = set()
    for function_id in sorted(default):
        code = tree_bytes(build_dir / function_id)
        code_sizes.add(code)
        missing = _uncompiled(build_dir / function_id)
        uncompiled += len(missing)
        total = code + sum(layer_bytes.get(lid, 0) for lid in default[function_id])
        total_traced = code + sum(layer_bytes.get(lid, 0) for lid in traced[function_id])
        heaviest = max(heaviest, total / MB)
        heaviest_traced = max(heaviest_traced, total_traced / MB)
        if len(missing):
            lines.append(f"| {function_id} (code only) | {code / MB:.2f} | {len(missing)} |")
    lines += [
        f"| each function's code ({len(default)} functions) | "
        f"{max(code_sizes) / MB:.2f} | (in the total below) |",
        f"| function + layers, heaviest (default) | {heaviest:.2f} | |",
        f"| function + layers, heaviest (DetailedTracing=true) | {heaviest_traced:.2f} | |",
    ]
    checks.append(Check("unzipped MB per function, its layers included", round(heaviest, 2),
                        "<=", PACKAGE_MB_TARGET))
    checks.append(Check(".py shipped without a checked-hash .pyc", uncompiled, "==", 0))
    return lines


# ---- the section ---------------------------------------------------------------------


def _fmt(ms: float, base: float) -> str:
    return f"{ms:.0f} ms, {ms / base:.2f}"


def run(template: dict, checks: list[Check], runs: int = RUNS,
        callgrind: bool = False) -> list[str]:
    from membership_local.build import require_python

    python312 = require_python()
    lines = ["## Cold start", ""]
    with tempfile.TemporaryDirectory(prefix="membership-cold-") as tmp:
        work = Path(tmp)
        sys_path = build_artifact(work / "artifact", python312)
        scratch = work / "cwd"  # the probes' cwd: nothing importable in it
        scratch.mkdir()
        modes = [
            Mode("source", sys.executable, [], {
                "PYTHONPATH": str(REPO_ROOT / "functions"),
                "LAMBDA_TASK_ROOT": str(REPO_ROOT / "functions")}),
            Mode("built", python312, ["-S"], {
                "PYTHONPATH": os.pathsep.join(sys_path), "LAMBDA_TASK_ROOT": sys_path[0],
                "PYTHONDONTWRITEBYTECODE": "1"}),
        ]
        with local_stack() as stack:
            seeded = _seed(template, stack, work, runs + 1)
            baseline_env = {**lambda_environment(template, None), **stack.endpoints(),
                            "BASELINE_KEY": json.dumps(seeded["baseline_key"])}
            scenarios = _scenarios(template, seeded, work)
            envs = {"baseline": baseline_env}
            for sc in scenarios:
                envs[sc.function_id] = {**lambda_environment(template, sc.function_id),
                                        **stack.endpoints()}
            references = {m.name: {t: Series() for t in REFERENCES} for m in modes}
            for sc in scenarios:
                sc.series = {m.name: Series() for m in modes}
            # Round-robin, so load from anything else on the machine hits every target
            # alike; round 0 is not kept (it warms DynamoDB Local and the file cache).
            for round_number in range(runs + 1):
                keep = round_number > 0
                for mode in modes:
                    for target, series in references[mode.name].items():
                        _sample(series, mode, baseline_env, target, Path("-"), scratch, keep)
                    for sc in scenarios:
                        event = sc.events[round_number] if sc.events else None
                        _sample(sc.series[mode.name], mode, envs[sc.function_id], sc.handler,
                                event, scratch, keep)
            lines += _cold_table(modes, references, scenarios, runs, checks)
            if callgrind:
                lines += _callgrind(modes[1], envs, scenarios, Path("-"), scratch)
        lines += ["", *_sizes_section(template, checks, work)]
    return lines


def _seed(template: dict, stack: Stack, work: Path, count: int) -> dict:
    from membership_local.runtime import lambda_environment as stack_environment

    env = stack_environment(template, table_name=stack.table,
                            dynamodb_endpoint=stack.dynamodb_endpoint,
                            events_endpoint=stack.moto_endpoint)
    env.update(stack.endpoints(), PATH=os.environ.get("PATH", "/usr/bin:/bin"),
               PYTHONPATH=str(REPO_ROOT / "functions"), POWERTOOLS_LOG_LEVEL="ERROR")
    out = work / "seed.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.coldstart_seed", str(out), str(count)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"seeding the cold-start data failed:\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text(encoding="utf-8"))


def _scenarios(template: dict, seeded: dict, work: Path) -> list[Scenario]:
    from membership_local.template import functions, http_routes

    handlers = {fid: props["Handler"] for fid, props in functions(template).items()}
    http = {route.function_id for route in http_routes(template)}
    events_dir = work / "events"
    events_dir.mkdir()
    scenarios = []
    for n, (name, spec) in enumerate(seeded["scenarios"].items()):
        function_id = spec["function"]
        if function_id not in handlers:
            continue  # a function that left the template
        paths = []
        for i, event in enumerate(spec["events"]):
            path = events_dir / f"{n}-{i}.json"
            path.write_text(json.dumps(event), encoding="utf-8")
            paths.append(path)
        scenarios.append(Scenario(name, function_id, handlers[function_id], paths,
                                  waited_for=function_id in http))
    missing = sorted(set(handlers) - {sc.function_id for sc in scenarios})
    for function_id in missing:  # measured by import only until it has a scenario
        scenarios.append(Scenario("(import only: no scenario yet)", function_id,
                                  handlers[function_id], [], waited_for=function_id in http))
    return scenarios


def _cold_table(modes: list[Mode], references: dict[str, dict[str, Series]],
                scenarios: list[Scenario], runs: int, checks: list[Check]) -> list[str]:
    for mode in modes:
        baseline = references[mode.name]["boto3"]
        if baseline.error or not baseline.imports:
            checks.append(Check(f"baseline cold start runs ({mode.name})", 1, "==", 0))
            return [f"The baseline failed ({mode.name}): {baseline.error}"]
    failed = sorted({f"{sc.function_id} ({m.name})" for sc in scenarios for m in modes
                     if sc.series[m.name].error or not sc.series[m.name].imports}
                    | {f"{target} ({m.name})" for m in modes
                       for target, series in references[m.name].items()
                       if series.error or not series.imports})
    lines = [
        f"Median of {runs} fresh processes per cell, interleaved. Each cell: milliseconds, "
        "then the ratio to the baseline in the same column: `import boto3` for imports; "
        "`import boto3` + `boto3.client(\"dynamodb\")` + one GetItem for cold totals "
        "(import + first invocation, against DynamoDB Local). The floor rows are what "
        "any function here pays before its own code: the libraries, then Powertools. "
        "Functions marked * are behind the HTTP API: a member or an operator waits.",
        "",
    ]
    worst: dict[str, tuple[float, str]] = {}
    for cpu in (False, True):
        lines += [
            "Wall clock:" if not cpu else
            "CPU time of the process (less sensitive to a busy machine; waits for "
            "DynamoDB Local not included):",
            "",
            "| function | first invocation | import (source) | cold total (source) "
            "| import (built) | cold total (built) |",
            "|---|---|---:|---:|---:|---:|",
        ]
        base = {m.name: (references[m.name]["boto3"].import_ms(cpu),
                         references[m.name]["boto3"].total_ms(cpu)) for m in modes}
        rows = [(label.partition(": ")[0], label.partition(": ")[2], True,
                 {m.name: references[m.name][t] for m in modes}, None)
                for t, label in REFERENCES.items()]
        rows += [(sc.function_id + (" *" if sc.waited_for else ""), sc.name, bool(sc.events),
                  sc.series, sc) for sc in scenarios]
        for name, what, with_total, by_mode, sc in rows:
            cells = []
            for mode in modes:
                series = by_mode[mode.name]
                if series.error or not series.imports:
                    cells += [f"failed: {series.error or 'not run'}", ""]
                    continue
                imported = series.import_ms(cpu) / base[mode.name][0]
                cells.append(f"{series.import_ms(cpu):.0f} ms, {imported:.2f}")
                if not with_total:
                    cells.append("")
                    continue
                total = series.total_ms(cpu) / base[mode.name][1]
                cells.append(f"{series.total_ms(cpu):.0f} ms, {total:.2f}")
                if sc is None:
                    continue
                if mode.name != "built":
                    continue
                clock = "CPU time" if cpu else "wall clock"
                for key, ratio in ((f"import, {clock}", imported),
                                   (f"cold total, {clock}", total)):
                    keys = [key, f"{key}, HTTP functions"] if sc.waited_for else [key]
                    for k in keys:
                        if ratio > worst.get(k, (0.0, ""))[0]:
                            worst[k] = (ratio, f"{sc.function_id}: {sc.name}")
            lines.append(f"| {name} | {what} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("Heaviest, built artifact:")
    lines.append("")
    for key, (ratio, who) in sorted(worst.items()):
        lines.append(f"- {key}: {ratio:.2f}× ({who})")
    target = worst.get("cold total, wall clock, HTTP functions")
    if target:
        checks.append(Check(f"cold total of the heaviest HTTP function ÷ boto3 + client + "
                            f"GetItem, built ({target[1]})", round(target[0], 2), "<=",
                            COLD_TOTAL_TARGET))
    if failed:
        checks.append(Check(f"cold starts that failed ({', '.join(failed)})", len(failed),
                            "==", 0))
    return lines


# `python -m bench.coldstart [--runs N] [--callgrind]`: this section alone.
def main(argv: list[str] | None = None) -> int:
    import argparse

    from membership_local.runtime import isolate_from_aws
    from membership_local.template import load_template

    parser = argparse.ArgumentParser(prog="python -m bench.coldstart", description=__doc__)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--callgrind", action="store_true")
    args = parser.parse_args(argv)
    isolate_from_aws()
    checks: list[Check] = []
    lines = run(load_template(), checks, runs=args.runs, callgrind=args.callgrind)
    print("\n".join(lines))
    for check in checks:
        print(f"{'PASS' if check.ok else 'MISS'} {check.measure}: {check.value:g} "
              f"{check.op} {check.target:g}")
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
