"""The local stack's reading of template.yaml."""
import textwrap

import pytest

from membership_local import template as tpl
from membership_local.dynamodb import dynamodb_client

SNIPPET = textwrap.dedent(
    """
    Parameters:
      Stage: {Type: String, Default: dev}
      Issuer: {Type: String}
    Globals:
      Function:
        Handler: pkg.default.handler
        Timeout: 7
        Environment:
          Variables:
            TABLE_NAME: !Ref Table
            BUS: !Sub "${AWS::StackName}-${Stage}-bus"
            ARN: !GetAtt Table.StreamArn
            FLAG: true
    Resources:
      Table:
        Type: AWS::DynamoDB::Table
        Properties:
          BillingMode: PROVISIONED
          ProvisionedThroughput: {ReadCapacityUnits: 3, WriteCapacityUnits: 4}
          AttributeDefinitions: [{AttributeName: PK, AttributeType: S}]
          KeySchema: [{AttributeName: PK, KeyType: HASH}]
          SSESpecification: {SSEEnabled: true}
          TimeToLiveSpecification: {AttributeName: expires, Enabled: true}
      Api:
        Type: AWS::Serverless::HttpApi
        Properties:
          Auth: {DefaultAuthorizer: Jwt}
      Admin:
        Type: AWS::Serverless::Function
        Properties:
          Handler: pkg.admin.handler
          Environment: {Variables: {EXTRA: !If [IsProd, a, b]}}
          Events:
            Report:
              Type: HttpApi
              Properties:
                ApiId: !Ref Api
                Method: get
                Path: /v1/admin/settlements/{period}
                Auth: {Authorizer: Jwt, AuthorizationScopes: [admin]}
            Health:
              Type: HttpApi
              Properties: {ApiId: !Ref Api, Method: GET, Path: /health, Auth: {Authorizer: NONE}}
            AnyToken:
              Type: HttpApi
              Properties: {ApiId: !Ref Api, Method: GET, Path: /whoami}
            Paid:
              Type: EventBridgeRule
              Properties:
                EventBusName: !Ref Bus
                Pattern: {source: [!Ref Stage], detail-type: [order.paid]}
                RetryPolicy: {MaximumRetryAttempts: 5}
                DeadLetterConfig: {Type: SQS}
            Outbox:
              Type: DynamoDB
              Properties:
                Stream: !GetAtt Table.StreamArn
                FilterCriteria:
                  Filters:
                    - Pattern: '{"eventName": ["INSERT"]}'
      Other:
        Type: AWS::Serverless::Function
        Properties:
          Events:
            Legacy:
              Type: CloudWatchEvent
              Properties: {Pattern: '{"source": ["x"]}'}
    """
)


@pytest.fixture
def snippet(tmp_path):
    path = tmp_path / "template.yaml"
    path.write_text(SNIPPET)
    return tpl.load_template(path)


def test_short_tags_become_long_form(snippet):
    env = snippet["Globals"]["Function"]["Environment"]["Variables"]
    assert env["TABLE_NAME"] == {"Ref": "Table"}
    assert env["BUS"] == {"Fn::Sub": "${AWS::StackName}-${Stage}-bus"}
    assert env["ARN"] == {"Fn::GetAtt": ["Table", "StreamArn"]}
    admin_env = snippet["Resources"]["Admin"]["Properties"]["Environment"]["Variables"]
    assert admin_env["EXTRA"] == {"Fn::If": ["IsProd", "a", "b"]}


def test_repository_template_loads_by_default():
    template = tpl.load_template()
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    assert "MembershipTable" in template["Resources"]


def test_table_definition_keeps_only_what_create_table_takes(snippet):
    definition = tpl.table_definition(snippet, "t1")
    assert definition == {
        "TableName": "t1",
        "AttributeDefinitions": [{"AttributeName": "PK", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}],
        "BillingMode": "PROVISIONED",
        "ProvisionedThroughput": {"ReadCapacityUnits": 3, "WriteCapacityUnits": 4},
    }
    assert tpl.ttl_specification(snippet) == {"AttributeName": "expires", "Enabled": True}


def test_repository_table_has_gsi_and_an_enabled_stream():
    definition = tpl.table_definition(tpl.load_template())
    assert "TableName" not in definition
    assert definition["BillingMode"] == "PAY_PER_REQUEST"
    assert [i["IndexName"] for i in definition["GlobalSecondaryIndexes"]] == ["GSI1"]
    assert definition["StreamSpecification"]["StreamEnabled"] is True
    for dropped in ("PointInTimeRecoverySpecification", "SSESpecification",
                    "DeletionProtectionEnabled", "TimeToLiveSpecification"):
        assert dropped not in definition


