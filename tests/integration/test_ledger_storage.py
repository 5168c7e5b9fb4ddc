"""The ledger against DynamoDB Local: one transaction per posting, once per source,
correct under concurrency, and always reconciling."""
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest

from membership.domain.ledger import InsufficientBalance, PointsTooFragmented
from membership.domain.members import SignupRequest, member_id_for
from membership.handlers import members as members_handler
from membership.services import members as member_service
from membership.services.ledger import post_legs, reconcile_member
from membership.storage import ledger as store

SUB = "ledger-user"


@pytest.fixture
def member_id(table):
    member_service.signup(SUB, SignupRequest(phone="13812345678", nickname="L", channel="app"))
    return member_id_for(SUB)


def post(member_id, source_key, legs, now=None):
    def with_result(b):
        legs(b)
        b.result = {"source": source_key}

    return post_legs(member_id, source_key, with_result, source_type="test", reason="test",
                     now=now)


def credit(amount, bucket="principal"):
    return lambda b: b.credit_balance(bucket, amount)


def debit(amount):
    return lambda b: b.debit_balance(amount)


def test_a_posting_is_applied_and_reconciles(member_id):
    outcome = post(member_id, "topup:1", credit(500))
    assert not outcome.replayed
    assert store.read_live_range(member_id).member.balance_principal == 500
    assert reconcile_member(member_id) == []


def test_the_same_source_applies_once_and_replays_its_first_result(member_id):
    post(member_id, "topup:1", credit(500))
    again = post(member_id, "topup:1", credit(900))
    assert again.replayed and again.result == {"source": "topup:1"}
    assert store.read_live_range(member_id).member.balance_principal == 500


def test_a_failed_posting_writes_nothing(member_id):
    before = store.read_live_range(member_id).member
    with pytest.raises(InsufficientBalance):
        post(member_id, "spend:1", debit(1))
    assert store.read_live_range(member_id).member == before
    assert store.read_guard("spend:1") is None


def test_fifty_concurrent_debits_succeed_exactly_as_far_as_the_balance_goes(member_id):
    post(member_id, "topup:1", credit(1_000))
    outcomes, errors = [], []
    barrier = threading.Barrier(50)

    def run(i):
        barrier.wait()
        try:
            outcomes.append(post(member_id, f"spend:{i}", debit(70)))
        except InsufficientBalance as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(outcomes) == 1_000 // 70
    assert len(errors) == 50 - 1_000 // 70
    assert store.read_live_range(member_id).member.balance_principal == 1_000 % 70
    assert reconcile_member(member_id) == []


