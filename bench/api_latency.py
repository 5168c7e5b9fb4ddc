"""API latency through the local gateway against a raw GetItem, as a p99 ratio.

The gateway runs in a process of its own (as under `make run`), so the client and the
server do not share one interpreter lock; both series are measured back to back on the
same DynamoDB Local, sequentially, after a warm-up.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.operations import BenchContext, operation

REQUESTS = 300
WARMUP = 30


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


_SERVE = """
import sys, time
from pathlib import Path
from membership_local.gateway import Gateway
from membership_local.template import load_template
Gateway(load_template(), port=int(sys.argv[1]), key_file=Path(sys.argv[2])).start()
while True:
    time.sleep(3600)
"""


def _gateway_process(port: int, key_file: Path, ctx: BenchContext) -> subprocess.Popen:
    env = {**os.environ, "TABLE_NAME": ctx.table_name,
           "AWS_ENDPOINT_URL_DYNAMODB": ctx.endpoint}
    return subprocess.Popen([sys.executable, "-c", _SERVE, str(port), str(key_file)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_until_up(session, url: str, server: subprocess.Popen) -> None:
    import requests

    for _ in range(300):
        if server.poll() is not None:
            raise RuntimeError("the gateway process exited")
        try:
            session.get(f"{url}/openapi.json", timeout=30)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError("the gateway did not answer")


@operation("API p99 ÷ GetItem p99", requires=("membership.handlers.members",),
           route="GET /v1/members/me")
def api_latency(ctx: BenchContext) -> None:
    import botocore.session
    import requests

    from membership.domain.members import member_id_for
    from membership.storage.models import MemberItem
    from membership_local import jwt as devjwt
    from membership_local.dynamodb import free_port

    sub = ctx.signed_up_member()
    key_file = Path(tempfile.mkdtemp()) / "jwt-key.pem"
    port = free_port()
    server = _gateway_process(port, key_file, ctx)
    try:
        url = f"http://127.0.0.1:{port}"
        session = requests.Session()
        _wait_until_up(session, url, server)
        token = devjwt.mint_token(sub, ("member",), issuer=devjwt.issuer_for(url),
                                  key_file=key_file)
        headers = {"Authorization": f"Bearer {token}"}
        api = []
        for i in range(WARMUP + REQUESTS):
            start = time.perf_counter()
            response = session.get(f"{url}/v1/members/me", headers=headers, timeout=10)
            elapsed = time.perf_counter() - start
            if response.status_code != 200:
                raise RuntimeError(f"profile read answered {response.status_code}")
            if i >= WARMUP:
                api.append(elapsed)
    finally:
        server.terminate()
        server.wait(timeout=10)

    client = botocore.session.get_session().create_client(
        "dynamodb", endpoint_url=ctx.endpoint, region_name="us-east-1")
    pk, sk = MemberItem.key(member_id_for(sub))
    raw = []
    for i in range(WARMUP + REQUESTS):
        start = time.perf_counter()
        client.get_item(TableName=ctx.table_name, Key={"PK": {"S": pk}, "SK": {"S": sk}})
        elapsed = time.perf_counter() - start
        if i >= WARMUP:
            raw.append(elapsed)
    ratio = p99(api) / p99(raw)
    ctx.note(f"{REQUESTS} sequential requests after {WARMUP} warm-up: API p99 "
             f"{p99(api) * 1000:.1f} ms, GetItem p99 {p99(raw) * 1000:.1f} ms, "
             f"ratio {ratio:.2f}")
    ctx.check("API p99 through the local gateway ÷ raw GetItem p99", round(ratio, 2), "<=", 3)
