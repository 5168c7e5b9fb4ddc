"""HTTP: operators find a member, read the operator's view, freeze or unfreeze, adjust.

`/v1/admin/members`, `/v1/admin/members/{memberId}`,
`/v1/admin/members/{memberId}/adjustments`. Every write records the operator's JWT `sub`.
"""
from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit

from membership.domain.adjustments import AdjustmentRequest
from membership.domain.admin_members import AdminMemberView, MemberSearch
from membership.domain.member_status import StatusChange
from membership.handlers.http import (
    ADMIN_SCOPE,
    MemberId,
    answer,
    build_app,
    error_responses,
    model_response,
    require_subject,
    view_response,
)
from membership.observability import logger, metrics, tracer
from membership.services import adjustments, admin_members

app = build_app(scope=ADMIN_SCOPE)


@app.get(
    "/v1/admin/members",
    summary="Find a member by phone (any common format)",
    description="`+86 138 1234 5678`, `13812345678`, `0086-138-1234-5678` all find the same "
                "member. Answers a list: one member, or none.",
    responses={200: model_response(MemberSearch, "Matches"), **error_responses(403, 422)},
    tags=["admin", "members"],
)
def find_members(phone: Annotated[str, Query(min_length=3, max_length=32)]):
    require_subject(app, "admin")
    found = admin_members.find_by_phone(phone)
    return view_response(200, found)


@app.get(
    "/v1/admin/members/<memberId>",
    summary="The operator's view of a member",
    description="Profile with the full phone, status, tier and progress, points lots, "
                "balance, open holds, paid plan, the latest entries and the audit trail.",
    responses={200: model_response(AdminMemberView, "The member"),
               **error_responses(403, 404, 422)},
    tags=["admin", "members"],
)
def get_member(memberId: MemberId):
    require_subject(app, "admin")
    return view_response(200, admin_members.view(memberId))


@app.patch(
    "/v1/admin/members/<memberId>",
    summary="Freeze or unfreeze a member, with a reason",
    description="A frozen member keeps earning but cannot spend, hold or top up (403 "
                "member_frozen on those routes). Both changes are in the audit trail. "
                "Asking for the status the member already has changes nothing.",
    responses={200: model_response(AdminMemberView, "The member"),
               **error_responses(400, 403, 404, 422, 503)},
    tags=["admin", "members"],
)
def patch_member(memberId: MemberId, body: StatusChange):
    subject = require_subject(app, "admin")
    view, changed = admin_members.change_status(memberId, body, actor=subject)
    if changed:
        metrics.add_metric(name="MembersFrozen" if body.status == "frozen"
                           else "MembersUnfrozen", unit=MetricUnit.Count, value=1)
        logger.info("member status changed", extra={"memberId": memberId,
                                                     "status": body.status, "by": subject})
    return view_response(200, view)


@app.post(
    "/v1/admin/members/<memberId>/adjustments",
    summary="Adjust a member's points, growth or bonus balance, with a reason code",
    description="Idempotent by adjustmentId: the same id and body answer the first result "
                "(200, Idempotent-Replayed: true); the same id with another body is 409 "
                "adjustment_id_reused. Never below zero: 409 insufficient_points / "
                "insufficient_growth / insufficient_balance with details.available.",
    responses={201: {"description": "Applied"},
               200: {"description": "This adjustment was applied before (its first answer)"},
               **error_responses(400, 403, 404, 409, 422, 503)},
    tags=["admin", "members"],
)
def post_adjustment(memberId: MemberId, body: AdjustmentRequest):
    subject = require_subject(app, "admin")
    result, replayed = adjustments.adjust(memberId, body, actor=subject)
    if not replayed:
        metrics.add_metric(name="Adjustments", unit=MetricUnit.Count, value=1)
    return answer(200 if replayed else 201, result, replayed)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
