"""Grants to a tag's segment: the grant worker expands the segment into chunks.

The POST stores the grant with its tag and queues one `expand` message: nothing is read
from the segment there, so the POST stays fast whatever the tag's size. The worker reads
the segment (services.tags: consenting members carrying the tag, GSI1) one page of
`chunkSize` members at a time. Each page is frozen (written once, under its number)
before its chunk is queued, and the grant's `total`/`chunks` move forward with it; a
redelivered or repeated expansion reads the frozen pages back instead of the index, so
the same members land in the same chunks and the tallies stay exact. Each (grant, member)
is still applied once by the chunk's per-member guard.

The member list is therefore the segment as the worker reads it page by page during the
expansion (seconds after the 202), not a snapshot at one instant: a member tagged or
untagged while the expansion runs may or may not be in it. One message expands at most
`PAGES_PER_MESSAGE` pages, then queues the rest as its own message, so no invocation
runs long whatever the segment's size.
"""
from __future__ import annotations

from collections.abc import Callable

from membership.domain.grants import GrantNotFound
from membership.storage import grants as store
from membership.storage import tags as tag_store

Enqueue = Callable[[list[dict]], None]
PAGES_PER_MESSAGE = 50


def expand_message(grant_id: str, page: int) -> dict:
    return {"grantId": grant_id, "expand": page}


def _read_page(grant: store.GrantItem, number: int, cursor: str | None,
               before: int) -> store.Page:
    members, next_cursor, _ = tag_store.segment_page(str(grant.tag), int(grant.chunk_size),
                                                     cursor)
    return store.Page(number, members, next_cursor, before)


def expand(grant_id: str, start: int, enqueue: Enqueue) -> int:
    """Expand pages `start`.. of a tag grant, queueing a chunk per page with members;
    returns the pages expanded by this call. Safe to repeat from any page."""
    grant = store.get(grant_id)
    if grant is None:
        raise GrantNotFound(f"no grant {grant_id}", grantId=grant_id)
    if grant.tag is None:
        raise ValueError(f"grant {grant_id} is not a tag grant")
    if start == 0:
        cursor, before = None, 0
    else:
        previous = store.get_page(grant_id, start - 1)
        if previous is None:
            raise ValueError(f"grant {grant_id}: page {start - 1} was never expanded")
        if previous.next_cursor is None:
            return 0  # the expansion already ended there
        cursor, before = previous.next_cursor, previous.before + len(previous.member_ids)
    number = start
    while number < start + PAGES_PER_MESSAGE:
        page = (store.get_page(grant_id, number)
                or store.freeze_page(grant_id, _read_page(grant, number, cursor, before)))
        last = page.next_cursor is None
        if page.member_ids:
            # A page with members is the chunk of the same number; only the last page can
            # be empty (the index ended exactly on a page boundary, or the tag is empty).
            enqueue([{"grantId": grant_id, "chunk": number, "memberIds": page.member_ids}])
        chunks = number + (1 if page.member_ids else 0)
        total = page.before + len(page.member_ids)
        store.record_expansion(grant_id, number + 1, total, chunks, expanded=last)
        number += 1
        if last:
            return number - start
        cursor, before = page.next_cursor, total
    enqueue([expand_message(grant_id, number)])
    return number - start
