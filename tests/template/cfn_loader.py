"""Load a CloudFormation / SAM template with its short-form tags as long-form intrinsics.

`!Ref X` becomes {"Ref": "X"}, `!GetAtt A.B` becomes {"Fn::GetAtt": ["A", "B"]}, `!Sub s`
becomes {"Fn::Sub": s} and so on, so the checkers see one shape whatever the author typed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"

# Short tags that map to "Fn::<Name>".
_FN_TAGS = (
    "And",
    "Base64",
    "Cidr",
    "Equals",
    "FindInMap",
    "GetAZs",
    "GetAtt",
    "If",
    "ImportValue",
    "Join",
    "Length",
    "Not",
    "Or",
    "Select",
    "Split",
    "Sub",
    "ToJsonString",
    "Transform",
)


class CfnLoader(yaml.SafeLoader):
    """SafeLoader plus the CloudFormation short tags; a subclass so the global loader is untouched."""


def _construct_node(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


def _make_fn(name: str):
    key = f"Fn::{name}"

    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict:
        value = _construct_node(loader, node)
        # `!GetAtt Res.Attr` is the one short form whose scalar must be split; the attribute
        # itself may contain dots (RedrivePolicy.deadLetterTargetArn), so split only once.
        if name == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {key: value}

    return construct


def _construct_ref(loader: yaml.SafeLoader, node: yaml.Node) -> dict:
    return {"Ref": loader.construct_scalar(node)}


def _construct_condition(loader: yaml.SafeLoader, node: yaml.Node) -> dict:
    return {"Condition": loader.construct_scalar(node)}


def _construct_unknown(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    # An unknown tag is a typo CloudFormation would reject; fail loudly instead of guessing.
    raise yaml.constructor.ConstructorError(
        None, None, f"unknown CloudFormation tag !{tag_suffix}", node.start_mark
    )


for _name in _FN_TAGS:
    CfnLoader.add_constructor(f"!{_name}", _make_fn(_name))
CfnLoader.add_constructor("!Ref", _construct_ref)
CfnLoader.add_constructor("!Condition", _construct_condition)
CfnLoader.add_multi_constructor("!", _construct_unknown)


def loads(text: str) -> dict:
    # CfnLoader derives from SafeLoader, so this is as safe as yaml.safe_load.
    return yaml.load(text, Loader=CfnLoader)


def load(path: Path = TEMPLATE_PATH) -> dict:
    return loads(path.read_text(encoding="utf-8"))
