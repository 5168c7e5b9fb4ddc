"""Checkout for the order system: quote what a member gets, and hold funds for an order."""
from __future__ import annotations

from datetime import UTC, datetime

from membership.domain import checkout
from membership.domain.checkout import HoldMismatch, HoldRequest, Quote, QuoteRequest
from membership.domain.ledger import PostingBuilder
from membership.domain.member_status import ensure_may_spend
from membership.domain.subscriptions import active_plan
from membership.storage import coupons as coupon_store
from membership.storage import ledger
from membership.storage import members as store
from membership.storage.program import load_program


def _now() -> datetime:
    return datetime.now(UTC)


def quote(request: QuoteRequest, now: datetime | None = None) -> Quote:
    """Reads the member item and the member's unused coupons (one Query); writes nothing."""
    member = store.get_member(request.member_id)
    if request.points_to_redeem or request.balance_to_use or request.coupon_ids:
        ensure_may_spend(member, "checkout_spend")
    wallet = tuple(coupon_store.member_coupons(request.member_id))
    now = now or _now()
    program = load_program()
    held = member.paid_plan
    plan = (active_plan(program, held.plan_id, held.ends_at, now) if held is not None
            else None)
    return checkout.quote(request, member, program, wallet, now, plan=plan)


def hold(request: HoldRequest, now: datetime | None = None) -> tuple[dict, bool]:
    """Reserve points and stored value for an order: (hold, created).

    Idempotent by order id: the guard `hold:<orderId>` makes the first hold the only one;
    asking again with the same amounts answers it again while it is still open; a hold
    that was released (cancelled, lapsed) or captured since is a conflict saying so, and
    other amounts are a conflict too.
    """
    now = now or _now()
    program = load_program()
    source_key = checkout.hold_source_key(request.order_id)

    def build(state):
        # Read inside the attempt: a retry sees the coupons as they are now.
        coupons = coupon_store.get_coupons(request.member_id, list(request.coupon_ids))
        builder = PostingBuilder(state, program, source_key=source_key, source_type="hold",
                                 reason="hold", actor="orders", now=now)
        ensure_may_spend(state.member, "hold")
        checkout.place_hold(builder, request, program, coupons)
        return builder.build()

    outcome = ledger.post(request.member_id, source_key, build)
    if not outcome.replayed:
        return outcome.result, True
    if not checkout.same_hold(outcome.result, request):
        raise HoldMismatch(
            f"order {request.order_id} is already held with other amounts",
            held_points=outcome.result.get("points"),
            held_balance=(outcome.result.get("balance") or {}).get("total"))
    # The first answer said "held"; what matters now is whether it still is.
    current = ledger.read_hold(request.member_id, checkout.hold_id_for(request.order_id))
    checkout.check_still_held(current, request.order_id, now)
    return outcome.result, False
