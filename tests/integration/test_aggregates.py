"""Order aggregates on the member item (order.paid / order.refunded) and their backfill."""
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from membership.domain import aggregates, calendar
from membership.domain.members import SignupRequest, member_id_for
from membership.errors import DomainError
from membership.handlers import order_events
from membership.services import backfill
from membership.services import members as member_service
from membership.storage import backfill as backfill_store
from membership.storage import ledger as store
from membership.storage.models import MemberItem
from membership.storage.tags import member_tags

SHANGHAI = calendar.zone("Asia/Shanghai")
PAID_AT = (datetime.now(SHANGHAI) - timedelta(hours=1)).replace(microsecond=0).isoformat()
LINES = [
    {"lineId": "1", "sku": "MILK", "category": "milk", "brand": "acme", "quantity": 2,
     "unitPrice": 150_000},
    {"lineId": "2", "sku": "TOY", "category": "toys", "brand": "acme", "quantity": 1,
     "unitPrice": 250_000},
]


def signed_up(sub):
    member_service.signup(sub, SignupRequest(phone=f"138{uuid.uuid4().int % 10**8:08d}",
                                             nickname="S", channel="app"))
    return member_id_for(sub)


def deliver(ctx, detail_type, detail):
    event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": detail_type,
             "source": "brand.orders", "account": "123456789012",
             "time": "2025-03-20T11:02:41Z", "region": "us-east-1", "resources": [],
             "detail": detail}
    return order_events.handler(event, ctx)


def paid(member_id, order_id, store_id="store-001"):
    subtotal = sum(x["quantity"] * x["unitPrice"] for x in LINES)
    return {"orderId": order_id, "memberId": member_id, "storeId": store_id,
            "paidAt": PAID_AT, "lines": LINES,
            "amounts": {"subtotal": subtotal, "discount": 0, "pointsUsed": 0,
                        "balanceUsed": 0, "cashPaid": subtotal}}


def member(member_id):
    return store.read_live_range(member_id).member


def recomputed(member_id):
    return aggregates.recompute(backfill_store.member_orders(member_id),
                                now=datetime.now(UTC), tz="Asia/Shanghai")


def test_paid_order_updates_aggregates_in_its_own_posting(table, lambda_context):
    member_id = signed_up("agg-paid")
    deliver(lambda_context, "order.paid", paid(member_id, "SO-1"))
    stats = member(member_id).order_stats
    assert (stats.orders, stats.net_spend, stats.stores) == (1, 550_000, ("store-001",))
    assert stats.categories == {"milk": 300_000, "toys": 250_000}
    assert stats.last_order_at == datetime.fromisoformat(PAID_AT)
    assert stats == recomputed(member_id)


def test_partial_then_full_refund_keep_aggregates_equal_to_the_orders(table, lambda_context):
    member_id = signed_up("agg-refund")
    deliver(lambda_context, "order.paid", paid(member_id, "SO-1"))
    deliver(lambda_context, "order.paid", paid(member_id, "SO-2", store_id="store-002"))
    deliver(lambda_context, "order.refunded", {"orderId": "SO-1", "memberId": member_id,
                                               "refundId": "R1",
                                               "lines": [{"lineId": "1", "quantity": 1}]})
    stats = member(member_id).order_stats
    assert (stats.orders, stats.net_spend) == (2, 1_100_000 - 150_000)
    assert stats == recomputed(member_id)
    deliver(lambda_context, "order.refunded", {"orderId": "SO-1", "memberId": member_id,
                                               "refundId": "R2"})
    stats = member(member_id).order_stats
    assert (stats.orders, stats.net_spend) == (1, 550_000)
    assert stats == recomputed(member_id)


def test_a_redelivered_order_counts_once(table, lambda_context):
    member_id = signed_up("agg-redeliver")
    deliver(lambda_context, "order.paid", paid(member_id, "SO-1"))
    deliver(lambda_context, "order.paid", paid(member_id, "SO-1"))
    assert member(member_id).order_stats.orders == 1


def test_order_posting_tags_a_high_value_member_and_ends_new_member(table, lambda_context):
    member_id = signed_up("agg-tags")
    assert set(member(member_id).tags) == {"new_member"}
    deliver(lambda_context, "order.paid", paid(member_id, "SO-1"))  # 5,500 yuan
    m = member(member_id)
    assert set(m.tags) == {"high_value"}
    assert {item.tag for item in member_tags(member_id)} == {"high_value"}
    deliver(lambda_context, "order.refunded", {"orderId": "SO-1", "memberId": member_id,
                                               "refundId": "R1"})
    assert member(member_id).tags == {}
    assert member_tags(member_id) == []


def _forget_aggregates(member_id):
    """A member item as it was before aggregates existed."""
    item = MemberItem(*MemberItem.key(member_id))
    item.update(actions=[MemberItem.order_stats.remove()])


