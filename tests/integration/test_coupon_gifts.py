"""Gift packs issue coupons in the same transaction as the rest of their posting; a
template that ran out is reported and never blocks the rest of the gift."""
from datetime import UTC, datetime

from membership.domain import calendar
from membership.domain.coupons import TemplatePatch, default_templates
from membership.domain.ledger import PostingBuilder
from membership.domain.members import SignupRequest, member_id_for
from membership.domain.tiers import upgrade_if_qualified
from membership.services import coupons
from membership.services import members as member_service
from membership.services.ledger import reconcile_member
from membership.storage import coupons as store
from membership.storage import ledger
from membership.storage.models import GuardItem
from membership.storage.program import load_program

NOW = datetime.now(UTC)


def seed():
    assert store.seed_default_templates(NOW)


def join(sub="gifted", n=0):
    member_service.signup(sub, SignupRequest(phone=f"1390000{n:04d}", nickname="g",
                                             channel="app"))
    return member_id_for(sub)


def wallet(member_id):
    return store.coupons_page(member_id, 50, None)[0]


def test_the_default_templates_are_seeded_once(table):
    seed()
    assert store.seed_default_templates(NOW) == []
    ids = {t.template_id for t in default_templates()}
    assert {coupons.get_template(i).template["templateId"] for i in ids} == ids


def test_signup_issues_the_welcome_coupon_with_the_points(table):
    seed()
    member_id = join()
    found = wallet(member_id)
    assert [c.template_id for c in found] == ["WELCOME-10OFF100"]
    assert found[0].source == "signup"
    assert ledger.read_live_range(member_id).member.points_available == 100
    assert coupons.get_template("WELCOME-10OFF100").issued == 1
    guard = GuardItem.get(*GuardItem.key(f"signup:{member_id}"))
    assert "coupon.issued" in [e["detailType"] for e in guard.outbox]


def test_a_gift_template_out_of_stock_is_reported_and_the_rest_of_the_gift_lands(table):
    seed()
    coupons.patch_template("WELCOME-10OFF100", TemplatePatch(stock=1))
    join("first", 1)
    member_id = join("second", 2)
    assert wallet(member_id) == []
    assert ledger.read_live_range(member_id).member.points_available == 100
    guard = GuardItem.get(*GuardItem.key(f"signup:{member_id}"))
    assert guard.result_dict()["giftCoupons"]["notIssued"] == [
        {"templateId": "WELCOME-10OFF100", "quantity": 1, "reason": "out_of_stock"}]
    assert coupons.get_template("WELCOME-10OFF100").issued == 1


def test_a_missing_gift_template_never_blocks_signup(table):
    member_id = join()
    assert wallet(member_id) == []
    assert ledger.read_live_range(member_id).member.points_available == 100


def test_an_upgrade_to_gold_issues_its_coupon_once(table):
    seed()
    member_id = join()
    month = calendar.month_of(NOW, "Asia/Shanghai")

    def build(state):
        b = PostingBuilder(state, load_program(), source_key="grow", source_type="test",
                           reason="test", actor="test", now=NOW)
        b.credit_growth(6_000, month=month)
        upgrade_if_qualified(b, load_program())
        return b.build()

    outcome = ledger.post(member_id, "grow", build)
    assert [c["templateId"] for c in outcome.result["giftCoupons"]["issued"]] == ["V3-5PCT"]
    assert sorted(c.template_id for c in wallet(member_id)) == ["V3-5PCT", "WELCOME-10OFF100"]
    assert [c.source for c in wallet(member_id) if c.template_id == "V3-5PCT"] == ["upgrade"]
    assert reconcile_member(member_id) == []
