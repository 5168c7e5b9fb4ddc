"""HTTP for the order system: `POST /v1/checkout/quote` and `POST /v1/checkout/holds`."""
from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from membership.domain.checkout import HoldRequest, HoldView, Quote, QuoteRequest
from membership.handlers.http import (
    build_app,
    error_responses,
    json_response,
    model_response,
    require_subject,
    view_response,
)
from membership.observability import logger, metrics, tracer
from membership.services import checkout

app = build_app()


@app.post(
    "/v1/checkout/quote",
    summary="What a member gets for these order lines (writes nothing)",
    description=(
        "Tier discount, the points cap (at most the program's share of the amount after "
        "discounts), usable stored value, cash payable, and what the order would earn. "
        "Every computed benefit rounds down to the fen or point; discounts are spread over "
        "lines by largest remainder so line shares sum exactly to the totals."),
    responses={200: model_response(Quote, "Quote"), **error_responses(400, 403, 404, 409, 422)},
    tags=["checkout"],
)
def post_quote(body: QuoteRequest):
    require_subject(app, "orders")
    result = checkout.quote(body)
    return view_response(200, result)


@app.post(
    "/v1/checkout/holds",
    summary="Reserve points and stored value for an order (idempotent by orderId)",
    description=(
        "The first hold of an order answers 201; the same order with the same amounts "
        "answers 200 with that hold while it is still open; with other amounts 409 "
        "hold_mismatch; once it was released (cancelled or lapsed) 409 "
        "hold_already_released, captured 409 hold_already_captured, past its expiry 409 "
        "hold_expired. A hold lapses after the program's holds.ttlMinutes unless the order "
        "is paid."),
    responses={201: model_response(HoldView, "Held"),
               200: model_response(HoldView, "This order was held already"),
               **error_responses(400, 403, 404, 409, 422)},
    tags=["checkout"],
)
def post_hold(body: HoldRequest):
    require_subject(app, "orders")
    held, created = checkout.hold(body)
    if created:
        metrics.add_metric(name="CheckoutHolds", unit=MetricUnit.Count, value=1)
    return json_response(201 if created else 200, held)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
