"""HTTP: a member's paid plan (PLUS): buy / extend / trial, read, auto-renew."""
from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from membership.domain.subscriptions import (
    AutoRenewRequest,
    PlanId,
    PurchaseResponse,
    SubscriptionRequest,
    SubscriptionView,
)
from membership.handlers.http import (
    IDEMPOTENCY_EXTENSION,
    build_app,
    error_responses,
    member_post,
    model_response,
    require_subject,
    view_response,
)
from membership.observability import logger, metrics, tracer
from membership.services import subscriptions

app = build_app()


@app.post(
    "/v1/members/me/subscriptions",
    summary="Buy, extend or start the trial of a paid plan (PLUS)",
    description="Needs an Idempotency-Key header. Pay with a paymentReference (and its "
                "channel), verified for the term's exact price, or payWith: balance (stored "
                "value, debited in the same transaction as the term). While the plan is "
                "active the term extends it from its end; after a lapse it starts now. "
                "Terms are calendar months in the program's time zone ending at the end of "
                "a day. 409 trial_used (a trial is once per member), 409 "
                "insufficient_balance, 409 payment_reference_used, 422 "
                "idempotency_key_reused, 422 payment_not_verified, 404 plan_not_found.",
    responses={201: model_response(PurchaseResponse, "Bought (or the first answer, replayed)"),
               **error_responses(400, 403, 404, 409, 422, 503)},
    openapi_extensions={IDEMPOTENCY_EXTENSION: True},
    tags=["paid plan"],
)
def buy(body: SubscriptionRequest):
    return member_post(app, lambda subject, key: subscriptions.purchase(subject, key, body),
                       "PlanTermsBought")


@app.get(
    "/v1/members/me/subscriptions",
    summary="The member's paid plan: status, terms, end, auto-renew, next renewal",
    description="status is derived at read time (trial, active, lapsed, refunded; null for "
                "a member who never subscribed). Dates are in the program's time zone. "
                "planId shows that plan's run (default: the member's current or latest "
                "plan); nextTerm is the number a provider payment's attach names "
                "(docs/payments.md). 404 plan_not_found for a planId the program has not.",
    responses={200: model_response(SubscriptionView, "Paid plan"),
               **error_responses(403, 404, 422)},
    tags=["paid plan"],
)
def read(plan_id: Annotated[PlanId | None, Query(alias="planId", description=(
        "a plan of the program, e.g. PLUS"))] = None):
    return view_response(200, subscriptions.read(require_subject(app, "member"),
                                                 plan_id=plan_id))


@app.patch(
    "/v1/members/me/subscriptions/current",
    summary="Switch auto-renew of the current paid plan off or on",
    description="404 subscription_not_found when the member never had a paid plan.",
    responses={200: model_response(SubscriptionView, "Paid plan"),
               **error_responses(400, 403, 404, 422)},
    tags=["paid plan"],
)
def patch_current(body: AutoRenewRequest):
    return view_response(200, subscriptions.set_auto_renew(require_subject(app, "member"),
                                                           body))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
