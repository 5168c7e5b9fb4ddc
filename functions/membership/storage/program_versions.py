"""The program's versions: the current one with its version number, and every one before.

PK        SK                 item
PROGRAM   CURRENT            the rules in force (storage.program reads them, cached)
PROGRAM   VERSION#<nnnnnnnnnn>  every version ever in force: document, who, when, what changed

A change is one transaction: CURRENT (conditioned on the version the operator read),
the new VERSION item, and the fences that keep what the change checked true until it
commits (storage.usage). Version 0 is the shipped default; the first change files it too.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime

from pynamodb.attributes import ListAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from membership.domain.program import Program
from membership.errors import InvalidRequest, PreconditionFailed, Unavailable
from membership.storage import program as program_store
from membership.storage.ledger import MAX_TRANSACTION_ITEMS, RETRYABLE_CODES
from membership.storage.models import ProgramItem, TimeAttribute
from membership.storage.table import TableModel, connection
from membership.storage.usage import Fence

PROGRAM_PK = "PROGRAM"
VERSION_PREFIX = "VERSION#"


class ProgramVersionItem(TableModel):
    version = NumberAttribute()
    document = UnicodeAttribute()
    created_at = TimeAttribute(attr_name="createdAt")
    created_by = UnicodeAttribute(attr_name="createdBy")
    changes = ListAttribute(of=UnicodeAttribute, null=True)

    @staticmethod
    def key(version: int) -> tuple[str, str]:
        return PROGRAM_PK, f"{VERSION_PREFIX}{version:010d}"


@dataclass(frozen=True)
class Current:
    version: int
    program: Program
    updated_at: datetime | None
    updated_by: str | None
    stored: bool  # False: nothing stored yet, the shipped default is in force


def read_current() -> Current:
    """The rules in force, read strongly (the cache is for running functions, not for edits)."""
    try:
        item = ProgramItem.get(*ProgramItem.key(), consistent_read=True)
    except ProgramItem.DoesNotExist:
        program_store.forget_cached_program()
        return Current(version=0, program=program_store.load_program(), updated_at=None,
                       updated_by=None, stored=False)
    return Current(version=int(item.version or 0),
                   program=Program.model_validate_json(item.document),
                   updated_at=item.updated_at, updated_by=item.updated_by, stored=True)


def _document(program: Program) -> str:
    return program.model_dump_json(by_alias=True)


def commit_change(current: Current, proposed: Program, *, actor: str, now: datetime,
                  changes: list[str], fences: list[Fence]) -> int:
    """Write version current.version + 1; returns it.

    PreconditionFailed when another change got there first; a fence's own error when
    what was checked stopped being true (e.g. a member reached a tier being removed).
    """
    new_version = current.version + 1
    items = 2 + (0 if current.version else 1) + len(fences)
    if items > MAX_TRANSACTION_ITEMS:
        raise InvalidRequest(
            f"this change touches {items} items, more than one transaction holds; make it "
            "in smaller steps (e.g. remove fewer tiers or plans at once)", items=items)
    t = TransactWrite(connection=connection())
    plan: list = []
    condition = ProgramItem.version == current.version
    if current.version == 0:
        condition = ProgramItem.PK.does_not_exist() | condition
    t.save(ProgramItem(*ProgramItem.key(), document=_document(proposed), updated_at=now,
                       version=new_version, updated_by=actor), condition=condition)
    plan.append(None)
    if current.version == 0:
        # The shipped default was in force until now: keep it in the history too.
        t.save(ProgramVersionItem(*ProgramVersionItem.key(0), version=0,
                                  document=_document(current.program),
                                  created_at=current.updated_at or now, created_by="system",
                                  changes=None),
               condition=ProgramVersionItem.PK.does_not_exist())
        plan.append(None)
    t.save(ProgramVersionItem(*ProgramVersionItem.key(new_version), version=new_version,
                              document=_document(proposed), created_at=now, created_by=actor,
                              changes=changes or None),
           condition=ProgramVersionItem.PK.does_not_exist())
    plan.append(None)
    for fence in fences:
        fence.add_to(t)
        plan.append(fence.on_failed)
    try:
        t._commit()
    except TransactWriteError as exc:
        raise _translate(exc, plan, current.version) from None
    program_store.forget_cached_program()
    return new_version


def _translate(exc: TransactWriteError, plan: list, expected: int) -> Exception:
    reasons = [(r.code if r else None) for r in (exc.cancellation_reasons or [])]
    if exc.cause_response_code in RETRYABLE_CODES or any(c in RETRYABLE_CODES for c in reasons):
        return Unavailable("the program is being changed by someone else; try again")
    for on_failed, reason in zip(plan, reasons):
        if reason != "ConditionalCheckFailed":
            continue
        if on_failed is None:
            return PreconditionFailed(
                f"the program changed since version {expected}; read it again",
                ifMatch=expected)
        return on_failed()
    return exc


def get_version(version: int) -> ProgramVersionItem | None:
    try:
        return ProgramVersionItem.get(*ProgramVersionItem.key(version))
    except ProgramVersionItem.DoesNotExist:
        return None


def versions_page(limit: int, cursor: str | None) -> tuple[list[ProgramVersionItem], str | None]:
    """Newest first; the cursor is opaque and only ever points into the version history."""
    start = _decode_cursor(cursor)
    results = ProgramVersionItem.query(
        PROGRAM_PK, ProgramVersionItem.SK.startswith(VERSION_PREFIX), scan_index_forward=False,
        limit=limit, page_size=limit, last_evaluated_key=start,
        attributes_to_get=["PK", "SK", "version", "createdAt", "createdBy", "changes"])
    items = list(results)
    return items, _encode_cursor(results.last_evaluated_key)


def _encode_cursor(key: dict | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(key["SK"]["S"].encode()).decode()


def _decode_cursor(cursor: str | None) -> dict | None:
    if not cursor:
        return None
    try:
        sk = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("cursor is not one this API issued") from None
    if not sk.startswith(VERSION_PREFIX) or not sk[len(VERSION_PREFIX):].isdigit():
        raise InvalidRequest("cursor is not one this API issued")
    return {"PK": {"S": PROGRAM_PK}, "SK": {"S": sk}}


def version_document(item: ProgramVersionItem) -> dict:
    return json.loads(item.document)
