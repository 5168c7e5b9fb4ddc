"""What a cold start imports: each function's handler module, alone in a fresh interpreter,
with the function's environment from template.yaml, as Lambda imports it at init.

Structural, not timed (`make bench` measures the time): a module that should not load at
init, loads, and the test names who brought it in.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from membership_local.template import function_environment, functions, load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(REPO_ROOT / "template.yaml")

# Module (or package) → why no function may import it at init.
NOT_AT_INIT = {
    "pydantic_settings": "settings are a plain pydantic model over os.environ (config.py)",
    "aws_xray_sdk": "the X-Ray SDK loads only with DetailedTracing on (observability.py)",
    "phonenumbers": "phone metadata loads at signup, not at init (domain/members.py)",
    "aws_lambda_powertools.utilities.parser": "EventBridge envelopes are our own small model "
                                              "(handlers/events.py)",
    "aws_lambda_powertools.event_handler.appsync": "only the HTTP resolver imports "
                                                   "(lean_imports.py)",
    "aws_lambda_powertools.utilities.data_classes.kafka_event": "only the HTTP resolver's "
                                                                "event classes (lean_imports.py)",
    "asyncio": "no function runs a coroutine; it came with Powertools' other resolvers",
    "OpenSSL": "botocore imports pyOpenSSL wherever it is installed; it is not shipped, and "
               "python-alipay-sdk imports without it (services/alipay.py)",
    "wechatpayv3": "payment SDKs load on a payment's first use, in the two functions that "
                   "verify payments (services/payment_providers.py)",
    "alipay": "payment SDKs load on a payment's first use (services/alipay.py)",
    "cryptography": "the payment SDKs' crypto loads with them, not at init",
    "Cryptodome": "the payment SDKs' crypto loads with them, not at init",
    "requests": "WeChat Pay's HTTP client loads with its SDK, not at init",
    "aws_lambda_powertools.utilities.parameters": "payment secrets are read on a payment's "
                                                  "first use (services/payment_secrets.py)",
}

_SCRIPT = """
import importlib, json, sys
module = sys.argv[1]
before = set(sys.modules)
importlib.import_module(module)
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def _handler_modules() -> dict[str, str]:
    """Handler module → one function that uses it."""
    found = {}
    for function_id, props in functions(TEMPLATE).items():
        found.setdefault(props["Handler"].rpartition(".")[0], function_id)
    return found


HANDLER_MODULES = _handler_modules()


def imported_at_init(module: str, function_id: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    env.update(function_environment(TEMPLATE, {"MembershipTable": "membership",
                                               "MembershipEventBus": "membership"},
                                    function_id))
    env.update(PYTHONPATH=str(REPO_ROOT / "functions"), AWS_REGION="us-east-1",
               AWS_DEFAULT_REGION="us-east-1")
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, module], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_function_of_the_template_is_checked():
    assert len(HANDLER_MODULES) >= 10, HANDLER_MODULES


@pytest.mark.parametrize("module", sorted(HANDLER_MODULES))
def test_a_handler_module_imports_nothing_its_function_does_not_need_at_init(module):
    loaded = imported_at_init(module, HANDLER_MODULES[module])
    assert module in loaded
    found = {name: why for name, why in NOT_AT_INIT.items()
             if any(m == name or m.startswith(f"{name}.") for m in loaded)}
    assert not found, f"{module} imports at init: {found}"


def test_the_phone_metadata_is_the_lite_distribution():
    from importlib import metadata

    assert metadata.distribution("phonenumberslite")
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.distribution("phonenumbers")


def test_every_function_runs_with_pydantic_plugins_disabled():
    for function_id in functions(TEMPLATE):
        env = function_environment(TEMPLATE, {}, function_id)
        assert env.get("PYDANTIC_DISABLE_PLUGINS") == "__all__", function_id
