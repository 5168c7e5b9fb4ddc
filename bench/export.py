"""The export of a member with a long ledger: time, size and pages, in one run.

    .venv/bin/python -m bench.export [--entries 10000] [--runs 3]

Starts DynamoDB Local on loopback, seeds a member with `entries` points entries besides
its signup (membership_local.long_ledger), and calls `GET /v1/members/me/export` through
the real handler, plain and gzip-compressed. Lambda answers a synchronous invocation with
at most 6 MB (the whole response: status, headers, body); the report says how much of it
the export uses. Times are DynamoDB Local on this machine, not Lambda: compare them
with each other (ratios), not with a deploy.
"""
from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import time
import uuid

LAMBDA_SYNC_RESPONSE_LIMIT = 6 * 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)

    from membership_local.runtime import isolate_from_aws

    isolate_from_aws()
    from membership_local.dynamodb import free_port, start_dynamodb
    from membership_local.template import create_table

    db = start_dynamodb(free_port())
    try:
        table = f"membership-export-{uuid.uuid4().hex[:8]}"
        create_table(db.endpoint, table)
        os.environ.update(AWS_ENDPOINT_URL_DYNAMODB=db.endpoint, TABLE_NAME=table,
                          POWERTOOLS_SERVICE_NAME="membership",
                          POWERTOOLS_METRICS_NAMESPACE="Membership",
                          PROGRAM_TIME_ZONE="Asia/Shanghai", EVENT_BUS_NAME="membership")
        print(report(args.entries, args.runs))
    finally:
        db.stop()
    return 0


def report(entries: int, runs: int) -> str:
    from membership.domain.members import member_id_for
    from membership.handlers import privacy
    from membership_local.apigw import lambda_context, member_event
    from membership_local.long_ledger import seed_long_ledger

    subject = f"bench-export-{uuid.uuid4().hex[:6]}"
    started = time.perf_counter()
    seed_long_ledger(subject, "13800138000", entries)
    seeded = time.perf_counter() - started
    rows = []
    member_id = member_id_for(subject)
    reads, pages = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        pages = _query_partition(member_id)
        reads.append(time.perf_counter() - started)
    for encoding in ("identity", "gzip"):
        times = []
        for _ in range(runs):
            event = member_event("GET", "/v1/members/me/export", None, sub=subject,
                                 headers={"Accept-Encoding": encoding})
            started = time.perf_counter()
            response = privacy.handler(event, lambda_context())
            times.append(time.perf_counter() - started)
            assert response["statusCode"] == 200, response["body"][:300]
        body = response["body"]
        document = json.loads(gzip.decompress(base64.b64decode(body))
                              if response.get("isBase64Encoded") else body)
        count = sum(len(v) for v in document["ledger"].values())
        payload = len(json.dumps(response).encode())
        rows.append(f"| {encoding} | {count:,} | {len(body.encode()):,} | {payload:,} | "
                    f"{payload / LAMBDA_SYNC_RESPONSE_LIMIT:.0%} | {min(times):.2f} s | "
                    f"{max(times):.2f} s |")
    return "\n".join([
        f"Export of a member with {entries:,} entries besides its signup "
        f"(seeded in {seeded:.1f} s), {runs} calls each, DynamoDB Local:",
        "",
        "| encoding | entries | body bytes | response bytes | of Lambda's 6 MB | fastest | "
        "slowest |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Of which the partition's query alone ({pages} pages, DynamoDB Local and botocore's "
        f"parsing, nothing decoded): fastest {min(reads):.2f} s, slowest {max(reads):.2f} s.",
    ])


def _query_partition(member_id: str) -> int:
    from membership.storage.models import MemberItem, member_pk

    conn = MemberItem._get_connection()
    pages, last = 0, None
    while True:
        page = conn.query(member_pk(member_id), consistent_read=True,
                          exclusive_start_key=last)
        pages += 1
        last = page.get("LastEvaluatedKey")
        if not last:
            return pages


if __name__ == "__main__":
    raise SystemExit(main())
