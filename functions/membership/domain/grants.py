"""Bulk grants: points or coupons to a list of members or to a tag's segment.

A grant is accepted at once (202) and applied asynchronously: its members are cut into
chunks, one queue message each. A tag's members are not listed at the POST: the grant
worker expands the segment page by page (services/tag_grants.py), freezing each page
before its chunk is queued, so the grant's `total` is known when the expansion ends.
Every (grant, member) is a posting guarded by `grant:<grantId>:<memberId>`, so a
redelivered chunk, a retried POST or two workers on the same chunk credit each member
once. Each chunk reports its own progress item (no program-wide counter): the grant's
status is the sum of its chunks'.
"""
from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal

from pydantic import Field, StrictInt, StringConstraints, model_validator

from membership.domain.adjustments import Note, OperationId
from membership.domain.ledger import PostingBuilder
from membership.domain.members import ApiModel
from membership.domain.tag_rules import TAG_PATTERN
from membership.errors import Conflict, InvalidRequest, NotFound

MAX_MEMBERS = 10_000
MAX_GRANT_POINTS = 1_000_000
FAILURES_SHOWN = 20
FAILURES_PER_CHUNK = 10

MemberRef = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$", min_length=1,
                                             max_length=64)]


class GrantIdReused(Conflict):
    code = "grant_id_reused"


class GrantNotFound(NotFound):
    code = "grant_not_found"


class GrantKindNotAvailable(InvalidRequest):
    """A grant this deployment cannot apply yet (coupons, tags)."""

    code = "grant_kind_not_available"


class GrantRequest(ApiModel):
    grant_id: OperationId = Field(alias="grantId", description="Your id: a retry reuses it")
    points: StrictInt | None = Field(default=None, ge=1, le=MAX_GRANT_POINTS,
                                     description="Points each member gets (a lot each)")
    template_id: str | None = Field(
        alias="templateId", default=None, max_length=64,
        description="A coupon template: each member gets one coupon of it")
    reason_code: str = Field(alias="reasonCode", min_length=1, max_length=32)
    note: Note | None = None
    member_ids: tuple[MemberRef, ...] | None = Field(
        alias="memberIds", default=None, min_length=1, max_length=MAX_MEMBERS)
    tag: str | None = Field(
        default=None, pattern=TAG_PATTERN,
        description=(
            "Instead of memberIds: the tag's segment, i.e. the members carrying the tag "
            "who consent to marketing (a tag grant is a marketing reward: members "
            "without consent get nothing). The segment is read by the grant worker when "
            "it expands the grant, shortly after the 202; `total` is final once "
            "`expanded` is true. No size limit."))

    @model_validator(mode="after")
    def _one_of_each(self) -> GrantRequest:
        if (self.points is None) == (self.template_id is None):
            raise ValueError("give exactly one of points and templateId")
        if (self.member_ids is None) == (self.tag is None):
            raise ValueError("give exactly one of memberIds and tag")
        return self

    @property
    def kind(self) -> Literal["points", "coupon"]:
        return "points" if self.points is not None else "coupon"


def request_hash(request: GrantRequest) -> str:
    body = request.model_dump(mode="json", by_alias=True)
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def unique_members(member_ids: tuple[str, ...]) -> list[str]:
    """Each member once, in the order given: a grant credits a member at most once."""
    return list(dict.fromkeys(member_ids))


def chunks(member_ids: list[str], size: int) -> list[list[str]]:
    return [member_ids[i:i + size] for i in range(0, len(member_ids), size)]


def source_key(grant_id: str, member_id: str) -> str:
    return f"grant:{grant_id}:{member_id}"


def lot_id_for(grant_id: str) -> str:
    return f"grant-{grant_id}"


def apply_points(builder: PostingBuilder, grant_id: str, points: int) -> None:
    """One member's share: a lot with the program's normal expiry."""
    builder.credit_points(points, lot_id=lot_id_for(grant_id))
    builder.result = {"grantId": grant_id, "memberId": builder.member_id, "points": points}


# ---- progress ---------------------------------------------------------------------------

class Failure(ApiModel):
    member_id: str = Field(alias="memberId")
    code: str
    message: str


class ChunkProgress(ApiModel):
    chunk: int
    total: int
    done: int
    failed: int
    failures: tuple[Failure, ...] = ()


class GrantView(ApiModel):
    grant_id: str = Field(alias="grantId")
    status: Literal["queued", "running", "completed"]
    total: int = Field(description="Members in the grant (duplicates counted once); for a "
                                   "tag, the members expanded so far")
    done: int = Field(description="Members credited (now or by an earlier delivery)")
    failed: int = Field(description="Members that could not be credited (e.g. unknown ids)")
    failures: list[Failure] = Field(description="The first failures, with their reasons")
    points: int | None
    reason_code: str = Field(alias="reasonCode")
    note: str | None
    tag: str | None = Field(default=None, description="The tag whose segment is granted")
    expanded: bool = Field(default=True, description=(
        "Whether the member list is complete: a tag grant's segment is expanded by the "
        "worker, page by page; a member list is complete at once"))
    chunks: int
    chunks_done: int = Field(alias="chunksDone")
    created_at: str = Field(alias="createdAt")
    created_by: str = Field(alias="createdBy")


def status_of(chunks_total: int, reported: list[ChunkProgress], expanded: bool = True) -> str:
    if expanded and len(reported) >= chunks_total:
        return "completed"  # a tag with no consenting member completes with no chunk
    return "running" if reported else "queued"


def summed(reported: list[ChunkProgress]) -> tuple[int, int, list[Failure]]:
    ordered = sorted(reported, key=lambda c: c.chunk)
    failures = [f for c in ordered for f in c.failures][:FAILURES_SHOWN]
    return (sum(c.done for c in ordered), sum(c.failed for c in ordered), failures)
