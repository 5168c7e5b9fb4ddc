"""The envelope EventBridge hands a rule's Lambda target; its `detail` is parsed by its consumer.

Our own small model rather than Powertools' parser utility: importing that utility loads
the models of every event source it knows, a cold-start cost for one envelope.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

M = TypeVar("M", bound=BaseModel)


class EventBridgeEvent(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True)

    version: str
    id: str
    source: str
    account: str
    time: datetime
    region: str
    resources: list[str]
    detail_type: str = Field(alias="detail-type")
    detail: dict[str, Any]
    replay_name: str | None = Field(default=None, alias="replay-name")


def parse_event(event: Any) -> EventBridgeEvent:
    """The envelope; raises pydantic's ValidationError when it is not one."""
    return EventBridgeEvent.model_validate(event)


def parse_detail(event: Any, model: type[M]) -> M:
    """The event's `detail` as `model`; raises pydantic's ValidationError on either level."""
    return model.model_validate(parse_event(event).detail)
