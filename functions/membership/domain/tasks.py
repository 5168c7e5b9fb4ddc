"""Tasks (任务), as pure rules: which task, whether it may complete now, what it earns.

Tasks are program data (`Program.tasks`). Each completion is one posting whose source key
is the task's *occurrence key*, so its guard makes it happen once per occurrence:

| limit | occurrence key |
|---|---|
| `once` | `task:<taskId>:<memberId>` |
| `daily` | `task:<taskId>:<memberId>:<YYYY-MM-DD>` (program time zone) |
| `per_order` | `task:<taskId>:<memberId>:<orderId>` |

A task with trigger `member` is reported by the app (`POST .../tasks/{taskId}/completions`)
and checked against what the member item holds (its `profileFields`); any other trigger is
an inbound event type (`review.posted`) and is completed only by that event.
"""
from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from membership.domain import calendar
from membership.domain.activity import credit_activity_points
from membership.domain.instants import Instant
from membership.domain.ledger import PostingBuilder
from membership.domain.members import ApiModel, Member
from membership.domain.program import Program, Task
from membership.domain.tiers import upgrade_if_qualified
from membership.errors import Conflict, InvalidRequest, NotFound

# Wire name of a profile field -> the Member attribute that holds it.
PROFILE_ATTRIBUTES = {"nickname": "nickname", "storeId": "store_id", "birthday": "birthday",
                      "gender": "gender"}

# The order system's ids, as in domain/checkout.py (not imported: the task handlers would
# pay for building every checkout model at cold start).
OrderId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
MemberId = Annotated[str, StringConstraints(pattern=r"^M[a-z2-7]{8,64}$")]


class EventModel(BaseModel):
    """Inbound events: unknown fields are ignored so a producer may add fields safely."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


# ---- errors -------------------------------------------------------------------------

class TaskNotFound(NotFound):
    code = "task_not_found"


class TaskNotReportable(InvalidRequest):
    """The task is completed by an event of the order system, not by the app."""

    code = "task_not_reportable"


class TaskAlreadyCompleted(Conflict):
    code = "task_already_completed"


class TaskRequirementsNotMet(InvalidRequest):
    code = "task_requirements_not_met"


class OrderRequired(InvalidRequest):
    code = "order_required"


class OrderNotPaid(InvalidRequest):
    """No paid order with this id belongs to this member (unpaid, unknown, or another's)."""

    code = "order_not_paid"


# ---- wire models --------------------------------------------------------------------

class TaskCompletionRequest(ApiModel):
    order_id: OrderId | None = Field(
        alias="orderId", default=None,
        description="The order a per_order task is about; a paid order of the member")


class TaskCompletionAnswer(ApiModel):
    task_id: str = Field(alias="taskId")
    points: int
    growth: int
    order_id: str | None = Field(alias="orderId", default=None)
    completed_at: str = Field(alias="completedAt")


class ReviewPosted(EventModel):
    """`review.posted` from the order system: a member reviewed an order."""

    member_id: MemberId = Field(alias="memberId")
    order_id: OrderId = Field(alias="orderId")
    review_id: OrderId = Field(alias="reviewId")
    posted_at: Instant | None = Field(alias="postedAt", default=None)


# ---- the rules ----------------------------------------------------------------------

def find_task(program: Program, task_id: str) -> Task:
    for task in program.tasks:
        if task.id == task_id:
            return task
    raise TaskNotFound(f"the program has no task {task_id!r}", taskId=task_id)


def tasks_triggered_by(program: Program, trigger: str) -> list[Task]:
    return [task for task in program.tasks if task.trigger == trigger]


def occurrence_key(task: Task, member_id: str, *, day: date, order_id: str | None) -> str:
    if task.limit == "once":
        return f"task:{task.id}:{member_id}"
    if task.limit == "daily":
        return f"task:{task.id}:{member_id}:{day.isoformat()}"
    if order_id is None:
        raise OrderRequired(f"task {task.id} is completed once per order: give orderId")
    return f"task:{task.id}:{member_id}:{order_id}"


def missing_profile_fields(member: Member, task: Task) -> list[str]:
    return [name for name in task.profile_fields
            if not getattr(member, PROFILE_ATTRIBUTES[name], None)]


def check_member_report(task: Task, order_id: str | None) -> None:
    """What can be refused before reading anything."""
    if task.trigger != "member":
        raise TaskNotReportable(f"task {task.id} is completed by {task.trigger} events",
                                trigger=task.trigger)
    if task.limit == "per_order" and order_id is None:
        raise OrderRequired(f"task {task.id} is completed once per order: give orderId")


def complete_task(builder: PostingBuilder, program: Program, task: Task, *,
                  order_id: str | None = None) -> dict:
    """Credit what the task earns: points into the activity lot, and growth."""
    missing = missing_profile_fields(builder.member, task)
    if missing:
        raise TaskRequirementsNotMet(f"the profile lacks {', '.join(missing)}", missing=missing)
    reason = f"task_{task.id}"
    if task.points:
        credit_activity_points(builder, task.points, reason=reason)
    if task.growth:
        builder.credit_growth(task.growth, reason=reason)
        upgrade_if_qualified(builder, program)
    builder.result = TaskCompletionAnswer(
        taskId=task.id, points=task.points, growth=task.growth, orderId=order_id,
        completedAt=calendar.wire(builder.now, builder.tz),
    ).model_dump(mode="json", by_alias=True)
    return builder.result
