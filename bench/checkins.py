"""Check-ins, make-ups, the calendar and tasks through their real handlers.

A check-in reads the member's live range (Query) and writes one transaction: member (with
its calendar), guard, the points entry (check-in points and any streak bonus together),
the growth entry, and the activity lot it adds into: five items. Members are prepared
outside the counted window, signed up days before today through the signup service so
that a make-up has a missed day to fill.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench.operations import BenchContext, CallStats, operation

CHECKINS = "membership.handlers.checkins.handler"
TASKS = "membership.handlers.tasks.handler"
TASK_EVENTS = "membership.handlers.task_events.handler"
ORDER_EVENTS = "membership.handlers.order_events.handler"
ROUTE = "POST /v1/members/me/checkins"


def _member_since(ctx: BenchContext, days: int, store_id: str | None = None,
                  joined: datetime | None = None) -> str:
    """A member who joined `days` ago (or at `joined`); returns its JWT subject."""
    from membership.domain.members import SignupRequest
    from membership.services import members

    sub = ctx.unique("bench-checker")
    members.signup(sub, SignupRequest(phone=ctx.new_phone(), nickname="Bench", channel="app",
                                      storeId=store_id),
                   now=joined or datetime.now(UTC) - timedelta(days=days))
    return sub


def _check_in(ctx: BenchContext, sub: str, body: dict | None = None) -> dict:
    event = ctx.member_event("POST", "/v1/members/me/checkins", body, sub=sub)
    return ctx.expect_status(ctx.invoke(CHECKINS, event), 201)


def _items_check(ctx: BenchContext, calls: CallStats, what: str) -> None:
    ctx.check(f"DynamoDB write calls per {what}", calls.writes, "==", 1)
    # The points issued (breakage, docs/metrics.md) ride on one metrics counter shard, in
    # the same transaction; the check-in's own items stay at 5.
    ctx.check(f"items written per {what}, without the metrics counter",
              calls.items_written - calls.counter_items_written, "<=", 5)
    ctx.check(f"metrics counter shards written per {what}", calls.counter_items_written,
              "<=", 1)
    if calls.capacity_known and calls.items_written:
        ctx.check(f"write units per item of a {what}",
                  calls.write_units / calls.items_written, "<=", 2)


@operation("check-in", requires=("membership.handlers.checkins",), route=ROUTE)
def check_in(ctx: BenchContext) -> CallStats:
    first_member = _member_since(ctx, 1)
    with ctx.count() as first:
        _check_in(ctx, first_member)
    ctx.first_calls(first)
    sub = _member_since(ctx, 1)
    with ctx.count() as calls:
        answer = _check_in(ctx, sub)
    _items_check(ctx, calls, "check-in")
    ctx.note(f"{calls.items_written} items: member (with its calendar), guard, points entry, "
             f"growth entry, activity lot, metrics counter shard; streak {answer['streak']}")
    return calls


@operation("check-in, 7th day (streak bonus)", requires=("membership.handlers.checkins",),
           route=ROUTE)
def bonus_day(ctx: BenchContext) -> CallStats:
    from membership.domain.checkins import CheckinRequest
    from membership.services import checkins

    sub = _member_since(ctx, 7)
    now = datetime.now(UTC)
    for back in range(6, 0, -1):
        checkins.check_in(sub, CheckinRequest(), now=now - timedelta(days=back))
    with ctx.count() as calls:
        answer = _check_in(ctx, sub)
    if answer["bonus"] == 0:
        raise AssertionError(f"the 7th day paid no bonus: {answer}")
    _items_check(ctx, calls, "check-in with a streak bonus")
    return calls


@operation("make-up check-in", requires=("membership.handlers.checkins",), route=ROUTE)
def make_up(ctx: BenchContext) -> CallStats:
    from membership.domain.checkins import local_date
    from membership.storage.program import load_program

    sub = _member_since(ctx, 5)
    yesterday = local_date(datetime.now(UTC), load_program().time_zone) - timedelta(days=1)
    with ctx.count() as calls:
        answer = _check_in(ctx, sub, {"date": yesterday.isoformat()})
    if not answer["makeUp"] or answer["cost"] == 0:
        raise AssertionError(f"not a paid make-up: {answer}")
    ctx.check("DynamoDB write calls per make-up check-in", calls.writes, "==", 1)
    ctx.note(f"{calls.items_written} items: the check-in's five, the cost's debit entry, "
             "the lot the cost is taken from and the metrics counter shard")
    return calls


@operation("check-in calendar", requires=("membership.handlers.checkins",),
           route="GET /v1/members/me/checkins")
def calendar(ctx: BenchContext) -> CallStats:
    sub = _member_since(ctx, 3)
    _check_in(ctx, sub)
    event = ctx.member_event("GET", "/v1/members/me/checkins", sub=sub)
    with ctx.count() as first:
        ctx.expect_status(ctx.invoke(CHECKINS, event), 200)
    ctx.first_calls(first)
    with ctx.count() as calls:
        view = ctx.expect_status(ctx.invoke(CHECKINS, event), 200)
    if not view["checkedInToday"]:
        raise AssertionError(f"the calendar misses today's check-in: {view}")
    ctx.check("DynamoDB read calls per calendar read", calls.reads, "==", 1)
    ctx.check("DynamoDB write calls per calendar read", calls.writes, "==", 0)
    return calls


@operation("a month of daily check-ins", requires=("membership.services.checkins",))
def month_of_check_ins(ctx: BenchContext) -> CallStats:
    """30 days of check-ins, through the service with each day's clock: lots and calls."""
    from membership.domain.checkins import CheckinRequest
    from membership.domain.members import member_id_for
    from membership.services import checkins
    from membership.storage.ledger import all_lots

    # Days 1..30 of June last year (one expiry), for a member who joined the day before.
    first = datetime(datetime.now(UTC).year - 1, 6, 1, 4, tzinfo=UTC)
    sub = _member_since(ctx, 0, joined=first - timedelta(days=1))
    member_id = member_id_for(sub)
    before = {lot.lot_id for lot in all_lots(member_id)}
    with ctx.count() as calls:
        for day in range(30):
            checkins.check_in(sub, CheckinRequest(), now=first + timedelta(days=day))
    gained = [lot for lot in all_lots(member_id) if lot.lot_id not in before]
    expiries = {lot.expires_at for lot in gained}
    ctx.check("lots a member gains from a month of daily check-ins, per expiry",
              len(gained) / max(1, len(expiries)), "<=", 1)
    ctx.check("DynamoDB write calls per check-in over a month", calls.writes / 30, "==", 1)
    ctx.check("items written per check-in over a month (bonus days included), without the "
              "metrics counter",
              max(c.items - c.counter_items for c in calls.calls
                  if c.operation == "TransactWriteItems"), "<=", 5)
    ctx.note(f"{len(gained)} lot(s) gained over 30 check-ins; {calls.writes} write calls")
    ctx.note(f"the member item's calendar attributes after a month: "
             f"{_calendar_bytes(member_id)} bytes")
    return calls


