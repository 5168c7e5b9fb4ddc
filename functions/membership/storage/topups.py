"""Top-up records and Idempotency-Key records, written inside the ledger's transaction.

PK                          SK            item
TOPUP#<topupId>             TOPUP         what a top-up gave and how much was refunded since
IDEMPOTENCY#<hash>          IDEMPOTENCY   an Idempotency-Key: the body it came with, the answer

A top-up record lives in a partition of its own: a refund (admin route or payment
notice) finds it by top-up id or payment reference with one GetItem, no index. Both
items are extra items of the posting's one TransactWriteItems, so a top-up is still one
write call, and a key is recorded if and only if its effect committed.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime

from pynamodb.attributes import ListAttribute, NumberAttribute, UnicodeAttribute

from membership.domain.ledger import LedgerState, Posting
from membership.domain.topups import TopupRecord
from membership.storage.ledger import ExtraItem, Outcome
from membership.storage.ledger import post as ledger_post
from membership.storage.models import TimeAttribute
from membership.storage.table import Retry, TableModel


class TopupItem(TableModel):
    topup_id = UnicodeAttribute(attr_name="topupId")
    member_id = UnicodeAttribute(attr_name="memberId")
    payment_reference = UnicodeAttribute(attr_name="paymentReference")
    channel = UnicodeAttribute()
    principal = NumberAttribute()
    bonus = NumberAttribute()
    created_at = TimeAttribute(attr_name="createdAt")
    refunded_principal = NumberAttribute(attr_name="refundedPrincipal", default=0)
    clawed_back_bonus = NumberAttribute(attr_name="clawedBackBonus", default=0)
    forgiven_bonus = NumberAttribute(attr_name="forgivenBonus", default=0)
    refunds = ListAttribute(of=UnicodeAttribute, null=True)
    version = NumberAttribute(default=0)

    @staticmethod
    def key(topup_id: str) -> tuple[str, str]:
        return f"TOPUP#{topup_id}", "TOPUP"

    @classmethod
    def from_domain(cls, r: TopupRecord) -> TopupItem:
        fields = r.model_dump(exclude={"refunds"})
        return cls(*cls.key(r.topup_id), refunds=list(r.refunds) or None, **fields)

    def to_domain(self) -> TopupRecord:
        return TopupRecord(
            topup_id=self.topup_id, member_id=self.member_id,
            payment_reference=self.payment_reference, channel=self.channel,
            principal=int(self.principal), bonus=int(self.bonus),
            created_at=self.created_at,
            refunded_principal=int(self.refunded_principal or 0),
            clawed_back_bonus=int(self.clawed_back_bonus or 0),
            forgiven_bonus=int(self.forgiven_bonus or 0),
            refunds=tuple(self.refunds or ()), version=int(self.version or 0),
        )


class IdempotencyKeyItem(TableModel):
    body_hash = UnicodeAttribute(attr_name="bodyHash")
    result = UnicodeAttribute()  # JSON: the first answer
    source_key = UnicodeAttribute(attr_name="sourceKey")
    created_at = TimeAttribute(attr_name="createdAt")
    ttl = NumberAttribute()  # epoch seconds; the table's TTL removes the item after it

    @staticmethod
    def key(scope: str, caller: str, idempotency_key: str) -> tuple[str, str]:
        # Hashed: the header is client text, and keys are scoped to the route and caller.
        digest = hashlib.sha256(f"{scope}\0{caller}\0{idempotency_key}".encode()).hexdigest()
        return f"IDEMPOTENCY#{digest}", "IDEMPOTENCY"

    def result_dict(self) -> dict:
        return json.loads(self.result)


class IdempotencyKeyTaken(Exception):
    """Another request committed under this key between our read and our write."""


def body_hash(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()


def read_key(scope: str, caller: str, idempotency_key: str, now: datetime
             ) -> IdempotencyKeyItem | None:
    """The live record of a key; one the TTL sweeper has not removed yet counts as gone."""
    try:
        item = IdempotencyKeyItem.get(*IdempotencyKeyItem.key(scope, caller, idempotency_key),
                                      consistent_read=True)
    except IdempotencyKeyItem.DoesNotExist:
        return None
    return item if int(item.ttl) > int(now.timestamp()) else None


def key_extra(scope: str, caller: str, idempotency_key: str, body_digest: str, result: dict,
              source_key: str, now: datetime, ttl_seconds: int) -> ExtraItem:
    item = IdempotencyKeyItem(
        *IdempotencyKeyItem.key(scope, caller, idempotency_key), body_hash=body_digest,
        result=json.dumps(result, sort_keys=True, default=str), source_key=source_key,
        created_at=now, ttl=int(now.timestamp()) + ttl_seconds)
    return ExtraItem(
        model=item,
        condition=(IdempotencyKeyItem.PK.does_not_exist()
                   | (IdempotencyKeyItem.ttl <= int(now.timestamp()))),
        on_condition_failed=IdempotencyKeyTaken)


def get_topup(topup_id: str, *, consistent: bool = True) -> TopupRecord | None:
    try:
        return TopupItem.get(*TopupItem.key(topup_id), consistent_read=consistent).to_domain()
    except TopupItem.DoesNotExist:
        return None


def new_topup_extra(record: TopupRecord) -> ExtraItem:
    return ExtraItem(model=TopupItem.from_domain(record),
                     condition=TopupItem.PK.does_not_exist(), on_condition_failed=Retry)


def updated_topup_extra(record: TopupRecord, expected_version: int) -> ExtraItem:
    # A concurrent refund of the same top-up moved it: read again and plan again.
    return ExtraItem(model=TopupItem.from_domain(record),
                     condition=TopupItem.version == expected_version, on_condition_failed=Retry)


Build = Callable[[LedgerState], tuple[Posting, tuple[ExtraItem, ...]]]


def post(member_id: str, source_key: str, build: Build) -> Outcome:
    """The ledger's post, with the top-up's own items built alongside the posting and
    committed in the same transaction."""
    built: dict[int, tuple[ExtraItem, ...]] = {}

    def build_posting(state: LedgerState) -> Posting:
        posting, extra = build(state)
        built[id(posting)] = extra
        return posting

    return ledger_post(member_id, source_key, build_posting,
                       extra=lambda posting: built.pop(id(posting)))
