"""EventBridge-style content filtering, as Lambda event filters and EventBridge rules use it.

Supported: exact values (strings, numbers, booleans, null), nested objects, `$or`, and the
operators prefix, suffix, anything-but, equals-ignore-case, numeric and exists. An
operator outside that subset raises, so a pattern is never silently misread.
"""
from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

_NUMERIC = {"<": operator.lt, "<=": operator.le, "=": operator.eq, ">=": operator.ge,
            ">": operator.gt}
_MISSING = object()


class UnsupportedPattern(ValueError):
    pass


def matches(pattern: Mapping[str, Any], event: Any) -> bool:
    """True when `event` matches every field of `pattern`."""
    if not isinstance(pattern, Mapping):
        raise UnsupportedPattern(f"a pattern is an object, not {pattern!r}")
    for key, rule in pattern.items():
        if key == "$or":
            if not any(matches(alternative, event) for alternative in rule):
                return False
            continue
        value = event.get(key, _MISSING) if isinstance(event, Mapping) else _MISSING
        if isinstance(rule, Mapping):
            if not isinstance(value, Mapping) or not matches(rule, value):
                return False
        elif isinstance(rule, list):
            if not _matches_any(rule, value):
                return False
        else:
            raise UnsupportedPattern(f"the value of {key!r} must be an array or an object")
    return True


def _matches_any(rules: list, value: Any) -> bool:
    present = value is not _MISSING
    # An array in the event matches when any of its elements does.
    values = value if isinstance(value, list) else [value]
    for rule in rules:
        if isinstance(rule, Mapping):
            if "exists" in rule:
                if bool(rule["exists"]) == present:
                    return True
            elif present and any(_operator_matches(rule, v) for v in values):
                return True
        elif present and any(_equal(rule, v) for v in values):
            return True
    return False


def _equal(expected: Any, actual: Any) -> bool:
    # JSON true is not 1: keep booleans apart from numbers.
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    return expected == actual


def _operator_matches(rule: Mapping, value: Any) -> bool:
    if len(rule) != 1:
        raise UnsupportedPattern(f"one operator per object: {rule!r}")
    (name, arg), = rule.items()
    if name == "prefix":
        return isinstance(value, str) and value.startswith(_text(arg, name))
    if name == "suffix":
        return isinstance(value, str) and value.endswith(_text(arg, name))
    if name == "equals-ignore-case":
        return isinstance(value, str) and value.casefold() == _text(arg, name).casefold()
    if name == "anything-but":
        return _anything_but(arg, value)
    if name == "numeric":
        return _numeric(arg, value)
    raise UnsupportedPattern(f"operator {name!r} is not supported locally")


def _anything_but(arg: Any, value: Any) -> bool:
    if isinstance(arg, Mapping):
        return not _operator_matches(arg, value)
    excluded = arg if isinstance(arg, list) else [arg]
    return not any(_equal(e, value) for e in excluded)


def _numeric(arg: list, value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if len(arg) % 2:
        raise UnsupportedPattern(f"numeric takes operator/value pairs: {arg!r}")
    for op, bound in zip(arg[::2], arg[1::2], strict=True):
        if op not in _NUMERIC:
            raise UnsupportedPattern(f"numeric operator {op!r}")
        if not _NUMERIC[op](value, bound):
            return False
    return True


def _text(arg: Any, name: str) -> str:
    if not isinstance(arg, str):
        raise UnsupportedPattern(f"{name} takes a string locally, not {arg!r}")
    return arg
