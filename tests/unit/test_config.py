"""Settings: one plain pydantic model read from the environment at init."""
import pytest
from pydantic import ValidationError

from membership.config import Settings


def test_each_setting_comes_from_its_upper_case_variable():
    settings = Settings.from_environ({"TABLE_NAME": "t1", "SETTLEMENT_SEGMENTS": "8",
                                      "DETAILED_TRACING": "true"})
    assert (settings.table_name, settings.settlement_segments, settings.detailed_tracing) == \
        ("t1", 8, True)


def test_names_match_in_any_case():
    assert Settings.from_environ({"table_name": "lower"}).table_name == "lower"


def test_unset_variables_keep_their_defaults_and_unknown_ones_are_ignored():
    settings = Settings.from_environ({"PATH": "/bin", "POWERTOOLS_SERVICE_NAME": "x"})
    assert settings == Settings()


@pytest.mark.parametrize("name, value", [("SETTLEMENT_SEGMENTS", "many"),
                                         ("DETAILED_TRACING", "perhaps")])
def test_a_value_of_the_wrong_type_fails_at_init(name, value):
    with pytest.raises(ValidationError):
        Settings.from_environ({name: value})


def test_settings_are_frozen():
    with pytest.raises(ValidationError):
        Settings().table_name = "other"
