"""Consents (PIPL Art. 14, 24): what a member agreed to, and every change, with its time.

The current answer lives on the member item (`marketing_consent`, default true at signup,
`marketing_consent_at` when it last changed); each statement the member makes is also kept
as a record, the evidence of what was said and when. Segments and campaigns read the
member item (the tags issue); records are read by the export.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from membership.domain.members import ApiModel

Purpose = Literal["marketing"]


class ConsentRecord(ApiModel):
    """One statement of consent, kept as evidence of what the member said and when."""

    purpose: Purpose
    granted: bool
    at: datetime
    source: str = Field(description="member (PATCH /v1/members/me) or closure")
