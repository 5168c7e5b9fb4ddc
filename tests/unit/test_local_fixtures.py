"""The shared fixtures of tests/conftest.py."""
import os
import uuid


def test_credentials_are_dummies_before_any_fixture():
    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"
    assert os.environ["AWS_DEFAULT_REGION"] == "us-east-1"
    assert "AWS_PROFILE" not in os.environ


def test_table_fixture_gives_a_fresh_table(table, dynamodb_local):
    assert os.environ["TABLE_NAME"] == table
    assert os.environ["AWS_ENDPOINT_URL_DYNAMODB"] == dynamodb_local.endpoint
    client = dynamodb_local.client()
    assert client.scan(TableName=table)["Items"] == []
    client.put_item(TableName=table, Item={"PK": {"S": "A"}, "SK": {"S": "B"}})


def test_each_test_gets_its_own_table(table, dynamodb_local):
    # The item written by the previous test is not here.
    assert dynamodb_local.client().scan(TableName=table)["Items"] == []


def test_boto3_from_the_environment_reaches_dynamodb_local(table):
    import boto3

    client = boto3.client("dynamodb")  # endpoint, region, credentials all from os.environ
    assert table in client.list_tables()["TableNames"]


def test_apigw_event_and_context_fixtures(apigw_event, lambda_context):
    event = apigw_event("GET", "/v1/members/me", sub="s-1", scopes=["member"])
    assert event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] == "s-1"
    uuid.UUID(lambda_context.aws_request_id)
    assert lambda_context.get_remaining_time_in_millis() > 0
