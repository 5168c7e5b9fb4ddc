"""Fixtures shared by every test: DynamoDB Local, an empty table per test, API Gateway events.

Region and dummy credentials are set at import, before any client exists, so no test can
reach a real AWS account by accident.
"""
import contextlib
import json
import os
import sys
import uuid

import pytest
from hypothesis import settings

from membership_local.apigw import lambda_context as make_lambda_context
from membership_local.apigw import member_event
from membership_local.runtime import isolate_from_aws

isolate_from_aws()
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "membership")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Membership")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("EVENT_BUS_NAME", "membership")
os.environ.setdefault("PROGRAM_TIME_ZONE", "Asia/Shanghai")

SESSION_TABLE = "membership-test"
# A deploy's default verifier refuses every payment; the tests pay with "test-" references.
TEST_PAYMENT_VERIFIER = "membership.services.payments.TestReferenceVerifier"

# Speed is measured by `make bench`, not by tests: a per-example deadline only turns a busy
# machine into a flaky failure. Hypothesis runs with no deadline in every test.
settings.register_profile("membership", deadline=None)
settings.load_profile("membership")


def reset_membership_caches() -> None:
    """Make cached settings and pynamodb connections see the current environment.

    Only modules a test already imported hold caches, so nothing is imported here.
    """
    config = sys.modules.get("membership.config")
    if config is not None and hasattr(config.get_settings, "cache_clear"):
        config.get_settings.cache_clear()
    table = sys.modules.get("membership.storage.table")
    reset = getattr(table, "reset_connections", None)
    if reset is not None:
        reset()
    # The program is read from the table: a copy cached from the previous table is stale.
    program = sys.modules.get("membership.storage.program")
    forget = getattr(program, "forget_cached_program", None)
    if forget is not None:
        forget()


@pytest.fixture(scope="session", autouse=True)
def test_payment_verifier():
    """Opt into the test verifier for the whole session, as the local stack does."""
    saved = os.environ.get("PAYMENT_VERIFIER")
    os.environ["PAYMENT_VERIFIER"] = TEST_PAYMENT_VERIFIER
    reset_membership_caches()
    yield TEST_PAYMENT_VERIFIER
    if saved is None:
        os.environ.pop("PAYMENT_VERIFIER", None)
    else:
        os.environ["PAYMENT_VERIFIER"] = saved
    reset_membership_caches()


@pytest.fixture(scope="session")
def dynamodb_local():
    """DynamoDB Local on a free loopback port for the whole session; yields the LocalDynamoDB."""
    from membership_local.dynamodb import free_port, start_dynamodb
    from membership_local.template import create_table

    db = start_dynamodb(free_port())
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL_DYNAMODB", "TABLE_NAME")}
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = db.endpoint
    os.environ["TABLE_NAME"] = SESSION_TABLE
    create_table(db.endpoint, SESSION_TABLE)
    reset_membership_caches()
    yield db
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    reset_membership_caches()
    db.stop()


# DynamoDB Local's CPU per call grows with every table created and deleted in its life
# (measured: 0.4 s per 15 small test-like workloads on a new server, 1 s after 60 tables
# came and went). So each worker reuses one table, emptied before each test, and only
# tests marked `fresh_table` get a table made for them.
REUSED_TABLE = "membership-reused"
_tables_made: set[tuple[str, str]] = set()


def empty_table(client, name: str) -> None:
    """Delete every item of `name` (a scan of the keys and batch deletes)."""
    kwargs = {"TableName": name, "ProjectionExpression": "#pk, #sk", "ConsistentRead": True,
              "ExpressionAttributeNames": {"#pk": "PK", "#sk": "SK"}}
    while True:
        page = client.scan(**kwargs)
        keys = page.get("Items", [])
        for start in range(0, len(keys), 25):
            requests = {name: [{"DeleteRequest": {"Key": key}} for key in keys[start:start + 25]]}
            while requests:
                requests = client.batch_write_item(RequestItems=requests).get(
                    "UnprocessedItems") or None
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def reusable_table(dynamodb_local, name: str) -> str:
    """`name` on this worker's server, created once, empty when returned."""
    from membership_local.template import create_table

    if (dynamodb_local.endpoint, name) in _tables_made:
        empty_table(dynamodb_local.client(), name)
    else:
        create_table(dynamodb_local.endpoint, name)
        _tables_made.add((dynamodb_local.endpoint, name))
    return name


@pytest.fixture
def extra_table(dynamodb_local):
    """`extra_table(name)`: another empty table on this worker's server (reused likewise)."""
    return lambda name: reusable_table(dynamodb_local, name)


@pytest.fixture
def table(dynamodb_local, request):
    """An empty table from template.yaml for this test; TABLE_NAME points at it meanwhile."""
    from membership_local.template import create_table

    fresh = request.node.get_closest_marker("fresh_table") is not None
    if fresh:
        name = create_table(dynamodb_local.endpoint, f"membership-{uuid.uuid4().hex[:12]}")
    else:
        name = reusable_table(dynamodb_local, REUSED_TABLE)
    os.environ["TABLE_NAME"] = name
    reset_membership_caches()
    yield name
    os.environ["TABLE_NAME"] = SESSION_TABLE
    reset_membership_caches()
    if fresh:
        # Best effort: the in-memory store goes away with the session anyway.
        with contextlib.suppress(Exception):
            dynamodb_local.client().delete_table(TableName=name)


