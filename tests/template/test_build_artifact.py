"""What `sam build` ships: byte-compiled code, one dependency layer, packages that stay small.

`sam build` runs once for this module, as the README's Deploy section says (python3.12
first on PATH); it takes about a minute (pip downloads the arm64 wheels). The build's
structure is checked here; `make bench` measures what it costs at a cold start.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cfn_loader import REPO_ROOT, load

from membership_local.build import (
    BuildError,
    function_layers,
    require_python,
    sam_build,
    tree_bytes,
)
from membership_local.template import functions
from membership_local.template import load_template as load_for_local

# One `sam build` for the module: under pytest-xdist, its tests run on one worker.
pytestmark = pytest.mark.xdist_group("sam-build")

TEMPLATE = load()
# Our package (about 0.8 MB of source plus its bytecode) ships in every function and
# grows with each capability; the shared dependency layer is about 13 MB. 15 MB held
# until paid membership's code brought MembersFunction to 15.03 MB.
PACKAGE_LIMIT_MB = 16.0
# The measured exception (docs/cold-start.md): the functions that verify payments also
# load PaymentsLayer, whose SDKs each bring their own crypto library (wechatpayv3:
# cryptography, whose compiled core alone is 13.5 MB; python-alipay-sdk: pycryptodomex,
# 7 MB), which no pruning brings under the limit: measured 41 MB with their layers. Their
# own ceiling keeps them from growing unnoticed.
PAYMENT_FUNCTIONS = {"TopupsFunction", "PaymentNotificationsFunction", "SubscriptionsFunction"}
PAYMENT_FUNCTIONS_LIMIT_MB = 45.0
# The Lambda runtime's AWS SDK: never shipped, pynamodb uses the runtime's botocore.
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil",
                    "six"}
# Used when installed, not shipped: pynamodb's signals (blinker), botocore's CA bundle
# (certifi; botocore has its own), urllib3's optional TLS backend.
OPTIONAL = {"blinker", "certifi", "OpenSSL", "cryptography", "cffi", "_cffi_backend"}


def _sam_cli() -> Path:
    configured = os.environ.get("SAM_CLI")
    for candidate in ([Path(configured)] if configured else []) + [
            REPO_ROOT / ".venv-sam" / "bin" / "sam"]:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("SAM CLI not found (looked at $SAM_CLI and .venv-sam/bin/sam): run `make test`.")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    try:
        return sam_build(tmp_path_factory.mktemp("sam") / "build", _sam_cli())
    except BuildError as exc:
        pytest.fail(str(exc))


def _resources(type_: str) -> dict[str, dict]:
    return {lid: r for lid, r in TEMPLATE["Resources"].items() if r["Type"] == type_}


# Run by the runtime's Python: the magic number and the source hash's key are its own.
_PYC_CHECK = """
import importlib.util, json, sys
from pathlib import Path
root, problems, sources = Path(sys.argv[1]), {}, 0
for source in root.rglob("*.py"):
    sources += 1
    pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-312.pyc"
    header = pyc.read_bytes()[:16] if pyc.is_file() else b""
    if not header:
        problem = "no cpython-312 .pyc"
    elif header[:4] != importlib.util.MAGIC_NUMBER:
        problem = "not this Python's bytecode"
    elif int.from_bytes(header[4:8], "little") != 0b11:
        problem = "not checked-hash"
    elif header[8:16] != importlib.util.source_hash(source.read_bytes()):
        problem = "compiled from another source"
    else:
        continue
    problems[str(source.relative_to(root))] = problem
