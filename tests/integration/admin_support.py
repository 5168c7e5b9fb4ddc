"""What the operators' tests share: calling handlers as an operator, members to work on."""
from __future__ import annotations

import json
import uuid

from membership.domain.tiers import upgrade_if_qualified
from membership.handlers import members as members_handler
from membership.services.ledger import post_legs
from membership.storage.models import MemberItem
from membership.storage.program import load_program

OPERATOR = "ops-lin"


def call(module, event, ctx):
    response = module.handler(event, ctx)
    body = response.get("body")
    return response["statusCode"], json.loads(body) if body else None, response


def as_admin(apigw_event, method, path, body=None, headers=None, sub=OPERATOR, **kwargs):
    return apigw_event(method, path, body, sub=sub, scopes=["admin"], headers=headers, **kwargs)


def signup(apigw_event, ctx, sub=None, phone=None):
    """A new member through the real signup handler; returns its member id."""
    sub = sub or f"user-{uuid.uuid4().hex[:10]}"
    phone = phone or f"139{uuid.uuid4().int % 10**8:08d}"
    status, body, _ = call(members_handler, apigw_event(
        "POST", "/v1/members", {"phone": phone, "nickname": "Lin", "channel": "app"},
        sub=sub), ctx)
    assert status == 201, body
    return body["memberId"]


def member(member_id):
    return MemberItem.get(*MemberItem.key(member_id), consistent_read=True).to_domain()


def grow(member_id, growth, key=None):
    """Growth this month, upgrading at once as any growth posting does."""
    program = load_program()

    def legs(b):
        b.credit_growth(growth)
        upgrade_if_qualified(b, program)

    return post_legs(member_id, key or f"test-growth:{uuid.uuid4().hex}", legs,
                     source_type="test", reason="test")


def bulk_members(count, prefix="bulk"):
    """`count` members written straight to the table (no signup gift): ids in order."""
    from datetime import UTC, datetime

    from membership.domain.members import Member, member_id_for

    now = datetime.now(UTC)
    ids = []
    with MemberItem.batch_write() as batch:
        for n in range(count):
            subject = f"{prefix}-{n:06d}"
            member_id = member_id_for(subject)
            ids.append(member_id)
            batch.save(MemberItem.from_domain(Member(
                member_id=member_id, subject=subject, phone=f"+86139{n:08d}", nickname="B",
                channel="app", created_at=now, updated_at=now, tier_id="V1", tier_since=now)))
    return ids
