"""Operators change the program: validation with paths, optimistic versions, refusals.

A PUT carries the whole program document. It is validated fully (every failing path is
listed, not just the first), applies only to the version the operator read (`If-Match`),
and is refused when it would strand members: a tier someone holds, a paid plan someone
has an active run of, the program's time zone or id (see `refusals_of`). Usage of
resources comes from storage (sharded counters); the rules here are pure.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from membership.domain.program import Program
from membership.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
)


class ProgramChangeRefused(Conflict):
    code = "program_change_refused"


class ProgramVersionNotFound(NotFound):
    code = "program_version_not_found"


class ProgramChangeTooLarge(InvalidRequest):
    code = "program_change_too_large"


def _error(kind: str, message: str, loc: tuple, value: Any) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=value)


def _semantic_errors(program: Program) -> list[InitErrorDetails]:
    """Rules across fields, each reported at the path that breaks it."""
    errors: list[InitErrorDetails] = []
    tiers = program.tiers
    if tiers[0].threshold != 0:
        errors.append(_error("first_tier_not_zero", "the first tier must start at growth 0",
                             ("tiers", 0, "threshold"), tiers[0].threshold))
    for i, (a, b) in enumerate(pairwise(tiers), start=1):
        if b.threshold <= a.threshold:
            errors.append(_error(
                "thresholds_not_ascending",
                f"must be above tiers[{i - 1}].threshold ({a.threshold}): tiers ascend",
                ("tiers", i, "threshold"), b.threshold))
    for field, items in (("tiers", [t.id for t in tiers]),
                         ("paidPlans", [p.id for p in program.paid_plans]),
                         ("reasonCodes", list(program.reason_codes))):
        seen: set[str] = set()
        for i, value in enumerate(items):
            if value in seen:
                loc = (field, i) if field == "reasonCodes" else (field, i, "id")
                errors.append(_error("duplicate_id", f"{value!r} appears twice", loc, value))
            seen.add(value)
    top = program.topup
    if top.min_amount > top.max_amount:
        errors.append(_error("range_inverted", "must not exceed topup.maxAmount",
                             ("topup", "minAmount"), top.min_amount))
    if top.max_amount > top.daily_max:
        errors.append(_error("range_inverted", "must not exceed topup.dailyMax",
                             ("topup", "maxAmount"), top.max_amount))
    for i, offer in enumerate(top.offers):
        if offer.valid_from and offer.valid_until and offer.valid_from >= offer.valid_until:
            errors.append(_error("range_inverted", "must be before validUntil",
                                 ("topup", "offers", i, "validFrom"), str(offer.valid_from)))
    return errors


class ProgramDocument(Program):
    """The program as an operator PUTs it: every rule checked, each failure at its path.

    Program's own cross-field check reports at the document's root; here the same rules
    (and a few more) report where they break, e.g. `tiers.2.threshold`.
    """

    @model_validator(mode="wrap")
    @classmethod
    def _checked_with_paths(cls, data: Any, handler):
        try:
            program = handler(data)
        except ValidationError as exc:
            # Field errors stop pydantic before the cross-field rules run, and Program's
            # own cross-field check reports at the root: check those rules on the raw
            # document too, so every failing path is listed at once.
            field_errors = [e for e in exc.errors() if e["loc"]]
            seen = {tuple(e["loc"]) for e in field_errors}
            located = [e for e in _semantic_errors_of_raw(data) if tuple(e["loc"]) not in seen]
            if not located and len(field_errors) == len(exc.errors()):
                raise
            details = [InitErrorDetails(type=PydanticCustomError(e["type"], e["msg"]),
                                        loc=e["loc"], input=e.get("input"))
                       for e in field_errors] + located
            if not details:
                raise
            raise ValidationError.from_exception_data(cls.__name__, details) from None
        errors = _semantic_errors(program)
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return program

    def as_program(self) -> Program:
        return Program.model_validate(self.model_dump(by_alias=True))


def _semantic_errors_of_raw(data: Any) -> list[InitErrorDetails]:
    """The cross-field rules on a document that failed Program's own root check."""
    if not isinstance(data, dict):
        return []
    tiers = data.get("tiers")
    if not isinstance(tiers, list) or not tiers:
        return []
    errors: list[InitErrorDetails] = []
    thresholds = [t.get("threshold") if isinstance(t, dict) else None for t in tiers]
    if isinstance(thresholds[0], int) and thresholds[0] != 0:
        errors.append(_error("first_tier_not_zero", "the first tier must start at growth 0",
                             ("tiers", 0, "threshold"), thresholds[0]))
    for i, (a, b) in enumerate(pairwise(thresholds), start=1):
        if isinstance(a, int) and isinstance(b, int) and b <= a:
            errors.append(_error(
                "thresholds_not_ascending",
                f"must be above tiers[{i - 1}].threshold ({a}): tiers ascend",
                ("tiers", i, "threshold"), b))
    for field in ("tiers", "paidPlans", "reasonCodes"):
        items = data.get(field)
        if not isinstance(items, list):
            continue
        seen: set = set()
        for i, item in enumerate(items):
            value = item.get("id") if isinstance(item, dict) else item
            if not isinstance(value, str):
                continue
            if value in seen:
                loc = (field, i) if field == "reasonCodes" else (field, i, "id")
                errors.append(_error("duplicate_id", f"{value!r} appears twice", loc, value))
            seen.add(value)
    return errors


