"""The check-in calendar's one read: the member item's check-in attributes.

The calendar lives on the member item (`ci`, `ciSince`, `ciCarry`: see
`membership.domain.checkins.CheckinLog`), so a check-in writes no item of its own and the
calendar is one strongly consistent GetItem. Only the attributes the calendar needs are
projected: the read carries no personal data.
"""
from __future__ import annotations

from datetime import datetime

from pynamodb.attributes import MapAttribute

from membership.domain.checkins import CheckinLog
from membership.errors import MemberClosed, MemberNotFound
from membership.storage.models import MemberItem

CALENDAR_ATTRIBUTES = ("ci", "ciSince", "ciCarry", "createdAt", "status")


def read_calendar(member_id: str) -> tuple[CheckinLog, datetime]:
    """(the member's check-in log, when the member joined)."""
    try:
        item = MemberItem.get(*MemberItem.key(member_id), consistent_read=True,
                              attributes_to_get=list(CALENDAR_ATTRIBUTES))
    except MemberItem.DoesNotExist:
        raise MemberNotFound("no member for this subject; sign up first") from None
    if item.status == "closed":  # domain/privacy.py
        raise MemberClosed("this account was closed", memberId=member_id)
    months = item.checkin_months
    months = months.as_dict() if isinstance(months, MapAttribute) else dict(months or {})
    log = CheckinLog(months={k: int(v) for k, v in months.items()}, since=item.checkin_since,
                     carry=int(item.checkin_carry or 0))
    return log, item.created_at
