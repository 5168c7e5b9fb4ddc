"""Personal data in one place (docs/privacy.md): phone, nickname, birthday, gender and the
login subject live on the member item and the phone's and subject's items only. Every other
item the flows write, every outbound event and every log line carries the member id alone.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from privacy_flows import CapturedLogs, Person, call, live_a_life, sign_up

from membership.config import get_settings
from membership.handlers import members
from membership.storage.table import connection
from membership_local.apigw import member_event

SAMPLES = Path(__file__).resolve().parents[2] / "events" / "samples"
# Keys that name personal data, wherever they sit in an event.
PERSONAL_KEYS = {"phone", "mobile", "nickname", "name", "birthday", "gender", "subject",
                 "email", "address", "idcard"}
# A phone number in any form: E.164, a mainland mobile number, or a masked one.
PHONE_LIKE = re.compile(r"(?<![\w])\+?\d{0,3}1[3-9]\d[\d*]{4}\d{4}(?!\d)|\*{4}")
# Item kinds (first segment of the partition key) the flows must have written, so a
# flow that stops writing one does not quietly shrink the scan.
KINDS_WRITTEN = {"MEMBER", "PHONE", "SUBJECT", "SOURCE", "TOPUP", "IDEMPOTENCY", "GRANT",
                 "USAGE", "COUPONTPL", "METRICS"}
SORT_KINDS_WRITTEN = {"MEMBER", "ENTRY", "LOT", "RECORD", "ORDER", "CONSENT", "AUDIT", "TAG",
                      "COUPON", "COUPONCOUNT"}


def scan_table() -> list[dict]:
    client = connection().client
    items, key = [], None
    while True:
        page = client.scan(TableName=get_settings().table_name,
                           **({"ExclusiveStartKey": key} if key else {}))
        items += page["Items"]
        key = page.get("LastEvaluatedKey")
        if not key:
            return items


def kind(item: dict) -> tuple[str, str]:
    return item["PK"]["S"].split("#", 1)[0], item["SK"]["S"].split("#", 1)[0]


def carries_personal_data(item: dict) -> bool:
    """The three items allowed to: the member, its phone and its subject."""
    return kind(item) in {("MEMBER", "MEMBER"), ("PHONE", "PHONE"), ("SUBJECT", "SUBJECT")}


def personal_keys_in(value, path="") -> list[str]:
    found = []
    if isinstance(value, dict):
        for key, inner in value.items():
            if key.lower() in PERSONAL_KEYS:
                found.append(f"{path}.{key}")
            found += personal_keys_in(inner, f"{path}.{key}")
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            found += personal_keys_in(inner, f"{path}[{i}]")
    return found


def test_only_the_member_phone_and_subject_items_carry_personal_data(table, lambda_context):
    people = [Person(1), Person(2)]
    for person in people:
        live_a_life(lambda_context, person)
    items = scan_table()
    assert {kind(i)[0] for i in items} >= KINDS_WRITTEN
    assert {kind(i)[1] for i in items if kind(i)[0] == "MEMBER"} >= SORT_KINDS_WRITTEN
    for item in items:
        if carries_personal_data(item):
            continue
        text = json.dumps(item, ensure_ascii=False)
        for person in people:
            for name, secret in person.secrets().items():
                assert secret not in text, f"{name} in {kind(item)}: {text[:300]}"
        assert not PHONE_LIKE.search(text), f"a phone number in {kind(item)}: {text[:300]}"


def test_outbound_events_in_the_outbox_carry_the_member_id_alone(table, lambda_context):
    live_a_life(lambda_context, Person())
    details = [json.loads(event["M"]["detail"]["S"])
               for item in scan_table() if kind(item)[0] == "SOURCE"
               for event in item.get("outbox", {}).get("L", [])]
    assert details, "the flows emitted no event"
    for detail in details:
        assert personal_keys_in(detail) == [], detail
        assert not PHONE_LIKE.search(json.dumps(detail)), detail


def test_published_event_samples_carry_no_personal_data():
    samples = sorted(SAMPLES.glob("*.json"))
    assert samples
    for sample in samples:
        for entry in json.loads(sample.read_text(encoding="utf-8")):
            detail = json.loads(entry["Detail"])
            assert personal_keys_in(detail) == [], (sample.name, personal_keys_in(detail))
            assert not PHONE_LIKE.search(entry["Detail"]), sample.name


# ---- logs ---------------------------------------------------------------------------------

def test_logs_never_contain_a_full_phone_number(table, lambda_context, monkeypatch):
    person = Person()
    with CapturedLogs() as logs:
        live_a_life(lambda_context, person)
        # The same phone again (409), a refused one (422), and a failure that logs a
        # traceback with the request in hand.
        taken = Person(2)
        status, _ = call(members, lambda_context, "POST", "/v1/members",
                         {"phone": person.national, "nickname": "x", "channel": "app"},
                         sub=taken.subject)
        assert status == 409
        status, _ = call(members, lambda_context, "POST", "/v1/members",
                         {"phone": person.national + "9", "nickname": "x", "channel": "app"},
                         sub=taken.subject)
        assert status == 422

        def broken(*_args, **_kwargs):
            raise RuntimeError(f"store failed for {person.national}")

        monkeypatch.setattr("membership.services.members.load_program", broken)
        status, _ = call(members, lambda_context, "POST", "/v1/members",
                         {"phone": person.national, "nickname": "x", "channel": "app"},
                         sub=Person(3).subject)
        assert status == 500
        # An operator who switches on event logging (POWERTOOLS_LOGGER_LOG_EVENT).
        from membership.observability import logger

        logger.info(member_event("POST", "/v1/members", {"phone": person.e164},
                                 sub=person.subject))
    lines = logs.text.splitlines()
    assert len(lines) >= 2 and all(json.loads(line)["service"] for line in lines)
    assert "RuntimeError" in logs.text, "the failure was not logged"
    assert person.national not in logs.text
    assert person.e164 not in logs.text


def test_profile_answers_mask_the_phone(table, lambda_context):
    person = Person()
    sign_up(lambda_context, person)
    status, profile = call(members, lambda_context, "GET", "/v1/members/me", sub=person.subject)
    assert status == 200
    assert person.national not in json.dumps(profile)
    assert profile["phone"].endswith(person.national[-4:])
