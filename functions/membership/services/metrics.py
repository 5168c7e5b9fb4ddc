"""The program's metrics of a month, and the guests' orders that only count."""
from __future__ import annotations

import json
from datetime import UTC, datetime

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from membership.domain import calendar
from membership.domain import settlement as settlement_rules
from membership.domain.ledger import PayloadMismatch, payload_hash
from membership.domain.metrics import GuestOrderPaid, Metrics, metrics_of
from membership.errors import Unavailable
from membership.storage import ledger
from membership.storage import metrics as store
from membership.storage import settlement as settlement_store
from membership.storage.models import GuardItem
from membership.storage.program import load_program
from membership.storage.table import Retry, connection, with_retries


def guest_paid(event: GuestOrderPaid, now: datetime | None = None) -> ledger.Outcome:
    """A guest's paid order: its guard and a counter ADD, in one transaction."""
    now = now or datetime.now(UTC)
    program = load_program()
    source_key = f"order.paid:{event.order_id}"
    digest = payload_hash(event)
    month = calendar.month_of(event.paid_at, program.time_zone)
    result = {"orderId": event.order_id, "guest": True, "spend": event.spend, "month": month}

    def attempt() -> ledger.Outcome:
        t = TransactWrite(connection=connection())
        t.save(GuardItem(*GuardItem.key(source_key), source_type="order.paid.guest",
                         created_at=now, result=json.dumps(result, sort_keys=True),
                         payload_hash=digest), condition=GuardItem.PK.does_not_exist())
        counter = store.counter_add(month, event.order_id, guest_orders=1,
                                    guest_spend=event.spend)
        t.update(counter.model, actions=counter.actions)
        try:
            t._commit()
        except TransactWriteError as exc:
            guard = ledger.read_guard(source_key)
            if guard is None:
                raise Retry() from exc
            if guard.payload_hash and guard.payload_hash != digest:
                raise PayloadMismatch(f"{source_key} was applied with another payload",
                                      source_key=source_key) from None
            return ledger.Outcome(result=guard.result_dict(), replayed=True)
        return ledger.Outcome(result=result, replayed=False)

    return with_retries(attempt, lambda: Unavailable("the counters stayed busy; try again"))


def _tally(period: str) -> settlement_rules.Tally:
    tally = settlement_rules.Tally()
    for cp in settlement_store.checkpoints(period):
        tally = tally + cp.tally
    return tally


def metrics(period: str) -> Metrics:
    """Flows from the month's counters; stocks from the month's settlement run, and the
    free members at its start from the previous month's completed run."""
    settlement_rules.check_period(period)
    program = load_program()
    run = settlement_store.get_run(period)
    tally = None if run is None else _tally(period)
    before = calendar.shift_month(period, -1)
    previous_run = settlement_store.get_run(before)
    previous = (_tally(before) if previous_run is not None
                and previous_run.status == "completed" else None)
    return metrics_of(period, store.flows(period), tally, program,
                      stocks_from="none" if run is None else run.status, previous=previous)
