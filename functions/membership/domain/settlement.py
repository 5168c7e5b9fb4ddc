"""Monthly settlement rules, pure: what settling one member for one period changes.

The settlement touches every member, so the decision is made from a small snapshot of the
member item (tier, growth months, soonest points expiry, paid plan, last settled period)
without reading lots or entries. Only members whose decision changes something are
written, through a ledger posting that decides again from the freshly read state.

Idempotency per (member, period): a member that was changed records the period in
`settled_period`, so deciding again answers "nothing to do"; a member that was not
changed decides the same way again because the decision is a pure function of its state.
"""
from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field

from membership.domain import birthdays, calendar
from membership.domain.ledger import PostingBuilder
from membership.domain.program import Program
from membership.domain.tiers import change_tier, settlement_target
from membership.errors import Conflict, DomainError, InvalidRequest

PERIOD = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")


class InvalidPeriod(InvalidRequest):
    code = "invalid_period"


class PeriodNotSettleable(Conflict):
    """Only the month that ended last is settled; older periods are report-only."""

    code = "period_not_settleable"


class NothingToSettle(DomainError):
    """The fresh state needs no change (another writer got there first)."""

    code = "nothing_to_settle"


def check_period(period: str) -> str:
    if not isinstance(period, str) or not PERIOD.match(period):
        raise InvalidPeriod(f"a period is a month YYYY-MM, not {period!r}")
    return period


def period_before(instant: datetime, tz: str) -> str:
    """The month that ended before `instant` on the program's clock: what a run settles."""
    return calendar.shift_month(calendar.month_of(instant, tz), -1)


@lru_cache(maxsize=64)
def period_close(period: str, tz: str) -> datetime:
    """The first instant after the period: lots expiring before it are due."""
    return calendar.month_start(calendar.shift_month(check_period(period), 1), tz)


@lru_cache(maxsize=64)
def _window(period: str) -> tuple[str, ...]:
    # Cached: the settlement asks for the same period's window once per member.
    return tuple(calendar.rolling_months(period))


def source_key(period: str, member_id: str) -> str:
    return f"settlement:{period}:{member_id}"


class Snapshot(BaseModel):
    """What the decision needs from a member item; storage fills it from a scanned row."""

    model_config = ConfigDict(frozen=True)

    member_id: str
    tier_id: str
    tier_since: datetime | None = None
    growth_months: dict[str, int] = Field(default_factory=dict)
    points_next_expiry_at: datetime | None = None
    paid_plan_ends_at: datetime | None = None
    settled_period: str | None = None
    birthday: str | None = None  # YYYY-MM-DD: only its month is read (domain/birthdays.py)
    birthday_gift_year: int | None = None


class Decision(BaseModel):
    model_config = ConfigDict(frozen=True)

    member_id: str
    period: str
    tier_before: str
    tier_after: str
    rolling_growth: int
    expire_points: bool = False
    lapse_plan: bool = False
    birthday_gift: bool = False
    already_settled: bool = False

    @property
    def changes(self) -> bool:
        """False means: write nothing for this member."""
        if self.already_settled:
            return False
        return (self.tier_after != self.tier_before or self.expire_points or self.lapse_plan
                or self.birthday_gift)


def rolling_growth(growth_months: dict[str, int], period: str) -> int:
    """Growth over the 12 months that end with `period`."""
    return sum(growth_months.get(m, 0) for m in _window(period))


def decide(snapshot: Snapshot, program: Program, period: str) -> Decision:
    """The settlement of one member for one period, from its snapshot alone."""
    check_period(period)
    close = period_close(period, program.time_zone)
    rolling = rolling_growth(snapshot.growth_months, period)
    current = program.tier(snapshot.tier_id)
    if snapshot.settled_period is not None and snapshot.settled_period >= period:
        # Settled for this period (or a later one) already: deciding again changes nothing.
        return Decision(member_id=snapshot.member_id, period=period, tier_before=current.id,
                        tier_after=current.id, rolling_growth=rolling, already_settled=True)
    target = settlement_target(program, current.id, rolling)
    if (snapshot.tier_since is not None and snapshot.tier_since >= close
            and program.tier_index(target.id) < program.tier_index(current.id)):
        # The tier changed after the period closed (e.g. an order paid at 00:03 on the 1st
        # upgraded it on growth this period does not see): the period has no say over it.
        target = current
    expiry = snapshot.points_next_expiry_at
    plan_end = snapshot.paid_plan_ends_at
    return Decision(
        member_id=snapshot.member_id, period=period, tier_before=current.id,
        tier_after=target.id, rolling_growth=rolling,
        expire_points=expiry is not None and expiry < close,
        lapse_plan=plan_end is not None and plan_end < close,
        birthday_gift=birthdays.gift_due(
            program, birthday=snapshot.birthday, gift_year=snapshot.birthday_gift_year,
            tier=target, month=birthdays.month_after(period)),
    )