@pytest.fixture
def reset_caches():
    """`reset_caches()` after changing TABLE_NAME by hand (tests that use two tables)."""
    return reset_membership_caches


@pytest.fixture
def deployed_in(table, monkeypatch, reset_caches):
    """deployed_in(zone): the functions' PROGRAM_TIME_ZONE, as the stack parameter sets it."""

    def deploy(zone: str) -> str:
        monkeypatch.setenv("PROGRAM_TIME_ZONE", zone)
        reset_caches()
        return zone

    yield deploy
    monkeypatch.undo()
    reset_caches()


@pytest.fixture
def apigw_event():
    """Factory: apigw_event(method, path, body=None, sub=..., scopes=[...], headers=None, ...).

    Returns a payload v2 event as the JWT authorizer passes it to the handler.
    """

    def build(method, path, body=None, sub="demo-user", scopes=("member",), headers=None,
              **kwargs):
        return member_event(method, path, body, sub=sub, scopes=scopes, headers=headers,
                            **kwargs)

    return build


@pytest.fixture
def lambda_context():
    """A Lambda context with a fresh aws_request_id; `.next_invocation()` gives another."""
    return make_lambda_context()


# The longest runs (the oracles, the e2e stack's group, `sam build`): started first, so
# that under pytest-xdist they spread over the workers instead of ending the run on one.
LONG_FIRST = ("oracle", "e2e", "template")


# tryfirst: xdist's worker plugin, registered after this conftest, reads the groups in
# its own hook of this name, and pluggy calls the later registration first.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist, tests that share a session-wide server run on one worker.

    The e2e tests share one `membership-local up`; grouping them keeps it to one stack per
    run instead of one per worker. The long ones go first (xdist hands work out in
    collection order).
    """
    for item in items:
        if item.get_closest_marker("e2e") is not None or "e2e" in item.path.parts:
            item.add_marker(pytest.mark.xdist_group("e2e"))
    items.sort(key=lambda item: not set(LONG_FIRST) & set(
        item.path.relative_to(config.rootpath).parts))


def pytest_collection_finish(session):
    """Refuse a run whose xdist groups were not applied (each group would then start its
    own server or build on every worker)."""
    if not getattr(session.config.option, "loadgroup", False):
        return
    ungrouped = [item.nodeid for item in session.items
                 if item.get_closest_marker("xdist_group") is not None and "@" not in item.nodeid]
    if ungrouped:
        raise pytest.UsageError(f"pytest-xdist did not group {len(ungrouped)} tests, e.g. "
                                f"{ungrouped[0]}: check the pytest and pytest-xdist versions")


# ---- payment providers (docs/payments.md) ------------------------------------------------

@pytest.fixture(scope="session")
def provider_keys():
    """Generated keys of one WeChat Pay merchant and one Alipay app, for the whole session."""
    from membership_local.fakepay import AlipayKeys, WechatPayKeys

    return WechatPayKeys(), AlipayKeys()


@pytest.fixture
def fake_providers(provider_keys, monkeypatch):
    """Fake WeChat Pay and Alipay on loopback, their secrets in moto's Secrets Manager, and
    the settings that point the real verifiers at them. Timeouts are short: a test of a
    slow provider waits a second, not the production timeout."""
    from moto import mock_aws

    from membership_local.fakepay import ALIPAY_SECRET, WECHATPAY_SECRET, FakeProviders

    wechatpay, alipay = provider_keys
    fake = FakeProviders(wechatpay=wechatpay, alipay=alipay).start()
    fake.delay = 1.5
    with mock_aws():
        import boto3

        client = boto3.client("secretsmanager")
        client.create_secret(Name=WECHATPAY_SECRET, SecretString=json.dumps(wechatpay.secret()))
        client.create_secret(Name=ALIPAY_SECRET, SecretString=json.dumps(alipay.secret()))
        for name, value in {"WECHATPAY_SECRET_NAME": WECHATPAY_SECRET,
                            "ALIPAY_SECRET_NAME": ALIPAY_SECRET,
                            "PAYMENT_PROVIDER_TIMEOUT_SECONDS": "0.5",
                            **fake.environment()}.items():
            monkeypatch.setenv(name, value)
        _reset_payment_caches()
        try:
            yield fake
        finally:
            fake.stop()
            monkeypatch.undo()
            _reset_payment_caches()


def _reset_payment_caches() -> None:
    reset_membership_caches()
    aws = sys.modules.get("membership.aws")
    if aws is not None:  # clients made before moto's mock would bypass it
        aws.reset()
    secrets = sys.modules.get("membership.services.payment_secrets")
    if secrets is not None:
        secrets.reset()
