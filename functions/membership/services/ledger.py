"""Reading a member's ledger, and checking that it adds up."""
from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime

from membership.domain.ledger import Breach, Entry, PostingBuilder, reconcile
from membership.domain.members import member_id_for
from membership.errors import InvalidRequest
from membership.storage import ledger as store
from membership.storage.ledger import Outcome
from membership.storage.members import get_member
from membership.storage.program import load_program

MAX_PAGE = 100


def encode_cursor(key: dict | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode()


class InvalidCursor(InvalidRequest):
    code = "invalid_cursor"


def decode_cursor(cursor: str | None, member_id: str, asset: str) -> dict | None:
    """Cursors are opaque to clients, and only ever point into the caller's own partition,
    at an entry of the asset being paged (another asset's key is outside the query)."""
    if not cursor:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        pk = key["PK"]["S"]
        sk = key["SK"]["S"]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise InvalidCursor("cursor is not one this API issued") from None
    if (not isinstance(pk, str) or not isinstance(sk, str) or pk != f"MEMBER#{member_id}"
            or not sk.startswith(f"ENTRY#{asset}#") or len(sk) > 256):
        raise InvalidCursor("cursor is not one this API issued for this asset")
    return {"PK": {"S": pk}, "SK": {"S": sk}}


def ledger_page(subject: str, asset: str, limit: int, cursor: str | None
                ) -> tuple[list[Entry], str | None]:
    member_id = member_id_for(subject)
    get_member(member_id)  # a member who never signed up is 404, not an empty page
    start = decode_cursor(cursor, member_id, asset)
    entries, last = store.entries_page(member_id, asset, min(limit, MAX_PAGE), start)
    return entries, encode_cursor(last)


def reconcile_member(member_id: str) -> list[Breach]:
    member = get_member(member_id, consistent=True, include_closed=True)
    return reconcile(member, store.all_entries(member_id), store.all_lots(member_id),
                     store.all_holds(member_id))


def post_legs(member_id: str, source_key: str, legs: Callable[[PostingBuilder], object], *,
              source_type: str, reason: str, actor: str = "system",
              now: datetime | None = None) -> Outcome:
    """One posting from a few legs applied to a builder (sweeps, operators, tests)."""
    program = load_program()

    def build(state):
        # Without a fixed `now`, each attempt is dated when it is built.
        builder = PostingBuilder(state, program, source_key=source_key,
                                 source_type=source_type, reason=reason, actor=actor,
                                 now=now or datetime.now(UTC))
        legs(builder)
        return builder.build()

    return store.post(member_id, source_key, build)
