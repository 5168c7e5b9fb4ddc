"""Read template.yaml: the table, the HTTP routes, the environment and the event sources.

The local stack derives everything from the template, so a route or a rule added there
runs locally without touching this package.
"""
from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from .paths import repo_root

DEFAULT_REGION = "us-east-1"
PSEUDO_PARAMETERS = {
    "AWS::Region": DEFAULT_REGION,
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "membership-local",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NoValue": None,
}
TABLE_TYPE = "AWS::DynamoDB::Table"
FUNCTION_TYPE = "AWS::Serverless::Function"
EVENT_RULE_TYPES = ("EventBridgeRule", "CloudWatchEvent")


# --- loading ---------------------------------------------------------------------------


# libyaml's parser when PyYAML was built with it: the same documents, parsed 8× faster
# (the tests create a table from the template for each test).
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CfnLoader(_SafeLoader):
    """SafeLoader that turns CloudFormation short tags into their long JSON form."""


def _construct_tag(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        # !GetAtt Resource.Attribute: the attribute itself may contain dots.
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def default_template_path() -> Path:
    return repo_root() / "template.yaml"


_parsed: dict[tuple[str, int, int], dict] = {}


def load_template(path: str | Path | None = None) -> dict:
    """The template as a dict: parsed once per file version, a fresh copy for each caller."""
    file = Path(path or default_template_path())
    stat = file.stat()
    key = (str(file.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _parsed:
        _parsed[key] = yaml.load(file.read_text(encoding="utf-8"), Loader=_CfnLoader)
    return copy.deepcopy(_parsed[key])


# --- intrinsic functions ---------------------------------------------------------------


def parameter_defaults(template: Mapping) -> dict[str, Any]:
    return {
        name: spec["Default"]
        for name, spec in (template.get("Parameters") or {}).items()
        if "Default" in spec
    }


def resolve(value: Any, refs: Mapping[str, Any]) -> Any:
    """Resolve Ref / Fn::Sub / Fn::GetAtt / Fn::Join against `refs`.

    `refs` maps logical ids, parameter names and pseudo parameters to values; GetAtt is
    looked up as "Resource.Attribute". An unknown reference resolves to its own name,
    which is what a local stack wants for resources it does not model.
    """
    if isinstance(value, list):
        return [resolve(item, refs) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (key, arg), = value.items()
        if key == "Ref":
            return refs.get(arg, arg)
        if key == "Fn::GetAtt":
            name = ".".join(arg) if isinstance(arg, list) else arg
            return refs.get(name, name)
        if key == "Fn::Sub":
            text, local = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
            scope = {**refs, **{k: resolve(v, refs) for k, v in local.items()}}
            return re.sub(r"\$\{([^}!]+)\}", lambda m: str(scope.get(m.group(1), m.group(1))), text)
        if key == "Fn::Join":
            sep, items = arg
            return sep.join(str(resolve(item, refs)) for item in resolve(items, refs))
    return {key: resolve(item, refs) for key, item in value.items()}


def _refs(template: Mapping, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    return {**PSEUDO_PARAMETERS, **parameter_defaults(template), **(overrides or {})}


# --- the table -------------------------------------------------------------------------


def _resources(template: Mapping, type_: str) -> dict[str, dict]:
    return {
        logical_id: resource
        for logical_id, resource in (template.get("Resources") or {}).items()
        if resource.get("Type") == type_
    }


def table_resource(template: Mapping, logical_id: str | None = None) -> tuple[str, dict]:
    tables = _resources(template, TABLE_TYPE)
    if logical_id:
        return logical_id, tables[logical_id]
    if len(tables) != 1:
        raise ValueError(f"expected one {TABLE_TYPE}, found {sorted(tables)}: pass logical_id")
    return next(iter(tables.items()))


def table_definition(
    template: Mapping, table_name: str | None = None, logical_id: str | None = None
) -> dict:
    """Keyword arguments for boto3 `create_table` (TableName only when given).

    PITR, SSE, deletion protection, TTL and tags are left out: DynamoDB Local does not take
    them at creation (TTL is applied afterwards by `create_table`).
    """
    _, resource = table_resource(template, logical_id)
    props = resource["Properties"]
    billing = props.get("BillingMode", "PROVISIONED")
    definition: dict[str, Any] = {
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": billing,
    }
    if table_name:
        definition["TableName"] = table_name
    if billing == "PROVISIONED":
        definition["ProvisionedThroughput"] = _throughput(props)
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        indexes = []
        for index in props.get(key) or []:
            kept = {k: index[k] for k in ("IndexName", "KeySchema", "Projection")}
            if key == "GlobalSecondaryIndexes" and billing == "PROVISIONED":
                kept["ProvisionedThroughput"] = _throughput(index)
            indexes.append(kept)
        if indexes:
            definition[key] = indexes
    stream = props.get("StreamSpecification")
    if stream:
        definition["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": stream["StreamViewType"],
        }
    return definition


def _throughput(props: Mapping) -> dict:
    given = props.get("ProvisionedThroughput") or {}
    return {
        "ReadCapacityUnits": int(given.get("ReadCapacityUnits", 5)),
        "WriteCapacityUnits": int(given.get("WriteCapacityUnits", 5)),
    }


def ttl_specification(template: Mapping, logical_id: str | None = None) -> dict | None:
    _, resource = table_resource(template, logical_id)
    spec = resource["Properties"].get("TimeToLiveSpecification")
    if not spec or not spec.get("Enabled", False):
        return None
    return {"AttributeName": spec["AttributeName"], "Enabled": True}


def create_table(
    endpoint: str,
    table_name: str,
    region: str = DEFAULT_REGION,
    *,
    template: Mapping | None = None,
    timeout: float = 60.0,
) -> str:
    """Create the template's table at `endpoint` (fine if it exists) and wait until ACTIVE."""
    from botocore.exceptions import ClientError

    from .dynamodb import dynamodb_client

    template = template if template is not None else load_template()
    client = dynamodb_client(endpoint, region)
    try:
        client.create_table(**table_definition(template, table_name))
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
    client.get_waiter("table_exists").wait(
        TableName=table_name,
        WaiterConfig={"Delay": 0.2, "MaxAttempts": max(1, int(timeout / 0.2))},
    )
    ttl = ttl_specification(template)
    if ttl:
        try:
            client.update_time_to_live(TableName=table_name, TimeToLiveSpecification=ttl)
        except ClientError:
            pass  # already enabled, or a backend without TTL: expiry is not load-bearing locally
    return table_name


# --- functions and their events --------------------------------------------------------


def _globals(template: Mapping) -> dict:
    return (template.get("Globals") or {}).get("Function") or {}


def functions(template: Mapping) -> dict[str, dict]:
    """Every AWS::Serverless::Function's properties, with Globals.Function merged under them
    as SAM merges them."""
    base = _globals(template)
    merged = {}
    for logical_id, resource in _resources(template, FUNCTION_TYPE).items():
        props = {**base, **(resource.get("Properties") or {})}
        # SAM adds a function's own layers after the global ones (lists are additive).
        props["Layers"] = [*(base.get("Layers") or []),
                           *((resource.get("Properties") or {}).get("Layers") or [])]
        env = {
            **((base.get("Environment") or {}).get("Variables") or {}),
            **(((resource.get("Properties") or {}).get("Environment") or {}).get("Variables") or {}),
        }
        props["Environment"] = {"Variables": env}
        merged[logical_id] = props
    return merged


class HttpRoute(NamedTuple):
    method: str  # upper case, or "ANY"
    path: str  # "/v1/admin/settlements/{period}", or "$default"
    handler: str  # "membership.handlers.members.handler"
    function_id: str
    # None: no authorizer on the route; []: any valid token; else at least one of these.
    authorization_scopes: list[str] | None


def _api_default_authorizers(template: Mapping) -> dict[str, str | None]:
    found = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") == "AWS::Serverless::HttpApi":
            auth = (resource.get("Properties") or {}).get("Auth") or {}
            found[logical_id] = auth.get("DefaultAuthorizer")
    return found


def http_routes(template: Mapping) -> list[HttpRoute]:
    defaults = _api_default_authorizers(template)
    routes = []
    for function_id, props in functions(template).items():
        for event in (props.get("Events") or {}).values():
            if event.get("Type") != "HttpApi":
                continue
            ev = event.get("Properties") or {}
            api = ev.get("ApiId")
            api_id = api.get("Ref") if isinstance(api, dict) else None
            # No ApiId means SAM's implicit API, whose default authorizer we cannot see.
            authorizer = (ev.get("Auth") or {}).get("Authorizer", defaults.get(api_id))
            scopes = None
            if authorizer and authorizer != "NONE":
                scopes = list((ev.get("Auth") or {}).get("AuthorizationScopes") or [])
            routes.append(
                HttpRoute(
                    method=str(ev.get("Method", "ANY")).upper(),
                    path=ev.get("Path", "$default"),
                    handler=props["Handler"],
                    function_id=function_id,
                    authorization_scopes=scopes,
                )
            )
    return routes


def function_environment(
    template: Mapping,
    overrides: Mapping[str, Any] | None = None,
    function_id: str | None = None,
) -> dict[str, str]:
    """Globals.Function.Environment.Variables (plus `function_id`'s own), Refs resolved.

    `overrides` maps logical ids and parameter names to local values, e.g.
    {"MembershipTable": "membership", "MembershipEventBus": "membership"}; parameters
    otherwise take their template defaults.
    """
    if function_id:
        variables = functions(template)[function_id]["Environment"]["Variables"]
    else:
        variables = (_globals(template).get("Environment") or {}).get("Variables") or {}
    refs = _refs(template, overrides)
    env = {}
    for name, value in variables.items():
        resolved = resolve(value, refs)
        if resolved is None:
            continue
        env[name] = str(resolved).lower() if isinstance(resolved, bool) else str(resolved)
    return env


class EventRule(NamedTuple):
    function_id: str
    event_id: str
    handler: str
    pattern: dict
    event_bus_name: str | None  # None: the default bus
    dead_letter_config: dict | None
    retry_policy: dict | None
    input_path: str | None
    type: str


def event_rules(template: Mapping, overrides: Mapping[str, Any] | None = None) -> list[EventRule]:
    """Every EventBridgeRule / CloudWatchEvent event, with Refs resolved as in
    `function_environment` (a pattern's `source: [!Ref OrderEventSource]` gets the
    parameter's default unless `overrides` names another)."""
    refs = _refs(template, overrides)
    rules = []
    for function_id, props in functions(template).items():
        for event_id, event in (props.get("Events") or {}).items():
            if event.get("Type") not in EVENT_RULE_TYPES:
                continue
            ev = event.get("Properties") or {}
            rules.append(
                EventRule(
                    function_id=function_id,
                    event_id=event_id,
                    handler=props["Handler"],
                    pattern=resolve(_json(ev.get("Pattern") or {}), refs),
                    event_bus_name=resolve(ev.get("EventBusName"), refs),
                    dead_letter_config=resolve(ev.get("DeadLetterConfig"), refs),
                    retry_policy=resolve(ev.get("RetryPolicy"), refs),
                    input_path=ev.get("InputPath"),
                    type=event["Type"],
                )
            )
    return rules


class StreamFunction(NamedTuple):
    function_id: str
    event_id: str
    handler: str
    filter_patterns: list[dict]  # empty: every record
    batch_size: int
    starting_position: str
    maximum_retry_attempts: int  # -1: until the record expires (CloudFormation's meaning)
    bisect_on_error: bool
    report_batch_item_failures: bool
    on_failure: dict | None


def stream_functions(template: Mapping) -> list[StreamFunction]:
    found = []
    for function_id, props in functions(template).items():
        for event_id, event in (props.get("Events") or {}).items():
            if event.get("Type") != "DynamoDB":
                continue
            ev = event.get("Properties") or {}
            filters = ((ev.get("FilterCriteria") or {}).get("Filters")) or []
            found.append(
                StreamFunction(
                    function_id=function_id,
                    event_id=event_id,
                    handler=props["Handler"],
                    filter_patterns=[_json(f["Pattern"]) for f in filters if "Pattern" in f],
                    batch_size=int(ev.get("BatchSize", 100)),
                    starting_position=ev.get("StartingPosition", "LATEST"),
                    maximum_retry_attempts=int(ev.get("MaximumRetryAttempts", -1)),
                    bisect_on_error=bool(ev.get("BisectBatchOnFunctionError", False)),
                    report_batch_item_failures="ReportBatchItemFailures"
                    in (ev.get("FunctionResponseTypes") or []),
                    on_failure=(ev.get("DestinationConfig") or {}).get("OnFailure"),
                )
            )
    return found


def function_timeout(template: Mapping, function_id: str) -> int:
    return int(functions(template)[function_id].get("Timeout", 3))


def _json(pattern: Any) -> dict:
    # Patterns are written either as YAML maps or as JSON strings.
    return json.loads(pattern) if isinstance(pattern, str) else dict(pattern)
