"""HTTP: coupon templates for operators (优惠券模板): create, read with stock, patch."""
from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.metrics import MetricUnit

from membership.domain.coupons import TemplatePatch, TemplateSpec, TemplateView
from membership.handlers.http import (
    ADMIN_SCOPE,
    build_app,
    error_responses,
    model_response,
    require_subject,
    view_response,
)
from membership.observability import logger, metrics, tracer
from membership.services import coupons

app = build_app(scope=ADMIN_SCOPE)

TemplateIdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
                                     description="The template's id")]


@app.post(
    "/v1/admin/coupon-templates",
    summary="Create a coupon template: kind, terms, scope, validity, stock (required)",
    description="Stock is how many may ever be issued, held in shards so concurrent claims "
                "spread over several items. 409 coupon_template_exists when the id is taken.",
    responses={201: model_response(TemplateView, "Created"),
               **error_responses(400, 403, 409, 422, 503)},
    tags=["coupons", "admin"],
)
def create_template(body: TemplateSpec):
    require_subject(app, "admin")
    view = coupons.create_template(body)
    metrics.add_metric(name="CouponTemplatesCreated", unit=MetricUnit.Count, value=1)
    return view_response(201, view)


@app.get(
    "/v1/admin/coupon-templates/<templateId>",
    summary="A coupon template with its stock: issued, redeemed, remaining",
    responses={200: model_response(TemplateView, "Template"),
               **error_responses(403, 404, 422)},
    tags=["coupons", "admin"],
)
def get_template(templateId: TemplateIdPath):
    require_subject(app, "admin")
    view = coupons.get_template(templateId)
    return view_response(200, view)


@app.patch(
    "/v1/admin/coupon-templates/<templateId>",
    summary="Pause or resume issuing, raise stock, extend the claim window, rename",
    description="Stock never goes below what was issued (409 stock_below_issued); the claim "
                "window may only be extended (422 claim_window_shortened). Pausing stops "
                "claims and gift packs at once: the flag is copied onto every stock shard.",
    responses={200: model_response(TemplateView, "Updated"),
               **error_responses(400, 403, 404, 409, 422, 503)},
    tags=["coupons", "admin"],
)
def patch_template(templateId: TemplateIdPath, body: TemplatePatch):
    require_subject(app, "admin")
    view = coupons.patch_template(templateId, body)
    return view_response(200, view)



@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
