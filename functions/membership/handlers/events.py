"""What the EventBridge targets share: parsing an event into its detail model.

An event that cannot be parsed (not an EventBridge envelope, a detail that fails its
model, refused text, a timestamp without an offset, outside 2000-2100 or more than a
day ahead) raises MalformedEvent with a short reason and writes nothing: the invocation
fails, Lambda retries it, and it lands in the function's dead-letter queue, whose alarm
calls an operator (docs/operations.md). The reason never echoes the input.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from membership.domain import text
from membership.observability import logger, metrics

M = TypeVar("M", bound=BaseModel)
S = TypeVar("S")
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


class UnknownDetailType(MalformedEvent):
    """No route of this target takes the event's detail-type."""


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


@contextmanager
def _counted_if_malformed(metric: str, what: str) -> Iterator[None]:
    """A malformed event is counted in `metric`, logged without its input, and raised again
    so that the invocation fails and the event reaches the dead-letter queue."""
    try:
        yield
    except MalformedEvent as exc:
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
        logger.warning(f"malformed {what}; failing so it reaches the DLQ",
                       extra={"reason": str(exc)})
        raise


def parsed_detail(event: Any, model: type[M], *, metric: str, what: str) -> M:
    """The event's detail as `model`; a malformed event is counted, logged and raised."""
    with _counted_if_malformed(metric, what):
        return detail_of(envelope_of(event), model)


def routed_detail(event: Any, routes: Mapping[str, tuple[type[BaseModel], S]], *,
                  metric: str, what: str) -> tuple[EventBridgeEnvelope, Any, S]:
    """The envelope, its detail as its route's model, and the route's service; a
    malformed event (an unknown detail type too) is counted, logged and raised."""
    with _counted_if_malformed(metric, what):
        envelope = envelope_of(event)
        try:
            model, service = routes[envelope.detail_type]
        except KeyError:
            raise UnknownDetailType(
                f"no consumer for {envelope.detail_type[:64]!r}") from None
        return envelope, detail_of(envelope, model), service
