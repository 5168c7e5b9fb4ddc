"""The membership-local command line (without starting the stack: see tests/e2e)."""
import json
import os

import pytest

from membership_local import cli
from membership_local import jwt as devjwt


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMBERSHIP_LOCAL_HOME", str(tmp_path))
    return tmp_path


def test_subcommands_are_registered():
    assert {"up", "token"} <= cli.COMMANDS.keys()
    args = cli.build_parser().parse_args(["up", "--api-port", "3100", "--table", "t"])
    assert (args.api_port, args.table, args.host, args.dynamodb_port) == (3100, "t", "127.0.0.1",
                                                                         8000)


def test_token_without_a_running_stack_uses_the_default_issuer(capsys, state):
    assert cli.main(["token", "--sub", "demo-user", "--scope", "member", "--scope", "orders"]) == 0
    token = capsys.readouterr().out.strip()
    claims = devjwt.verify_token(token, key_file=state / "jwt-key.pem")
    assert claims["sub"] == "demo-user"
    assert claims["scope"] == "member orders"
    assert claims["iss"] == "http://127.0.0.1:3000/local-issuer"


def test_token_follows_the_running_stack(capsys, state):
    issuer = "http://127.0.0.1:3456/local-issuer"
    (state / "stack.json").write_text(json.dumps({"pid": os.getpid(), "issuer": issuer,
                                                  "audience": "membership-local"}))
    assert cli.main(["token", "--sub", "u", "--ttl", "60"]) == 0
    claims = devjwt.verify_token(capsys.readouterr().out.strip(), issuer=issuer,
                                 key_file=state / "jwt-key.pem")
    assert claims["scope"] == "member"
    assert claims["exp"] - claims["iat"] == 60


def test_stale_stack_file_is_ignored(state):
    (state / "stack.json").write_text(json.dumps({"pid": 2**22 + 12345, "issuer": "x"}))
    assert cli.read_stack() is None
    (state / "stack.json").write_text("not json")
    assert cli.read_stack() is None


def test_up_refuses_a_non_loopback_host(capsys):
    # Fails before starting anything that listens on a wildcard address for long.
    assert cli.main(["up", "--host", "0.0.0.0", "--dynamodb-port", "0", "--table", "x"]) == 1
    assert "loopback" in capsys.readouterr().err


def test_the_stack_can_run_in_another_program_time_zone():
    from membership_local.runtime import lambda_environment, stack_parameters
    from membership_local.template import load_template

    args = cli.build_parser().parse_args(["up", "--program-time-zone", "Pacific/Auckland"])
    assert args.program_time_zone == "Pacific/Auckland"
    # `up` records the zone; the commands that attach to the stack read it back.
    parameters = stack_parameters({"program_time_zone": "Pacific/Auckland"})
    env = lambda_environment(load_template(), table_name="t",
                             dynamodb_endpoint="http://127.0.0.1:1", refs=parameters)
    assert env["PROGRAM_TIME_ZONE"] == "Pacific/Auckland"
    assert stack_parameters({}) == {}
