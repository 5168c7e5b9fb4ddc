"""Operators read and change the program's rules, version by version.

A change is refused when it would strand members. Each kind of resource members can be
using is watched by a *stranding guard* in `STRANDING_GUARDS`:

- `refusals(current, proposed)` reads what it needs and says what it refuses, with paths;
- `fences(current, proposed)` gives the transaction items that keep the check true until
  the change commits (a concurrent first use then fails one side, never both succeed).

Tiers are guarded by per-tier member counters, paid plans by per-plan counters of the
members with an active run of terms (storage.usage; domain/plan_usage.py says which
transactions move them). A coupon template's live instances plug in the same way: count
them with `storage.usage.UsageChange` in the transactions that start and end a use, and
register a `UsageCounterGuard` here.

Running functions keep the rules for `PROGRAM_CACHE_SECONDS` (default 60 s): a new
version is in force everywhere at most that long after it is written.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from membership.domain import calendar
from membership.domain.program import Program
from membership.domain.program_admin import (
    ProgramChangeRefused,
    ProgramVersionNotFound,
    ProgramVersionsPage,
    ProgramVersionSummary,
    ProgramVersionView,
    Refusal,
    Resource,
    added,
    changed_sections,
    etag,
    fixed_field_refusals,
    in_use_refusal,
    paid_plans_of,
    parse_if_match,
    removed,
    tiers_of,
)
from membership.errors import PreconditionFailed
from membership.storage import program_versions as store
from membership.storage import usage
from membership.storage.program import load_program

MAX_VERSIONS_PAGE = 100


class StrandingGuard(Protocol):
    def refusals(self, current: Program, proposed: Program) -> list[Refusal]: ...

    def fences(self, current: Program, proposed: Program) -> list[usage.Fence]: ...


@dataclass(frozen=True)
class UsageCounterGuard:
    """Refuses removing a resource that members use, as its sharded counter says."""

    kind: str
    resources: Callable[[Program], dict[str, Resource]]

    def _removed(self, current: Program, proposed: Program) -> list[Resource]:
        return removed(self.resources(current), self.resources(proposed))

    def refusals(self, current: Program, proposed: Program) -> list[Refusal]:
        found = []
        for resource in self._removed(current, proposed):
            count = usage.read_usage(self.kind, resource.resource_id).count
            if count > 0:
                found.append(in_use_refusal(resource, count))
        return found

    def fences(self, current: Program, proposed: Program) -> list[usage.Fence]:
        fences: list[usage.Fence] = []
        for resource in self._removed(current, proposed):
            fences += usage.retire_fences(self.kind, resource.resource_id,
                                          lambda r=resource: self._raced(r))
        for resource in added(self.resources(current), self.resources(proposed)):
            # An id that was removed before and comes back must be usable again.
            fences += usage.revive_fences(self.kind, resource.resource_id,
                                          usage.read_usage(self.kind, resource.resource_id))
        return fences

    def _raced(self, resource: Resource) -> Exception:
        count = usage.read_usage(self.kind, resource.resource_id).count
        return ProgramChangeRefused(
            "a member started using what this change removes; nothing was changed",
            refusals=[in_use_refusal(resource, max(count, 1)).wire()])


STRANDING_GUARDS: list[StrandingGuard] = [UsageCounterGuard(usage.TIER, tiers_of),
                                           UsageCounterGuard(usage.PLAN, paid_plans_of)]


def _now() -> datetime:
    return datetime.now(UTC)


def _view(version: int, program: Program, updated_at: datetime | None,
          updated_by: str | None, changes: list[str] | None = None) -> ProgramVersionView:
    return ProgramVersionView(
        version=version, updatedAt=calendar.wire(updated_at, program.time_zone),
        updatedBy=updated_by, changes=changes or [],
        program=program.model_dump(mode="json", by_alias=True))


def current() -> tuple[ProgramVersionView, str]:
    """The rules in force with their version, and the ETag to send back as If-Match."""
    cur = store.read_current()
    return _view(cur.version, cur.program, cur.updated_at, cur.updated_by), etag(cur.version)


def refusals_of(current_program: Program, proposed: Program) -> list[Refusal]:
    found = fixed_field_refusals(current_program, proposed)
    for guard in STRANDING_GUARDS:
        found += guard.refusals(current_program, proposed)
    return found


def replace(proposed: Program, if_match: str | None, *, actor: str,
            now: datetime | None = None) -> tuple[ProgramVersionView, str, bool]:
    """Put `proposed` in force if If-Match names the current version; (view, etag, changed).

    The same rules again write nothing and answer the current version.
    """
    now = now or _now()
    expected = parse_if_match(if_match)
    cur = store.read_current()
    if expected != cur.version:
        raise PreconditionFailed(
            f"the program is at version {cur.version}, not {expected}; read it again, "
            "re-apply your edit and send If-Match with the version you read",
            currentVersion=cur.version, ifMatch=expected)
    refusals = refusals_of(cur.program, proposed)
    if refusals:
        raise ProgramChangeRefused(
            "this change would strand members; nothing was changed",
            refusals=[r.wire() for r in refusals])
    changes = changed_sections(cur.program, proposed)
    if not changes:
        return (_view(cur.version, cur.program, cur.updated_at, cur.updated_by),
                etag(cur.version), False)
    fences = [f for guard in STRANDING_GUARDS for f in guard.fences(cur.program, proposed)]
    version = store.commit_change(cur, proposed, actor=actor, now=now, changes=changes,
                                  fences=fences)
    return _view(version, proposed, now, actor, changes), etag(version), True


def versions(limit: int = 20, cursor: str | None = None) -> ProgramVersionsPage:
    items, next_cursor = store.versions_page(min(limit, MAX_VERSIONS_PAGE), cursor)
    tz = load_program().time_zone
    return ProgramVersionsPage(
        versions=[ProgramVersionSummary(
            version=int(i.version), createdAt=calendar.wire(i.created_at, tz),
            createdBy=i.created_by, changes=list(i.changes or []))
            for i in items],
        nextCursor=next_cursor)


def version(number: int) -> ProgramVersionView:
    item = store.get_version(number)
    if item is None:
        raise ProgramVersionNotFound(f"no program version {number}", version=number)
    program = Program.model_validate(store.version_document(item))
    return _view(int(item.version), program, item.created_at, item.created_by,
                 list(item.changes or []))
