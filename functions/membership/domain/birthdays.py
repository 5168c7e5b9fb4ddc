"""The birthday gift (生日礼), pure: who gets the program's `birthdayGift` pack, and when.

Once a year, in the member's birthday month on the program's clock, to a member whose
tier lists the `birthday_gift` benefit. The monthly settlement gives it: its scan sees
every member at the start of each month, so the gift needs no scan or schedule of its
own, and it is part of the member's settlement posting (one transaction, one guard).
The tier that counts is the one the member holds after that settlement.

The birthday is set once on the profile (domain/members.py), so it cannot be moved to
collect a second gift; the year given is recorded on the member (`birthday_gift_year`),
so a member whose birthday month comes round again in the same year (it cannot) or whose
settlement is re-run is never given twice.
"""
from __future__ import annotations

from membership.domain import calendar
from membership.domain.ledger import PostingBuilder
from membership.domain.program import Program, Tier

BENEFIT = "birthday_gift"


def birthday_month(birthday: str | None) -> int | None:
    """The month (1–12) of a YYYY-MM-DD birthday; None when none is set."""
    if not birthday:
        return None
    return int(birthday[5:7])


def tier_has_gift(tier: Tier) -> bool:
    return any(b.code == BENEFIT for b in tier.benefits)


def gift_due(program: Program, *, birthday: str | None, gift_year: int | None, tier: Tier,
             month: str) -> bool:
    """Is the birthday gift due in `month` (YYYY-MM) to a member with this birthday, last
    given in `gift_year`, holding `tier`?"""
    pack = program.birthday_gift
    if not (pack.points or pack.coupons) or not tier_has_gift(tier):
        return False
    year, month_number = int(month[:4]), int(month[5:7])
    return birthday_month(birthday) == month_number and gift_year != year


def lot_id(year: int) -> str:
    return f"birthday-{year}"


def give(builder: PostingBuilder, program: Program, month: str) -> int:
    """Credit the pack in the builder's posting: points as a lot with the normal expiry,
    coupons stock permitting (domain/coupons.py: what runs out is reported, never blocks).
    Returns the points given."""
    year = int(month[:4])
    pack = program.birthday_gift
    if pack.points:
        builder.credit_points(pack.points, reason="birthday_gift", lot_id=lot_id(year))
    for grant in pack.coupons:
        builder.issue_coupons(grant.template_id, grant.quantity, source="birthday")
    builder.set(birthday_gift_year=year)
    return pack.points


def month_after(period: str) -> str:
    """The month a settlement of `period` runs in: whose birthdays it celebrates."""
    return calendar.shift_month(period, 1)
