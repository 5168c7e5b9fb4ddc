"""`view_response`: a pydantic model answered as JSON, by alias, with optional headers."""
import json
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from membership.handlers.http import JSON, view_response


class Sample(BaseModel):
    member_id: str = Field(alias="memberId")
    at: datetime


SAMPLE = Sample(memberId="M" + "a" * 24, at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))


def test_a_view_is_answered_as_json_by_alias():
    response = view_response(201, SAMPLE)
    assert (response.status_code, response.content_type) == (201, JSON)
    assert json.loads(response.body) == {"memberId": "M" + "a" * 24,
                                         "at": "2026-01-02T03:04:05Z"}
    assert "ETag" not in response.headers


def test_a_view_carries_the_headers_it_is_given():
    response = view_response(200, SAMPLE, headers={"ETag": '"3"'})
    assert response.headers["ETag"] == '"3"'
