"""Bulk grants: the grant, and one progress item per chunk.

PK              SK              item
GRANT#<id>      GRANT           what is granted, to how many, by whom; the request's hash
GRANT#<id>      CHUNK#<nnnnn>   one chunk's tally: done, failed, the first failures
GRANT#<id>#PAGES PAGE#<nnnnn>   a tag grant's frozen segment page: its member ids, the
                                cursor after it, how many members came before it

A chunk's item is written once per delivery of that chunk, overwriting the last one with
a recount (a member credited by an earlier delivery counts as done again), so the tally is
exact whatever the redeliveries, and no item is written by more than one chunk.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from pynamodb.attributes import BooleanAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import PutError, UpdateError

from membership.domain.grants import ChunkProgress
from membership.storage.models import TimeAttribute
from membership.storage.table import TableModel


def grant_pk(grant_id: str) -> str:
    return f"GRANT#{grant_id}"


class GrantItem(TableModel):
    grant_id = UnicodeAttribute(attr_name="grantId")
    kind = UnicodeAttribute()  # points (coupon later)
    points = NumberAttribute(null=True)
    template_id = UnicodeAttribute(attr_name="templateId", null=True)  # coupon grants
    reason_code = UnicodeAttribute(attr_name="reasonCode")
    note = UnicodeAttribute(null=True)
    total = NumberAttribute()
    chunks = NumberAttribute()
    chunk_size = NumberAttribute(attr_name="chunkSize")
    created_at = TimeAttribute(attr_name="createdAt")
    created_by = UnicodeAttribute(attr_name="createdBy")
    request_hash = UnicodeAttribute(attr_name="requestHash")
    enqueued = BooleanAttribute(default=False)
    tag = UnicodeAttribute(null=True)  # a tag grant: its segment is expanded by the worker
    expanded = BooleanAttribute(null=True)  # None for a member list (complete at once)
    pages = NumberAttribute(null=True)  # a tag grant's segment pages frozen so far
    program_id = UnicodeAttribute(attr_name="programId", default="default")

    @staticmethod
    def key(grant_id: str) -> tuple[str, str]:
        return grant_pk(grant_id), "GRANT"


class GrantChunkItem(TableModel):
    chunk = NumberAttribute()
    total = NumberAttribute()
    done = NumberAttribute()
    failed = NumberAttribute()
    failures = UnicodeAttribute(null=True)  # JSON list of {memberId, code, message}
    updated_at = TimeAttribute(attr_name="updatedAt")

    @staticmethod
    def key(grant_id: str, chunk: int) -> tuple[str, str]:
        return grant_pk(grant_id), f"CHUNK#{chunk:05d}"


class GrantPageItem(TableModel):
    """One page of a tag grant's segment, written once: a re-expansion reads it back, so
    the same members land in the same chunk whatever the redeliveries."""

    member_ids = UnicodeAttribute(attr_name="memberIds")  # JSON list
    next_cursor = UnicodeAttribute(attr_name="nextCursor", null=True)
    before = NumberAttribute()  # members in the pages before this one

    @staticmethod
    def key(grant_id: str, page: int) -> tuple[str, str]:
        return f"{grant_pk(grant_id)}#PAGES", f"PAGE#{page:05d}"


@dataclass(frozen=True)
class Page:
    number: int
    member_ids: list[str]
    next_cursor: str | None
    before: int


def _page(number: int, item: GrantPageItem) -> Page:
    return Page(number, json.loads(item.member_ids), item.next_cursor, int(item.before))


def get_page(grant_id: str, number: int) -> Page | None:
    try:
        return _page(number, GrantPageItem.get(*GrantPageItem.key(grant_id, number),
                                               consistent_read=True))
    except GrantPageItem.DoesNotExist:
        return None


def freeze_page(grant_id: str, page: Page) -> Page:
    """Store a page unless one is already stored under its number; the stored one wins."""
    item = GrantPageItem(*GrantPageItem.key(grant_id, page.number),
                         member_ids=json.dumps(page.member_ids), next_cursor=page.next_cursor,
                         before=page.before)
    try:
        item.save(condition=GrantPageItem.PK.does_not_exist())
    except PutError as exc:
        if getattr(exc, "cause_response_code", "") == "ConditionalCheckFailedException":
            stored = get_page(grant_id, page.number)
            if stored is not None:
                return stored
        raise
    return page


def record_expansion(grant_id: str, pages: int, total: int, chunks: int,
                     expanded: bool) -> None:
    """Move the grant's counts forward to `pages` frozen pages (never back: a late or
    repeated expansion step changes nothing)."""
    try:
        GrantItem(*GrantItem.key(grant_id)).update(
            actions=[GrantItem.pages.set(pages), GrantItem.total.set(total),
                     GrantItem.chunks.set(chunks), GrantItem.expanded.set(expanded)],
            condition=GrantItem.PK.exists()
            & (GrantItem.pages.does_not_exist() | (GrantItem.pages < pages)))
    except UpdateError as exc:
        if getattr(exc, "cause_response_code", "") != "ConditionalCheckFailedException":
            raise


def create(item: GrantItem) -> GrantItem | None:
    """Write a new grant; returns the grant already stored under that id, if any."""
    try:
        item.save(condition=GrantItem.PK.does_not_exist())
    except PutError as exc:
        if getattr(exc, "cause_response_code", "") == "ConditionalCheckFailedException":
            return get(item.grant_id)
        raise
    return None


def get(grant_id: str) -> GrantItem | None:
    try:
        return GrantItem.get(*GrantItem.key(grant_id), consistent_read=True)
    except GrantItem.DoesNotExist:
        return None


def mark_enqueued(grant_id: str) -> None:
    GrantItem(*GrantItem.key(grant_id)).update(actions=[GrantItem.enqueued.set(True)])


def save_chunk(grant_id: str, progress: ChunkProgress, now: datetime) -> None:
    failures = [f.model_dump(by_alias=True) for f in progress.failures]
    GrantChunkItem(*GrantChunkItem.key(grant_id, progress.chunk), chunk=progress.chunk,
                   total=progress.total, done=progress.done, failed=progress.failed,
                   failures=json.dumps(failures) if failures else None,
                   updated_at=now).save()


@dataclass(frozen=True)
class Stored:
    grant: GrantItem | None
    chunks: list[ChunkProgress]


def read(grant_id: str) -> Stored:
    """The grant and every chunk's progress: one query of the grant's partition."""
    grant, chunks = None, []
    conn = GrantItem._get_connection()
    last = None
    while True:
        page = conn.query(grant_pk(grant_id), consistent_read=True, exclusive_start_key=last)
        for raw in page.get("Items", []):
            sk = raw["SK"]["S"]
            if sk == "GRANT":
                grant = GrantItem.from_raw_data(raw)
            elif sk.startswith("CHUNK#"):
                item = GrantChunkItem.from_raw_data(raw)
                chunks.append(ChunkProgress(
                    chunk=int(item.chunk), total=int(item.total), done=int(item.done),
                    failed=int(item.failed),
                    failures=tuple(json.loads(item.failures)) if item.failures else ()))
        last = page.get("LastEvaluatedKey")
        if not last:
            return Stored(grant, chunks)
