"""Cold-start cost: `python -X importtime -c "import <handler module>"` in fresh interpreters.

Each handler module is imported in a new process with the environment its Lambda function
would have (template variables, region, dummy credentials, the runtime's own variables),
so module-level work such as Powertools' Tracer patching counts as it does on a cold start.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RUNS = 5
BASELINE = "boto3"
# One line of -X importtime: "import time: <self us> | <cumulative us> | <indent><name>".
_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\| ( *)(\S.*)$")


@dataclass
class ImportTiming:
    module: str
    functions: list[str] = field(default_factory=list)
    samples_us: list[int] = field(default_factory=list)
    error: str | None = None

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_us) / 1000


def handler_modules(template: dict) -> dict[str, list[str]]:
    """Handler module → the logical ids of the functions that use it."""
    from membership_local.template import functions

    modules: dict[str, list[str]] = {}
    for logical_id, props in functions(template).items():
        handler = props.get("Handler")
        if isinstance(handler, str) and "." in handler:
            modules.setdefault(handler.rsplit(".", 1)[0], []).append(logical_id)
    return modules


def lambda_environment(template: dict, function_id: str | None) -> dict[str, str]:
    """What a Lambda's process sees at init: template variables plus the runtime's own."""
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
        "LAMBDA_TASK_ROOT": str(REPO_ROOT / "functions"),
        "PYTHONPATH": str(REPO_ROOT / "functions"),
    }
    overrides = {"MembershipTable": "membership", "MembershipEventBus": "membership"}
    env.update(function_environment(template, overrides, function_id))
    return env


def _cumulative_us(stderr: str, module: str) -> int:
    """Cost of `import module`: the unindented lines of the module and its parent packages.

    A line nested under another belongs to that one's cumulative time, so only top-level
    lines are summed; interpreter start-up imports are not the module's and are skipped.
    """
    wanted = {".".join(module.split(".")[: i + 1]) for i in range(module.count(".") + 1)}
    total = 0
    seen = False
    for line in stderr.splitlines():
        match = _LINE.match(line)
        if not match or match.group(3):
            continue
        name = match.group(4).strip()
        if name in wanted:
            total += int(match.group(2))
            seen = seen or name == module
    if not seen:
        raise RuntimeError(f"no importtime line for {module}")
    return total


def _sample(timing: ImportTiming, env: dict[str, str], keep: bool) -> None:
    if timing.error:
        return
    argv = [sys.executable, "-X", "importtime", "-c", f"import {timing.module}"]
    proc = subprocess.run(
        argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    if proc.returncode != 0:
        timing.error = proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"
    elif keep:
        timing.samples_us.append(_cumulative_us(proc.stderr, timing.module))


def run(template: dict, runs: int = RUNS) -> tuple[ImportTiming, list[ImportTiming]]:
    baseline = ImportTiming(BASELINE)
    jobs = [(baseline, lambda_environment(template, None))]
    handlers = []
    for module, function_ids in sorted(handler_modules(template).items()):
        timing = ImportTiming(module, functions=function_ids)
        handlers.append(timing)
        jobs.append((timing, lambda_environment(template, function_ids[0])))
    # Round-robin, so load from anything else on the machine hits every module alike and
    # the ratios stay fair; round 0 is unmeasured, so bytecode compilation is not charged.
    for round_number in range(runs + 1):
        for timing, env in jobs:
            _sample(timing, env, keep=round_number > 0)
    return baseline, handlers
