"""The birthday gift through the monthly settlement's scan, against DynamoDB Local: given
in the birthday month to a tier that lists it, in the member's settlement posting (points
lot, coupon, guard), once a year whatever re-runs, counted in the report."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from membership.domain import calendar
from membership.domain.ledger import PostingBuilder
from membership.domain.members import ProfileUpdate, SignupRequest, member_id_for
from membership.domain.tiers import upgrade_if_qualified
from membership.services import members as member_service
from membership.services import privacy, settlement
from membership.services.ledger import reconcile_member
from membership.storage import coupons as coupon_store
from membership.storage import ledger
from membership.storage.program import load_program

TZ = "Asia/Shanghai"
JOINED = datetime(2025, 2, 10, 4, 0, tzinfo=UTC)
PERIOD = "2025-02"
RUN_AT = calendar.month_start("2025-03", TZ) + timedelta(minutes=5)  # 00:05, 1 March


def join(n: int, birthday: str | None, *, growth: int = 0) -> str:
    sub = f"birthday-{n}"
    member_service.signup(sub, SignupRequest(phone=f"1391111{n:04d}", nickname="b",
                                             channel="app"), now=JOINED)
    member_id = member_id_for(sub)
    if birthday:
        member_service.edit_profile(sub, ProfileUpdate.model_validate({"birthday": birthday}),
                                    now=JOINED)
    if growth:
        def build(state):
            b = PostingBuilder(state, load_program(), source_key=f"grow-{n}",
                               source_type="test", reason="test", actor="test", now=JOINED)
            b.credit_growth(growth, month="2025-02")
            upgrade_if_qualified(b, load_program())
            return b.build()

        ledger.post(member_id, f"grow-{n}", build)
    return member_id


def settle_period() -> dict:
    settlement.start(PERIOD, now=RUN_AT, segments=1)
    settlement.settle_segment(PERIOD, 0, 1, clock=lambda: RUN_AT)
    return settlement.report(PERIOD).model_dump(mode="json", by_alias=True)


def birthday_coupons(member_id: str) -> list:
    return [c for c in coupon_store.coupons_page(member_id, 50, None)[0]
            if c.source == "birthday"]


def points(member_id: str) -> int:
    return ledger.read_live_range(member_id).member.points_available


def test_a_silver_member_born_in_march_gets_the_gift_in_the_march_run(table):
    coupon_store.seed_default_templates(JOINED)
    member_id = join(1, "1990-03-09", growth=1_000)  # Silver, whose benefits list it
    before = points(member_id)
    report = settle_period()
    assert report["birthdayGifts"] == 1
    assert points(member_id) == before + 200
    assert [c.template_id for c in birthday_coupons(member_id)] == ["BIRTHDAY-20OFF100"]
    assert ledger.read_live_range(member_id).member.birthday_gift_year == 2025
    assert reconcile_member(member_id) == []


def test_members_not_due_get_nothing(table):
    coupon_store.seed_default_templates(JOINED)
    registered = join(2, "1990-03-09")  # V1 lists no birthday gift
    other_month = join(3, "1990-04-09", growth=1_000)
    no_birthday = join(4, None, growth=1_000)
    before = {m: points(m) for m in (registered, other_month, no_birthday)}
    assert settle_period()["birthdayGifts"] == 0
    for member_id, was in before.items():
        assert points(member_id) == was and birthday_coupons(member_id) == []


def test_a_second_run_of_the_period_gives_no_second_gift(table):
    coupon_store.seed_default_templates(JOINED)
    member_id = join(5, "1990-03-09", growth=1_000)
    settle_period()
    after_first = points(member_id)
    settlement.settle_segment(PERIOD, 0, 1, clock=lambda: RUN_AT)  # redelivered
    assert settle_period()["birthdayGifts"] == 1
    assert points(member_id) == after_first and len(birthday_coupons(member_id)) == 1


def test_a_closed_account_gets_no_gift(table):
    coupon_store.seed_default_templates(JOINED)
    member_id = join(6, "1990-03-09")
    privacy.close("birthday-6", now=JOINED + timedelta(days=1))
    assert settle_period()["birthdayGifts"] == 0
    assert birthday_coupons(member_id) == []


def test_a_paused_gift_template_leaves_the_points_and_the_rest_of_the_gift(table):
    from membership.domain.coupons import TemplatePatch
    from membership.services import coupons

    coupon_store.seed_default_templates(JOINED)
    coupons.patch_template("BIRTHDAY-20OFF100", TemplatePatch.model_validate({"paused": True}))
    member_id = join(7, "1990-03-09", growth=1_000)
    before = points(member_id)
    assert settle_period()["birthdayGifts"] == 1
    assert points(member_id) == before + 200 and birthday_coupons(member_id) == []
