"""Consent records: `MEMBER#<id>` / `CONSENT#<at>#<purpose>#<nonce>`, written in the
transaction that changes the member item's current answer (services/members.edit_profile).
The nonce keeps two statements made in the same instant apart: both are recorded."""
from __future__ import annotations

import uuid
from datetime import datetime

from pynamodb.attributes import BooleanAttribute, UnicodeAttribute

from membership.domain import calendar
from membership.domain.consents import ConsentRecord
from membership.storage.models import TimeAttribute, member_pk
from membership.storage.table import TableModel


class ConsentItem(TableModel):
    member_id = UnicodeAttribute(attr_name="memberId")
    purpose = UnicodeAttribute()
    granted = BooleanAttribute()
    at = TimeAttribute()
    source = UnicodeAttribute()

    @staticmethod
    def key(member_id: str, at: datetime, purpose: str, nonce: str) -> tuple[str, str]:
        return member_pk(member_id), f"CONSENT#{calendar.iso(at)}#{purpose}#{nonce}"

    @classmethod
    def of(cls, member_id: str, record: ConsentRecord) -> ConsentItem:
        return cls(*cls.key(member_id, record.at, record.purpose, uuid.uuid4().hex[:8]),
                   member_id=member_id,
                   purpose=record.purpose, granted=record.granted, at=record.at,
                   source=record.source)

    def to_domain(self) -> ConsentRecord:
        return ConsentRecord(purpose=self.purpose, granted=bool(self.granted), at=self.at,
                             source=self.source)