def snapshot_of(member) -> Snapshot:
    """The snapshot of a full `Member` (the fresh state a posting reads)."""
    return Snapshot(
        member_id=member.member_id, tier_id=member.tier_id, tier_since=member.tier_since,
        growth_months=dict(member.growth_months),
        points_next_expiry_at=member.points_next_expiry_at,
        paid_plan_ends_at=member.paid_plan.ends_at if member.paid_plan else None,
        settled_period=member.settled_period, birthday=member.birthday,
        birthday_gift_year=member.birthday_gift_year,
    )


def apply(builder: PostingBuilder, program: Program, period: str) -> dict:
    """Settle the builder's member for `period`; returns the result kept in the guard.

    Raises NothingToSettle when the fresh state needs nothing, so nothing is written.
    """
    decision = decide(snapshot_of(builder.member), program, period)
    if not decision.changes:
        raise NothingToSettle(f"member {decision.member_id} needs nothing for {period}")
    tz = program.time_zone
    expired_points = 0
    if decision.expire_points:
        takes = builder.expire_lots(period_close(period, tz), reason="expired")
        expired_points = sum(t.amount for t in takes)
        if takes:
            builder.emit("points.expired", {
                "memberId": decision.member_id,
                "points": expired_points,
                "lots": [{"lotId": t.lot_id, "points": t.amount,
                          "expiredAt": calendar.wire(t.expires_at, tz)} for t in takes],
                "period": period,
                "occurredAt": calendar.wire(builder.now, tz),
            })
    change = change_tier(builder, program, program.tier(decision.tier_after),
                         reason="settlement", rolling_growth=decision.rolling_growth,
                         period=period)
    direction = change.direction if change else None
    birthday_points = 0
    if decision.birthday_gift:
        birthday_points = birthdays.give(builder, program, birthdays.month_after(period))
    if decision.lapse_plan:
        builder.set(paid_plan=None)
    builder.set(settled_period=period)
    result = {
        "period": period,
        "memberId": decision.member_id,
        "tierBefore": decision.tier_before,
        "tierAfter": decision.tier_after,
        "direction": direction,
        "rollingGrowth": decision.rolling_growth,
        "pointsExpired": expired_points,
        "planLapsed": decision.lapse_plan,
    }
    if decision.birthday_gift:
        result["birthdayGiftPoints"] = birthday_points
    builder.result = result
    return result


# ---- the report ---------------------------------------------------------------------

