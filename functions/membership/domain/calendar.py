"""Calendar rules in the program's time zone; storage keeps UTC.

Month boundaries, points expiry and check-in days follow the program's wall clock, so
every rule that needs a calendar goes through here.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

LAST_MICROSECOND = timedelta(microseconds=1)


@lru_cache(maxsize=16)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def check_zone(name: str) -> str:
    """An IANA time zone name this runtime knows, e.g. Asia/Shanghai; ValueError if not."""
    if not isinstance(name, str) or not name or name.startswith(("/", ".")) or ".." in name:
        raise ValueError(f"{name!r} is not an IANA time zone")
    try:
        zone(name)
    except (ValueError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"{name!r} is not an IANA time zone") from None
    return name


def utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise ValueError("naive datetimes are not accepted: give an offset")
    return dt.astimezone(UTC)


def month_of(dt: datetime, tz: str) -> str:
    """The calendar month 'YYYY-MM' an instant falls in, on the program's clock."""
    local = utc(dt).astimezone(zone(tz))
    return f"{local.year:04d}-{local.month:02d}"


def day_of(dt: datetime, tz: str) -> str:
    local = utc(dt).astimezone(zone(tz))
    return local.date().isoformat()


def shift_month(month: str, delta: int) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    index = year * 12 + (mon - 1) + delta
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def rolling_months(as_of_month: str, count: int = 12) -> list[str]:
    """The `count` months ending with `as_of_month`, oldest first."""
    return [shift_month(as_of_month, -i) for i in range(count - 1, -1, -1)]


def month_start(month: str, tz: str) -> datetime:
    """The first instant of a calendar month, in UTC."""
    year, mon = int(month[:4]), int(month[5:7])
    return datetime(year, mon, 1, tzinfo=zone(tz)).astimezone(UTC)


def month_end(month: str, tz: str) -> datetime:
    """The last instant (microsecond) of a calendar month, in UTC."""
    return month_start(shift_month(month, 1), tz) - LAST_MICROSECOND


def end_of_next_year(dt: datetime, tz: str) -> datetime:
    """Lots earned in year Y expire at the last instant of Y+1, local time."""
    local = utc(dt).astimezone(zone(tz))
    first_after = datetime(local.year + 2, 1, 1, tzinfo=zone(tz))
    return first_after.astimezone(UTC) - LAST_MICROSECOND


def iso(dt: datetime) -> str:
    """UTC ISO 8601 with a fixed width, so strings sort like instants."""
    return utc(dt).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def wire(dt: datetime | None, tz: str) -> str | None:
    """ISO 8601 with the program's offset, for responses and events."""
    if dt is None:
        return None
    return utc(dt).astimezone(zone(tz)).isoformat()
