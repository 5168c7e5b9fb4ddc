"""What text, documents and timestamps the API accepts (domain/text.py, domain/instants.py)."""
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from membership.domain import text
from membership.domain.instants import Instant, check_instant

REFUSED = ["\x00", "\x07", "\n", "\t", "\x1b", "\x7f", "\x85", "\u061c", "\u200e", "\u200f",
           "\u202a", "\u202e", "\u2066", "\u2069", "\u2028", "\u2029", "\ud800", "\udfff"]
KEPT = ["Lin", "林小姐", "café", "emoji 🙂", "a b", "O'Brien", "x" * 300, "ﷺ", "\u200d"]


@pytest.mark.parametrize("bad", REFUSED)
def test_control_bidirectional_and_surrogate_characters_are_refused(bad):
    assert text.unsafe_character(f"ok{bad}ok") == f"U+{ord(bad):04X}"
    with pytest.raises(ValueError):
        text.check_text(f"ok{bad}")


@pytest.mark.parametrize("good", KEPT)
def test_visible_text_in_any_script_is_kept(good):
    assert text.unsafe_character(good) is None
    assert text.check_text(good) == good


@given(st.text())
def test_a_string_is_refused_exactly_when_it_holds_a_refused_character(value):
    expected = any(text.UNSAFE_CHARACTERS.match(c) for c in value)
    assert (text.unsafe_character(value) is not None) == expected


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                    max_leaves=20))
def test_a_document_is_refused_exactly_when_some_string_or_key_is(document):
    def strings(value):
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for k, v in value.items():
                yield k
                yield from strings(v)
        elif isinstance(value, list):
            for v in value:
                yield from strings(v)

    unsafe = any(text.unsafe_character(s) for s in strings(document))
    if unsafe:
        with pytest.raises(text.UnsafeDocument):
            text.check_document(document)
    else:
        text.check_document(document)


def nested(depth):
    document = "leaf"
    for _ in range(depth):
        document = [document]
    return document


def test_documents_nest_at_most_the_limit_without_recursion():
    text.check_document(nested(text.MAX_DEPTH))
    with pytest.raises(text.UnsafeDocument, match="nested deeper"):
        text.check_document(nested(text.MAX_DEPTH + 1))
    with pytest.raises(text.UnsafeDocument):
        text.check_document(nested(100_000))  # iterative: no RecursionError


def test_the_error_path_never_carries_a_refused_character():
    with pytest.raises(text.UnsafeDocument) as refused:
        text.check_document({"a\u202eb": "x\x00"})
    assert text.unsafe_character(refused.value.path) is None


# ---- instants --------------------------------------------------------------------------

class Stamped(BaseModel):
    at: Instant


@pytest.mark.parametrize("value", [
    "2026-03-14T12:00:00+08:00", "2026-03-14T04:00:00Z", "2026-03-14T04:00:00.123456Z",
    "2000-01-01T00:00:00Z", "2100-12-31T23:59:59Z", "2026-03-14T12:00+08:00"])
def test_iso_instants_with_an_offset_within_2000_to_2100_are_accepted(value):
    assert Stamped(at=value).at.utcoffset() is not None


@pytest.mark.parametrize("value", [
    "2026-03-14T12:00:00", "2026-03-14", "12:00:00Z", 1_773_460_800, "1773460800", None,
    "1999-12-31T23:59:59Z", "2101-01-01T00:00:00Z", "2000-01-01T00:30:00+01:00",
    "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "2026-02-30T00:00:00Z",
    "2026-03-14T12:00:00+25:00", "next tuesday"])
def test_instants_without_an_offset_or_outside_2000_to_2100_are_refused(value):
    with pytest.raises(ValidationError):
        Stamped(at=value)


def test_an_instant_more_than_a_day_ahead_of_the_clock_is_refused_when_the_clock_is_given():
    now = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
    ahead = (now + timedelta(days=1, seconds=1)).isoformat()
    assert Stamped.model_validate({"at": ahead})  # no clock: no future rule
    with pytest.raises(ValidationError, match="future"):
        Stamped.model_validate({"at": ahead}, context={"now": now})
    just = (now + timedelta(days=1)).astimezone(timezone(timedelta(hours=-5))).isoformat()
    assert Stamped.model_validate({"at": just}, context={"now": now})


def test_instants_built_in_code_are_checked_too():
    with pytest.raises(ValueError, match="offset"):
        check_instant(datetime(2026, 3, 14))
    with pytest.raises(ValidationError):
        Stamped(at=datetime(1990, 1, 1, tzinfo=UTC))


def test_the_wire_schema_says_an_iso_string():
    schema = Stamped.model_json_schema()["properties"]["at"]
    assert schema["type"] == "string" and schema["format"] == "date-time"
