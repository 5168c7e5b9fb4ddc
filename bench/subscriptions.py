"""Paid membership (PLUS) through its real handlers: write calls per purchase, extension
and refund (docs/subscriptions.md). Each is one ledger posting, so one
TransactWriteItems call; the items it writes are reported beside it.
"""

from __future__ import annotations

from bench.operations import BenchContext, CallStats, operation

SUBSCRIPTIONS = "membership.handlers.subscriptions.handler"
ADMIN_SUBSCRIPTIONS = "membership.handlers.admin_subscriptions.handler"
TOPUPS = "membership.handlers.topups.handler"


def _buy(ctx: BenchContext, sub: str, body: dict) -> dict:
    event = ctx.member_event("POST", "/v1/members/me/subscriptions", body, sub=sub,
                             headers={"Idempotency-Key": ctx.unique("plan-key")})
    return ctx.expect_status(ctx.invoke(SUBSCRIPTIONS, event), 201)


def _paid_month(ctx: BenchContext) -> dict:
    return {"planId": "PLUS", "term": "monthly", "channel": "wechat_pay",
            "paymentReference": ctx.unique("test-plan")}


@operation("PLUS purchase (a paid month, verified reference)",
           requires=("membership.handlers.subscriptions",),
           route="POST /v1/members/me/subscriptions")
def purchase(ctx: BenchContext) -> CallStats:
    sub = ctx.signed_up_member()
    with ctx.count() as calls:
        bought = _buy(ctx, sub, _paid_month(ctx))
    ctx.check("started (not an extension)", int(bought["extended"]), "==", 0)
    ctx.check("DynamoDB write calls per plan purchase", calls.writes, "==", 1)
    ctx.note(f"purchase: {calls.items_written} items in the one transaction, "
             f"{calls.reads} reads")
    return calls


@operation("PLUS extension (a month bought while active, paid from balance)",
           requires=("membership.handlers.subscriptions", "membership.handlers.topups"),
           route="POST /v1/members/me/subscriptions")
def extension(ctx: BenchContext) -> CallStats:
    sub = ctx.signed_up_member()
    topup = ctx.member_event("POST", "/v1/members/me/topups",
                             {"amount": 10_000, "channel": "wechat_pay",
                              "paymentReference": ctx.unique("test-topup")},
                             sub=sub, headers={"Idempotency-Key": ctx.unique("topup-key")})
    ctx.expect_status(ctx.invoke(TOPUPS, topup), 201)
    _buy(ctx, sub, _paid_month(ctx))
    with ctx.count() as calls:
        extended = _buy(ctx, sub, {"planId": "PLUS", "term": "monthly", "payWith": "balance"})
    ctx.check("extended from the current end", int(extended["extended"]), "==", 1)
    ctx.check("DynamoDB write calls per plan extension", calls.writes, "==", 1)
    ctx.note(f"extension: {calls.items_written} items in the one transaction (the balance "
             f"debit included), {calls.reads} reads")
    return calls


@operation("PLUS term refund (admin)",
           requires=("membership.handlers.subscriptions",
                     "membership.handlers.admin_subscriptions"),
           route="POST /v1/admin/subscriptions/{subscriptionId}/refunds")
def refund(ctx: BenchContext) -> CallStats:
    sub = ctx.signed_up_member()
    bought = _buy(ctx, sub, _paid_month(ctx))
    event = ctx.member_event(
        "POST", f"/v1/admin/subscriptions/{bought['subscriptionId']}/refunds",
        {"refundId": ctx.unique("plan-refund"), "reason": "bench"},
        sub="bench-admin", scopes=["admin"])
    with ctx.count() as calls:
        refunded = ctx.expect_status(ctx.invoke(ADMIN_SUBSCRIPTIONS, event), 201)
    ctx.check("refunded in full (cooling-off, nothing used)", refunded["amount"], "==", 1_900)
    ctx.check("DynamoDB write calls per plan refund", calls.writes, "==", 1)
    ctx.note(f"refund: {calls.items_written} items in the one transaction, "
             f"{calls.reads} reads")
    return calls
