"""`membership-local seed --members N`: members with a believable year of activity.

Every member gets its identity items, growth over the last 14 months, the points lots
that growth earned (plus the signup lot) and the ledger entries that add up to them, so
the member item, its entries and its lots reconcile. Tiers are what immediate upgrades
and earlier settlements would have left, so the next settlement moves a realistic
minority: members whose old growth leaves the window drift down, lots earned two
years ago expire at a year end, a few plans end. The 5 % with a paid plan carry the run of
terms that bought it (a trial first for some), so the settlement's scan reads term items
in a believable proportion. Their subscription items are written as from before the plans'
usage counters (no `counted` flag): `membership-local backfill-plan-usage` counts them.

Items go out with BatchWriteItem (25 per call) from a few threads.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from .cli import command

BATCH = 25
MAX_BATCH_RETRIES = 12


def _models():
    # Imported late: the table name is read from the environment when they load.
    from membership.domain import calendar
    from membership.domain.ledger import Entry, Lot, entry_sort_id
    from membership.domain.members import Member, PaidPlanState, member_id_for
    from membership.domain.program import default_program
    from membership.storage import models

    return calendar, Entry, Lot, entry_sort_id, Member, PaidPlanState, member_id_for, \
        default_program, models


def member_items(index: int, period: str, rng: random.Random) -> list[dict]:
    """The items of one member, in DynamoDB's wire format, as of the end of `period`."""
    (calendar, Entry, Lot, entry_sort_id, Member, PaidPlanState, member_id_for,
     default_program, models) = _models()
    from membership.domain.aggregates import OrderStats
    from membership.domain.tags import evaluate, facts_of
    from membership.storage.tags import TagItem

    program = default_program()
    tz = program.time_zone
    months = calendar.rolling_months(period, 14)
    subject = f"seed-{index:08d}"
    member_id = member_id_for(subject)
    created = calendar.month_start(months[0], tz) - timedelta(days=rng.randint(1, 700))
    # Most members buy now and then; a long tail buys a lot; some stopped buying.
    profile = rng.random()
    scale = 80 if profile < 0.6 else 400 if profile < 0.9 else 2_000
    stop_after = len(months) if rng.random() < 0.8 else rng.randint(0, len(months) - 1)
    growth: dict[str, int] = {}
    for i, month in enumerate(months):
        if i < stop_after and rng.random() < 0.45:
            growth[month] = max(1, int(rng.lognormvariate(0, 0.8) * scale))
    # Upgrades happen at once, so the tier is what the best window so far qualified for.
    best = max(sum(growth.get(m, 0) for m in calendar.rolling_months(end))
               for end in months[-3:])
    tier = program.qualified_tier(best).id
    if rng.random() < 0.01:
        tier = program.tiers[0].id  # e.g. thresholds lowered since: settlement upgrades
    close = calendar.month_start(calendar.shift_month(period, 1), tz)
    settled_before = calendar.shift_month(period, -1)

    lots: list = []
    entries: list = []
    points = 0

    def earn(amount: int, earned: datetime, lot_id: str, source: str) -> None:
        nonlocal points
        expires = calendar.end_of_next_year(earned, tz)
        if expires < calendar.month_start(period, tz):
            return  # an earlier settlement expired it
        points += amount
        lots.append(Lot(lot_id=lot_id, member_id=member_id, amount=amount, remaining=amount,
                        earned_at=earned, expires_at=expires, source_key=source))
        entries.append(Entry(
            entry_id=entry_sort_id(earned, source, 0), member_id=member_id, asset="points",
            bucket="available", amount=amount, balance_after=points, source_type="order",
            source_key=source, reason="order", actor="system", created_at=earned,
            effective_at=earned, lot_id=lot_id))

    earn(program.signup_gift.points, created, f"signup-{member_id}", f"signup:{member_id}")
    # Lots earned two years back expire at the coming year end.
    if rng.random() < 0.3:
        old = calendar.month_start(f"{int(period[:4]) - 1}-0{rng.randint(1, 9)}", tz)
        earn(rng.randint(10, 500), old + timedelta(days=3), f"old-{member_id}",
             f"order:old-{member_id}")
    for month, amount in sorted(growth.items()):
        at = calendar.month_start(month, tz) + timedelta(days=rng.randint(0, 27),
                                                         seconds=rng.randint(0, 86_399))
        source = f"order:{member_id}-{month}"
        earn(amount, at, f"order-{member_id}-{month}", source)
        entries.append(Entry(
            entry_id=entry_sort_id(at, source, 1), member_id=member_id, asset="growth",
            bucket=month, amount=amount, balance_after=amount, source_type="order",
            source_key=source, reason="order", actor="system", created_at=at,
            effective_at=at))

    # Order aggregates as the postings would have kept them: one order per month of growth.
    order_times = {}
    for month in growth:
        order_times[month] = calendar.month_start(month, tz) + timedelta(days=14)
    stats = OrderStats(
        complete=True, orders=len(growth), net_spend=sum(growth.values()) * 100,
        first_order_at=min(order_times.values(), default=None),
        last_order_at=max(order_times.values(), default=None),
        order_months={m: 1 for m in growth if m in months[-13:]},
        spend_months={m: v * 100 for m, v in growth.items() if m in months[-13:]})
    plan = None
    if rng.random() < 0.05:
        ends = close + timedelta(days=rng.randint(-20, 200))
        plan = PaidPlanState(plan_id="PLUS", started_at=ends - timedelta(days=30), ends_at=ends)
    upcoming = [lot for lot in lots if lot.remaining]
    soonest = min((lot.expires_at for lot in upcoming), default=None)
    member = Member(
        member_id=member_id, subject=subject, phone=f"+86139{index:08d}",
        nickname=f"seed {index}", channel=rng.choice(["app", "mini_program", "store"]),
        created_at=created, updated_at=close - timedelta(days=1), tier_id=tier,
        tier_since=created, version=len(entries) + 1, points_available=points,
        points_next_expiry_at=soonest,
        points_next_expiry_amount=sum(lot.remaining for lot in upcoming
                                      if lot.expires_at == soonest),
        growth_months=growth, paid_plan=plan,
        settled_period=settled_before if rng.random() < 0.1 else None,
        order_stats=stats,
    )
    terms = []
    if plan is not None:
        # Drawn after everything else, so the members without a plan stay as they were.
        terms = _terms(member_id, plan.ends_at, close, program, rng)
        member = member.model_copy(update={"paid_plan": plan.model_copy(
            update={"started_at": terms[0].starts_at})})
    # Tags as the rules left them at the period's close, so a settlement that changes
    # nothing else writes nothing.
    member = member.model_copy(update={"tags": evaluate(facts_of(member), program, close)})
    items = [models.MemberItem.from_domain(member),
             models.PhoneItem(*models.PhoneItem.key(member.phone), member_id=member_id,
                              subject=subject),
             models.SubjectItem(*models.SubjectItem.key(subject), member_id=member_id)]
    items += [TagItem.of(member_id, tag, mark, listed=True) for tag, mark in member.tags.items()]
    items += [models.LotItem.from_domain(lot) for lot in lots]
    items += [models.EntryItem.from_domain(e) for e in entries]
    items += terms
    if terms:
        from membership.storage.subscriptions import SubscriptionItem

        items.append(SubscriptionItem(
            *SubscriptionItem.key(member_id, terms[0].plan_id), member_id=member_id,
            plan_id=terms[0].plan_id, subscription_id=terms[0].subscription_id,
            terms=len(terms), created_at=terms[0].paid_at, updated_at=terms[-1].paid_at))
    return [_wire(item) for item in items]