print(json.dumps({"sources": sources, "problems": problems}))
"""


def test_every_function_and_layer_is_built_by_a_makefile():
    for kind in ("AWS::Serverless::Function", "AWS::Serverless::LayerVersion"):
        for logical_id, resource in _resources(kind).items():
            assert (resource.get("Metadata") or {}).get("BuildMethod") == "makefile", (
                f"{logical_id}: without Metadata BuildMethod makefile, sam build ships no .pyc")


def test_every_py_shipped_has_its_checked_hash_pyc(built):
    proc = subprocess.run([require_python(), "-I", "-c", _PYC_CHECK, str(built)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["sources"] > 500
    assert not result["problems"], dict(list(result["problems"].items())[:20])


def test_functions_ship_their_code_and_one_layer_ships_the_dependencies(built):
    for function_id in _resources("AWS::Serverless::Function"):
        assert sorted(p.name for p in (built / function_id).iterdir()) == ["membership"]
    layer = built / "DependenciesLayer" / "python"
    names = {p.name for p in layer.iterdir()}
    assert {"pynamodb", "pydantic", "pydantic_core", "aws_lambda_powertools",
            "phonenumbers"} <= names
    assert not names & RUNTIME_PROVIDED
    assert not {"pydantic_settings", "aws_xray_sdk"} & names
    dists = {p.name.split("-")[0].lower() for p in layer.glob("*.dist-info")}
    assert "phonenumberslite" in dists and "phonenumbers" not in dists
    assert (built / "TracingLayer" / "python" / "aws_xray_sdk").is_dir()


def test_each_function_with_its_layers_fits_the_size_limit(built):
    template = load_for_local(REPO_ROOT / "template.yaml")
    layers = {p.name: tree_bytes(p) for p in built.iterdir() if (p / "python").is_dir()}
    for function_id, layer_ids in function_layers(template).items():
        size = tree_bytes(built / function_id) + sum(layers[lid] for lid in layer_ids)
        limit = (PAYMENT_FUNCTIONS_LIMIT_MB if function_id in PAYMENT_FUNCTIONS
                 else PACKAGE_LIMIT_MB)
        assert size / 1e6 <= limit, f"{function_id}: {size / 1e6:.1f} MB"
    assert set(function_layers(template, {"DetailedTracing": "true"})["MembersFunction"]) == {
        "DependenciesLayer", "TracingLayer"}


def test_only_the_functions_that_verify_payments_load_the_payment_sdks(built):
    template = load_for_local(REPO_ROOT / "template.yaml")
    with_payments = {fid for fid, lids in function_layers(template).items()
                     if "PaymentsLayer" in lids}
    assert with_payments == PAYMENT_FUNCTIONS
    layer = built / "PaymentsLayer" / "python"
    names = {p.name for p in layer.iterdir()}
    assert {"wechatpayv3", "alipay", "cryptography", "Cryptodome", "requests"} <= names
    # Installed, pyOpenSSL is imported by botocore at every cold start (docs/cold-start.md).
    assert not {"OpenSSL", "cffi", "pycparser"} & names
    assert not names & RUNTIME_PROVIDED
    assert not (layer / "Cryptodome" / "SelfTest").exists()


_IMPORTED = """
import importlib, json, sys
for module in sys.argv[1:]:
    importlib.import_module(module)
from membership.domain.members import normalize_phone
normalize_phone("13912345678")  # signup's phone check imports the rest of its package
print(json.dumps({n: getattr(m, "__file__", None) for n, m in list(sys.modules.items())}))
"""


def test_every_module_the_handlers_import_is_in_the_layer(built):
    """The layer's prune list (layers/Makefile) removes nothing a function imports."""
    modules = sorted({p["Handler"].rpartition(".")[0]
                      for p in functions(load_for_local(REPO_ROOT / "template.yaml")).values()})
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "functions"), AWS_REGION="us-east-1")
    proc = subprocess.run([sys.executable, "-c", _IMPORTED, *modules], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    files = json.loads(proc.stdout.strip().splitlines()[-1])
    site = Path(importlib.util.find_spec("pydantic").origin).parents[1]
    layer = built / "DependenciesLayer" / "python"
    missing = []
    for name, file in files.items():
        if not file or not file.startswith(str(site)):
            continue
        relative = Path(file).relative_to(site)
        top = relative.parts[0].split(".")[0]
        if top in RUNTIME_PROVIDED | OPTIONAL or top.startswith(("__editable__", "_distutils")):
            continue
        if relative.suffix == ".so":  # another platform's and Python's name
            stem = relative.name.split(".")[0]
            if not list((layer / relative.parent).glob(f"{stem}.*.so")):
                missing.append(name)
        elif not (layer / relative).is_file():
            missing.append(name)
    assert not missing, missing
