"""HTTP: signup and the member's own profile (`/v1/members`, `/v1/members/me`)."""
from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import Field

from membership.domain import calendar
from membership.domain.members import ApiModel, MemberProfile, ProfileUpdate, SignupRequest
from membership.handlers.http import (
    build_app,
    error_responses,
    model_response,
    require_subject,
    view_response,
)
from membership.observability import logger, metrics, tracer
from membership.services import ledger, members
from membership.storage.program import load_program

app = build_app()


@app.post(
    "/v1/members",
    summary="Sign up the calling subject",
    responses={201: model_response(MemberProfile, "Created"),
               200: model_response(MemberProfile, "This subject had signed up already"),
               **error_responses(400, 403, 409, 422)},
    tags=["members"],
)
def signup(body: SignupRequest):
    subject = require_subject(app, "member")
    profile, created = members.signup(subject, body)
    if created:
        metrics.add_metric(name="MembersSignedUp", unit=MetricUnit.Count, value=1)
    return view_response(201 if created else 200, profile)


@app.get(
    "/v1/members/me",
    summary="The calling member's profile, tier, assets and benefits",
    responses={200: model_response(MemberProfile, "Profile"), **error_responses(403, 404)},
    tags=["members"],
)
def get_me():
    return view_response(200, members.profile(require_subject(app, "member")))


@app.patch(
    "/v1/members/me",
    summary="Edit the calling member's profile",
    description="Birthday is set once (409 birthday_already_set); each marketingConsent "
                "statement is recorded with its time (docs/privacy.md).",
    responses={200: model_response(MemberProfile, "Profile"),
               **error_responses(400, 403, 404, 409, 422)},
    tags=["members"],
)
def patch_me(body: ProfileUpdate):
    return view_response(200, members.edit_profile(require_subject(app, "member"), body))


class EntryView(ApiModel):
    entry_id: str = Field(alias="entryId")
    asset: str
    bucket: str
    amount: int
    balance_after: int = Field(alias="balanceAfter")
    source_type: str = Field(alias="sourceType")
    reason: str
    actor: str
    created_at: str = Field(alias="createdAt")
    effective_at: str = Field(alias="effectiveAt")
    reverses: str | None = None


class LedgerPage(ApiModel):
    entries: list[EntryView]
    next_cursor: str | None = Field(alias="nextCursor")


@app.get(
    "/v1/members/me/ledger",
    summary="Entries of one asset, newest first, with an opaque cursor",
    responses={200: model_response(LedgerPage, "A page of entries"),
               **error_responses(403, 404, 422)},
    tags=["members"],
)
def get_ledger(
    asset: Annotated[Literal["balance", "points", "growth"], Query()],
    limit: Annotated[int, Query(ge=1, le=ledger.MAX_PAGE)] = 20,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
):
    subject = require_subject(app, "member")
    entries, next_cursor = ledger.ledger_page(subject, asset, limit, cursor)
    tz = load_program().time_zone
    page = LedgerPage(
        entries=[EntryView(
            entryId=e.entry_id, asset=e.asset, bucket=e.bucket, amount=e.amount,
            balanceAfter=e.balance_after, sourceType=e.source_type, reason=e.reason,
            actor=e.actor, createdAt=calendar.wire(e.created_at, tz),
            effectiveAt=calendar.wire(e.effective_at, tz), reverses=e.reverses,
        ) for e in entries],
        nextCursor=next_cursor,
    )
    return view_response(200, page)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
