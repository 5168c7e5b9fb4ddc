"""A paid plan someone has an active run of cannot be removed from the program: the plan's
usage counter moves in the transactions that start and end a run (purchase, charge, the
daily run's observed end, a refund that ends the run, closure), against DynamoDB Local."""
from __future__ import annotations

import copy
import threading
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from admin_support import as_admin, call

from membership.domain.members import SignupRequest, member_id_for
from membership.domain.program import default_program
from membership.domain.subscription_charges import SubscriptionCharged
from membership.domain.subscription_refunds import SubscriptionRefundRequest
from membership.domain.subscriptions import PlanNotFound, SubscriptionRequest
from membership.errors import Unavailable
from membership.handlers import admin_program
from membership.services import members as member_service
from membership.services import (
    plan_usage,
    privacy,
    program_admin,
    subscription_charges,
    subscription_refunds,
)
from membership.services import subscription_schedule as daily
from membership.services import subscriptions as service
from membership.storage import program as program_store
from membership.storage import subscriptions as store
from membership.storage import usage
from membership.storage.subscriptions import SubscriptionItem
from membership.storage.table import connection

DAY = date(2026, 1, 10)
END = date(2026, 2, 10)  # a monthly term bought on DAY ends at the end of this day


def at(day: date, hour: int = 10) -> datetime:
    """`hour` o'clock Shanghai on `day`, in UTC."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC) - timedelta(hours=8)


def join(sub: str, n: int = 0) -> str:
    member_service.signup(sub, SignupRequest(phone=f"1392222{n:04d}", nickname="p",
                                             channel="app"), now=at(DAY, 8))
    return member_id_for(sub)


def buy(sub: str, ref: str, now: datetime, term: str = "monthly", key: str | None = None):
    body = {"planId": "PLUS", "term": term}
    if term != "trial":
        body |= {"paymentReference": ref, "channel": "wechat_pay"}
    return service.purchase(sub, key or ref, SubscriptionRequest.model_validate(body), now=now)


def counted() -> int:
    return usage.read_usage(usage.PLAN, "PLUS").count


def flag(member_id: str):
    return store.read(member_id)[0]["PLUS"].counted


def without_plus():
    doc = default_program().model_dump(mode="json", by_alias=True)
    return {**copy.deepcopy(doc), "paidPlans": []}


def put(apigw_event, ctx, doc, if_match='"0"'):
    return call(admin_program, as_admin(apigw_event, "PUT", "/v1/admin/program", doc,
                                        headers={"If-Match": if_match}), ctx)


def version(apigw_event, ctx) -> int:
    return call(admin_program, as_admin(apigw_event, "GET", "/v1/admin/program"), ctx)[1][
        "version"]


def refund(member_id: str, refund_id: str, now: datetime):
    return subscription_refunds.refund(
        f"{member_id}.PLUS",
        SubscriptionRefundRequest.model_validate({"refundId": refund_id, "reason": "test"}),
        actor="admin:test", now=now)


def charge(member_id: str, cycle: int, ref: str, now: datetime):
    return subscription_charges.apply(SubscriptionCharged.model_validate({
        "subscriptionId": f"{member_id}.PLUS", "cycle": cycle, "paymentReference": ref,
        "amount": 1900, "chargedAt": now.isoformat()}), now=now)


PLAN_IN_USE = {"path": "paidPlans[0]", "code": "plan_in_use", "inUse": 1,
               "message": "1 member(s) still use plan 'PLUS': it cannot be removed"}


def test_removing_a_plan_with_an_active_member_is_refused_and_changes_nothing(
        table, apigw_event, lambda_context):
    member_id = join("plan-active")
    buy("plan-active", "test-active-1", at(DAY))
    assert (counted(), flag(member_id)) == (1, True)
    status, body, _ = put(apigw_event, lambda_context, without_plus())
    assert status == 409
    assert body["code"] == "program_change_refused"
    assert body["details"]["refusals"] == [PLAN_IN_USE]
    assert version(apigw_event, lambda_context) == 0
    assert usage.read_usage(usage.PLAN, "PLUS").retired_shards == ()
    # Nothing was fenced: the member extends as before.
    buy("plan-active", "test-active-2", at(DAY + timedelta(days=3)))
    assert counted() == 1


def test_after_the_daily_run_sees_the_lapse_the_plan_can_be_removed(
        table, apigw_event, lambda_context):
    member_id = join("plan-lapse")
    buy("plan-lapse", "test-lapse-1", at(DAY))
    daily.run_daily(now=at(END, 0))  # the last day: still active
    assert (counted(), flag(member_id)) == (1, True)
    assert put(apigw_event, lambda_context, without_plus())[0] == 409
    report = daily.run_daily(now=at(END + timedelta(days=1), 0))
    assert report.lapsed == 1 and report.failed == 0
    assert (counted(), flag(member_id)) == (0, False)
    daily.run_daily(now=at(END + timedelta(days=1), 3))  # run again: counted down once
    assert counted() == 0
    status, body, _ = put(apigw_event, lambda_context, without_plus())
    assert status == 200, body
    assert body["program"]["paidPlans"] == []


def test_a_trial_is_an_active_term_until_its_end_is_seen(table, apigw_event, lambda_context):
    member_id = join("plan-trial")
    buy("plan-trial", "", at(DAY), term="trial", key="K-trial")
    assert (counted(), flag(member_id)) == (1, True)
    assert put(apigw_event, lambda_context, without_plus())[1]["details"]["refusals"] == [
        PLAN_IN_USE]
    daily.run_daily(now=at(DAY + timedelta(days=8), 0))  # a 7-day trial ended last night
    assert (counted(), flag(member_id)) == (0, False)
    assert put(apigw_event, lambda_context, without_plus())[0] == 200


def test_a_refund_that_ends_the_run_lets_the_plan_go(table, apigw_event, lambda_context):
    member_id = join("plan-refund")
    buy("plan-refund", "test-refund-1", at(DAY))
    buy("plan-refund", "test-refund-2", at(DAY + timedelta(days=1)))  # extends
    refund(member_id, "R-later", at(DAY + timedelta(days=2)))  # the first term goes on
    assert (counted(), flag(member_id)) == (1, True)
    assert put(apigw_event, lambda_context, without_plus())[0] == 409
    refund(member_id, "R-first", at(DAY + timedelta(days=2), 11))  # nothing left: run ends
    assert (counted(), flag(member_id)) == (0, False)
    refund(member_id, "R-first", at(DAY + timedelta(days=2), 11))  # replayed: once
    daily.run_daily(now=at(END + timedelta(days=40), 0))  # the run's end, seen later
    assert counted() == 0
    assert put(apigw_event, lambda_context, without_plus())[0] == 200


def test_renewals_and_charges_do_not_count_again_a_new_run_does(table):
    member_id = join("plan-renew")
    buy("plan-renew", "test-renew-1", at(DAY))
    buy("plan-renew", "test-renew-2", at(DAY + timedelta(days=5)))  # extends
    charge(member_id, 3, "test-renew-auto-3", at(DAY + timedelta(days=6)))
    charge(member_id, 3, "test-renew-auto-3", at(DAY + timedelta(days=6)))  # redelivered
    assert (counted(), flag(member_id)) == (1, True)
    ends = store.read(member_id)[1]["PLUS"][-1].record.ends_at
    after = ends + timedelta(days=1)
    daily.run_daily(now=after)
    assert (counted(), flag(member_id)) == (0, False)
    buy("plan-renew", "test-renew-4", after + timedelta(hours=1))  # a new run
    assert (counted(), flag(member_id)) == (1, True)


def test_a_purchase_after_an_unseen_lapse_keeps_one_count(table):
    """The run ended but no daily run saw it: the member is still counted, and a purchase
    that starts a new run keeps that one count (the flag says so), never two."""
    member_id = join("plan-unseen")
    buy("plan-unseen", "test-unseen-1", at(DAY))
    buy("plan-unseen", "test-unseen-2", at(END + timedelta(days=3)))
    assert (counted(), flag(member_id)) == (1, True)
    daily.run_daily(now=at(END + timedelta(days=4), 0))  # the new run is active
    assert (counted(), flag(member_id)) == (1, True)


def test_a_visit_that_counts_the_run_down_under_a_purchase_makes_it_count_again(
        table, monkeypatch):
    """The purchase read the flag set; before it commits, a visit that writes no posting
    (the run ended on a refunded extension: no lapse event) counts the member down. The
    purchase's condition on the flag makes it read again and count the new run."""
    member_id = join("plan-under")
    buy("plan-under", "test-under-1", at(DAY))
    buy("plan-under", "test-under-2", at(DAY, 11))  # extends
    daily.run_daily(now=at(DAY, 12))  # month 0's pack
    refund(member_id, "R-under", at(DAY, 13))  # the extension; the run goes on to END
    real, visits = store.purchase_extras, []

    def visit_first(*args, **kwargs):
        if not visits:
            visits.append(daily.run_daily(now=at(END + timedelta(days=1), 0)))
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "purchase_extras", visit_first)
    buy("plan-under", "test-under-3", at(END + timedelta(days=1), 1))
    assert visits[0].rescheduled == 1  # counted down without a posting
    assert (counted(), flag(member_id)) == (1, True)