def test_http_routes_carry_handler_and_auth(snippet):
    routes = {(r.method, r.path): r for r in tpl.http_routes(snippet)}
    report = routes[("GET", "/v1/admin/settlements/{period}")]
    assert report == ("GET", "/v1/admin/settlements/{period}", "pkg.admin.handler", "Admin",
                      ["admin"])
    assert routes[("GET", "/health")].authorization_scopes is None  # Authorizer: NONE
    assert routes[("GET", "/whoami")].authorization_scopes == []  # default authorizer, any scope


def test_repository_routes_include_signup():
    routes = tpl.http_routes(tpl.load_template())
    assert ("POST", "/v1/members", "membership.handlers.members.handler", "MembersFunction",
            ["member"]) in routes


def test_function_environment_resolves_refs(snippet):
    env = tpl.function_environment(snippet, {"Table": "local-table"})
    assert env == {
        "TABLE_NAME": "local-table",
        "BUS": "membership-local-dev-bus",
        "ARN": "Table.StreamArn",  # unmodelled attributes fall back to their name
        "FLAG": "true",
    }
    overridden = tpl.function_environment(snippet, {"Table": "t", "Stage": "test",
                                                    "Table.StreamArn": "arn:stream"})
    assert overridden["BUS"] == "membership-local-test-bus"
    assert overridden["ARN"] == "arn:stream"


def test_function_environment_of_repository_template():
    env = tpl.function_environment(
        tpl.load_template(), {"MembershipTable": "tbl", "MembershipEventBus": "bus"}
    )
    assert env["TABLE_NAME"] == "tbl"
    assert env["EVENT_BUS_NAME"] == "bus"
    assert env["PROGRAM_TIME_ZONE"] == "Asia/Shanghai"  # parameter default
    assert env["POWERTOOLS_LOG_LEVEL"] == "INFO"


def test_event_rules_of_both_types(snippet):
    rules = {r.event_id: r for r in tpl.event_rules(snippet, {"Bus": "local-bus"})}
    paid = rules["Paid"]
    assert paid.handler == "pkg.admin.handler"
    assert paid.pattern == {"source": ["dev"], "detail-type": ["order.paid"]}  # param default
    assert paid.retry_policy == {"MaximumRetryAttempts": 5}
    assert paid.dead_letter_config == {"Type": "SQS"}
    assert paid.event_bus_name == "local-bus"
    assert tpl.event_rules(snippet, {"Stage": "orders"})[0].pattern["source"] == ["orders"]
    legacy = rules["Legacy"]
    assert (legacy.type, legacy.handler, legacy.pattern) == (
        "CloudWatchEvent", "pkg.default.handler", {"source": ["x"]})


def test_repository_order_rules_resolve_their_source():
    rules = tpl.event_rules(tpl.load_template(), {"MembershipEventBus": "membership"})
    assert rules, "template.yaml has event rules"
    for rule in rules:
        assert all(isinstance(s, str) for s in rule.pattern.get("source", [])), rule
        assert rule.event_bus_name == "membership"


def test_stream_functions_of_repository_template():
    (publisher,) = tpl.stream_functions(tpl.load_template())
    assert publisher.handler == "membership.handlers.publisher.handler"
    assert publisher.filter_patterns == [
        {"eventName": ["INSERT"], "dynamodb": {"Keys": {"PK": {"S": [{"prefix": "SOURCE#"}]}}}}
    ]
    assert publisher.batch_size == 100
    assert publisher.report_batch_item_failures and publisher.bisect_on_error
    assert publisher.maximum_retry_attempts == 10


def test_stream_function_defaults(snippet):
    (outbox,) = tpl.stream_functions(snippet)
    assert (outbox.batch_size, outbox.starting_position, outbox.report_batch_item_failures) == (
        100, "LATEST", False)
    assert tpl.function_timeout(snippet, "Admin") == 7


def test_create_table_is_idempotent_and_applies_ttl(dynamodb_local):
    local_endpoint = dynamodb_local.endpoint
    assert tpl.create_table(local_endpoint, "tpl-test") == "tpl-test"
    assert tpl.create_table(local_endpoint, "tpl-test") == "tpl-test"
    client = dynamodb_client(local_endpoint)
    table = client.describe_table(TableName="tpl-test")["Table"]
    assert table["TableStatus"] == "ACTIVE"
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert table["GlobalSecondaryIndexes"][0]["IndexName"] == "GSI1"
    ttl = client.describe_time_to_live(TableName="tpl-test")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}
