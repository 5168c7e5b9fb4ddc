"""API latency through the local gateway against a raw GetItem, as a p99 ratio.

The gateway runs in this process on a loopback port with the real handlers; both series
are measured back to back on the same DynamoDB Local, sequentially, after a warm-up.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.operations import BenchContext, operation

REQUESTS = 300
WARMUP = 30


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


@operation("API p99 ÷ GetItem p99", requires=("membership.handlers.members",),
           route="GET /v1/members/me")
def api_latency(ctx: BenchContext) -> None:
    import botocore.session
    import requests

    from membership.domain.members import member_id_for
    from membership.storage.models import MemberItem
    from membership_local import jwt as devjwt
    from membership_local.dynamodb import free_port
    from membership_local.gateway import Gateway
    from membership_local.template import load_template

    sub = ctx.signed_up_member()
    key_file = Path(tempfile.mkdtemp()) / "jwt-key.pem"
    gateway = Gateway(load_template(), port=free_port(), key_file=key_file).start()
    try:
        token = devjwt.mint_token(sub, ("member",), issuer=gateway.issuer, key_file=key_file)
        session = requests.Session()
        headers = {"Authorization": f"Bearer {token}"}
        url = f"{gateway.url}/v1/members/me"
        api = []
        for i in range(WARMUP + REQUESTS):
            start = time.perf_counter()
            response = session.get(url, headers=headers, timeout=10)
            elapsed = time.perf_counter() - start
            if response.status_code != 200:
                raise RuntimeError(f"profile read answered {response.status_code}")
            if i >= WARMUP:
                api.append(elapsed)
    finally:
        gateway.stop()

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