def test_a_replayed_purchase_does_not_count_again(table):
    member_id = join("plan-replay")
    first = buy("plan-replay", "test-replay-1", at(DAY), key="K1")
    again = buy("plan-replay", "test-replay-1", at(DAY), key="K1")
    assert again.replayed and again.body == first.body
    # The same payment under another key: the purchase's own guard answers it.
    assert buy("plan-replay", "test-replay-1", at(DAY), key="K2").replayed
    assert (counted(), flag(member_id)) == (1, True)
    assert len(store.read(member_id)[1]["PLUS"]) == 1


def test_a_purchase_with_a_program_cached_before_the_removal_is_refused(
        table, apigw_event, lambda_context):
    """A function that still caches the program with PLUS cannot start a run of it."""
    member_id = join("plan-stale")
    stale = program_store.load_program()
    assert put(apigw_event, lambda_context, without_plus())[0] == 200
    assert usage.read_usage(usage.PLAN, "PLUS").retired_shards == tuple(range(16))
    program_store._cache = (time.monotonic(), stale)
    with pytest.raises(Unavailable) as refused:
        buy("plan-stale", "test-stale-1", at(DAY))
    assert refused.value.details == {"reason": "program_changed"}
    assert counted() == 0
    assert store.read(member_id) == ({}, {})  # nothing was written
    # The refusal dropped the stale cache: the retry reads the program without PLUS.
    with pytest.raises(PlanNotFound):
        buy("plan-stale", "test-stale-1", at(DAY))


