"""HTTP: operators' manual tags and segments (docs/tags.md).

PUT/DELETE /v1/admin/members/{memberId}/tags/{tag}   a manual tag on, or off
GET /v1/admin/tags/{tag}/members?cursor=&limit=     the consenting members carrying a tag
"""
from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.metrics import MetricUnit

from membership.domain.tag_rules import TAG_PATTERN
from membership.domain.tags import MemberTags, SegmentPage
from membership.handlers.http import (
    ADMIN_SCOPE,
    MemberId,
    build_app,
    error_responses,
    model_response,
    require_subject,
    view_response,
)
from membership.observability import logger, metrics, tracer
from membership.services import tags

app = build_app(scope=ADMIN_SCOPE)

Tag = Annotated[str, Path(pattern=TAG_PATTERN, description="A tag name")]


@app.put(
    "/v1/admin/members/<memberId>/tags/<tag>",
    summary="Put a manual tag on a member",
    description="Idempotent. A tag of the program's tagRules is refused with 409 "
                "tag_is_automatic; a member carries at most 50 manual tags (409 "
                "too_many_tags).",
    responses={200: model_response(MemberTags, "The member's tags"),
               **error_responses(403, 404, 409, 422, 503)},
    tags=["tags", "admin"],
)
def put_tag(memberId: MemberId, tag: Tag):
    require_subject(app, "admin")
    answer = tags.put_tag(memberId, tag)
    metrics.add_metric(name="ManualTagsPut", unit=MetricUnit.Count, value=1)
    return view_response(200, answer)


@app.delete(
    "/v1/admin/members/<memberId>/tags/<tag>",
    summary="Take a manual tag off a member",
    description="Idempotent: a tag the member does not carry changes nothing. A rule's tag "
                "is refused with 409 tag_is_automatic.",
    responses={200: model_response(MemberTags, "The member's tags"),
               **error_responses(403, 404, 409, 422, 503)},
    tags=["tags", "admin"],
)
def delete_tag(memberId: MemberId, tag: Tag):
    require_subject(app, "admin")
    return view_response(200, tags.delete_tag(memberId, tag))


@app.get(
    "/v1/admin/tags/<tag>/members",
    summary="A segment: the members carrying a tag, by cursor",
    description="Members who withdrew marketingConsent are never listed. One query per "
                "index shard touched, never a scan; pass nextCursor back until it is null.",
    responses={200: model_response(SegmentPage, "A page of the segment"),
               **error_responses(400, 403, 422)},
    tags=["tags", "admin"],
)
def segment(tag: Tag,
            cursor: Annotated[str | None, Query(max_length=2048)] = None,
            limit: Annotated[int, Query(ge=1, le=1000)] = 100):
    require_subject(app, "admin")
    return view_response(200, tags.segment(tag, limit, cursor))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