class Tally(BaseModel):
    """Counts of one page, one segment or a whole run; tallies add up."""

    model_config = ConfigDict(frozen=True)

    processed: int = 0
    changed: int = 0
    upgrades: int = 0
    downgrades: int = 0
    points_expired: int = 0
    members_expired: int = 0
    plans_lapsed: int = 0
    birthday_gifts: int = 0
    failures: int = 0
    tags_added: int = 0  # rule tags the run put on or took off (docs/tags.md)
    tags_removed: int = 0
    tiers_before: dict[str, int] = Field(default_factory=dict)
    tiers_after: dict[str, int] = Field(default_factory=dict)
    # Stocks at the period's close, for the metrics (docs/metrics.md).
    tiers_kept: dict[str, int] = Field(default_factory=dict)
    points_available: int = 0
    points_pending: int = 0
    balance_principal: int = 0
    balance_bonus: int = 0
    paid_active: int = 0
    # The paid plans at the close (docs/metrics.md, conversion and renewal), from the term
    # items the scan reads with the members. None: a run from before they were counted.
    members_closed: int | None = None
    paying_at_close: int | None = None
    terms_ended: int | None = None

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            processed=self.processed + other.processed,
            changed=self.changed + other.changed,
            upgrades=self.upgrades + other.upgrades,
            downgrades=self.downgrades + other.downgrades,
            points_expired=self.points_expired + other.points_expired,
            members_expired=self.members_expired + other.members_expired,
            plans_lapsed=self.plans_lapsed + other.plans_lapsed,
            birthday_gifts=self.birthday_gifts + other.birthday_gifts,
            failures=self.failures + other.failures,
            tags_added=self.tags_added + other.tags_added,
            tags_removed=self.tags_removed + other.tags_removed,
            tiers_before=dict(Counter(self.tiers_before) + Counter(other.tiers_before)),
            tiers_after=dict(Counter(self.tiers_after) + Counter(other.tiers_after)),
            tiers_kept=dict(Counter(self.tiers_kept) + Counter(other.tiers_kept)),
            points_available=self.points_available + other.points_available,
            points_pending=self.points_pending + other.points_pending,
            balance_principal=self.balance_principal + other.balance_principal,
            balance_bonus=self.balance_bonus + other.balance_bonus,
            paid_active=self.paid_active + other.paid_active,
            members_closed=_add_known(self.members_closed, other.members_closed),
            paying_at_close=_add_known(self.paying_at_close, other.paying_at_close),
            terms_ended=_add_known(self.terms_ended, other.terms_ended),
        )

    @property
    def free_at_close(self) -> int | None:
        """Open members without a paid term at the close (a trial is free)."""
        if self.members_closed is None or self.paying_at_close is None:
            return None
        return self.processed - self.members_closed - self.paying_at_close


def _add_known(a: int | None, b: int | None) -> int | None:
    return None if a is None and b is None else (a or 0) + (b or 0)


def term_at_close(kind: str, starts_at: datetime, ends_at: datetime,
                  refunded_at: datetime | None, period: str, tz: str) -> tuple[bool, bool]:
    """(paying, ended) of one term for the period's metrics.

    paying: a paid (not trial) term covered the close, and was not refunded before it;
    ended: a paid term whose end falls in the period, not refunded (a refund is not an
    end to renew). A member has at most one term covering an instant, so paying terms
    count members.
    """
    if kind == "trial":
        return False, False
    close = period_close(period, tz)
    paying = (starts_at <= close < ends_at
              and (refunded_at is None or refunded_at > close))
    ended = refunded_at is None and calendar.month_of(ends_at, tz) == period
    return paying, ended


class TallyBuilder:
    """Mutable counters for the hot loop; `tally()` freezes them. `stocks=False`: a page
    read without the metrics' rows and attributes, whose paid-plan counts are unknown."""

    def __init__(self, stocks: bool = True) -> None:
        self.stocks_known = stocks
        self.processed = self.changed = self.upgrades = self.downgrades = 0
        self.points_expired = self.members_expired = self.plans_lapsed = self.failures = 0
        self.birthday_gifts = 0
        self.tags_added = self.tags_removed = 0
        self.kept: Counter[str] = Counter()
        self.stocks = [0, 0, 0, 0, 0]  # points available, pending, principal, bonus, paid
        self.closed = self.paying = self.ended = 0
        self.before: Counter[str] = Counter()
        self.after: Counter[str] = Counter()

    def unchanged(self, tier_id: str) -> None:
        self.processed += 1
        self.before[tier_id] += 1
        self.after[tier_id] += 1
        self.kept[tier_id] += 1

    def settled(self, result: dict) -> None:
        """A member this period changed (now, or earlier: the guard's result)."""
        self.processed += 1
        self.changed += 1
        self.before[result["tierBefore"]] += 1
        self.after[result["tierAfter"]] += 1
        if result["tierBefore"] == result["tierAfter"]:
            self.kept[result["tierAfter"]] += 1
        if result.get("direction") == "upgrade":
            self.upgrades += 1
        elif result.get("direction") == "downgrade":
            self.downgrades += 1
        if result.get("pointsExpired"):
            self.points_expired += int(result["pointsExpired"])
            self.members_expired += 1
        if result.get("planLapsed"):
            self.plans_lapsed += 1
        if "birthdayGiftPoints" in result:
            self.birthday_gifts += 1

    def failed(self) -> None:
        self.failures += 1

    def stock(self, points_available: int, points_pending: int, principal: int, bonus: int,
              paid_active: bool, closed: bool = False) -> None:
        for i, value in enumerate((points_available, points_pending, principal, bonus,
                                   int(paid_active))):
            self.stocks[i] += value
        self.closed += int(closed)

    def term(self, paying: bool, ended: bool) -> None:
        """A paid-plan term the scan read (term_at_close)."""
        self.paying += int(paying)
        self.ended += int(ended)

    def retagged(self, added: int, removed: int) -> None:
        self.tags_added += added
        self.tags_removed += removed

    def tally(self) -> Tally:
        return Tally(
            processed=self.processed, changed=self.changed, upgrades=self.upgrades,
            downgrades=self.downgrades, points_expired=self.points_expired,
            members_expired=self.members_expired, plans_lapsed=self.plans_lapsed,
            birthday_gifts=self.birthday_gifts, failures=self.failures, tags_added=self.tags_added,
            tags_removed=self.tags_removed, tiers_kept=dict(self.kept),
            points_available=self.stocks[0], points_pending=self.stocks[1],
            balance_principal=self.stocks[2], balance_bonus=self.stocks[3],
            paid_active=self.stocks[4], tiers_before=dict(self.before),
            tiers_after=dict(self.after),
            members_closed=self.closed if self.stocks_known else None,
            paying_at_close=self.paying if self.stocks_known else None,
            terms_ended=self.ended if self.stocks_known else None,
        )


