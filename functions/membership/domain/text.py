"""What text and JSON documents the API accepts, whatever the field.

Every string of a request or an event (keys included) is one line of visible text: no C0
or C1 control characters (NUL, newlines, escape), no lone surrogates (they cannot be
stored as UTF-8), no line or paragraph separators, and no bidirectional controls, which
make text display in another order than it is stored (a "Trojan Source" nickname).
Documents nest at most MAX_DEPTH levels: every model here is shallow, and a deeper
document is an attack on the parser, not a request.
"""
from __future__ import annotations

import re
from collections.abc import Iterator

MAX_DEPTH = 32
# A JSON number longer than this is no amount, count or id this API knows (money is at
# most 13 digits); refusing it early keeps int() away from thousands of digits.
MAX_NUMBER_CHARS = 32

UNSAFE_CHARACTERS = re.compile(
    "[\x00-\x1f\x7f-\x9f"  # C0 and C1 controls
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidirectional marks and overrides
    "\u2028\u2029"  # line and paragraph separators
    "\ud800-\udfff]"  # lone surrogates
)


class UnsafeDocument(ValueError):
    """A document this API refuses whatever its schema; `path` says where."""

    def __init__(self, reason: str, path: str) -> None:
        super().__init__(f"{reason} at {path}")
        self.reason = reason
        self.path = path


def unsafe_character(text: str) -> str | None:
    """The first refused character of `text` as U+XXXX, or None when the text is clean."""
    found = UNSAFE_CHARACTERS.search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


def check_text(text: str) -> str:
    """`text` itself, or ValueError naming the first refused character."""
    bad = unsafe_character(text)
    if bad is not None:
        raise ValueError(f"text may not contain control or bidirectional characters ({bad})")
    return text


def _walk(document: object) -> Iterator[tuple[str, object, int]]:
    """(path, value, depth) of every value and key, without recursion."""
    stack: list[tuple[str, object, int]] = [("$", document, 0)]
    while stack:
        path, value, depth = stack.pop()
        yield path, value, depth
        if isinstance(value, dict):
            for key, item in value.items():
                yield f"{path}.<key>", key, depth + 1
                stack.append((f"{path}.{key}" if isinstance(key, str) else path, item,
                              depth + 1))
        elif isinstance(value, list | tuple):
            stack.extend((f"{path}[{i}]", item, depth + 1) for i, item in enumerate(value))


def check_document(document: object) -> None:
    """Raise UnsafeDocument for a document nested too deep or holding refused text."""
    for path, value, depth in _walk(document):
        if depth > MAX_DEPTH:
            raise UnsafeDocument(f"nested deeper than {MAX_DEPTH} levels", path)
        if isinstance(value, str):
            bad = unsafe_character(value)
            if bad is not None:
                raise UnsafeDocument(
                    f"text may not contain control or bidirectional characters ({bad})",
                    _printable(path))


def _printable(path: str) -> str:
    # A path made of refused keys must not carry them into an error message.
    return UNSAFE_CHARACTERS.sub("?", path)[:200]
