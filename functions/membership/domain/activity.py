"""Points earned by activity (check-ins, make-ups, tasks) share one lot per expiry.

A daily checker would otherwise gain a lot a day, 365 a year, and every hold and debit
would have to touch them all. Lots earned in year Y expire together (end of Y+1), so the
lot is named by that expiry and each credit adds into it (`PostingBuilder.credit_points`
adds into an existing lot id with the same terms): at most one activity lot per expiry.
"""
from __future__ import annotations

from datetime import datetime

from membership.domain import calendar
from membership.domain.ledger import Lot, PostingBuilder


def activity_lot(effective_at: datetime, tz: str) -> tuple[str, datetime]:
    """(lot id, expiry) of the activity lot that points earned at `effective_at` go into."""
    expires = calendar.end_of_next_year(effective_at, tz)
    return f"activity-{calendar.day_of(expires, tz)}", expires


def credit_activity_points(builder: PostingBuilder, amount: int, *, reason: str) -> Lot:
    lot_id, expires = activity_lot(builder.effective_at, builder.tz)
    return builder.credit_points(amount, lot_id=lot_id, expires_at=expires, reason=reason)
