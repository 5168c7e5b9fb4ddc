"""The program as data: validation and tier lookups."""
import pytest
from pydantic import ValidationError

from membership.domain.program import Program, default_program


def test_default_program_matches_the_brief():
    p = default_program()
    assert [(t.id, t.threshold, t.discount_bps, t.points_multiplier_pct) for t in p.tiers] == [
        ("V1", 0, 0, 100), ("V2", 1_000, 200, 120), ("V3", 5_000, 500, 150),
        ("V4", 20_000, 800, 200)]
    assert [(o.min_amount, o.bonus) for o in p.topup.offers] == [
        (10_000, 500), (50_000, 5_000), (100_000, 12_000)]
    assert p.signup_gift.points == 100
    assert p.downgrade_policy == "one_down"


def test_program_survives_a_json_round_trip():
    p = default_program()
    assert Program.model_validate_json(p.model_dump_json(by_alias=True)) == p


@pytest.mark.parametrize("growth, tier", [(0, "V1"), (999, "V1"), (1_000, "V2"),
                                          (4_999, "V2"), (5_000, "V3"), (20_000, "V4"),
                                          (10**9, "V4")])
def test_qualified_tier_is_the_highest_threshold_reached(growth, tier):
    assert default_program().qualified_tier(growth).id == tier


def _doc(**changes):
    doc = default_program().model_dump(mode="json", by_alias=True)
    doc.update(changes)
    return doc


def test_tiers_must_ascend():
    doc = _doc()
    doc["tiers"][1]["threshold"] = 50_000
    with pytest.raises(ValidationError):
        Program.model_validate(doc)


def test_first_tier_starts_at_zero():
    doc = _doc()
    doc["tiers"][0]["threshold"] = 1
    with pytest.raises(ValidationError):
        Program.model_validate(doc)


def test_unknown_rule_is_rejected():
    with pytest.raises(ValidationError):
        Program.model_validate(_doc(luckyDraw=True))


def test_rates_cannot_be_floats():
    doc = _doc()
    doc["tiers"][1]["discountBps"] = 2.5
    with pytest.raises(ValidationError):
        Program.model_validate(doc)


# ---- the program's time zone --------------------------------------------------------

@pytest.mark.parametrize("zone", ["Pacific/Auckland", "America/New_York", "UTC"])
def test_the_default_program_takes_the_deployment_zone(zone):
    assert default_program(zone).time_zone == zone


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../etc/passwd", "/etc/localtime",
                                  "Asia/Shanghai\x00"])
def test_a_program_in_an_unknown_time_zone_is_refused(zone):
    document = default_program().model_dump(by_alias=True) | {"timeZone": zone}
    with pytest.raises(ValidationError):
        Program.model_validate(document)


def test_settings_refuse_an_unknown_program_time_zone(monkeypatch):
    from membership.config import Settings

    monkeypatch.setenv("PROGRAM_TIME_ZONE", "Mars/Olympus")
    with pytest.raises(ValidationError):
        Settings.from_environ()


def test_the_schedule_and_the_functions_read_one_time_zone_parameter():
    from membership_local.template import functions, load_template

    template = load_template()
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["PROGRAM_TIME_ZONE"] == {"Ref": "ProgramTimeZone"}
    schedules = [event["Properties"] for props in functions(template).values()
                 for event in (props.get("Events") or {}).values()
                 if event.get("Type") == "ScheduleV2"
                 and str(event["Properties"].get("ScheduleExpression", "")).startswith("cron")]
    assert schedules, "the monthly settlement's schedule is missing"
    for schedule in schedules:
        assert schedule["ScheduleExpressionTimezone"] == {"Ref": "ProgramTimeZone"}