# Term lengths in days: near enough for seeded history (the purchase counts calendar months).
TERM_DAYS = {"trial": 7, "monthly": 30, "quarterly": 91, "yearly": 365}


def _terms(member_id: str, ends_at: datetime, close: datetime, program,
           rng: random.Random) -> list:
    """The run of back-to-back terms (oldest first) that ends at `ends_at`, all bought
    before `close`: a kind whose one term reaches from before the close to that end (any
    kind if it ended already), one or more of them, and a trial first for a third."""
    from membership.domain.subscriptions import subscription_id_for, term_id_for
    from membership.storage.subscriptions import TermItem

    plan = program.paid_plans[0]
    ahead = (ends_at - close).days
    fitting = [k for k in ("monthly", "quarterly", "yearly") if TERM_DAYS[k] > ahead]
    kind = rng.choices(fitting, weights=(6, 3, 1)[-len(fitting):])[0]
    kinds = [kind] * rng.randint(1, {"monthly": 6, "quarterly": 4, "yearly": 2}[kind])
    if rng.random() < 0.33:
        kinds.insert(0, "trial")
    subscription = subscription_id_for(member_id, plan.id)
    spans = []
    end = ends_at
    for each in reversed(kinds):
        start = end - timedelta(days=TERM_DAYS[each])
        spans.append((each, start, end))
        end = start - timedelta(microseconds=1)
    spans.reverse()
    anchor = spans[0][1].date()
    items = []
    for seq, (kind, start, end) in enumerate(spans, start=1):
        price = 0 if kind == "trial" else getattr(plan.prices, kind)
        items.append(TermItem(
            *TermItem.key(member_id, plan.id, seq), term_id=term_id_for(subscription, seq),
            member_id=member_id, plan_id=plan.id, subscription_id=subscription, seq=seq,
            term=kind, price=price, paid_with="trial" if kind == "trial" else "payment",
            paid_at=start if seq == 1 else start - timedelta(days=3), starts_at=start,
            ends_at=end, anchor=anchor.isoformat(), extended=seq > 1))
    return items


