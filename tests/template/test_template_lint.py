"""The template passes SAM's validator and cfn-lint with the serverless rules, with no findings.

A finding that is intentional is suppressed in template.yaml (Metadata cfn-lint
ignore_checks) next to a comment that says why; it is never ignored here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = "template.yaml"


def _sam_cli() -> Path:
    configured = os.environ.get("SAM_CLI")
    candidates = [Path(configured)] if configured else []
    candidates.append(REPO_ROOT / ".venv-sam" / "bin" / "sam")
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    # SAM CLI pins its own boto3, so it lives in a virtualenv `make test` creates.
    pytest.fail(
        "SAM CLI not found (looked at $SAM_CLI and .venv-sam/bin/sam). "
        "Run `make test`, which installs it and sets SAM_CLI."
    )


def _cfn_lint() -> Path:
    # The dev virtualenv's own cfn-lint, next to the interpreter running the tests.
    path = Path(sys.executable).parent / "cfn-lint"
    if not path.is_file():
        pytest.fail(
            f"cfn-lint not found next to {sys.executable}; install the dev extra "
            "(`pip install -e '.[dev]'`) or run `make test`."
        )
    return path


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SAM_CLI_TELEMETRY="0")
    # Linting is offline; a region keeps tools that want one from guessing.
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return subprocess.run(
        argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240, check=False
    )


def _report(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"


def test_sam_validate_lint_has_no_findings():
    proc = _run([str(_sam_cli()), "validate", "--lint", "-t", TEMPLATE])
    assert proc.returncode == 0, "sam validate --lint reported findings:\n" + _report(proc)
    # On success SAM prints only the verdict; any other stdout line is a finding.
    extra = [
        line
        for line in proc.stdout.splitlines()
        if line.strip() and "is a valid SAM Template" not in line
    ]
    assert not extra, "sam validate --lint printed findings:\n" + _report(proc)


def test_cfn_lint_with_serverless_rules_has_no_findings():
    proc = _run([str(_cfn_lint()), TEMPLATE, "-a", "cfn_lint_serverless.rules"])
    findings = proc.stdout.strip()
    assert proc.returncode == 0 and not findings, "cfn-lint reported findings:\n" + _report(proc)