# ---- versions and preconditions ------------------------------------------------------------

def etag(version: int) -> str:
    return f'"{version}"'


def parse_if_match(header: str | None) -> int:
    """The version an If-Match names: `"3"`, `3` or `W/"3"`; missing is 428."""
    if header is None or not header.strip():
        raise PreconditionRequired(
            "send If-Match with the version you read (GET /v1/admin/program returns it "
            "as the ETag), so that no one else's change is overwritten")
    text = header.strip()
    if text == "*":
        raise PreconditionRequired("If-Match: * would overwrite blindly; send the version "
                                   "you read")
    text = text.removeprefix("W/").strip().strip('"')
    if not text.isdigit() or len(text) > 12:
        raise PreconditionFailed(f"If-Match {header!r} names no version of the program",
                                 ifMatch=header)
    return int(text)


# ---- what a change would strand -------------------------------------------------------------

class Refusal(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    path: str
    code: str
    message: str
    in_use: int | None = Field(default=None, alias="inUse")

    def wire(self) -> dict:
        return self.model_dump(by_alias=True, exclude_none=True)


@dataclass(frozen=True)
class Resource:
    """A program resource members can be using: its id and where it sits in the document."""

    kind: str
    resource_id: str
    path: str


def tiers_of(program: Program) -> dict[str, Resource]:
    return {t.id: Resource("tier", t.id, f"tiers[{i}]") for i, t in enumerate(program.tiers)}


def paid_plans_of(program: Program) -> dict[str, Resource]:
    return {p.id: Resource("plan", p.id, f"paidPlans[{i}]")
            for i, p in enumerate(program.paid_plans)}


def removed(before: dict[str, Resource], after: dict[str, Resource]) -> list[Resource]:
    """Resources of the current program that the proposed one no longer has."""
    return [r for rid, r in before.items() if rid not in after]


def added(before: dict[str, Resource], after: dict[str, Resource]) -> list[Resource]:
    return [r for rid, r in after.items() if rid not in before]


def fixed_field_refusals(current: Program, proposed: Program) -> list[Refusal]:
    """What a PUT can never change.

    The time zone is the deployment's (template parameter `ProgramTimeZone`): month
    boundaries, lot expiry and the settlement's schedule already follow it, and members'
    growth months were filed under it, so a program edit never moves it. The program id is
    what every item of a future multi-program table is filed under.
    """
    refusals = []
    if proposed.time_zone != current.time_zone:
        refusals.append(Refusal(
            path="timeZone", code="time_zone_locked",
            message=f"the program's time zone is {current.time_zone} (the deployment's "
                    "ProgramTimeZone parameter) and cannot change once members exist; a "
                    "program edit never changes it"))
    if proposed.id != current.id:
        refusals.append(Refusal(path="id", code="program_id_locked",
                                message=f"the program's id is {current.id!r}"))
    return refusals


def in_use_refusal(resource: Resource, count: int) -> Refusal:
    return Refusal(path=resource.path, code=f"{resource.kind}_in_use", in_use=count,
                   message=f"{count} member(s) still use {resource.kind} "
                           f"{resource.resource_id!r}: it cannot be removed")


def changed_sections(current: Program, proposed: Program) -> list[str]:
    """Top-level fields that differ, for the version history."""
    a = current.model_dump(mode="json", by_alias=True)
    b = proposed.model_dump(mode="json", by_alias=True)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


# ---- wire views -----------------------------------------------------------------------------

class ProgramVersionView(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    version: int
    updated_at: str | None = Field(alias="updatedAt")
    updated_by: str | None = Field(alias="updatedBy")
    changes: list[str] = Field(default_factory=list,
                               description="Top-level fields this version changed")
    program: dict


class ProgramVersionSummary(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    version: int
    created_at: str | None = Field(alias="createdAt")
    created_by: str | None = Field(alias="createdBy")
    changes: list[str]


class ProgramVersionsPage(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    versions: list[ProgramVersionSummary]
    next_cursor: str | None = Field(alias="nextCursor")
