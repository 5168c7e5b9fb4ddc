"""HTTP: a member's coupon claims and wallet (优惠券); templates are in admin_coupons."""
from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.params import Query

from membership.domain.coupons import ClaimRequest, CouponPage, CouponView
from membership.handlers.http import (
    IDEMPOTENCY_EXTENSION,
    Answered,
    build_app,
    error_responses,
    member_post,
    model_response,
    require_subject,
    view_response,
)
from membership.observability import logger, metrics, tracer
from membership.services import coupons

app = build_app()

@app.post(
    "/v1/members/me/coupons",
    summary="Claim a claimable coupon (领券)",
    description="Needs an Idempotency-Key header: the same key answers the first claim "
                "again (Idempotent-Replayed: true); with another template 409 "
                "payload_mismatch. 409 coupon_out_of_stock, 409 coupon_limit_reached, 422 "
                "coupon_not_claimable (details.reason: not_claimable, paused, "
                "before_window, after_window).",
    responses={201: model_response(CouponView, "Claimed (or the first answer, replayed)"),
               **error_responses(400, 403, 404, 409, 422, 503)},
    openapi_extensions={IDEMPOTENCY_EXTENSION: True},
    tags=["coupons"],
)
def claim(body: ClaimRequest):
    def claim_one(subject: str, key: str) -> Answered:
        # A claim's outcome calls its answer's body `result`.
        outcome = coupons.claim(subject, key, body)
        return Answered(outcome.result, outcome.replayed)

    return member_post(app, claim_one, "CouponsClaimed")


@app.get(
    "/v1/members/me/coupons",
    summary="The member's coupons, newest first, by status, cursor paging",
    description="status is derived at read time: an available coupon whose window closed is "
                "expired. Validity is given in the program's time zone.",
    responses={200: model_response(CouponPage, "Coupons"), **error_responses(403, 404, 422)},
    tags=["coupons"],
)
def list_coupons(
    status: Annotated[Literal["available", "held", "used", "expired"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=coupons.MAX_PAGE)] = 20,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
):
    subject = require_subject(app, "member")
    page = coupons.wallet(subject, status, limit, cursor)
    return view_response(200, page)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
