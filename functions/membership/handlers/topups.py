"""HTTP: a member tops up stored value (`POST /v1/members/me/topups`)."""
from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from membership.domain.topups import TopupRequest, TopupResponse
from membership.handlers.http import (
    IDEMPOTENCY_EXTENSION,
    build_app,
    error_responses,
    member_post,
    model_response,
)

# Re-exported: the operators' refund route (admin_topups) answers with it.
from membership.handlers.http import answer as answer
from membership.observability import logger, metrics, tracer
from membership.services import topups

app = build_app()


@app.post(
    "/v1/members/me/topups",
    summary="Top up stored value with a verified payment: principal plus the offer's bonus",
    description="Needs an Idempotency-Key header. The same paymentReference credits once, "
                "whatever the key; a key reused with another body is refused (422 "
                "idempotency_key_reused). A replay answers the first response again, with "
                "Idempotent-Replayed: true.",
    responses={201: model_response(TopupResponse, "Credited (or the first answer, replayed)"),
               **error_responses(400, 403, 404, 409, 422, 503)},
    openapi_extensions={IDEMPOTENCY_EXTENSION: True},
    tags=["stored value"],
)
def create_topup(body: TopupRequest):
    def credit(subject: str, key: str) -> topups.Answer:
        result = topups.top_up(subject, key, body)
        if not result.replayed:
            # Beside the count of credits (member_post's metric): the principal they carried.
            metrics.add_metric(name="TopupPrincipalFen", unit=MetricUnit.Count,
                               value=result.body["principal"])
        return result

    return member_post(app, credit, "TopupsCredited")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
