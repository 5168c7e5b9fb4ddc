"""Every event the code puts in an outbox matches its JSON Schema under events/schemas."""
import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema

from membership.domain.ledger import PostingBuilder
from membership.domain.members import SignupRequest, member_id_for
from membership.domain.tiers import upgrade_if_qualified
from membership.services import members as member_service
from membership.storage import ledger as store
from membership.storage.models import GuardItem
from membership.storage.program import load_program

SCHEMAS = Path(__file__).resolve().parents[2] / "events" / "schemas"


def outbox_events():
    for guard in GuardItem.scan(GuardItem.PK.startswith("SOURCE#")):
        for event in guard.outbox or []:
            yield event["detailType"], json.loads(event["detail"])


def assert_valid(detail_type, detail):
    schema = json.loads((SCHEMAS / f"{detail_type}.json").read_text())
    jsonschema.validate(detail, schema, format_checker=jsonschema.FormatChecker())


def test_signup_emits_a_valid_member_signed_up(table):
    member_service.signup("ev-1", SignupRequest(phone="13800000009", nickname="e",
                                                channel="app", storeId="s1"))
    events = list(outbox_events())
    assert [t for t, _ in events] == ["member.signed_up"]
    for detail_type, detail in events:
        assert_valid(detail_type, detail)


def test_an_upgrade_emits_a_valid_member_tier_changed_with_its_gift(table):
    member_service.signup("ev-2", SignupRequest(phone="13800000010", nickname="e",
                                                channel="app"))
    member_id = member_id_for("ev-2")
    program = load_program()

    def build(state):
        b = PostingBuilder(state, program, source_key="grow:1", source_type="test",
                           reason="test", actor="system", now=datetime.now(UTC))
        b.credit_growth(6_000)
        upgrade_if_qualified(b, program)
        return b.build()

    store.post(member_id, "grow:1", build)
    member = store.read_live_range(member_id).member
    assert member.tier_id == "V3"
    assert member.points_available == 100 + 200 + 1_000  # signup + V2 and V3 gifts
    changed = [d for t, d in outbox_events() if t == "member.tier_changed"]
    assert len(changed) == 1 and changed[0]["giftPoints"] == 1_200
    for detail_type, detail in outbox_events():
        assert_valid(detail_type, detail)


def test_coupon_events_match_their_schemas(table):
    from datetime import timedelta

    from membership.domain.checkout import HoldRequest, OrderCancelled, OrderPaid
    from membership.domain.coupons import ClaimRequest, TemplateSpec
    from membership.services import checkout, coupons, orders

    member_service.signup("ev-c", SignupRequest(phone="13800000031", nickname="e",
                                                channel="app"))
    member_id = member_id_for("ev-c")
    coupons.create_template(TemplateSpec.model_validate(
        {"templateId": "EV", "name": "ev", "kind": "amount_off", "amountOff": 500,
         "validDays": 3, "stock": 10, "perMemberLimit": 5, "claimable": True}))
    first, second = (coupons.claim("ev-c", k, ClaimRequest(templateId="EV")).result["couponId"]
                     for k in ("k1", "k2"))
    checkout.hold(HoldRequest(orderId="SO-1", memberId=member_id, couponIds=(first,)))
    orders.cancelled(OrderCancelled(orderId="SO-1", memberId=member_id))
    paid_at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    orders.paid(OrderPaid.model_validate({
        "orderId": "SO-2", "memberId": member_id, "paidAt": paid_at, "couponIds": [second],
        "lines": [{"lineId": "1", "sku": "S", "category": "c", "brand": "b", "quantity": 1,
                   "unitPrice": 1_000}],
        "amounts": {"subtotal": 1_000, "discount": 500, "couponDiscount": 500,
                    "pointsUsed": 0, "balanceUsed": 0, "cashPaid": 500}}))
    events = list(outbox_events())
    kinds = {t for t, _ in events}
    assert {"coupon.issued", "coupon.returned", "coupon.redeemed"} <= kinds
    for detail_type, detail in events:
        assert_valid(detail_type, detail)
