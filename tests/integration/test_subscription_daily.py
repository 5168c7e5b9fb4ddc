"""The paid plan's daily run against DynamoDB Local: monthly packs once per (term, month),
renewal notices, lapses, through the sparse index of due subscriptions, never a scan."""
import json
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from jsonschema import Draft202012Validator

from membership.domain.members import SignupRequest, member_id_for
from membership.domain.subscription_schedule import pack_guard
from membership.domain.subscriptions import AutoRenewRequest, SubscriptionRequest
from membership.services import coupons
from membership.services import members as member_service
from membership.services import subscription_schedule as daily
from membership.services import subscriptions as service
from membership.services.ledger import reconcile_member
from membership.storage import coupons as coupon_store
from membership.storage import subscription_schedule as schedule_store
from membership.storage import subscriptions as store
from membership.storage.models import GuardItem

EVENTS = Path(__file__).resolve().parents[2] / "events"
TZ = "Asia/Shanghai"
MONTHLY = {"planId": "PLUS", "term": "monthly", "channel": "wechat_pay"}


def at(day: date, hour: int = 10) -> datetime:
    """`hour` o'clock Shanghai on `day`, in UTC."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC) - timedelta(hours=8)


def join(sub="plus-schedule", n=0, now=None):
    member_service.signup(sub, SignupRequest(phone=f"1391111{n:04d}", nickname="p",
                                             channel="app"), now=now)
    return member_id_for(sub)


def buy(sub, term, ref, now, key=None):
    return service.purchase(sub, key or ref, SubscriptionRequest.model_validate(
        {**MONTHLY, "term": term, "paymentReference": ref}), now=now)


def plus_coupons(member_id):
    return [c for c in coupon_store.coupons_page(member_id, 100, None)[0]
            if c.template_id == "PLUS-10OFF100"]


def item_of(member_id):
    return store.read(member_id)[0]["PLUS"]


def outbox(member_id, detail_type):
    found = []
    conn = GuardItem._get_connection()
    for raw in conn.scan()["Items"]:  # test inspection only: the product never scans
        guard = GuardItem.from_raw_data(raw) if raw.get("SK", {}).get("S") == "SOURCE" else None
        if guard is None or guard.member_id != member_id:
            continue
        for e in guard.outbox or []:
            if e["detailType"] == detail_type:
                found.append(json.loads(e["detail"]))
    return found


def validate(detail_type, detail):
    schema = json.loads((EVENTS / "schemas" / f"{detail_type}.json").read_text())
    Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(
        detail)


START = date(2026, 1, 31)


def plus_member(sub="plus-schedule", n=0, term="monthly", day=START):
    coupon_store.seed_default_templates(at(day, 9))
    member_id = join(sub, n, now=at(day, 9))
    buy(sub, term, f"test-{sub}-1", at(day))
    return member_id


def test_a_purchase_puts_the_subscription_in_the_due_index_for_today(table):
    member_id = plus_member()
    due = list(schedule_store.due_subscriptions(START))
    assert due == [(START, member_id, "PLUS")]
    assert list(schedule_store.due_subscriptions(START - timedelta(days=1))) == []


def test_the_first_run_issues_month_zero_pack_and_moves_the_due_date(table):
    member_id = plus_member()
    report = daily.run_daily(now=at(START, 12))
    assert (report.due, report.visited, report.packs) == (1, 1, 1)
    assert len(plus_coupons(member_id)) == 2
    assert GuardItem.get(*GuardItem.key(pack_guard(f"{member_id}.PLUS.0001", 0)))
    # Next: month 1 on 28 Feb (clamped from the 31 Jan anchor), via renewal notice day 23 Feb.
    assert item_of(member_id).GSI1SK.startswith("2026-02-23#")
    assert reconcile_member(member_id) == []


def test_a_second_run_the_same_day_gives_nothing_twice(table):
    member_id = plus_member()
    daily.run_daily(now=at(START, 12))
    again = daily.run_daily(now=at(START, 13))
    assert again.packs == 0
    assert len(plus_coupons(member_id)) == 2


def test_missed_days_catch_up_every_month_owed_once(table):
    member_id = plus_member(term="quarterly")
    report = daily.run_daily(now=at(date(2026, 4, 1), 1))  # nothing ran for two months
    assert report.packs == 3  # months 0, 1 (28 Feb) and 2 (31 Mar)
    assert len(plus_coupons(member_id)) == 6
    assert daily.run_daily(now=at(date(2026, 4, 2))).packs == 0


def test_a_quarter_gives_one_pack_per_month_over_daily_runs(table):
    member_id = plus_member(term="quarterly")
    day, packs = START, 0
    while day <= date(2026, 5, 5):  # every other day: a missed day catches up
        packs += daily.run_daily(now=at(day, 0)).packs
        day += timedelta(days=2)
    assert packs == 3
    assert len(plus_coupons(member_id)) == 6
    assert "GSI1SK" not in store.SubscriptionItem._get_connection().get_item(
        *store.SubscriptionItem.key(member_id, "PLUS"))["Item"]


def test_concurrent_runs_issue_each_pack_once(table):
    member_id = plus_member()
    threads = [threading.Thread(target=daily.run_daily, kwargs={"now": at(START, 12)})
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(plus_coupons(member_id)) == 2


def test_renewal_due_goes_out_five_days_before_an_automatic_renewal_once(table):
    member_id = plus_member()
    service.set_auto_renew("plus-schedule", AutoRenewRequest(autoRenew=True), now=at(START, 11))
    daily.run_daily(now=at(START, 12))
    assert daily.run_daily(now=at(date(2026, 2, 22))).renewal_due == 0
    report = daily.run_daily(now=at(date(2026, 2, 23)))
    assert report.renewal_due == 1
    assert daily.run_daily(now=at(date(2026, 2, 24))).renewal_due == 0
    [notice] = outbox(member_id, "subscription.renewal_due")
    validate("subscription.renewal_due", notice)
    assert (notice["renewalOn"], notice["cycle"]) == ("2026-02-28", 2)


def test_no_renewal_notice_when_auto_renew_is_off(table):
    member_id = plus_member()
    for day in (START, date(2026, 2, 23), date(2026, 2, 24)):
        daily.run_daily(now=at(day))
    assert outbox(member_id, "subscription.renewal_due") == []


def test_a_lapse_is_announced_once_on_the_first_run_after_the_end(table):
    member_id = plus_member()
    daily.run_daily(now=at(START, 12))
    assert daily.run_daily(now=at(date(2026, 2, 28), 23)).lapsed == 0
    report = daily.run_daily(now=at(date(2026, 3, 3)))  # the 1st and 2nd were missed
    assert report.lapsed == 1
    assert daily.run_daily(now=at(date(2026, 3, 4))).lapsed == 0
    [lapse] = outbox(member_id, "subscription.lapsed")
    validate("subscription.lapsed", lapse)
    assert lapse["termId"] == f"{member_id}.PLUS.0001"


def test_an_empty_pack_template_is_reported_and_does_not_block(table):
    from membership.domain.coupons import TemplatePatch

    member_id = plus_member()
    coupons.patch_template("PLUS-10OFF100", TemplatePatch(stock=1))
    report = daily.run_daily(now=at(START, 12))
    assert report.packs == 1 and report.coupons_not_issued == 1
    assert len(plus_coupons(member_id)) == 1
    assert daily.run_daily(now=at(START, 13)).packs == 0  # reported, not retried


def test_the_run_reads_only_due_subscriptions(table):
    members = [plus_member(f"plus-{n}", n + 1) for n in range(3)]
    daily.run_daily(now=at(START, 12))
    report = daily.run_daily(now=at(date(2026, 2, 10)))
    assert report.due == 0 and len(members) == 3


def test_membership_local_daily_runs_a_given_date(table, monkeypatch, capsys):
    from membership_local import attach
    from membership_local.cli import main

    member_id = plus_member()
    monkeypatch.setattr(attach, "attach_to_stack", lambda table=None: {})
    assert main(["daily", "--date", START.isoformat()]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (out["on"], out["packs"]) == (START.isoformat(), 1)
    assert len(plus_coupons(member_id)) == 2


def test_the_scheduled_handler_runs_the_day_of_its_scheduled_time(table, lambda_context):
    from membership.handlers import subscription_daily as handler

    member_id = plus_member()
    # 00:10 on 31 Jan in Shanghai is 16:10 UTC on the 30th: the run is for the 31st.
    result = handler.handler({"scheduledTime": "2026-01-30T16:10:00Z"}, lambda_context)
    assert (result["on"], result["packs"]) == ("2026-01-31", 1)
    assert len(plus_coupons(member_id)) == 2
    again = handler.handler({"date": "2026-01-31"}, lambda_context)
    assert again["packs"] == 0