def _wire(item) -> dict:
    return item.serialize()


def _batches(items: Iterator[dict]) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for item in items:
        batch.append(item)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def write_batch(client, table: str, batch: list[dict]) -> None:
    request = {table: [{"PutRequest": {"Item": item}} for item in batch]}
    for attempt in range(MAX_BATCH_RETRIES):
        response = client.batch_write_item(RequestItems=request)
        request = response.get("UnprocessedItems") or {}
        if not request:
            return
        time.sleep(min(0.05 * 2 ** attempt, 1.0))
    raise RuntimeError("DynamoDB kept items unprocessed; try fewer threads")


def seed_members(client, table: str, count: int, period: str, *, seed: int = 7,
                 start: int = 0, threads: int = 8,
                 progress: Callable[[int], None] | None = None) -> int:
    """Write `count` members (indexes start..start+count-1); returns the items written."""
    written = 0
    tiers: dict[tuple[str, int], int] = {}

    def items() -> Iterator[dict]:
        for i in range(start, start + count):
            # One generator per member: member i is the same whatever the batch it is in.
            for item in member_items(i, period, random.Random(seed * 1_000_003 + i)):
                if item["SK"]["S"] == "MEMBER":
                    key = (item["tier"]["S"], _usage_shard(item["memberId"]["S"]))
                    tiers[key] = tiers.get(key, 0) + 1
                yield item
            if progress is not None:
                progress(i - start + 1)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending = []
        for batch in _batches(items()):
            pending.append(pool.submit(write_batch, client, table, batch))
            written += len(batch)
            if len(pending) >= threads * 4:
                pending.pop(0).result()
        for future in pending:
            future.result()
    _count_tiers(client, table, tiers)
    return written


def _usage_shard(member_id: str) -> int:
    from membership.storage.usage import shard_of

    return shard_of(member_id)


def _count_tiers(client, table: str, tiers: dict[tuple[str, int], int]) -> None:
    """The per-tier member counters signups and upgrades keep (membership.storage.usage)."""
    from membership.storage.usage import TIER, UsageShardItem

    for (tier, shard), count in sorted(tiers.items()):
        pk, sk = UsageShardItem.key(TIER, tier, shard)
        client.update_item(
            TableName=table, Key={"PK": {"S": pk}, "SK": {"S": sk}},
            UpdateExpression="ADD #c :n SET #k = :k, #r = :r",
            ExpressionAttributeNames={"#c": "count", "#k": "kind", "#r": "resourceId"},
            ExpressionAttributeValues={":n": {"N": str(count)}, ":k": {"S": TIER},
                                       ":r": {"S": tier}})


def last_ended_period(now: datetime | None = None) -> str:
    from membership.domain import calendar

    now = now or datetime.now(UTC)
    return calendar.shift_month(calendar.month_of(now, "Asia/Shanghai"), -1)


# ---- the subcommand -------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--members", type=int, required=True, help="how many members")
    parser.add_argument("--period", help="activity up to the end of this month YYYY-MM "
                        "(default: the month that ended last)")
    parser.add_argument("--start", type=int, default=0,
                        help="first member index, to add members to an earlier seed")
    parser.add_argument("--seed", type=int, default=7, help="random seed")
    parser.add_argument("--threads", type=int, default=8)


@command("seed", "write N members with realistic activity (for settle and the bench)",
         add_arguments)
def run(args: argparse.Namespace) -> int:
    from .settle import connect, progress_bar

    if args.members < 1:
        print("membership-local seed: --members must be at least 1", file=sys.stderr)
        return 2
    client, table = connect()
    period = args.period or last_ended_period()
    started = time.monotonic()
    bar = progress_bar("seed", args.members)
    items = seed_members(client, table, args.members, period, seed=args.seed,
                         start=args.start, threads=args.threads, progress=bar.update)
    bar.close()
    elapsed = time.monotonic() - started
    print(f"seeded {args.members} members ({items} items) for {period} into {table} "
          f"in {elapsed:.1f} s ({args.members / elapsed:.0f} members/s)")
    return 0
