"""What the EventBridge targets share: parsing an event into its detail model.

An event that cannot be parsed (not an EventBridge envelope, a detail that fails its
model, refused text, a timestamp without an offset, outside 2000-2100 or more than a
day ahead) raises MalformedEvent with a short reason and writes nothing: the invocation
fails, Lambda retries it, and it lands in the function's dead-letter queue, whose alarm
calls an operator (docs/operations.md). The reason never echoes the input.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from membership.domain import text

M = TypeVar("M", bound=BaseModel)
MAX_REASON = 500


class EventBridgeEnvelope(BaseModel):
    """The envelope EventBridge hands a rule's Lambda target.

    Our own small model rather than Powertools' parser utility, whose import loads the
    models of every event source it knows: a cold-start cost for one envelope.
    """
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


class MalformedEvent(ValueError):
    """The event is refused as it is: redelivering it unchanged cannot succeed."""


def _reason(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '$'}: {e['msg']}"
             for e in exc.errors(include_url=False, include_input=False, include_context=False)]
    return "; ".join(parts)[:MAX_REASON]


def envelope_of(event: Any) -> EventBridgeEnvelope:
    try:
        return EventBridgeEnvelope.model_validate(event)
    except ValidationError as exc:
        raise MalformedEvent(f"not an EventBridge event: {_reason(exc)}") from None


def detail_of(envelope: EventBridgeEnvelope, model: type[M], now: datetime | None = None) -> M:
    """The detail as `model`, validated against the clock (`now`, default: the real one)."""
    try:
        text.check_document(envelope.detail)
        return model.model_validate(envelope.detail,
                                    context={"now": now or datetime.now(UTC)})
    except text.UnsafeDocument as exc:
        raise MalformedEvent(f"{envelope.detail_type}: {exc}") from None
    except ValidationError as exc:
        raise MalformedEvent(f"{envelope.detail_type}: {_reason(exc)}") from None
