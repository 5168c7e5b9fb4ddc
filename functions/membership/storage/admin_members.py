"""What operators read and write about one member: lookup, status, the audit trail.

PK              SK                         item
MEMBER#<id>     AUDIT#<time>#<hash>        an operator's action on the member (freeze,
                                           unfreeze, adjustment): who, when, why, what

Audit items sort before the live range (`HOLD#`..`MEMBER`), so postings never read them,
and newest last, so the member view reads the latest with one descending query.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime

from pynamodb.attributes import UnicodeAttribute
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from membership.domain import calendar
from membership.domain.ledger import Entry
from membership.domain.members import Member
from membership.errors import MemberNotFound, Unavailable
from membership.storage import ledger
from membership.storage.ledger import RETRYABLE_CODES, ExtraItem
from membership.storage.models import MemberItem, PhoneItem, TimeAttribute, member_pk
from membership.storage.table import Retry, TableModel, connection, with_retries

AUDIT_PREFIX = "AUDIT#"


class AuditItem(TableModel):
    member_id = UnicodeAttribute(attr_name="memberId")
    action = UnicodeAttribute()  # frozen | unfrozen | adjustment | ...
    actor = UnicodeAttribute()  # the operator's JWT sub
    at = TimeAttribute()
    reason = UnicodeAttribute(null=True)
    details = UnicodeAttribute(null=True)  # JSON

    @staticmethod
    def key(member_id: str, at: datetime, discriminator: str) -> tuple[str, str]:
        digest = hashlib.sha256(discriminator.encode()).hexdigest()[:10]
        return member_pk(member_id), f"{AUDIT_PREFIX}{calendar.iso(at)}#{digest}"

    def details_dict(self) -> dict:
        return json.loads(self.details) if self.details else {}


def audit_item(member_id: str, action: str, actor: str, at: datetime, *,
               reason: str | None = None, details: dict | None = None,
               discriminator: str = "") -> AuditItem:
    return AuditItem(*AuditItem.key(member_id, at, discriminator or f"{action}:{actor}"),
                     member_id=member_id, action=action, actor=actor, at=at, reason=reason,
                     details=json.dumps(details, sort_keys=True, default=str)
                     if details else None)


def audit_extra(item: AuditItem) -> ExtraItem:
    """The audit record of a posting, written in the posting's own transaction."""
    return ExtraItem(model=item, condition=AuditItem.PK.does_not_exist(),
                     on_condition_failed=Retry)


def audit_trail(member_id: str, limit: int) -> list[AuditItem]:
    return list(AuditItem.query(member_pk(member_id), AuditItem.SK.startswith(AUDIT_PREFIX),
                                scan_index_forward=False, limit=limit, page_size=limit))


def member_id_by_phone(e164: str) -> str | None:
    try:
        return PhoneItem.get(*PhoneItem.key(e164)).member_id
    except PhoneItem.DoesNotExist:
        return None


def get_member(member_id: str) -> Member:
    try:
        return MemberItem.get(*MemberItem.key(member_id), consistent_read=True).to_domain()
    except MemberItem.DoesNotExist:
        raise MemberNotFound(f"no member {member_id}", memberId=member_id) from None


def change_status(member_id: str, status: str, reason: str, actor: str, now: datetime,
                  action: str) -> bool:
    """Set the member's status and record it, in one transaction; False if it was already so.

    The member's version moves too, so a posting built on the state before the change
    (e.g. a hold) fails its condition, reads again and sees the new status.
    """
    item = MemberItem(*MemberItem.key(member_id))
    if status == "frozen":
        differs = MemberItem.status.does_not_exist() | (MemberItem.status != status)
    else:
        differs = MemberItem.status == "frozen"

    # Unique per change, the same across its retries: two changes in one instant (freeze,
    # unfreeze, freeze) are three records, and a retry of a change that committed finds
    # the status already so.
    discriminator = f"{action}:{uuid.uuid4().hex}"

    def attempt() -> bool:
        t = TransactWrite(connection=connection())
        t.save(audit_item(member_id, action, actor, now, reason=reason,
                          details={"status": status}, discriminator=discriminator),
               condition=AuditItem.PK.does_not_exist())
        t.update(item, actions=[MemberItem.status.set(status),
                                MemberItem.status_reason.set(reason),
                                MemberItem.status_changed_at.set(now),
                                MemberItem.updated_at.set(now),
                                MemberItem.version.add(1)],
                 condition=MemberItem.PK.exists() & differs)
        try:
            t._commit()
        except TransactWriteError as exc:
            reasons = [(r.code if r else None) for r in (exc.cancellation_reasons or [])]
            if exc.cause_response_code in RETRYABLE_CODES or any(
                    c in RETRYABLE_CODES for c in reasons):
                raise Retry() from None
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                get_member(member_id)  # MemberNotFound when there is no such member
                return False
            raise
        return True

    return with_retries(attempt, lambda: Unavailable("the member stayed busy; try again"))


def latest_entries(member_id: str, limit: int) -> list[Entry]:
    """The newest entries across assets (one query per asset, merged)."""
    entries: list[Entry] = []
    for asset in ("balance", "points", "growth"):
        page, _ = ledger.entries_page(member_id, asset, limit)
        entries += page
    entries.sort(key=lambda e: (e.created_at, e.entry_id), reverse=True)
    return entries[:limit]
