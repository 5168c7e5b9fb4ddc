"""One `membership-local up` per session, on free loopback ports, killed at the end."""
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from membership_local import jwt as devjwt
from membership_local.dynamodb import free_port

STARTUP_SECONDS = 120


@dataclass(frozen=True)
class Stack:
    api_url: str
    issuer: str
    key_file: Path
    log: Path
    home: Path

    def token(self, sub: str, *scopes: str) -> str:
        return devjwt.mint_token(sub, scopes or ("member",), issuer=self.issuer,
                                 key_file=self.key_file)

    def auth(self, sub: str, *scopes: str) -> dict:
        return {"Authorization": f"Bearer {self.token(sub, *scopes)}"}


def _command() -> list[str]:
    script = Path(sys.executable).with_name("membership-local")
    if script.exists():
        return [str(script)]
    found = shutil.which("membership-local")
    return [found] if found else [sys.executable, "-m", "membership_local.cli"]


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    yield from run_stack(tmp_path_factory)


@pytest.fixture(scope="module")
def paying_stack(tmp_path_factory):
    """A stack whose top-ups and plan terms are verified by its fake WeChat Pay and Alipay."""
    yield from run_stack(tmp_path_factory, "--payment-verifier", "providers")


@pytest.fixture(scope="session")
def local_command() -> list[str]:
    """How to run `membership-local`."""
    return _command()


def run_stack(tmp_path_factory, *options: str):
    """`membership-local up` with `options`, until the generator is closed."""
    home = tmp_path_factory.mktemp("membership-local")
    api_port, dynamodb_port, events_port = free_port(), free_port(), free_port()
    queues_port = free_port()
    log = home / "up.log"
    env = {**os.environ, "MEMBERSHIP_LOCAL_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    for name in ("AWS_ENDPOINT_URL_DYNAMODB", "TABLE_NAME"):
        env.pop(name, None)  # the stack sets its own
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*_command(), "up", "--api-port", str(api_port), "--dynamodb-port", str(dynamodb_port),
             "--events-port", str(events_port), "--queues-port", str(queues_port),
             "--table", f"e2e-{uuid.uuid4().hex[:8]}", *options],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True,  # its own group: the teardown signals all of it
        )
    api_url = f"http://127.0.0.1:{api_port}"
    try:
        _wait_until_up(proc, api_url, log)
        yield Stack(api_url=api_url, issuer=devjwt.issuer_for(api_url),
                    key_file=home / devjwt.KEY_FILE, log=log, home=home)
    finally:
        _stop(proc)


def _wait_until_up(proc: subprocess.Popen, api_url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"membership-local up exited with {proc.returncode}:\n{log.read_text()}")
        try:
            # The first /openapi.json imports every handler: slow on a busy machine.
            requests.get(f"{api_url}/openapi.json", timeout=30)
            return
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.3)
    pytest.fail(f"the stack did not answer within {STARTUP_SECONDS}s:\n{log.read_text()}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