def _calendar_bytes(member_id: str) -> int:
    """DynamoDB's size of the calendar attributes (name + value), by its sizing rules."""
    from membership.storage.models import MemberItem

    raw = MemberItem._get_connection().get_item(
        *MemberItem.key(member_id), consistent_read=True)["Item"]
    return sum(len(name) + _value_bytes(raw[name]) for name in ("ci", "ciSince", "ciCarry")
               if name in raw)


def _value_bytes(value: dict) -> int:
    (kind, data), = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        digits = data.lstrip("-").replace(".", "").strip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "M":
        return 3 + sum(1 + len(k) + _value_bytes(v) for k, v in data.items())
    if kind == "NULL":
        return 1
    raise ValueError(kind)


@operation("task completion (profile completed)", requires=("membership.handlers.tasks",),
           route="POST /v1/members/me/tasks/{taskId}/completions")
def task(ctx: BenchContext) -> CallStats:
    sub = _member_since(ctx, 1, store_id="store-001")
    event = ctx.member_event("POST", "/v1/members/me/tasks/profile_completed/completions",
                             sub=sub)
    with ctx.count() as calls:
        ctx.expect_status(ctx.invoke(TASKS, event), 201)
    ctx.check("DynamoDB write calls per task completion", calls.writes, "==", 1)
    return calls


@operation("review.posted (review task)", requires=("membership.handlers.task_events",),
           route="EventBridge review.posted")
def review(ctx: BenchContext) -> CallStats:
    from membership.domain.members import member_id_for

    member_id = member_id_for(_member_since(ctx, 1))
    order_id = ctx.unique("SO")
    ctx.invoke(ORDER_EVENTS, _order_event("order.paid", {
        "orderId": order_id, "memberId": member_id, "paidAt": datetime.now(UTC).isoformat(),
        "lines": [{"lineId": "1", "sku": "TEE", "category": "apparel", "brand": "acme",
                   "quantity": 1, "unitPrice": 9_900}],
        "amounts": {"subtotal": 9_900, "discount": 0, "pointsUsed": 0, "balanceUsed": 0,
                    "cashPaid": 9_900}}))
    event = _order_event("review.posted", {"memberId": member_id, "orderId": order_id,
                                           "reviewId": ctx.unique("RV")})
    with ctx.count() as calls:
        answer = ctx.invoke(TASK_EVENTS, event)
    if answer["results"][0]["replayed"]:
        raise AssertionError(f"the review was not applied: {answer}")
    ctx.check("DynamoDB write calls per review.posted", calls.writes, "==", 1)
    return calls


def _order_event(detail_type: str, detail: dict) -> dict:
    import uuid

    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": detail_type,
            "source": "brand.orders", "account": "123456789012",
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": "us-east-1",
            "resources": [], "detail": detail}
