"""Our own structural checks of template.yaml, beyond what cfn-lint sees.

cfn-lint misses some dangling references inside SAM-only properties (a `!GetAtt X.Nope` in
a function's Policies passes it), and it knows nothing of this project's rules: handlers
that exist, scoped routes, named IAM actions, encrypted queues, a protected table and a
failure destination for every asynchronous source.

Each checker is a pure function over a loaded template that returns a list of problems,
so the negative tests below can feed it tiny inline templates.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cfn_loader import REPO_ROOT, load, loads

SAM_FUNCTION = "AWS::Serverless::Function"
SCOPES = {"member", "orders", "admin"}
# Routes without the JWT authorizer: each authenticates its caller otherwise, before it
# writes anything (payment providers' notifications: the provider's signature).
UNAUTHENTICATED_ROUTES = {
    ("POST", "/v1/payments/wechatpay/notifications"),
    ("POST", "/v1/payments/alipay/notifications"),
}

PSEUDO_PARAMETERS = {
    "AWS::AccountId",
    "AWS::NotificationARNs",
    "AWS::NoValue",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
}

# Fn::GetAtt return values of the resource types this project uses (or is likely to).
# A type missing here fails the check on purpose: add its attributes from the CloudFormation
# reference rather than let an unchecked GetAtt through.
GETATT_ATTRIBUTES: dict[str, set[str]] = {
    "AWS::DynamoDB::Table": {"Arn", "StreamArn"},
    "AWS::SQS::Queue": {"Arn", "QueueName", "QueueUrl"},
    "AWS::SNS::Topic": {"TopicArn", "TopicName"},
    "AWS::Events::EventBus": {"Arn", "Name", "Policy"},
    "AWS::Events::Rule": {"Arn"},
    "AWS::Events::Archive": {"Arn"},
    "AWS::Lambda::Function": {
        "Arn",
        "SnapStartResponse.ApplyOn",
        "SnapStartResponse.OptimizationStatus",
    },
    "AWS::Lambda::Version": {"FunctionArn", "Version"},
    "AWS::Lambda::Alias": {"AliasArn"},
    "AWS::Lambda::EventSourceMapping": {"EventSourceMappingArn", "Id"},
    "AWS::IAM::Role": {"Arn", "RoleId"},
    "AWS::Logs::LogGroup": {"Arn"},
    "AWS::KMS::Key": {"Arn", "KeyId"},
    "AWS::ApiGatewayV2::Api": {"ApiEndpoint", "ApiId"},
    "AWS::ApiGateway::RestApi": {"RestApiId", "RootResourceId"},
    "AWS::Scheduler::Schedule": {"Arn"},
    "AWS::Scheduler::ScheduleGroup": {"Arn", "CreationDate", "LastModificationDate", "State"},
    "AWS::StepFunctions::StateMachine": {"Arn", "Name", "StateMachineRevisionId"},
    "AWS::CloudWatch::Alarm": {"Arn"},
    "AWS::S3::Bucket": {
        "Arn",
        "DomainName",
        "DualStackDomainName",
        "RegionalDomainName",
        "WebsiteURL",
    },
    "AWS::Cognito::UserPool": {"Arn", "ProviderName", "ProviderURL", "UserPoolId"},
    "AWS::Cognito::UserPoolClient": {"ClientId", "ClientSecret", "Name"},
    "AWS::SSM::Parameter": {"Type", "Value"},
    "AWS::SecretsManager::Secret": {"Id"},
}
# SAM resources keep their logical id after the transform, as the type they expand into.
SAM_TYPE_AS = {
    SAM_FUNCTION: "AWS::Lambda::Function",
    "AWS::Serverless::HttpApi": "AWS::ApiGatewayV2::Api",
    "AWS::Serverless::Api": "AWS::ApiGateway::RestApi",
    "AWS::Serverless::StateMachine": "AWS::StepFunctions::StateMachine",
    "AWS::Serverless::SimpleTable": "AWS::DynamoDB::Table",
}

# Actions that IAM cannot scope to a resource, so Resource "*" is the only way to grant them.
RESOURCELESS_ACTIONS = {
    "cloudwatch:PutMetricData",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
}

ASYNC_INVOKE_EVENTS = {"EventBridgeRule", "CloudWatchEvent", "Schedule", "ScheduleV2"}
STREAM_EVENTS = {"DynamoDB", "Kinesis"}


# --------------------------------------------------------------------------- references


@dataclass(frozen=True)
class Reference:
    kind: str  # Ref | GetAtt | Condition | FindInMap | DependsOn
    target: str
    attribute: str | None
    where: str


def _sub_references(template: str, local_vars: set[str], where: str) -> Iterator[Reference]:
    for match in re.finditer(r"\$\{([^}]*)\}", template):
        expr = match.group(1).strip()
        # ${!Literal} is Fn::Sub's escape for a literal "${Literal}".
        if expr.startswith("!") or expr in local_vars:
            continue
        if "." in expr and not expr.startswith("AWS::"):
            target, attribute = expr.split(".", 1)
            yield Reference("GetAtt", target, attribute, where)
        else:
            yield Reference("Ref", expr, None, where)


def iter_references(node: Any, where: str) -> Iterator[Reference]:
    """Every Ref, GetAtt (including those inside Fn::Sub), Condition and FindInMap under node."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from iter_references(item, f"{where}[{index}]")
        return
    if not isinstance(node, dict):
        return
    if len(node) == 1:
        ((key, value),) = node.items()
        if key == "Ref" and isinstance(value, str):
            yield Reference("Ref", value, None, where)
            return
        if key == "Fn::GetAtt":
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                attribute = value[1] if isinstance(value[1], str) else None
                yield Reference("GetAtt", value[0], attribute, where)
                if not isinstance(value[1], str):
                    yield from iter_references(value[1], f"{where}.Fn::GetAtt[1]")
            else:
                yield Reference("GetAtt", repr(value), "<malformed>", where)
            return
        if key == "Fn::Sub":
            if isinstance(value, str):
                yield from _sub_references(value, set(), where)
            elif isinstance(value, list) and value and isinstance(value[0], str):
                local_vars = value[1] if len(value) > 1 and isinstance(value[1], dict) else {}
                yield from _sub_references(value[0], set(local_vars), where)
                for name, sub_value in local_vars.items():
                    yield from iter_references(sub_value, f"{where}.Fn::Sub.{name}")
            return
        if key == "Condition" and isinstance(value, str):
            yield Reference("Condition", value, None, where)
            return
        if key == "Fn::If" and isinstance(value, list) and value and isinstance(value[0], str):
            yield Reference("Condition", value[0], None, where)
            for index, item in enumerate(value[1:], start=1):
                yield from iter_references(item, f"{where}.Fn::If[{index}]")
            return
        if key == "Fn::FindInMap" and isinstance(value, list) and value:
            if isinstance(value[0], str):
                yield Reference("FindInMap", value[0], None, where)
            for index, item in enumerate(value[1:], start=1):
                yield from iter_references(item, f"{where}.Fn::FindInMap[{index}]")
            return
    for key, value in node.items():
        yield from iter_references(value, f"{where}.{key}")


