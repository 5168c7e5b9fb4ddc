"""Coupons: a claim through its handler, claim throughput at 32 clients on one template
and on 32 templates (is stock a hot spot?), and quote latency with 0 and 50 coupons in
the member's wallet.

A claim reads the template's partition (one Query: template + 8 stock shards) and writes
one transaction: the coupon, one shard, the member's counter, the member check and the
guard.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from bench.operations import BenchContext, CallStats, operation

COUPONS = "membership.handlers.coupons.handler"
CHECKOUT = "membership.handlers.checkout.handler"
CLIENTS = 32
CLAIMS_PER_CLIENT = 6


def _template(template_id: str, *, stock: int = 100_000, limit: int = 1_000) -> str:
    from membership.domain.coupons import TemplateSpec
    from membership.services import coupons

    coupons.create_template(TemplateSpec.model_validate({
        "templateId": template_id, "name": "bench", "kind": "amount_off", "amountOff": 500,
        "minSpend": 0, "validDays": 30, "stock": stock, "perMemberLimit": limit,
        "claimable": True}))
    return template_id


def _claim_event(ctx: BenchContext, sub: str, template_id: str) -> dict:
    return ctx.member_event("POST", "/v1/members/me/coupons", {"templateId": template_id},
                            sub=sub, headers={"Idempotency-Key": ctx.unique("claim")})


@operation("coupon claim", requires=("membership.handlers.coupons",),
           route="POST /v1/members/me/coupons")
def claim(ctx: BenchContext) -> CallStats:
    template_id = _template(ctx.unique("BENCH"))
    warm = ctx.signed_up_member()
    with ctx.count() as first:
        ctx.expect_status(ctx.invoke(COUPONS, _claim_event(ctx, warm, template_id)), 201)
    ctx.first_calls(first)
    sub = ctx.signed_up_member()
    with ctx.count() as calls:
        ctx.expect_status(ctx.invoke(COUPONS, _claim_event(ctx, sub, template_id)), 201)
    ctx.check("DynamoDB write calls per coupon claim", calls.writes, "==", 1)
    ctx.check("items written per coupon claim", calls.items_written, "<=", 5)
    ctx.note(f"{calls.items_written} items: coupon, stock shard, member counter, member "
             "check, guard")
    return calls


def _claims_per_second(subs: list[str], templates: list[str]) -> float:
    """Every client claims CLAIMS_PER_CLIENT times, client i on templates[i % len]."""
    from membership.domain.coupons import ClaimRequest
    from membership.services import coupons

    def client(i: int) -> int:
        done = 0
        for n in range(CLAIMS_PER_CLIENT):
            coupons.claim(subs[i], f"bench-{i}-{n}-{time.monotonic_ns()}",
                          ClaimRequest(templateId=templates[i % len(templates)]))
            done += 1
        return done

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        total = sum(pool.map(client, range(CLIENTS), timeout=600))
    return total / (time.perf_counter() - started)


@operation("coupon claims at 32 clients: one template vs 32",
           requires=("membership.services.coupons",))
def claim_throughput(ctx: BenchContext) -> CallStats:
    subs = [ctx.signed_up_member() for _ in range(CLIENTS)]
    one = [_template(ctx.unique("HOT"))]
    spread = [_template(ctx.unique("COLD")) for _ in range(CLIENTS)]
    _claims_per_second(subs, spread)  # warm: clients, connections, every template read
    with ctx.count() as calls:
        hot = _claims_per_second(subs, one)
    cold = _claims_per_second(subs, spread)
    ratio = hot / cold
    ctx.check("claims per second at 32 clients, one template ÷ 32 templates", ratio, ">=", 0.8)
    ctx.note(f"{hot:.0f} claims/s on one template, {cold:.0f} on 32 templates "
             f"({CLIENTS} clients × {CLAIMS_PER_CLIENT} claims each)")
    retried = sum(1 for c in calls.calls if c.operation == "TransactWriteItems") - \
        CLIENTS * CLAIMS_PER_CLIENT
    ctx.note(f"transactions retried on one template (shard conflicts): {retried}")
    return calls


def _quote_event(ctx: BenchContext, member_id: str) -> dict:
    lines = [{"lineId": "1", "sku": "TEE", "category": "apparel", "brand": "acme",
              "quantity": 2, "unitPrice": 10_000}]
    return ctx.member_event("POST", "/v1/checkout/quote", {"memberId": member_id,
                                                           "lines": lines},
                            sub="order-system", scopes=("orders",))


def _median_ms(ctx: BenchContext, event: dict, runs: int = 30) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        ctx.expect_status(ctx.invoke(CHECKOUT, event), 200)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


@operation("quote with 0 and 50 coupons in the wallet", requires=("membership.handlers.checkout",),
           route="POST /v1/checkout/quote")
def quote_wallet(ctx: BenchContext) -> CallStats:
    from membership.domain.coupons import ClaimRequest
    from membership.domain.members import member_id_for
    from membership.services import coupons

    template_id = _template(ctx.unique("WALLET"), limit=100)
    empty, full = ctx.signed_up_member(), ctx.signed_up_member()
    for n in range(50):
        coupons.claim(full, f"wallet-{n}", ClaimRequest(templateId=template_id))
    empty_event = _quote_event(ctx, member_id_for(empty))
    full_event = _quote_event(ctx, member_id_for(full))
    _median_ms(ctx, empty_event, 3)
    zero = _median_ms(ctx, empty_event)
    fifty = _median_ms(ctx, full_event)
    with ctx.count() as calls:
        answer = ctx.expect_status(ctx.invoke(CHECKOUT, full_event), 200)
    if len(answer["applicableCoupons"]) < 50:
        raise AssertionError(f"{len(answer['applicableCoupons'])} applicable coupons, not 50")
    ctx.check("DynamoDB write calls per quote", calls.writes, "==", 0)
    ctx.check("quote median, 50 coupons ÷ 0 coupons in the wallet", fifty / zero, "<=", 3)
    ctx.note(f"median {zero:.1f} ms with 0 coupons, {fifty:.1f} ms with 50 "
             "(member GetItem + one Query of the wallet)")
    return calls
