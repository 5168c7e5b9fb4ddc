"""The money oracle with operators' adjustments, bulk grants and freezes in the flow."""
import pytest
from operators_machine import OperatorsMachine


@pytest.mark.timeout(900)
def test_what_operators_grant_adjust_and_freeze_is_what_each_member_owns(oracle_settings):
    # Chunks of two members: a grant to a few ids is several chunks, applied in any order.
    OperatorsMachine.TestCase.settings = oracle_settings(10, 40, GRANT_CHUNK_SIZE="2")
    OperatorsMachine.TestCase().runTest()
