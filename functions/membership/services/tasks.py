"""Task completions: reported by the app, or by the order system's `review.posted`.

Each completion is one posting whose source key is the task's occurrence key
(domain/tasks.py), so it happens once per occurrence whatever retries or redeliveries
carry it.
"""
from __future__ import annotations

from datetime import UTC, datetime

from membership.domain.checkins import local_date
from membership.domain.ledger import LedgerState, PostingBuilder
from membership.domain.members import member_id_for
from membership.domain.program import Program, Task
from membership.domain.tasks import (
    OrderNotPaid,
    ReviewPosted,
    TaskAlreadyCompleted,
    TaskCompletionRequest,
    check_member_report,
    complete_task,
    find_task,
    occurrence_key,
    tasks_triggered_by,
)
from membership.errors import InvalidRequest
from membership.storage import ledger
from membership.storage import tasks as store
from membership.storage.program import load_program


def _now() -> datetime:
    return datetime.now(UTC)


def _post(program: Program, task: Task, member_id: str, key: str, *, actor: str,
          order_id: str | None, now: datetime) -> ledger.Outcome:
    def build(state: LedgerState):
        builder = PostingBuilder(state, program, source_key=key, source_type="task",
                                 reason=f"task_{task.id}", actor=actor, now=now)
        complete_task(builder, program, task, order_id=order_id)
        return builder.build()

    return ledger.post(member_id, key, build)


def complete(subject: str, task_id: str, request: TaskCompletionRequest,
             now: datetime | None = None) -> dict:
    """A task the app reports; refused when its occurrence happened already."""
    now = now or _now()
    program = load_program()
    task = find_task(program, task_id)
    check_member_report(task, request.order_id)
    member_id = member_id_for(subject)
    order_id = None
    if task.limit == "per_order":
        order_id = request.order_id
        if not store.paid_order_exists(member_id, order_id):
            raise OrderNotPaid(f"no paid order {order_id} of this member", orderId=order_id)
    elif request.order_id is not None:
        raise InvalidRequest(f"task {task.id} is not completed per order: orderId does not "
                             "apply", taskId=task.id)
    key = occurrence_key(task, member_id, day=local_date(now, program.time_zone),
                         order_id=order_id)
    outcome = _post(program, task, member_id, key, actor=f"member:{member_id}",
                    order_id=order_id, now=now)
    if outcome.replayed:
        raise TaskAlreadyCompleted(f"task {task.id} was completed already", taskId=task.id,
                                   first=outcome.result)
    return outcome.result


def review_posted(event: ReviewPosted, occurred_at: datetime,
                  now: datetime | None = None) -> list[ledger.Outcome]:
    """Completes every task triggered by `review.posted`, once per occurrence.

    A review of an order this member has not paid (unknown, not paid yet, or another
    member's) raises OrderNotPaid: nothing is credited and the delivery fails, so it is
    retried (the payment may still be on its way) and then kept in the dead-letter queue.
    """
    now = now or _now()
    program = load_program()
    tasks = tasks_triggered_by(program, "review.posted")
    if not tasks:
        return []
    if not store.paid_order_exists(event.member_id, event.order_id):
        raise OrderNotPaid(f"no paid order {event.order_id} of member {event.member_id}",
                           orderId=event.order_id)
    # The day of a daily task comes from the event, so a redelivery names the same day.
    day = local_date(event.posted_at or occurred_at, program.time_zone)
    return [
        _post(program, task, event.member_id,
              occurrence_key(task, event.member_id, day=day, order_id=event.order_id),
              actor="orders", order_id=event.order_id, now=now)
        for task in tasks
    ]
