"""The program's rules, stored in the table and cached per container for a short while.

The program's time zone is the deployment's `ProgramTimeZone` parameter (the
`PROGRAM_TIME_ZONE` setting), which also times the monthly settlement's schedule: one
source of truth. A stored program is read in that zone whatever its document says, and a
program in another zone is refused when it is stored.
"""
from __future__ import annotations

import time
from datetime import UTC, datetime

from pydantic import ValidationError
from pynamodb.exceptions import PutError

from membership.config import get_settings
from membership.domain.program import Program, default_program
from membership.errors import InvalidRequest, Unavailable
from membership.observability import logger
from membership.storage.models import ProgramItem

_cache: tuple[float, Program] | None = None


class ProgramTimeZoneMismatch(InvalidRequest):
    code = "program_time_zone_mismatch"


class ProgramInvalid(Unavailable):
    """The stored program no longer validates (written before a rule was tightened)."""

    code = "program_invalid"


def deployment_time_zone() -> str:
    return get_settings().program_time_zone


def in_deployment_zone(program: Program) -> Program:
    zone = deployment_time_zone()
    if program.time_zone == zone:
        return program
    return program.model_copy(update={"time_zone": zone})


def load_program() -> Program:
    """The current program; the shipped default if none was stored yet."""
    global _cache
    now = time.monotonic()
    if _cache is not None and now - _cache[0] < get_settings().program_cache_seconds:
        return _cache[1]
    try:
        item = ProgramItem.get(*ProgramItem.key())
        program = in_deployment_zone(Program.model_validate_json(item.document))
    except ProgramItem.DoesNotExist:
        program = default_program(deployment_time_zone())
    except ValidationError as exc:
        # Never guess other rules: refuse clearly until an operator stores a valid program.
        logger.error("the stored program does not validate", extra={"errors": exc.errors(
            include_url=False, include_input=False)})
        raise ProgramInvalid("the program's rules are invalid; an operator must fix them") \
            from None
    _cache = (now, program)
    return program


def check_storable(program: Program) -> Program:
    """Refuse a program whose calendar is not the deployment's (the schedule would not be)."""
    zone = deployment_time_zone()
    if program.time_zone != zone:
        raise ProgramTimeZoneMismatch(
            f"the program's time zone is the deployment's ProgramTimeZone parameter ({zone}); "
            "change that parameter to move the program's calendar",
            timeZone=program.time_zone, deploymentTimeZone=zone)
    return program


def save_program(program: Program) -> None:
    global _cache
    check_storable(program)
    ProgramItem(*ProgramItem.key(), document=program.model_dump_json(by_alias=True),
                updated_at=datetime.now(UTC)).save()
    _cache = None


def seed_default_program() -> bool:
    """Store the default program unless one is there; True when it was written."""
    item = ProgramItem(*ProgramItem.key(), document=default_program(
        deployment_time_zone()).model_dump_json(by_alias=True), updated_at=datetime.now(UTC))
    try:
        item.save(condition=ProgramItem.PK.does_not_exist())
    except PutError as exc:  # pynamodb wraps the failed condition
        if getattr(exc, "cause_response_code", "") == "ConditionalCheckFailedException":
            return False
        raise
    return True


def forget_cached_program() -> None:
    global _cache
    _cache = None
