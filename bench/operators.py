"""Operators: an adjustment through its handler, and a bulk grant against direct postings.

The bulk grant goes the whole way a deployed one does, locally: the real POST handler
stores the grant and sends its chunks with the real SQS calls to the local queues
(membership_local.queues), which drain them through the real worker handler. Its time,
from the POST until the last chunk's tally is written, is compared with the same credits
posted straight through `services.ledger.post_legs` at the same concurrency (queue
consumers × each worker's write concurrency), on members of the same shape.
BENCH_GRANT_MEMBERS sets the grant's size (default 10,000).
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

from bench.operations import BenchContext, CallStats, operation, use_table

ADMIN_MEMBERS = "membership.handlers.admin_members.handler"
ADMIN_GRANTS = "membership.handlers.admin_grants.handler"
MEMBERS_ENV = "BENCH_GRANT_MEMBERS"
DEFAULT_MEMBERS = 10_000
CONSUMERS = 4  # the local queues' cap on concurrent batches
WRITE_CONCURRENCY = 2  # postings each worker writes at once (8 in all: pynamodb's pool is 10)
RATIO_TARGET = 1.5


@operation("adjustment", requires=("membership.handlers.admin_members",),
           route="POST /v1/admin/members/{memberId}/adjustments")
def adjustment(ctx: BenchContext) -> CallStats:
    from membership.domain.members import member_id_for

    member_id = member_id_for(ctx.signed_up_member())

    def adjust(amount: int) -> dict:
        body = {"adjustmentId": ctx.unique("adj"), "asset": "points", "amount": amount,
                "reasonCode": "goodwill", "note": "bench"}
        event = ctx.member_event("POST", f"/v1/admin/members/{member_id}/adjustments", body,
                                 sub="bench-operator", scopes=["admin"])
        return ctx.expect_status(ctx.invoke(ADMIN_MEMBERS, event), 201)

    with ctx.count() as first:
        adjust(10)
    ctx.first_calls(first)
    with ctx.count() as calls:
        adjust(-50)
    ctx.check("DynamoDB write calls per adjustment", calls.writes, "==", 1)
    return calls


def _members(count: int, prefix: str) -> list[str]:
    """Members written straight to the table, as signup leaves them (no gift lot)."""
    from datetime import UTC, datetime

    from membership.domain.members import Member, member_id_for
    from membership.storage.models import MemberItem

    now = datetime.now(UTC)
    ids = []
    with MemberItem.batch_write() as batch:
        for n in range(count):
            subject = f"{prefix}-{n:06d}"
            ids.append(member_id_for(subject))
            batch.save(MemberItem.from_domain(Member(
                member_id=ids[-1], subject=subject, phone=f"+86136{n:08d}", nickname="B",
                channel="app", created_at=now, updated_at=now, tier_id="V1", tier_since=now)))
    return ids


def _direct(member_ids: list[str], concurrency: int) -> float:
    from membership.domain.grants import apply_points, source_key
    from membership.services.ledger import post_legs

    def credit(member_id: str) -> None:
        post_legs(member_id, source_key("direct", member_id),
                  lambda b: apply_points(b, "direct", 100), source_type="grant",
                  reason="campaign", actor="bench-operator")

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(credit, member_ids))
    return time.monotonic() - started


@operation("bulk grant", requires=("membership.handlers.admin_grants",
                                   "membership_local.queues"),
           route="POST /v1/admin/grants")
def bulk_grant(ctx: BenchContext) -> CallStats:
    # A server of its own: 20,000 members would slow what runs next.
    with ctx.table_of_its_own(f"{ctx.table_name}-grant"):
        return _bulk_grant(ctx)


def _bulk_grant(ctx: BenchContext) -> CallStats:
    from membership_local.dynamodb import free_port
    from membership_local.queues import LocalQueues, queue_refs
    from membership_local.runtime import Handlers
    from membership_local.template import load_template

    members = int(os.environ.get(MEMBERS_ENV) or DEFAULT_MEMBERS)
    template = load_template()
    port = free_port()
    queues_url = f"http://127.0.0.1:{port}"
    os.environ.update(AWS_ENDPOINT_URL_SQS=queues_url,
                      GRANT_QUEUE_URL=queue_refs(template, queues_url)["GrantQueue"],
                      GRANT_WRITE_CONCURRENCY=str(WRITE_CONCURRENCY))
    use_table(os.environ["TABLE_NAME"])  # the settings read the queue URL again
    started = time.monotonic()
    granted, direct = _members(members, "grant"), _members(members, "direct")
    warm = _members(max(100, members // 20), "warm")
    ctx.note(f"{2 * members + len(warm)} members seeded in {time.monotonic() - started:.1f} s")
    concurrency = CONSUMERS * WRITE_CONCURRENCY

    _direct(warm, concurrency)  # DynamoDB Local and this process warm up outside the timing
    # Half the direct postings before the grant and half after, so neither side gains
    # from running on a warmer or a fuller table.
    half = members // 2
    direct_s = _direct(direct[:half], concurrency)

    # The handlers' modules are loaded and their clients made before the timing starts.
    ctx.invoke(ADMIN_GRANTS, ctx.member_event("GET", "/v1/admin/grants/warm-up",
                                              sub="bench-operator", scopes=["admin"]))
    queues = LocalQueues(template, port=port, handlers=Handlers(), redelivery_delay=0.2).start()
    try:
        body = {"grantId": ctx.unique("bench-grant"), "points": 100, "reasonCode": "campaign",
                "memberIds": granted}
        event = ctx.member_event("POST", "/v1/admin/grants", body, sub="bench-operator",
                                 scopes=["admin"])
        with ctx.count() as calls:
            started = time.monotonic()
            accepted = ctx.expect_status(ctx.invoke(ADMIN_GRANTS, event), 202)
            posted_s = time.monotonic() - started
            if not queues.drain(timeout=3_600):
                raise RuntimeError("the grant's chunks did not drain within an hour")
            grant_s = time.monotonic() - started
        view = ctx.expect_status(ctx.invoke(ADMIN_GRANTS, ctx.member_event(
            "GET", f"/v1/admin/grants/{accepted['grantId']}", sub="bench-operator",
            scopes=["admin"])), 200)
    finally:
        queues.stop()
    direct_s += _direct(direct[half:], concurrency)
    if (view["status"], view["done"]) != ("completed", members):
        raise AssertionError(f"the grant did not credit every member: {view}")
    ratio = grant_s / direct_s
    ctx.note(f"{members} members, {accepted['chunks']} chunks, {CONSUMERS} consumers × "
             f"{WRITE_CONCURRENCY} postings at once; direct postings at {concurrency} threads "
             "(half before the grant, half after)")
    ctx.note(f"POST answered 202 in {posted_s:.2f} s; grant done in {grant_s:.1f} s "
             f"({members / grant_s:.0f} members/s); direct {direct_s:.1f} s "
             f"({members / direct_s:.0f} members/s); ratio {ratio:.2f}")
    ctx.note(f"per member: {calls.writes / members:.3f} write calls, "
             f"{calls.reads / members:.3f} read calls ({calls.summary()})")
    ctx.check("bulk grant ÷ direct postings at the same concurrency", round(ratio, 2), "<=",
              RATIO_TARGET)
    return calls

