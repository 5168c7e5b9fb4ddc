"""HTTP: the member's copy of their data and account closure (docs/privacy.md).

`GET /v1/members/me/export` and `DELETE /v1/members/me`, in a function of their own: the
export reads a whole partition and closure deletes identity items, rights no other route
of the members function needs.
"""
from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ConfigDict, Field

from membership.domain.members import ApiModel
from membership.handlers.http import (
    build_app,
    error_responses,
    json_response,
    model_response,
    require_subject,
)
from membership.observability import logger, metrics, tracer
from membership.services import privacy

app = build_app()


class ExportDocument(ApiModel):
    """Everything held about the member (sections: profile, consents, assets, ledger, lots,
    holds, orders, topups, subscriptions, checkins, otherRecords)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    format: str = Field(description="membership.export/1")
    exported_at: str = Field(alias="exportedAt")
    time_zone: str = Field(alias="timeZone")


class ClosureAnswer(ApiModel):
    member_id: str = Field(alias="memberId")
    closed_at: str = Field(alias="closedAt")
    retained_until: str = Field(
        alias="retainedUntil", description="The kept transaction records are kept until "
        "then (three years from closure, E-Commerce Law Art. 31)")
    forfeited_points: int = Field(alias="forfeitedPoints")
    erased: list[str] = Field(description="Personal fields removed from the member item")
    removed: dict[str, int] = Field(description="Items removed, per capability")
    kept: dict[str, str] = Field(description="What stays, per capability, and why")


@app.get(
    "/v1/members/me/export",
    summary="A copy of everything held about the calling member (PIPL Art. 45)",
    description="Profile, consents and their history, balances, every ledger entry of "
                "every asset, lots, holds, orders, top-ups and their refunds, paid plan, "
                "check-ins, task completions, adjustments, grants received and operators' "
                "actions, as one "
                "JSON document; gzip-compressed when the client accepts it.",
    responses={200: model_response(ExportDocument, "The member's data"),
               **error_responses(403, 404)},
    tags=["privacy"],
    compress=True,
)
def export():
    document = privacy.export(require_subject(app, "member"))
    metrics.add_metric(name="MemberExports", unit=MetricUnit.Count, value=1)
    return json_response(200, document)


@app.delete(
    "/v1/members/me",
    summary="Close the calling member's account (注销; PIPL Art. 47)",
    description="Refused with 409 account_not_empty while stored value, an open hold or an "
                "active paid term remains (details.remaining says which and how to settle "
                "it). Otherwise personal data is erased, the phone and login are freed, "
                "points are forfeited by an entry, and member.closed is emitted; the ledger "
                "stays. A retry answers the first answer again.",
    responses={200: model_response(ClosureAnswer, "Closed"),
               **error_responses(403, 404, 409)},
    tags=["privacy"],
)
def close():
    answer, replayed = privacy.close(require_subject(app, "member"))
    if not replayed:
        metrics.add_metric(name="MembersClosed", unit=MetricUnit.Count, value=1)
    return json_response(200, answer)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
