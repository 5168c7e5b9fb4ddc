"""HTTP: signup and the member's own profile (`/v1/members`, `/v1/members/me`)."""
from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.metrics import MetricUnit

from membership.domain.members import MemberProfile, ProfileUpdate, SignupRequest
from membership.handlers.http import (
    build_app,
    error_responses,
    json_response,
    model_response,
    require_subject,
)
from membership.observability import logger, metrics, tracer
from membership.services import members

app = build_app()


def _profile(status: int, profile: MemberProfile) -> Response:
    return json_response(status, profile.model_dump(mode="json", by_alias=True))


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
    return _profile(201 if created else 200, profile)


@app.get(
    "/v1/members/me",
    summary="The calling member's profile, tier, assets and benefits",
    responses={200: model_response(MemberProfile, "Profile"), **error_responses(403, 404)},
    tags=["members"],
)
def get_me():
    return _profile(200, members.profile(require_subject(app, "member")))


@app.patch(
    "/v1/members/me",
    summary="Edit the calling member's profile",
    responses={200: model_response(MemberProfile, "Profile"),
               **error_responses(400, 403, 404, 422)},
    tags=["members"],
)
def patch_me(body: ProfileUpdate):
    return _profile(200, members.edit_profile(require_subject(app, "member"), body))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