def sam_generated_resources(template: dict) -> dict[str, str]:
    """Logical ids that the SAM transform creates and templates may reference, with their types."""
    generated: dict[str, str] = {}
    resources = template.get("Resources") or {}
    for logical_id, resource in resources.items():
        kind = resource.get("Type")
        props = resource.get("Properties") or {}
        if kind == SAM_FUNCTION:
            if "Role" not in props:
                generated[f"{logical_id}Role"] = "AWS::IAM::Role"
            if props.get("EventInvokeConfig"):
                generated[f"{logical_id}EventInvokeConfig"] = "AWS::Lambda::EventInvokeConfig"
            alias = props.get("AutoPublishAlias")
            if isinstance(alias, str):
                generated[f"{logical_id}Alias{alias}"] = "AWS::Lambda::Alias"
            for event_id, event in (props.get("Events") or {}).items():
                event_type = event.get("Type")
                event_props = event.get("Properties") or {}
                name = f"{logical_id}{event_id}"
                if event_type in {"HttpApi", "Api", "SNS", "S3"} | ASYNC_INVOKE_EVENTS:
                    generated[f"{name}Permission"] = "AWS::Lambda::Permission"
                if event_type in {"EventBridgeRule", "CloudWatchEvent", "Schedule"}:
                    generated[name] = "AWS::Events::Rule"
                elif event_type == "ScheduleV2":
                    generated[name] = "AWS::Scheduler::Schedule"
                elif event_type in STREAM_EVENTS | {"SQS", "MSK", "MQ"}:
                    generated[name] = "AWS::Lambda::EventSourceMapping"
                elif event_type == "SNS":
                    generated[name] = "AWS::SNS::Subscription"
                if event_type == "HttpApi" and "ApiId" not in event_props:
                    generated["ServerlessHttpApi"] = "AWS::ApiGatewayV2::Api"
                    generated["ServerlessHttpApiApiGatewayDefaultStage"] = (
                        "AWS::ApiGatewayV2::Stage"
                    )
                if event_type == "Api" and "RestApiId" not in event_props:
                    generated["ServerlessRestApi"] = "AWS::ApiGateway::RestApi"
                    generated["ServerlessRestApiProdStage"] = "AWS::ApiGateway::Stage"
        elif kind == "AWS::Serverless::HttpApi":
            stage = props.get("StageName")
            stage_id = f"{stage}Stage" if isinstance(stage, str) else "ApiGatewayDefaultStage"
            generated[f"{logical_id}{stage_id}"] = "AWS::ApiGatewayV2::Stage"
        elif kind == "AWS::Serverless::Api":
            stage = props.get("StageName")
            if isinstance(stage, str):
                generated[f"{logical_id}{stage}Stage"] = "AWS::ApiGateway::Stage"
    return generated


