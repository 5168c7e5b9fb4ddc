"""The member portrait: one GetItem of the member item, one query of its growth entries."""
from __future__ import annotations

from datetime import UTC, datetime

from membership.domain.portrait import Portrait, portrait_of
from membership.storage.ledger import growth_entries
from membership.storage.members import get_member
from membership.storage.program import load_program


def portrait(member_id: str, now: datetime | None = None) -> Portrait:
    now = now or datetime.now(UTC)
    member = get_member(member_id)
    return portrait_of(member, growth_entries(member_id), load_program(), now)