def test_a_purchase_between_the_puts_check_and_its_commit_refuses_the_put(
        table, apigw_event, lambda_context, monkeypatch):
    join("plan-race")
    real = program_admin.store.commit_change

    def purchase_first(*args, **kwargs):
        buy("plan-race", "test-race-1", at(DAY))  # the counters were read as 0
        return real(*args, **kwargs)

    monkeypatch.setattr(program_admin.store, "commit_change", purchase_first)
    status, body, _ = put(apigw_event, lambda_context, without_plus())
    assert status == 409
    assert body["details"]["refusals"] == [PLAN_IN_USE]
    assert version(apigw_event, lambda_context) == 0
    assert counted() == 1
    assert usage.read_usage(usage.PLAN, "PLUS").retired_shards == ()


def test_purchases_racing_a_put_never_strand_a_member(table, apigw_event, lambda_context):
    subs = [f"plan-racer-{n}" for n in range(4)]
    for n, sub in enumerate(subs):
        join(sub, n)
    start = threading.Barrier(len(subs) + 1)
    bought, answers = [], []

    def purchase(sub):
        start.wait()
        try:
            buy(sub, f"test-{sub}", at(DAY))
            bought.append(sub)
        except (Unavailable, PlanNotFound):
            pass

    def change():
        start.wait()
        answers.append(put(apigw_event, lambda_context.next_invocation(), without_plus())[0])

    threads = [threading.Thread(target=purchase, args=(s,)) for s in subs]
    threads.append(threading.Thread(target=change))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    [status] = answers
    assert counted() == len(bought)
    if status == 200:  # the change went in first: no run of PLUS started
        assert bought == []
    else:  # a run started first (409), or the PUT lost a write conflict (503): unchanged
        assert status in (409, 503)
        assert version(apigw_event, lambda_context) == 0


