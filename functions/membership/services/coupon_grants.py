"""Coupon grants (issue 13's bulk grants, kind "coupon"): each member of a grant gets one
coupon of the grant's `templateId`.

Registered with the grants' seam (`services.grants.register_grant_kind`) when this module
is imported: the grant functions import it. Each (grant, member) is one posting guarded by
`grant:<grantId>:<memberId>` whose coupon is issued in the posting's own transaction, like
a gift pack's (storage/coupons.resolve_issues): stock and the per-member limit are read
when it commits, and a template that is out of stock, paused, missing or at the member's
limit never blocks the posting. It is reported: the member's share counts as `failed` in
the grant's progress with the reason as its code (`coupon_out_of_stock`, ...), the same
on every redelivery, since the guard's first answer is what a replay reads.
"""
from __future__ import annotations

from datetime import datetime

from membership.domain import grants as rules
from membership.errors import DomainError
from membership.services.grants import register_grant_kind
from membership.services.ledger import post_legs
from membership.storage import grants as store

KIND = "coupon"


class CouponNotGranted(DomainError):
    """The member's coupon could not be issued (a reported failure, never a crash)."""

    code = "coupon_not_granted"


def _not_granted(missed: dict, template_id: str) -> CouponNotGranted:
    error = CouponNotGranted(
        f"coupon of {template_id} not issued: {missed.get('reason')}",
        templateId=template_id, reason=missed.get("reason"))
    error.code = f"coupon_{missed.get('reason', 'not_granted')}"
    return error


def grant_coupon(member_id: str, grant: store.GrantItem, now: datetime | None) -> None:
    template_id = str(grant.template_id)

    def legs(builder):
        builder.issue_coupons(template_id, 1, source="grant")
        builder.result = {"grantId": grant.grant_id, "memberId": member_id,
                          "templateId": template_id}

    outcome = post_legs(member_id, rules.source_key(grant.grant_id, member_id), legs,
                        source_type="grant", reason=grant.reason_code,
                        actor=grant.created_by, now=now)
    missed = (outcome.result.get("giftCoupons") or {}).get("notIssued") or []
    if missed:
        raise _not_granted(missed[0], template_id)


register_grant_kind(KIND, grant_coupon)
