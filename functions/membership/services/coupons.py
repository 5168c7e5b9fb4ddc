"""Coupons: templates (admin), claims (members) and the wallet.

A claim's source key is the member and its Idempotency-Key
(`coupon.claim:<memberId>:<hash of the key>`): the same key answers the first claim again
(Idempotent-Replayed), with another template it is refused. The claim is one transaction:
coupon + shard decrement (`remaining > 0`) + member counter (`< perMemberLimit`) + guard.
"""
from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from membership.domain.coupons import (
    ClaimRequest,
    CouponPage,
    Shard,
    Template,
    TemplatePatch,
    TemplateSpec,
    TemplateView,
    check_claimable,
    claim_source_key,
    coupon_view,
    issue,
    issued_event,
    patched,
    stock_change,
    template_view,
)
from membership.domain.ledger import payload_hash
from membership.domain.members import member_id_for
from membership.errors import InvalidRequest, Unavailable
from membership.storage import coupons as store
from membership.storage.program import load_program
from membership.storage.table import with_retries

MAX_PAGE = 100


class InvalidCursor(InvalidRequest):
    code = "invalid_cursor"


def _now() -> datetime:
    return datetime.now(UTC)


# ---- templates (admin) --------------------------------------------------------------

def create_template(spec: TemplateSpec, now: datetime | None = None) -> TemplateView:
    now = now or _now()
    template = Template(spec=spec, created_at=now)
    store.create_template(template)
    return get_template(spec.template_id)


def get_template(template_id: str) -> TemplateView:
    template, shards = store.read_template(template_id)
    return template_view(template, shards, load_program().time_zone)


def patch_template(template_id: str, patch: TemplatePatch) -> TemplateView:
    """Pause or resume issuing, raise (or cut, never below issued) stock, extend the claim
    window, rename: one transaction, planned again if a claim moved a shard meanwhile."""

    def attempt() -> None:
        template, shards = store.read_template(template_id)
        spec = patched(template, patch)
        deltas = stock_change(shards, patch.stock) if patch.stock is not None else {}
        store.update_template(template, spec, deltas, shards,
                              pause_changed=spec.paused != template.spec.paused
                              or any(s.paused != spec.paused for s in shards))

    with_retries(attempt, lambda: Unavailable("the template stayed busy; try again",
                                              templateId=template_id))
    return get_template(template_id)


# ---- claims -------------------------------------------------------------------------

def claim(subject: str, idempotency_key: str, request: ClaimRequest,
          now: datetime | None = None) -> store.ClaimOutcome:
    """Claim one coupon of a claimable template for the calling member."""
    now = now or _now()
    member_id = member_id_for(subject)
    tz = load_program().time_zone
    source_key = claim_source_key(member_id, idempotency_key)
    payload = payload_hash({"templateId": request.template_id})

    def check(template: Template) -> None:
        check_claimable(template.spec, now)

    def make(template: Template, _shards: list[Shard], shard: Shard):
        coupon = issue(template, member_id, shard=shard.index, source="claim",
                       source_key=source_key, now=now, tz=tz)
        view = coupon_view(coupon, now, tz)
        events = [{"detailType": "coupon.issued", "detail": issued_event(coupon, tz)}]
        return coupon, template.spec.per_member_limit, view, events

    return store.claim(request.template_id, member_id, source_key, payload, check, make)


# ---- the wallet ---------------------------------------------------------------------

def encode_cursor(key: dict | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode()


def decode_cursor(cursor: str | None, member_id: str) -> dict | None:
    """Opaque to clients; only ever a coupon key inside the caller's own partition."""
    if not cursor:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        pk, sk = key["PK"]["S"], key["SK"]["S"]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise InvalidCursor("cursor is not one this API issued") from None
    if (not isinstance(pk, str) or not isinstance(sk, str) or pk != f"MEMBER#{member_id}"
            or not sk.startswith("COUPON#") or len(sk) > 256):
        raise InvalidCursor("cursor is not one this API issued")
    return {"PK": {"S": pk}, "SK": {"S": sk}}


def _status_filter(status: str | None, now: datetime):
    item = store.CouponItem
    if status is None:
        return None
    if status == "available":
        return (item.status == "available") & (item.valid_until >= now)
    if status == "expired":
        return (item.status == "available") & (item.valid_until < now)
    return item.status == status


def wallet(subject: str, status: str | None, limit: int, cursor: str | None,
           now: datetime | None = None) -> CouponPage:
    """The member's coupons, newest first, each with its terms and validity in the
    program's time zone; status is derived at read time (expired needs no job)."""
    now = now or _now()
    member_id = member_id_for(subject)
    from membership.storage.members import get_member

    get_member(member_id)  # a member who never signed up is 404, not an empty page
    start = decode_cursor(cursor, member_id)
    coupons, last = store.coupons_page(member_id, min(limit, MAX_PAGE), start,
                                       status_filter=_status_filter(status, now))
    tz = load_program().time_zone
    return CouponPage(coupons=[coupon_view(c, now, tz) for c in coupons],
                      nextCursor=encode_cursor(last))
