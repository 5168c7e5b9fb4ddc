"""The member's rights over their data (PIPL): a copy of everything held, and closure.

Export reads the member's whole partition (paged) and the top-ups its ledger names, and
returns one document. Closure is one posting (domain/privacy.py) committed with the
deletion of the phone and subject items: refused with `account_not_empty` while value
remains; a retry after success answers the first answer again (its guard).
"""
from __future__ import annotations

from datetime import UTC, datetime

from membership.domain.ledger import PostingBuilder
from membership.domain.members import member_id_for
from membership.domain.privacy import (
    CLOSURE_FORFEIT_SOURCE_TYPE,
    CLOSURE_REASON,
    CLOSURE_SOURCE_TYPE,
    closure_forfeit_source_key,
    closure_source_key,
    ensure_open,
    export_document,
)
from membership.storage import privacy as store
from membership.storage.program import load_program


def _now() -> datetime:
    return datetime.now(UTC)


def export(subject: str, now: datetime | None = None) -> dict:
    now = now or _now()
    data = store.read_member_data(member_id_for(subject))
    ensure_open(data.member)
    return export_document(data, load_program().time_zone, now)


def close(subject: str, now: datetime | None = None) -> tuple[dict, bool]:
    """(what closure did, replayed)."""
    member_id = member_id_for(subject)
    program = load_program()
    # Items of capabilities outside the live range (their parts may remove some); the
    # ledger entries stay, so they are not read.
    data = store.read_member_data(member_id, entries=False)

    def builder(state) -> PostingBuilder:
        return PostingBuilder(state, program, source_key=closure_source_key(member_id),
                              source_type=CLOSURE_SOURCE_TYPE, reason=CLOSURE_REASON,
                              actor=f"member:{member_id}", now=now or _now())

    def batch_builder(state) -> PostingBuilder:
        return PostingBuilder(state, program,
                              source_key=closure_forfeit_source_key(member_id,
                                                                    state.member.version),
                              source_type=CLOSURE_FORFEIT_SOURCE_TYPE, reason=CLOSURE_REASON,
                              actor=f"member:{member_id}", now=now or _now())

    outcome = store.close(member_id, data, builder, batch_builder)
    return outcome.result, outcome.replayed
