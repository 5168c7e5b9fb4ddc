"""The sweep: lapsed holds give their funds back, pending points become available once
their return window passes, each exactly once."""
from datetime import UTC, datetime, timedelta

import pytest

from membership.domain.members import SignupRequest, member_id_for
from membership.services import members as member_service
from membership.services.ledger import post_legs, reconcile_member
from membership.services.sweeps import sweep
from membership.storage import ledger as store

NOW = datetime.now(UTC)


@pytest.fixture
def member_id(table):
    member_service.signup("sweep-user", SignupRequest(phone="13800000123", nickname="s",
                                                      channel="app"))
    member_id = member_id_for("sweep-user")
    post(member_id, "fund", lambda b: b.credit_balance("principal", 1_000))
    return member_id


def post(member_id, key, legs, now=NOW):
    return post_legs(member_id, key, legs, source_type="test", reason="test", now=now)


def test_a_lapsed_hold_gives_its_funds_back_once(member_id):
    post(member_id, "hold", lambda b: b.place_hold(
        "order-1", balance=300, points=50, expires_at=NOW + timedelta(minutes=30)))
    assert sweep(NOW + timedelta(minutes=29)).holds_released == 0
    assert sweep(NOW + timedelta(minutes=31)).holds_released == 1
    assert sweep(NOW + timedelta(minutes=32)).holds_released == 0
    member = store.read_live_range(member_id).member
    assert (member.balance_principal, member.points_available) == (1_000, 100)
    assert reconcile_member(member_id) == []


def test_a_captured_hold_is_not_swept(member_id):
    post(member_id, "hold", lambda b: b.place_hold(
        "order-1", balance=300, expires_at=NOW + timedelta(minutes=30)))
    post(member_id, "capture", lambda b: b.capture_hold("order-1"))
    report = sweep(NOW + timedelta(hours=1))
    assert report.holds_released == 0
    assert store.read_live_range(member_id).member.balance_principal == 700


def test_pending_points_become_available_after_their_return_window(member_id):
    post(member_id, "paid", lambda b: b.credit_points(
        80, lot_id="order-2", pending=True, available_at=NOW + timedelta(days=7)))
    assert sweep(NOW + timedelta(days=6)).points_released == 0
    assert store.read_live_range(member_id).member.points_pending == 80
    assert sweep(NOW + timedelta(days=7, seconds=1)).points_released == 1
    member = store.read_live_range(member_id).member
    assert (member.points_pending, member.points_available) == (0, 180)
    assert sweep(NOW + timedelta(days=8)).points_released == 0
    assert reconcile_member(member_id) == []
