"""Task rules, pure: the program's tasks, occurrence keys, who may report what, and what a
completion credits."""
from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError

from membership.domain.activity import activity_lot
from membership.domain.ledger import LedgerState, PostingBuilder
from membership.domain.members import Member
from membership.domain.program import Program, Task, default_program
from membership.domain.tasks import (
    OrderRequired,
    TaskNotFound,
    TaskNotReportable,
    TaskRequirementsNotMet,
    check_member_report,
    complete_task,
    find_task,
    missing_profile_fields,
    occurrence_key,
    tasks_triggered_by,
)

PROGRAM = default_program()
NOW = datetime(2025, 3, 14, 4, tzinfo=UTC)


def member(**changes) -> Member:
    return Member(member_id="Mabcdefgh", subject="s", phone="+8613812345678", nickname="N",
                  channel="app", created_at=NOW, updated_at=NOW, tier_id="V1",
                  tier_since=NOW, **changes)


def builder(m: Member | None = None, key="task:x") -> PostingBuilder:
    return PostingBuilder(LedgerState(member=m or member()), PROGRAM, source_key=key,
                          source_type="task", reason="task", actor="test", now=NOW)


def test_the_default_program_has_the_briefs_tasks():
    profile = find_task(PROGRAM, "profile_completed")
    review = find_task(PROGRAM, "review_posted")
    assert (profile.points, profile.growth, profile.limit, profile.trigger) == (
        50, 0, "once", "member")
    assert (review.points, review.growth, review.limit, review.trigger) == (
        10, 5, "per_order", "review.posted")
    assert tasks_triggered_by(PROGRAM, "review.posted") == [review]


def test_an_unknown_task_is_not_found():
    with pytest.raises(TaskNotFound):
        find_task(PROGRAM, "nope")


@pytest.mark.parametrize(("limit", "order_id", "key"), [
    ("once", None, "task:t:M1"),
    ("once", "SO-1", "task:t:M1"),
    ("daily", None, "task:t:M1:2025-03-14"),
    ("per_order", "SO-1", "task:t:M1:SO-1"),
])
def test_occurrence_keys_follow_the_limit(limit, order_id, key):
    task = Task(id="t", name="T", points=1, limit=limit, trigger="member")
    assert occurrence_key(task, "M1", day=date(2025, 3, 14), order_id=order_id) == key


def test_a_per_order_occurrence_needs_the_order():
    task = Task(id="t", name="T", points=1, limit="per_order", trigger="member")
    with pytest.raises(OrderRequired):
        occurrence_key(task, "M1", day=date(2025, 3, 14), order_id=None)
    with pytest.raises(OrderRequired):
        check_member_report(task, None)


def test_an_event_task_is_not_reported_by_the_app():
    with pytest.raises(TaskNotReportable):
        check_member_report(find_task(PROGRAM, "review_posted"), "SO-1")


def test_profile_fields_missing_are_named():
    task = find_task(PROGRAM, "profile_completed")
    assert missing_profile_fields(member(), task) == ["storeId"]
    assert missing_profile_fields(member(store_id="store-001"), task) == []


def test_an_incomplete_profile_credits_nothing():
    with pytest.raises(TaskRequirementsNotMet) as refused:
        complete_task(builder(), PROGRAM, find_task(PROGRAM, "profile_completed"))
    assert refused.value.details["missing"] == ["storeId"]


def test_a_completion_credits_the_activity_lot_and_growth():
    b = builder()
    result = complete_task(b, PROGRAM, find_task(PROGRAM, "review_posted"), order_id="SO-1")
    posting = b.build()
    assert (result["points"], result["growth"], result["orderId"]) == (10, 5, "SO-1")
    (lot,) = [c.after for c in posting.lots]
    assert (lot.lot_id, lot.expires_at) == activity_lot(NOW, "Asia/Shanghai")
    assert lot.lot_id == "activity-2026-12-31"
    assert posting.member.points_available == 10
    assert posting.member.growth_months == {"2025-03": 5}


def test_activity_credits_of_one_year_add_into_one_lot():
    b = builder()
    complete_task(b, PROGRAM, find_task(PROGRAM, "review_posted"), order_id="SO-1")
    complete_task(b, PROGRAM, find_task(PROGRAM, "review_posted"), order_id="SO-2")
    (change,) = b.build().lots
    assert change.after.remaining == 20


def test_task_rules_are_validated():
    with pytest.raises(ValidationError):
        Task(id="t", name="T", limit="once", trigger="member")  # earns nothing
    with pytest.raises(ValidationError):
        Task(id="Bad-Id", name="T", points=1, limit="once", trigger="member")
    with pytest.raises(ValidationError):
        Task(id="t", name="T", points=1, limit="weekly", trigger="member")
    with pytest.raises(ValidationError):
        Task(id="t", name="T", points=1, limit="once", trigger="order.paid")
    with pytest.raises(ValidationError):
        Task(id="t", name="T", points=1, limit="per_order", trigger="review.posted",
             profileFields=("storeId",))
    with pytest.raises(ValidationError):
        Task(id="t", name="T", points=1, limit="once", trigger="member",
             profileFields=("shoeSize",))


def test_task_ids_are_unique_in_a_program():
    task = Task(id="t", name="T", points=1, limit="once", trigger="member")
    document = PROGRAM.model_dump(by_alias=True)
    document["tasks"] = [task.model_dump(by_alias=True)] * 2
    with pytest.raises(ValidationError):
        Program.model_validate(document)


def test_a_program_stored_before_tasks_existed_still_loads():
    document = PROGRAM.model_dump(by_alias=True)
    del document["tasks"]
    for field in ("makeUpDays", "makeUpCost", "makeUpPerMonth"):
        del document["checkin"][field]
    old = Program.model_validate(document)
    assert old.tasks == ()
    assert (old.checkin.make_up_days, old.checkin.make_up_cost,
            old.checkin.make_up_per_month) == (3, 20, 2)
