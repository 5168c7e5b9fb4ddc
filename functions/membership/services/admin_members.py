"""Operators look a member up, read the operator's view, and freeze or unfreeze."""
from __future__ import annotations

from datetime import UTC, datetime

from membership.domain import calendar
from membership.domain.admin_members import (
    AdminMemberView,
    AuditView,
    MemberMatch,
    MemberSearch,
    admin_view_of,
)
from membership.domain.coupons import summarize
from membership.domain.member_status import StatusChange, audit_action
from membership.domain.members import normalize_phone
from membership.storage import admin_members as store
from membership.storage import coupons as coupon_store
from membership.storage import ledger
from membership.storage.program import load_program

LAST_ENTRIES = 20
AUDIT_ENTRIES = 20


def _now() -> datetime:
    return datetime.now(UTC)


def find_by_phone(raw_phone: str) -> MemberSearch:
    """Any common format (+86 138-1234-5678, 13812345678, 0086...): one GetItem, one member."""
    member_id = store.member_id_by_phone(normalize_phone(raw_phone))
    if member_id is None:
        return MemberSearch(members=[])
    m = store.get_member(member_id)
    return MemberSearch(members=[MemberMatch(memberId=m.member_id, phone=m.phone,
                                             nickname=m.nickname, tier=m.tier_id,
                                             status=m.status)])


def audit_views(member_id: str, tz: str, limit: int = AUDIT_ENTRIES) -> list[AuditView]:
    return [AuditView(action=a.action, actor=a.actor, at=calendar.wire(a.at, tz),
                      reason=a.reason, details=a.details_dict())
            for a in store.audit_trail(member_id, limit)]


def view(member_id: str, now: datetime | None = None) -> AdminMemberView:
    """Live range (member, lots, holds), the latest entries, the audit trail and the
    coupons by status."""
    now = now or _now()
    program = load_program()
    state = ledger.read_live_range(member_id)
    entries = store.latest_entries(member_id, LAST_ENTRIES)
    audit = audit_views(member_id, program.time_zone)
    coupons = summarize(coupon_store.all_coupons(member_id), now)
    return admin_view_of(state, entries, audit, program, now, coupons)


def change_status(member_id: str, change: StatusChange, *, actor: str,
                  now: datetime | None = None) -> tuple[AdminMemberView, bool]:
    """Freeze or unfreeze with a reason; (view, changed). Asking again changes nothing."""
    now = now or _now()
    changed = store.change_status(member_id, change.status, change.reason, actor, now,
                                  audit_action(change.status))
    return view(member_id, now), changed