def check_references(template: dict) -> list[str]:
    resources = template.get("Resources") or {}
    parameters = template.get("Parameters") or {}
    conditions = template.get("Conditions") or {}
    mappings = template.get("Mappings") or {}
    generated = sam_generated_resources(template)
    types = {lid: r.get("Type", "") for lid, r in resources.items()} | generated

    roots: list[tuple[str, Any]] = [
        ("Globals", template.get("Globals")),
        ("Conditions", conditions),
        ("Outputs", template.get("Outputs")),
    ]
    refs: list[Reference] = []
    for logical_id, resource in resources.items():
        # Metadata is free-form (lint config, build hints); everything else is live.
        for key, value in resource.items():
            if key in {"Metadata", "Type"}:
                continue
            where = f"Resources.{logical_id}.{key}"
            if key == "Condition" and isinstance(value, str):
                refs.append(Reference("Condition", value, None, where))
            elif key == "DependsOn":
                for target in [value] if isinstance(value, str) else value or []:
                    refs.append(Reference("DependsOn", target, None, where))
            else:
                roots.append((where, value))
    for where, node in roots:
        refs.extend(iter_references(node, where))

    problems = []
    for ref in refs:
        problem = _check_reference(ref, resources, parameters, conditions, mappings, types)
        if problem:
            problems.append(f"{ref.where}: {problem}")
    return problems


def _check_reference(ref, resources, parameters, conditions, mappings, types) -> str | None:
    if ref.kind == "Condition":
        return None if ref.target in conditions else f"condition {ref.target!r} is not defined"
    if ref.kind == "FindInMap":
        return None if ref.target in mappings else f"mapping {ref.target!r} is not defined"
    if ref.kind == "DependsOn":
        return None if ref.target in types else f"DependsOn {ref.target!r} is not a resource"
    if ref.kind == "Ref":
        if ref.target in parameters or ref.target in types or ref.target in PSEUDO_PARAMETERS:
            return None
        base, _, suffix = ref.target.partition(".")
        # SAM's `!Ref Function.Alias` / `.Version` work only when the function publishes an alias.
        if suffix in {"Alias", "Version"} and types.get(base) == SAM_FUNCTION:
            if (resources[base].get("Properties") or {}).get("AutoPublishAlias"):
                return None
            return f"Ref {ref.target!r} needs AutoPublishAlias on {base}"
        return f"Ref {ref.target!r} is not a parameter, resource or pseudo-parameter"
    # GetAtt
    if ref.target not in types:
        if ref.target in parameters or ref.target in PSEUDO_PARAMETERS:
            return f"GetAtt on {ref.target!r}, which is not a resource"
        return f"GetAtt {ref.target}.{ref.attribute} names no resource"
    if ref.attribute is None:
        return None  # computed attribute name; cannot be checked statically
    kind = SAM_TYPE_AS.get(types[ref.target], types[ref.target])
    known = GETATT_ATTRIBUTES.get(kind)
    if known is None:
        return (
            f"GetAtt {ref.target}.{ref.attribute}: type {kind} is not in GETATT_ATTRIBUTES; "
            "add its return values from the CloudFormation reference"
        )
    if ref.attribute not in known:
        return f"GetAtt {ref.target}.{ref.attribute}: {kind} has no attribute {ref.attribute!r}"
    return None