class SettlementReport(BaseModel):
    """What `GET /v1/admin/settlements/{period}` answers."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    period: str
    status: str = Field(description="running | completed")
    segments: int
    segments_done: int = Field(alias="segmentsDone")
    members_processed: int = Field(alias="membersProcessed")
    members_changed: int = Field(alias="membersChanged")
    upgrades: int
    downgrades: int
    points_expired: int = Field(alias="pointsExpired")
    members_with_expired_points: int = Field(alias="membersWithExpiredPoints")
    plans_lapsed: int = Field(alias="plansLapsed")
    birthday_gifts: int = Field(alias="birthdayGifts", default=0,
                                description="Members given the birthday gift by this run")
    failures: int
    tags_added: int = Field(alias="tagsAdded", default=0)
    tags_removed: int = Field(alias="tagsRemoved", default=0)
    tiers_before: dict[str, int] = Field(alias="tiersBefore")
    tiers_after: dict[str, int] = Field(alias="tiersAfter")
    started_at: str = Field(alias="startedAt")
    completed_at: str | None = Field(alias="completedAt", default=None)
    duration_ms: int | None = Field(alias="durationMs", default=None)


def report_of(period: str, tally: Tally, *, status: str, segments: int, segments_done: int,
              started_at: datetime, completed_at: datetime | None, tz: str) -> SettlementReport:
    duration = None
    if completed_at is not None:
        duration = int((completed_at - started_at).total_seconds() * 1000)
    return SettlementReport(
        period=period, status=status, segments=segments, segmentsDone=segments_done,
        membersProcessed=tally.processed, membersChanged=tally.changed,
        upgrades=tally.upgrades, downgrades=tally.downgrades,
        pointsExpired=tally.points_expired, membersWithExpiredPoints=tally.members_expired,
        plansLapsed=tally.plans_lapsed, birthdayGifts=tally.birthday_gifts,
        failures=tally.failures,
        tagsAdded=tally.tags_added, tagsRemoved=tally.tags_removed,
        tiersBefore=dict(sorted(tally.tiers_before.items())),
        tiersAfter=dict(sorted(tally.tiers_after.items())),
        startedAt=calendar.wire(started_at, tz),
        completedAt=calendar.wire(completed_at, tz), durationMs=duration,
    )


def completed_event(report: SettlementReport) -> dict:
    """The `settlement.completed` detail (schema: events/schemas/settlement.completed.json)."""
    return {
        "period": report.period,
        "membersProcessed": report.members_processed,
        "upgrades": report.upgrades,
        "downgrades": report.downgrades,
        "pointsExpired": report.points_expired,
        "tiersBefore": report.tiers_before,
        "tiersAfter": report.tiers_after,
        "failures": report.failures,
        "startedAt": report.started_at,
        "completedAt": report.completed_at,
    }