def test_backfill_recomputes_members_from_before_and_is_idempotent(table, lambda_context):
    old = signed_up("agg-old")
    deliver(lambda_context, "order.paid", paid(old, "SO-1"))
    deliver(lambda_context, "order.refunded", {"orderId": "SO-1", "memberId": old,
                                               "refundId": "R1",
                                               "lines": [{"lineId": "2", "quantity": 1}]})
    new = signed_up("agg-new")
    expected = member(old).order_stats
    _forget_aggregates(old)
    assert member(old).order_stats.orders == 0
    report = backfill.run(segments=2, page_limit=1)
    assert (report.updated, report.failed) == (1, 0)
    assert member(old).order_stats == expected
    assert member(new).order_stats.complete
    version = member(old).version
    again = backfill.run(segments=2)  # done: the same report, nothing written again
    assert (again.seen, again.updated) == (report.seen, report.updated)
    assert member(old).version == version


def test_backfill_resumes_from_its_checkpoint(table, lambda_context):
    ids = [signed_up(f"agg-resume-{i}") for i in range(4)]
    for i, member_id in enumerate(ids):
        deliver(lambda_context, "order.paid", paid(member_id, f"SO-{i}"))
        _forget_aggregates(member_id)
    pages = iter(range(100))
    first = backfill.run(segments=1, page_limit=1, should_stop=lambda: next(pages) >= 2)
    assert first.updated < 4
    second = backfill.run(segments=1, page_limit=1)
    assert second.updated == 4  # the checkpoint counts what the first run did too
    assert all(member(m).order_stats == recomputed(m) for m in ids)


class _Killed(BaseException):
    """The process dies: nothing after this point of the run happens."""


def _killed_after(writes, monkeypatch):
    real = backfill.backfill_member
    done = []

    def dying(member_id, now=None, **kwargs):
        if len(done) == writes:
            raise _Killed()
        wrote = real(member_id, now, **kwargs)
        done.append(member_id)
        return wrote

    monkeypatch.setattr(backfill, "backfill_member", dying)
    return done


def test_backfill_killed_in_the_middle_of_a_page_resumes_without_losing_a_count(
        table, lambda_context, monkeypatch):
    ids = [signed_up(f"agg-crash-{i}") for i in range(5)]
    for i, member_id in enumerate(ids):
        deliver(lambda_context, "order.paid", paid(member_id, f"SO-{i}"))
        _forget_aggregates(member_id)
    done = _killed_after(2, monkeypatch)  # one page holds every member: killed inside it
    try:
        backfill.run(segments=1, page_limit=1_000)
    except _Killed:
        pass
    assert len(done) == 2 and backfill_store.load(backfill.NAME, 0).cursor is None
    monkeypatch.undo()
    resumed = backfill.run(segments=1, page_limit=1_000)
    assert (resumed.seen, resumed.updated, resumed.failed) == (5, 5, 0)
    assert all(member(m).order_stats == recomputed(m) for m in ids)
    again = backfill.run(segments=1)
    assert (again.seen, again.updated) == (5, 5)


def test_backfill_killed_between_pages_neither_undercounts_nor_double_counts(
        table, lambda_context, monkeypatch):
    ids = [signed_up(f"agg-crash-pages-{i}") for i in range(4)]
    for i, member_id in enumerate(ids):
        deliver(lambda_context, "order.paid", paid(member_id, f"SO-{i}"))
        _forget_aggregates(member_id)
    _killed_after(3, monkeypatch)
    try:
        backfill.run(segments=2, page_limit=2)
    except _Killed:
        pass
    monkeypatch.undo()
    resumed = backfill.run(segments=2, page_limit=2)
    assert (resumed.updated, resumed.failed) == (4, 0)
    assert resumed.seen == sum(backfill_store.load(backfill.NAME, s).seen for s in range(2))
    assert all(member(m).order_stats == recomputed(m) for m in ids)


def test_backfill_passes_again_over_a_segment_whose_member_failed(
        table, lambda_context, monkeypatch):
    ids = [signed_up(f"agg-fail-{i}") for i in range(3)]
    for i, member_id in enumerate(ids):
        deliver(lambda_context, "order.paid", paid(member_id, f"SO-{i}"))
        _forget_aggregates(member_id)
    real = backfill.backfill_member

    def failing(member_id, now=None, **kwargs):
        if member_id == ids[1]:
            raise DomainError("contended")
        return real(member_id, now, **kwargs)

    monkeypatch.setattr(backfill, "backfill_member", failing)
    first = backfill.run(segments=1)
    assert (first.updated, first.failed) == (2, 1)
    assert not member(ids[1]).order_stats.complete
    monkeypatch.undo()
    second = backfill.run(segments=1)
    assert (second.updated, second.failed) == (3, 0)
    assert member(ids[1]).order_stats == recomputed(ids[1])


def test_backfill_refuses_to_resume_with_another_segment_count(table, lambda_context):
    member_id = signed_up("agg-segments")
    deliver(lambda_context, "order.paid", paid(member_id, "SO-1"))
    _forget_aggregates(member_id)
    pages = iter(range(100))
    backfill.run(segments=2, page_limit=1, should_stop=lambda: next(pages) >= 1)
    with pytest.raises(ValueError, match="--segments 2"):
        backfill.run(segments=3)
    assert backfill.run(segments=2).failed == 0
    assert member(member_id).order_stats == recomputed(member_id)