# --------------------------------------------------------------------------- functions


def sam_functions(template: dict) -> dict[str, dict]:
    return {
        lid: r
        for lid, r in (template.get("Resources") or {}).items()
        if r.get("Type") == SAM_FUNCTION
    }


def _function_property(template: dict, function: dict, name: str) -> Any:
    props = function.get("Properties") or {}
    if name in props:
        return props[name]
    return ((template.get("Globals") or {}).get("Function") or {}).get(name)


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for stmt in statements:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(stmt.name)
            elif isinstance(stmt, ast.Assign):
                for target in stmt.targets:
                    names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                if isinstance(stmt.target, ast.Name):
                    names.add(stmt.target.id)
            elif isinstance(stmt, ast.Import | ast.ImportFrom):
                for alias in stmt.names:
                    names.add(alias.asname or alias.name.split(".")[0])
            elif isinstance(stmt, ast.If | ast.Try | ast.With):
                # Definitions guarded by a condition or a try still bind at import.
                for block in ("body", "orelse", "finalbody"):
                    visit(getattr(stmt, block, []) or [])
                for handler in getattr(stmt, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    return names


def check_handler(template: dict, logical_id: str, repo_root: Path = REPO_ROOT) -> list[str]:
    function = template["Resources"][logical_id]
    handler = _function_property(template, function, "Handler")
    code_uri = _function_property(template, function, "CodeUri")
    if not isinstance(handler, str) or "." not in handler:
        return [f"{logical_id}: Handler {handler!r} is not 'module.attribute'"]
    if not isinstance(code_uri, str):
        return [f"{logical_id}: CodeUri {code_uri!r} is not a local folder"]
    module, attribute = handler.rsplit(".", 1)
    base = repo_root / code_uri / Path(*module.split("."))
    candidates = [base.with_suffix(".py"), base / "__init__.py"]
    source = next((c for c in candidates if c.is_file()), None)
    if source is None:
        shown = " or ".join(str(c.relative_to(repo_root)) for c in candidates)
        return [f"{logical_id}: handler module {module!r} not found ({shown})"]
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    if attribute not in _top_level_names(tree):
        return [f"{logical_id}: {source.relative_to(repo_root)} defines no {attribute!r}"]
    return []


def http_routes(template: dict) -> Iterator[tuple[str, str, dict]]:
    for logical_id, function in sam_functions(template).items():
        for event_id, event in ((function.get("Properties") or {}).get("Events") or {}).items():
            if event.get("Type") == "HttpApi":
                yield logical_id, event_id, event.get("Properties") or {}


def check_routes(template: dict) -> list[str]:
    problems = []
    for logical_id, event_id, props in http_routes(template):
        label = f"{logical_id}.{event_id} ({props.get('Method')} {props.get('Path')})"
        auth = props.get("Auth") or {}
        scopes = auth.get("AuthorizationScopes")
        if (props.get("Method"), props.get("Path")) in UNAUTHENTICATED_ROUTES:
            if auth.get("Authorizer") != "NONE":
                problems.append(f"{label}: a provider's signed route must opt out of the JWT")
            continue
        if auth.get("Authorizer") == "NONE":
            problems.append(f"{label}: route opts out of the JWT authorizer")
        if not scopes:
            problems.append(f"{label}: no AuthorizationScopes")
        elif not set(scopes) <= SCOPES:
            problems.append(
                f"{label}: scopes {sorted(set(scopes) - SCOPES)} not in {sorted(SCOPES)}"
            )
        path = props.get("Path")
        if not (isinstance(path, str) and path.startswith("/v1/")):
            problems.append(f"{label}: route is not versioned under /v1/")
    return problems


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _conditional_branches(statements: list) -> list:
    """A statement under Fn::If is checked in each branch (AWS::NoValue drops out)."""
    found = []
    for statement in statements:
        if isinstance(statement, dict) and set(statement) == {"Fn::If"}:
            _, when_true, when_false = statement["Fn::If"]
            found.extend(b for b in (when_true, when_false)
                         if b != {"Ref": "AWS::NoValue"})
        else:
            found.append(statement)
    return found


def _check_statements(owner: str, statements: Any) -> list[str]:
    problems = []
    for index, statement in enumerate(_conditional_branches(_as_list(statements))):
        label = f"{owner} statement {index}"
        if not isinstance(statement, dict):
            problems.append(f"{label}: not a mapping")
            continue
        if statement.get("Effect") != "Allow":
            continue
        if "NotAction" in statement or "NotResource" in statement:
            problems.append(f"{label}: NotAction/NotResource grant everything else")
        actions = _as_list(statement.get("Action"))
        if not actions:
            problems.append(f"{label}: names no actions")
        for action in actions:
            if not isinstance(action, str) or "*" in action:
                problems.append(f"{label}: action {action!r} is not one specific action")
        if "*" in _as_list(statement.get("Resource")):
            broad = [a for a in actions if a not in RESOURCELESS_ACTIONS]
            if broad:
                problems.append(f"{label}: Resource '*' for {broad}")
    return problems


def check_policies(template: dict) -> list[str]:
    problems = []
    for logical_id, function in sam_functions(template).items():
        for index, policy in enumerate(
            _as_list((function.get("Properties") or {}).get("Policies"))
        ):
            owner = f"{logical_id}.Policies[{index}]"
            # Managed policy names and SAM policy templates hide their actions; we want them named.
            if not (isinstance(policy, dict) and set(policy) == {"Statement"}):
                problems.append(f"{owner}: use an inline {{Statement: [...]}} naming its actions")
                continue
            problems.extend(_check_statements(owner, policy["Statement"]))
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") == "AWS::IAM::Role":
            for policy in _as_list((resource.get("Properties") or {}).get("Policies")):
                document = (policy or {}).get("PolicyDocument") or {}
                name = (policy or {}).get("PolicyName")
                problems.extend(
                    _check_statements(f"{logical_id}.{name}", document.get("Statement"))
                )
    return problems


# --------------------------------------------------------------------------- data at rest


def check_queues(template: dict) -> list[str]:
    problems = []
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") == "AWS::SQS::Queue":
            props = resource.get("Properties") or {}
            if props.get("SqsManagedSseEnabled") is not True and not props.get("KmsMasterKeyId"):
                problems.append(f"{logical_id}: no SqsManagedSseEnabled or KmsMasterKeyId")
    return problems


def check_tables(template: dict) -> list[str]:
    tables = {
        lid: r
        for lid, r in (template.get("Resources") or {}).items()
        if r.get("Type") in {"AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable"}
    }
    if len(tables) != 1:
        return [f"single-table design: expected one table, found {sorted(tables) or 'none'}"]
    problems = []
    for logical_id, table in tables.items():
        props = table.get("Properties") or {}
        pitr = props.get("PointInTimeRecoverySpecification") or {}
        if pitr.get("PointInTimeRecoveryEnabled") is not True:
            problems.append(f"{logical_id}: point-in-time recovery is not enabled")
        if props.get("DeletionProtectionEnabled") is not True:
            problems.append(f"{logical_id}: deletion protection is not enabled")
        if (props.get("SSESpecification") or {}).get("SSEEnabled") is not True:
            problems.append(f"{logical_id}: SSESpecification.SSEEnabled is not true")
        if table.get("DeletionPolicy") != "Retain":
            problems.append(f"{logical_id}: DeletionPolicy is not Retain")
    return problems


# --------------------------------------------------------------------------- async sources


def _referenced_resource(value: Any) -> str | None:
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value and isinstance(value["Fn::GetAtt"], list):
            return value["Fn::GetAtt"][0]
    return None


def check_async_sources(template: dict) -> list[str]:
    """Every asynchronous source has somewhere for its failures to land.

    - DynamoDB / Kinesis streams: DestinationConfig.OnFailure with a bounded retry count
      (with -1, the default, a poison record blocks the shard and never reaches the DLQ).
    - SQS: the source queue has a RedrivePolicy (an SQS event has no on-failure destination).
    - EventBridge rules and schedules: a DeadLetterConfig on the target for delivery
      failures, and the function's EventInvokeConfig on-failure destination (or
      DeadLetterQueue) for failed asynchronous invocations.
    """
    resources = template.get("Resources") or {}
    problems = []
    for logical_id, function in sam_functions(template).items():
        props = function.get("Properties") or {}
        on_failure = ((props.get("EventInvokeConfig") or {}).get("DestinationConfig") or {}).get(
            "OnFailure"
        ) or {}
        has_async_destination = bool(
            on_failure.get("Destination") or on_failure.get("Type")
        ) or bool(props.get("DeadLetterQueue"))
        for event_id, event in (props.get("Events") or {}).items():
            event_type = event.get("Type")
            event_props = event.get("Properties") or {}
            label = f"{logical_id}.{event_id} ({event_type})"
            if event_type in STREAM_EVENTS:
                destination = (event_props.get("DestinationConfig") or {}).get("OnFailure") or {}
                if not destination.get("Destination"):
                    problems.append(f"{label}: no DestinationConfig.OnFailure.Destination")
                retries = event_props.get("MaximumRetryAttempts", -1)
                if not isinstance(retries, int) or retries < 0:
                    problems.append(f"{label}: MaximumRetryAttempts must be bounded")
            elif event_type == "SQS":
                queue = _referenced_resource(event_props.get("Queue"))
                queue_props = (resources.get(queue) or {}).get("Properties") or {}
                if queue not in resources:
                    problems.append(f"{label}: source queue is not defined in this template")
                elif not (queue_props.get("RedrivePolicy") or {}).get("deadLetterTargetArn"):
                    problems.append(f"{label}: source queue {queue} has no RedrivePolicy")
            elif event_type in ASYNC_INVOKE_EVENTS:
                dead_letter = event_props.get("DeadLetterConfig")
                if not dead_letter:
                    problems.append(f"{label}: no DeadLetterConfig for failed deliveries")
                else:
                    problems.extend(_check_dead_letter(template, label, event_type, dead_letter))
                if not has_async_destination:
                    problems.append(
                        f"{label}: function has no EventInvokeConfig on-failure destination"
                    )
    return problems


DEAD_LETTER_KEYS = {"Arn", "QueueLogicalId", "Type"}


def _check_dead_letter(template: dict, label: str, event_type: str, config: Any) -> list[str]:
    """A rule's DLQ is one of ours: encrypted, and EventBridge may write to it.

    SAM silently ignores keys it does not know (a `Destination` next to `Type: SQS` is
    dropped), and `Type: SQS` alone makes SAM create a queue with no encryption.
    """
    if not isinstance(config, dict):
        return [f"{label}: DeadLetterConfig is not a mapping"]
    problems = []
    unknown = sorted(set(config) - DEAD_LETTER_KEYS)
    if unknown:
        problems.append(
            f"{label}: DeadLetterConfig keys {unknown} are not SAM's (Arn, QueueLogicalId, "
            "Type) and are ignored"
        )
    if "Arn" not in config:
        problems.append(
            f"{label}: DeadLetterConfig without Arn makes SAM create an unencrypted queue; "
            "set Arn to an encrypted queue of this template"
        )
        return problems
    queue = _referenced_resource(config["Arn"])
    resources = template.get("Resources") or {}
    if (resources.get(queue) or {}).get("Type") != "AWS::SQS::Queue":
        problems.append(f"{label}: DeadLetterConfig.Arn is not a queue of this template")
    elif event_type != "ScheduleV2" and not _events_may_send_to(template, queue):
        # EventBridge Scheduler sends with the schedule's role; rules need a queue policy.
        problems.append(
            f"{label}: no AWS::SQS::QueuePolicy lets events.amazonaws.com sqs:SendMessage "
            f"to {queue} (with an aws:SourceArn condition)"
        )
    return problems


def _events_may_send_to(template: dict, queue: str) -> bool:
    for resource in (template.get("Resources") or {}).values():
        if resource.get("Type") != "AWS::SQS::QueuePolicy":
            continue
        props = resource.get("Properties") or {}
        if queue not in {_referenced_resource(q) for q in _as_list(props.get("Queues"))}:
            continue
        for statement in _as_list((props.get("PolicyDocument") or {}).get("Statement")):
            if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
                continue
            principal = statement.get("Principal") or {}
            services = _as_list(principal.get("Service") if isinstance(principal, dict) else None)
            actions = _as_list(statement.get("Action"))
            scoped = "aws:SourceArn" in repr(statement.get("Condition") or {})
            if "events.amazonaws.com" in services and "sqs:SendMessage" in actions and scoped:
                return True
    return False


# --------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def template() -> dict:
    return load()


def _problems(problems: list[str]) -> str:
    return "\n".join(problems)


def test_every_reference_resolves(template):
    problems = check_references(template)
    assert not problems, _problems(problems)


def test_template_has_functions_to_check(template):
    # Guards the parametrised tests below from passing vacuously on a template they misread.
    assert sam_functions(template)


@pytest.mark.parametrize("logical_id", sorted(sam_functions(load())))
def test_handler_points_at_a_defined_attribute(template, logical_id):
    problems = check_handler(template, logical_id)
    assert not problems, _problems(problems)


def test_every_route_is_scoped(template):
    assert list(http_routes(template)), "no HttpApi routes found"
    problems = check_routes(template)
    assert not problems, _problems(problems)


def test_every_policy_names_specific_actions(template):
    problems = check_policies(template)
    assert not problems, _problems(problems)


def test_every_queue_is_encrypted(template):
    problems = check_queues(template)
    assert not problems, _problems(problems)


def test_the_table_is_protected(template):
    problems = check_tables(template)
    assert not problems, _problems(problems)


def test_every_async_source_has_a_failure_destination(template):
    problems = check_async_sources(template)
    assert not problems, _problems(problems)


# ------------------------------------------------------------- the checkers themselves

TINY = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage:
    Type: String
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      SqsManagedSseEnabled: true
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.handler
      CodeUri: src/
      Environment:
        Variables:
          QUEUE: !Ref Queue
          STAGE: !If [IsProd, !Ref Stage, !Ref AWS::NoValue]
          LITERAL: !Sub "${!NotARef}-${AWS::Region}-${Queue.QueueName}"
          LOCAL: !Sub ["${Name}-x", {Name: !GetAtt Queue.Arn}]
      Events:
        Api:
          Type: HttpApi
          Properties:
            Path: /v1/x
            Method: GET
Outputs:
  Role:
    Value: !GetAtt FnRole.Arn
  Api:
    Value: !Sub "https://${ServerlessHttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"
"""


def test_loader_expands_short_tags():
    loaded = loads(TINY)
    variables = loaded["Resources"]["Fn"]["Properties"]["Environment"]["Variables"]
    assert variables["QUEUE"] == {"Ref": "Queue"}
    assert variables["STAGE"] == {"Fn::If": ["IsProd", {"Ref": "Stage"}, {"Ref": "AWS::NoValue"}]}
    assert variables["LOCAL"]["Fn::Sub"][1]["Name"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert loaded["Conditions"]["IsProd"] == {"Fn::Equals": [{"Ref": "Stage"}, "prod"]}
    assert loads("x: !GetAtt Q.RedrivePolicy.deadLetterTargetArn")["x"] == {
        "Fn::GetAtt": ["Q", "RedrivePolicy.deadLetterTargetArn"]
    }


def test_ref_checker_accepts_a_sound_template():
    assert check_references(loads(TINY)) == []


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("BAD: !Ref Missing", "Ref 'Missing'"),
        ("BAD: !GetAtt Missing.Arn", "names no resource"),
        ("BAD: !GetAtt Queue.StreamArn", "has no attribute 'StreamArn'"),
        ("BAD: !Sub '${Missing}'", "Ref 'Missing'"),
        ("BAD: !Sub '${Queue.Nope}'", "has no attribute 'Nope'"),
        ("BAD: !If [NoSuchCondition, a, b]", "condition 'NoSuchCondition'"),
        ("BAD: !GetAtt Stage.Arn", "not a resource"),
    ],
)
def test_ref_checker_reports_dangling_references(line, expected):
    text = TINY.replace(
        "          QUEUE: !Ref Queue", f"          QUEUE: !Ref Queue\n          {line}"
    )
    problems = check_references(loads(text))
    assert len(problems) == 1 and expected in problems[0], problems
    assert "Environment.Variables.BAD" in problems[0]


def test_ref_checker_reports_dangling_references_in_sam_only_properties():
    text = TINY.replace(
        "      Events:",
        "      Policies:\n"
        "        - Statement:\n"
        "            - Effect: Allow\n"
        "              Action: [sqs:SendMessage]\n"
        "              Resource: !GetAtt Nowhere.Arn\n"
        "      Events:",
    )
    problems = check_references(loads(text))
    assert len(problems) == 1 and "Policies[0].Statement[0].Resource" in problems[0], problems


def test_handler_checker_fails_on_missing_module_and_attribute(tmp_path):
    (tmp_path / "src").mkdir()
    template = loads(TINY)
    assert "not found" in check_handler(template, "Fn", tmp_path)[0]
    (tmp_path / "src" / "app.py").write_text("def other(event, context):\n    return None\n")
    assert "defines no 'handler'" in check_handler(template, "Fn", tmp_path)[0]
    (tmp_path / "src" / "app.py").write_text("from elsewhere import real as handler\n")
    assert check_handler(template, "Fn", tmp_path) == []


def test_policy_checker_rejects_wildcards_and_policy_templates():
    text = TINY.replace(
        "      Events:",
        "      Policies:\n"
        "        - AWSLambdaBasicExecutionRole\n"
        "        - Statement:\n"
        "            - Effect: Allow\n"
        "              Action: ['dynamodb:*']\n"
        "              Resource: '*'\n"
        "      Events:",
    )
    problems = check_policies(loads(text))
    assert any("inline" in p for p in problems)
    assert any("'dynamodb:*'" in p for p in problems)
    assert any("Resource '*'" in p for p in problems)


def test_route_checker_requires_scopes():
    problems = check_routes(loads(TINY))
    assert problems and "no AuthorizationScopes" in problems[0]


def test_async_checker_requires_failure_destinations():
    text = TINY.replace(
        "      Events:\n",
        "      Events:\n"
        "        Monthly:\n"
        "          Type: ScheduleV2\n"
        "          Properties:\n"
        "            ScheduleExpression: cron(0 0 1 * ? *)\n"
        "        Stream:\n"
        "          Type: DynamoDB\n"
        "          Properties:\n"
        "            Stream: arn:aws:dynamodb:x\n"
        "            StartingPosition: LATEST\n",
    )
    problems = check_async_sources(loads(text))
    assert any("Monthly" in p and "DeadLetterConfig" in p for p in problems)
    assert any("Monthly" in p and "EventInvokeConfig" in p for p in problems)
    assert any("Stream" in p and "OnFailure" in p for p in problems)
    assert any("Stream" in p and "bounded" in p for p in problems)


def test_async_checker_requires_an_encrypted_reachable_rule_dlq():
    rule = (
        "      EventInvokeConfig:\n"
        "        DestinationConfig:\n"
        "          OnFailure:\n"
        "            Type: SQS\n"
        "            Destination: !GetAtt Queue.Arn\n"
        "      Events:\n"
        "        Paid:\n"
        "          Type: EventBridgeRule\n"
        "          Properties:\n"
        "            Pattern: {source: [orders]}\n"
        "            DeadLetterConfig:\n"
    )
    ignored = TINY.replace(
        "      Events:\n", rule + "              Type: SQS\n              Destination: x\n"
    )
    problems = check_async_sources(loads(ignored))
    assert any("['Destination']" in p for p in problems), problems
    assert any("unencrypted queue" in p for p in problems), problems

    no_policy = TINY.replace("      Events:\n", rule + "              Arn: !GetAtt Queue.Arn\n")
    problems = check_async_sources(loads(no_policy))
    assert len(problems) == 1 and "QueuePolicy" in problems[0], problems

    policy = (
        "  QueuePolicy:\n"
        "    Type: AWS::SQS::QueuePolicy\n"
        "    Properties:\n"
        "      Queues: [!Ref Queue]\n"
        "      PolicyDocument:\n"
        "        Statement:\n"
        "          - Effect: Allow\n"
        "            Principal: {Service: events.amazonaws.com}\n"
        "            Action: sqs:SendMessage\n"
        "            Resource: !GetAtt Queue.Arn\n"
        "            Condition:\n"
        "              ArnEquals: {aws:SourceArn: !GetAtt FnPaid.Arn}\n"
    )
    with_policy = no_policy.replace("Outputs:\n", policy + "Outputs:\n")
    assert check_async_sources(loads(with_policy)) == []
    assert check_references(loads(with_policy)) == []
