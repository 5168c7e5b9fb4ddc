"""Event contracts: every schema has a sample, every sample validates, money is integer fen."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

EVENTS = Path(__file__).resolve().parents[2] / "events"
SCHEMAS = EVENTS / "schemas"
SAMPLES = EVENTS / "samples"

OUTBOUND_SOURCE = "membership"
# The outbound events the design brief promises; more may be added, none may go missing.
REQUIRED_OUTBOUND = {
    "member.signed_up",
    "member.tier_changed",
    "points.expired",
    "topup.credited",
    "settlement.completed",
}
# Property names that carry money wherever they appear (order events will bring more).
MONEY_NAMES = re.compile(r"^(principal|bonus|total|amount|price|fee)$|(Fen|Amount|Price)$")


def _names(folder: Path) -> set[str]:
    return {p.name.removesuffix(".json") for p in folder.glob("*.json")}


def _schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.json").read_text(encoding="utf-8"))


def _reject_float(text: str) -> Any:
    raise ValueError(f"float literal {text} in an event: money and counts are integers")


def _entries(name: str) -> list[dict]:
    return json.loads((SAMPLES / f"{name}.json").read_text(encoding="utf-8"))


def _detail(entry: dict) -> dict:
    return json.loads(entry["Detail"], parse_float=_reject_float)


SCHEMA_NAMES = sorted(_names(SCHEMAS))


def test_every_schema_has_a_sample_and_every_sample_a_schema():
    assert SCHEMA_NAMES, "no schemas under events/schemas"
    assert _names(SCHEMAS) == _names(SAMPLES), {
        "schemas without a sample": sorted(_names(SCHEMAS) - _names(SAMPLES)),
        "samples without a schema": sorted(_names(SAMPLES) - _names(SCHEMAS)),
    }


def test_the_promised_outbound_events_exist():
    outbound = {n for n in SCHEMA_NAMES if _schema(n).get("x-direction") == "outbound"}
    assert REQUIRED_OUTBOUND <= outbound, sorted(REQUIRED_OUTBOUND - outbound)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_is_valid_draft_2020_12_and_names_its_event(name):
    schema = _schema(name)
    assert schema.get("$schema") == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert schema.get("x-detail-type") == name
    assert schema.get("x-direction") in {"outbound", "inbound"}
    if schema["x-direction"] == "outbound":
        assert schema.get("x-source") == OUTBOUND_SOURCE
    assert schema.get("type") == "object"


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_sample_is_a_put_events_entry_list(name):
    entries = _entries(name)
    assert isinstance(entries, list) and 1 <= len(entries) <= 10
    # The exact request shape `aws events put-events --entries file://...` sends.
    model = botocore.session.get_session().get_service_model("events")
    input_shape = model.operation_model("PutEvents").input_shape
    report = ParamValidator().validate({"Entries": entries}, input_shape)
    assert not report.has_errors(), report.generate_report()
    schema = _schema(name)
    for entry in entries:
        assert set(entry) >= {"Source", "DetailType", "Detail", "EventBusName"}, entry
        assert entry["DetailType"] == name
        assert entry["Source"] == schema["x-source"]
        assert isinstance(entry["Detail"], str)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_sample_detail_validates_against_its_schema(name):
    validator = Draft202012Validator(
        _schema(name), format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    for entry in _entries(name):
        errors = sorted(validator.iter_errors(_detail(entry)), key=lambda e: list(e.path))
        assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def _resolve(schema: dict, node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"only local refs are used: {ref}"
        target: Any = schema
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def _walk(node: Any, path: str = "") -> Any:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}/{index}")


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_has_no_floats_and_money_is_integer_fen(name):
    schema = _schema(name)
    problems = []
    for path, node in _walk(schema):
        types = node.get("type")
        if types == "number" or (isinstance(types, list) and "number" in types):
            problems.append(f"{path}: type number allows floats")
        if node.get("x-unit") == "fen" and node.get("type") != "integer":
            problems.append(f"{path}: x-unit fen but not type integer")
        for prop, sub in (node.get("properties") or {}).items():
            if not MONEY_NAMES.search(prop):
                continue
            resolved = _resolve(schema, sub)
            if resolved.get("type") == "object":
                continue  # a breakdown such as balance{principal,bonus,total}; its leaves are checked
            if resolved.get("type") != "integer" or resolved.get("x-unit") != "fen":
                problems.append(f"{path}/properties/{prop}: money must be integer with x-unit fen")
    assert not problems, "\n".join(problems)


def _money_paths(schema: dict, node: Any, prefix: tuple = ()) -> list[tuple]:
    node = _resolve(schema, node)
    paths = []
    for prop, sub in (node.get("properties") or {}).items():
        resolved = _resolve(schema, sub)
        if resolved.get("type") == "object":
            paths.extend(_money_paths(schema, resolved, (*prefix, prop)))
        elif resolved.get("x-unit") == "fen":
            paths.append((*prefix, prop))
    return paths


def test_money_events_reject_a_float_amount():
    """The integer rule bites: 500.5 fen in a sample makes it invalid."""
    checked = 0
    for name in SCHEMA_NAMES:
        schema = _schema(name)
        validator = Draft202012Validator(schema)
        for entry in _entries(name):
            for path in _money_paths(schema, schema):
                detail = copy.deepcopy(_detail(entry))
                holder = detail
                for part in path[:-1]:
                    holder = holder[part]
                holder[path[-1]] = holder[path[-1]] + 0.5
                with pytest.raises(ValidationError):
                    validator.validate(detail)
                checked += 1
    assert checked, "no money fields found: the x-unit annotation went missing"


def test_sample_details_reject_unknown_fields():
    for name in SCHEMA_NAMES:
        validator = Draft202012Validator(_schema(name))
        detail = _detail(_entries(name)[0]) | {"unexpected": 1}
        with pytest.raises(ValidationError):
            validator.validate(detail)


def test_timestamps_require_an_offset():
    schema = _schema("member.signed_up")
    detail = _detail(_entries("member.signed_up")[0]) | {"occurredAt": "2025-03-14T10:21:07"}
    with pytest.raises(ValidationError):
        Draft202012Validator(schema).validate(detail)


def test_signup_phone_must_be_masked():
    schema = _schema("member.signed_up")
    detail = _detail(_entries("member.signed_up")[0]) | {"phone": "+8613812345678"}
    with pytest.raises(ValidationError):
        Draft202012Validator(schema).validate(detail)


def test_readme_lists_every_event_with_its_source_and_direction():
    readme = (EVENTS / "README.md").read_text(encoding="utf-8")
    rows = {}
    problems = []
    for line in readme.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`"):
            name = cells[0].strip("`")
            if name in rows:
                problems.append(f"{name}: listed twice in events/README.md")
            rows[name] = cells
    for name in SCHEMA_NAMES:
        schema = _schema(name)
        row = rows.get(name)
        if row is None:
            problems.append(f"{name}: not in events/README.md")
        elif f"`{schema['x-source']}`" not in row[1] or row[2] != schema["x-direction"]:
            problems.append(
                f"{name}: README says {row[1:3]}, schema says "
                f"{schema['x-source']} / {schema['x-direction']}"
            )
    assert not problems, "\n".join(problems)