def test_closing_an_account_whose_run_ended_unseen_counts_it_down(
        table, apigw_event, lambda_context):
    member_id = join("plan-close")
    buy("plan-close", "test-close-1", at(DAY))
    assert counted() == 1
    privacy.close("plan-close", now=at(END + timedelta(days=1), 0))  # before the daily run
    assert (counted(), flag(member_id)) == (0, False)
    assert daily.run_daily(now=at(END + timedelta(days=1), 1)).failed == 0
    assert counted() == 0
    assert put(apigw_event, lambda_context, without_plus())[0] == 200


def _as_before_the_counters(member_id: str) -> None:
    """The subscription as written before the counters existed: no flag, not counted."""
    from pynamodb.transactions import TransactWrite

    t = TransactWrite(connection=connection())
    t.update(SubscriptionItem(*SubscriptionItem.key(member_id, "PLUS")),
             actions=[SubscriptionItem.counted.remove()])
    usage.UsageChange(usage.PLAN, "PLUS", member_id, -1).add_to(t)
    t._commit()
    assert flag(member_id) is None


def test_the_backfill_counts_subscriptions_from_before_the_counters(
        table, apigw_event, lambda_context):
    active, lapsed = join("plan-old-a", 1), join("plan-old-b", 2)
    buy("plan-old-a", "test-old-a", datetime.now(UTC))
    buy("plan-old-b", "test-old-b", at(DAY))  # ended long ago
    for member_id in (active, lapsed):
        _as_before_the_counters(member_id)
    # before the backfill an operator could strand the active member
    assert counted() == 0
    report = plan_usage.run(segments=2, page_limit=1)
    assert (report.updated, report.failed) == (2, 0)
    assert (flag(active), flag(lapsed), counted()) == (True, False, 1)
    assert put(apigw_event, lambda_context, without_plus())[1]["details"]["refusals"] == [
        PLAN_IN_USE]
    again = plan_usage.run(segments=2)
    assert again.updated == 2 and counted() == 1  # done: nothing counted twice
    assert plan_usage.count_subscription(active, "PLUS") is False


def test_a_subscription_from_before_the_counters_is_counted_at_its_next_write(table):
    member_id = join("plan-old-write")
    buy("plan-old-write", "test-old-write-1", at(DAY))
    _as_before_the_counters(member_id)
    buy("plan-old-write", "test-old-write-2", at(DAY + timedelta(days=1)))  # extends
    assert (counted(), flag(member_id)) == (1, True)
    buy("plan-old-write", "test-old-write-3", at(DAY + timedelta(days=2)))
    assert counted() == 1


def test_a_subscription_from_before_the_counters_is_counted_at_its_next_visit(table):
    member_id = join("plan-old-visit")
    buy("plan-old-visit", "test-old-visit-1", at(DAY), term="quarterly")
    daily.run_daily(now=at(DAY, 12))  # month 0's pack: the next visit is a month away
    _as_before_the_counters(member_id)
    daily.run_daily(now=at(date(2026, 2, 10), 1))  # month 1's pack
    assert (counted(), flag(member_id)) == (1, True)
