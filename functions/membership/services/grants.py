"""Bulk grants: accept, fan out over a queue in chunks, apply each chunk, report progress.

The POST writes the grant (one item) and enqueues its chunks; workers apply a chunk
member by member (a few postings at once) and write the chunk's tally. Nothing is
counted on a shared item, and a chunk delivered twice credits nobody twice.

Seams for later issues: `GRANT_KINDS` is the registry of what a grant can give. Each
kind maps to a `GrantApplier` that gives one member their share once, in its own
transaction guarded by `grant:<grantId>:<memberId>` (points today: a ledger posting; the
coupons issue registers "coupon" with `register_grant_kind`, issuing an instance of
`templateId` under the same guard). `members_of` resolves a member list; a `tag` is
expanded by the worker (services/tag_grants.py) into the same chunks. A kind not
registered is refused at the POST (422 grant_kind_not_available), so nothing is queued
that no worker could apply.
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from membership.config import get_settings
from membership.domain import calendar
from membership.domain import grants as rules
from membership.domain.adjustments import check_reason_code
from membership.domain.grants import (
    ChunkProgress,
    Failure,
    GrantIdReused,
    GrantKindNotAvailable,
    GrantNotFound,
    GrantRequest,
    GrantView,
)
from membership.errors import DomainError, Unavailable
from membership.services.ledger import post_legs
from membership.storage import grants as store
from membership.storage.program import load_program

Enqueue = Callable[[list[dict]], None]
# (member id, grant, now or None) -> None. Gives one member the grant's share at most
# once, whatever the redelivery: its write is guarded by rules.source_key(grant, member).
# A DomainError is that member's failure (counted, reported, the chunk goes on);
# Unavailable fails the message so that it is delivered again.
GrantApplier = Callable[[str, store.GrantItem, datetime | None], None]


def _grant_points(member_id: str, grant: store.GrantItem, now: datetime | None) -> None:
    """A lot with the program's normal expiry, paying the member's points debt first."""
    post_legs(member_id, rules.source_key(grant.grant_id, member_id),
              lambda b: rules.apply_points(b, grant.grant_id, int(grant.points)),
              source_type="grant", reason=grant.reason_code, actor=grant.created_by, now=now)


GRANT_KINDS: dict[str, GrantApplier] = {"points": _grant_points}


def register_grant_kind(kind: str, applier: GrantApplier) -> None:
    """Make a new kind of grant available (e.g. "coupon", by the coupons capability)."""
    GRANT_KINDS[kind] = applier


def _now() -> datetime:
    return datetime.now(UTC)


def members_of(request: GrantRequest) -> list[str]:
    """A member list's members; a tag's are read later by the worker (tag_grants)."""
    if request.tag is not None:
        return []
    return rules.unique_members(request.member_ids or ())


def create(request: GrantRequest, *, actor: str, enqueue: Enqueue,
           now: datetime | None = None) -> tuple[GrantView, bool]:
    """Accept a grant and hand its chunks to the queue; (progress, created).

    The same grantId and body again answers the grant's progress (and re-enqueues its
    chunks if the first request failed before it could); another body is refused.
    """
    now = now or _now()
    if request.kind not in GRANT_KINDS:
        raise GrantKindNotAvailable(
            "coupon grants come with coupon templates; grant points for now",
            field="templateId")
    check_reason_code(load_program(), request.reason_code)
    member_ids = members_of(request)
    size = get_settings().grant_chunk_size
    parts = rules.chunks(member_ids, size)
    digest = rules.request_hash(request)
    tagged = request.tag is not None
    item = store.GrantItem(
        *store.GrantItem.key(request.grant_id), grant_id=request.grant_id, kind=request.kind,
        points=request.points, template_id=request.template_id, reason_code=request.reason_code, note=request.note,
        total=len(member_ids), chunks=len(parts), chunk_size=size, created_at=now,
        created_by=actor, request_hash=digest, enqueued=False, tag=request.tag,
        expanded=False if tagged else None)
    existing = store.create(item)
    if existing is not None and existing.request_hash != digest:
        raise GrantIdReused(f"grant {request.grant_id} exists with another body; use a new "
                            "grantId", grantId=request.grant_id)
    grant = existing or item
    if not grant.enqueued and grant.tag is not None:
        enqueue([{"grantId": grant.grant_id, "expand": 0}])  # tag_grants.expand_message
        store.mark_enqueued(grant.grant_id)
    elif not grant.enqueued:
        enqueue([{"grantId": grant.grant_id, "chunk": n, "memberIds": ids}
                 for n, ids in enumerate(rules.chunks(member_ids, int(grant.chunk_size)))])
        store.mark_enqueued(grant.grant_id)
    return progress(grant.grant_id), existing is None


def apply_chunk(grant_id: str, chunk: int, member_ids: list[str],
                now: datetime | None = None) -> ChunkProgress:
    """Credit each member of one chunk once; unknown members are failures, not crashes.

    A member that stays busy past the ledger's retries raises Unavailable after the rest
    of the chunk is done: the message is delivered again and only that member is new.
    """
    grant = store.get(grant_id)
    if grant is None:
        raise GrantNotFound(f"no grant {grant_id}", grantId=grant_id)
    apply = GRANT_KINDS[grant.kind]

    def one(member_id: str) -> Failure | None:
        try:
            apply(member_id, grant, now)
        except Unavailable:
            raise
        except DomainError as exc:
            return Failure(memberId=member_id, code=exc.code, message=exc.message)
        return None

    workers = max(1, min(get_settings().grant_write_concurrency, len(member_ids)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(one, m) for m in member_ids]
    busy = [f.exception() for f in futures if f.exception() is not None]
    if busy:
        raise busy[0]
    failures = [f.result() for f in futures if f.result() is not None]
    tally = ChunkProgress(chunk=chunk, total=len(member_ids),
                          done=len(member_ids) - len(failures), failed=len(failures),
                          failures=tuple(failures[:rules.FAILURES_PER_CHUNK]))
    store.save_chunk(grant_id, tally, now or _now())
    return tally


def progress(grant_id: str) -> GrantView:
    stored = store.read(grant_id)
    grant = stored.grant
    if grant is None:
        raise GrantNotFound(f"no grant {grant_id}", grantId=grant_id)
    done, failed, failures = rules.summed(stored.chunks)
    expanded = grant.tag is None or bool(grant.expanded)
    return GrantView(
        grantId=grant.grant_id,
        status=rules.status_of(int(grant.chunks), stored.chunks, expanded),
        tag=grant.tag, expanded=expanded,
        total=int(grant.total), done=done, failed=failed, failures=failures,
        points=int(grant.points) if grant.points is not None else None,
        reasonCode=grant.reason_code, note=grant.note, chunks=int(grant.chunks),
        chunksDone=len(stored.chunks),
        createdAt=calendar.wire(grant.created_at, load_program().time_zone),
        createdBy=grant.created_by)
