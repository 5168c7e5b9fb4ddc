"""The program's rules, stored in the table and cached per container for a short while."""
from __future__ import annotations

import time
from datetime import UTC, datetime

from pynamodb.exceptions import PutError

from membership.config import get_settings
from membership.domain.program import Program, default_program
from membership.storage.models import ProgramItem

_cache: tuple[float, Program] | None = None


def load_program() -> Program:
    """The current program; the shipped default if none was stored yet."""
    global _cache
    now = time.monotonic()
    if _cache is not None and now - _cache[0] < get_settings().program_cache_seconds:
        return _cache[1]
    try:
        item = ProgramItem.get(*ProgramItem.key())
        program = Program.model_validate_json(item.document)
    except ProgramItem.DoesNotExist:
        program = default_program()
    _cache = (now, program)
    return program


def save_program(program: Program) -> None:
    global _cache
    ProgramItem(*ProgramItem.key(), document=program.model_dump_json(by_alias=True),
                updated_at=datetime.now(UTC)).save()
    _cache = None


def seed_default_program() -> bool:
    """Store the default program unless one is there; True when it was written."""
    item = ProgramItem(*ProgramItem.key(), document=default_program().model_dump_json(
        by_alias=True), updated_at=datetime.now(UTC))
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