def test_one_source_posted_from_ten_threads_lands_once(member_id):
    outcomes = []
    barrier = threading.Barrier(10)

    def run():
        barrier.wait()
        outcomes.append(post(member_id, "topup:same", credit(300)))

    threads = [threading.Thread(target=run) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(outcomes) == 10
    assert sum(not o.replayed for o in outcomes) == 1
    assert store.read_live_range(member_id).member.balance_principal == 300
    assert reconcile_member(member_id) == []


def test_a_debit_over_many_small_lots_consolidates_them_first(member_id):
    # 160 one-point lots sharing one expiry: spending 150 would touch more items than a
    # transaction carries, so the lots merge first and the debit still lands once.
    for chunk in range(4):
        post(member_id, f"earn:many:{chunk}", lambda b, c=chunk: [
            b.credit_points(1, lot_id=f"tiny-{c}-{i:02d}") for i in range(40)])
    post(member_id, "spend:points", lambda b: b.debit_points(150))
    state = store.read_live_range(member_id)
    assert state.member.points_available == 100 + 160 - 150  # signup gift included
    assert reconcile_member(member_id) == []


def test_lots_that_cannot_merge_refuse_a_take_whose_undo_would_not_fit(member_id):
    # 120 lots of distinct expiries: a take of 200 would touch more lots than its undo
    # (release, refund) could touch again in one transaction, so it is refused up front.
    now = datetime.now(UTC)
    for chunk in range(3):
        post(member_id, f"earn:distinct:{chunk}", lambda b, c=chunk: [
            b.credit_points(1, lot_id=f"d-{c}-{i:03d}",
                            expires_at=now + timedelta(days=10 + c * 40 + i))
            for i in range(40)])
    before = store.read_live_range(member_id).member
    with pytest.raises(PointsTooFragmented):
        post(member_id, "spend:too-many", lambda b: b.debit_points(200))
    assert store.read_live_range(member_id).member == before


def test_ledger_route_pages_newest_first_with_a_cursor(member_id, apigw_event,
                                                      lambda_context):
    for i in range(5):
        post(member_id, f"topup:{i}", credit(100 + i))
    seen, cursor = [], None
    for _ in range(5):
        query = {"asset": "balance", "limit": "2", **({"cursor": cursor} if cursor else {})}
        event = apigw_event("GET", "/v1/members/me/ledger", sub=SUB,
                            query=query)
        response = members_handler.handler(event, lambda_context)
        assert response["statusCode"] == 200, response["body"]
        body = json.loads(response["body"])
        seen += [e["amount"] for e in body["entries"]]
        cursor = body["nextCursor"]
        if not cursor:
            break
    assert seen == [104, 103, 102, 101, 100]


def test_ledger_cursor_of_another_member_is_refused(member_id, apigw_event, lambda_context):
    import base64
    forged = base64.urlsafe_b64encode(json.dumps(
        {"PK": {"S": "MEMBER#Mother"}, "SK": {"S": "ENTRY#balance#x"}}).encode()).decode()
    event = apigw_event("GET", "/v1/members/me/ledger", sub=SUB,
                        query={"asset": "balance", "cursor": forged})
    response = members_handler.handler(event, lambda_context)
    assert response["statusCode"] == 422


def test_ledger_limit_is_bounded(member_id, apigw_event, lambda_context):
    event = apigw_event("GET", "/v1/members/me/ledger", sub=SUB,
                        query={"asset": "points", "limit": "1000"})
    assert members_handler.handler(event, lambda_context)["statusCode"] == 422


def _cancelled(*codes):
    from pynamodb.exceptions import CancellationReason, TransactWriteError, VerboseClientError

    cause = VerboseClientError(
        {"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"}},
        "TransactWriteItems",
        cancellation_reasons=[CancellationReason(code=c) if c else None for c in codes])
    return TransactWriteError("cancelled", cause=cause)


def _throttled():
    from pynamodb.exceptions import TransactWriteError, VerboseClientError

    cause = VerboseClientError(
        {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "TransactWriteItems")
    return TransactWriteError("throttled", cause=cause)


@pytest.mark.parametrize("fault", [
    lambda: _cancelled(None, "TransactionConflict"),
    lambda: _cancelled("ThrottlingError"),
    _throttled,
], ids=["transaction-conflict", "throttled-item", "throttled-call"])
def test_conflicts_and_throttling_are_retried_then_applied_once(member_id, monkeypatch, fault):
    from pynamodb.transactions import TransactWrite

    real_commit, faults = TransactWrite._commit, [fault(), fault()]

    def flaky_commit(self):
        if faults:
            raise faults.pop()
        return real_commit(self)

    monkeypatch.setattr(TransactWrite, "_commit", flaky_commit)
    outcome = post(member_id, "topup:flaky", credit(250))
    assert not outcome.replayed and faults == []
    assert store.read_live_range(member_id).member.balance_principal == 250
    assert reconcile_member(member_id) == []


def test_a_store_that_stays_busy_answers_temporarily_unavailable(member_id, monkeypatch):
    from pynamodb.transactions import TransactWrite

    from membership.errors import Unavailable

    monkeypatch.setenv("TRANSACTION_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("TRANSACTION_MAX_DELAY_MS", "5")
    from membership.config import get_settings
    get_settings.cache_clear()

    def always_conflict(self):
        raise _cancelled("TransactionConflict")

    monkeypatch.setattr(TransactWrite, "_commit", always_conflict)
    try:
        with pytest.raises(Unavailable) as raised:
            post(member_id, "topup:busy", credit(250))
        assert raised.value.code == "temporarily_unavailable"
    finally:
        get_settings.cache_clear()
    assert store.read_guard("topup:busy") is None
