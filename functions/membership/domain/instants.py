"""Business timestamps on the wire: ISO 8601 with an offset, between 2000 and 2100.

Every instant a client or a producer gives us (`paidAt`, `refundedAt`, `cancelledAt`,
`completedAt`, offers' `validFrom` / `validUntil`, …) is a string such as
`2026-03-14T12:00:00+08:00` or `…Z`. Without an offset it names no instant, and a year
outside 2000–2100 is a typo or a probe (and years near 1 or 9999 overflow on conversion
to UTC). Validation that knows the clock (`context={"now": ...}`) also refuses an
instant more than MAX_FUTURE_SKEW ahead of it: nothing is paid tomorrow.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, ValidationInfo, WithJsonSchema

EARLIEST_YEAR = 2000
LATEST_YEAR = 2100
MAX_FUTURE_SKEW = timedelta(days=1)
ISO_WITH_OFFSET = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:?\d{2})$")


def _text_with_offset(value: object) -> object:
    if isinstance(value, datetime):  # built in code, not parsed: checked after
        return value
    if not isinstance(value, str) or not ISO_WITH_OFFSET.match(value):
        raise ValueError("a timestamp is ISO 8601 with an offset, "
                         "e.g. 2026-03-14T12:00:00+08:00 or 2026-03-14T04:00:00Z")
    return value


def check_instant(value: datetime, now: datetime | None = None) -> datetime:
    """`value` if it is aware, within 2000-2100 and not more than a day after `now`."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("a timestamp needs an offset, e.g. 2026-03-14T12:00:00+08:00")
    # The year on the value's own clock first: converting year 1 or 9999 would overflow.
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR or not (
            EARLIEST_YEAR <= value.astimezone(UTC).year <= LATEST_YEAR):
        raise ValueError(f"a timestamp lies between the years {EARLIEST_YEAR} and "
                         f"{LATEST_YEAR}")
    if now is not None and value - now > MAX_FUTURE_SKEW:
        raise ValueError("a timestamp may not lie more than a day in the future")
    return value


def _checked(value: datetime, info: ValidationInfo) -> datetime:
    context = info.context if isinstance(info.context, dict) else {}
    return check_instant(value, context.get("now"))


Instant = Annotated[
    datetime,
    BeforeValidator(_text_with_offset),
    AfterValidator(_checked),
    WithJsonSchema({"type": "string", "format": "date-time",
                    "description": "ISO 8601 with an offset, years 2000-2100"}),
]
