"""Signup and the member's own profile."""
from __future__ import annotations

from datetime import UTC, datetime

from membership.domain import calendar
from membership.domain.ledger import LedgerState, PostingBuilder
from membership.domain.members import (
    MemberProfile,
    ProfileUpdate,
    SignupRequest,
    mask_phone,
    member_id_for,
    new_member,
    normalize_phone,
    profile_of,
)
from membership.storage import members as store
from membership.storage.program import load_program


def _now() -> datetime:
    return datetime.now(UTC)


def signup(subject: str, request: SignupRequest, now: datetime | None = None
           ) -> tuple[MemberProfile, bool]:
    """Create the subject's member with the signup gift; (profile, created)."""
    now = now or _now()
    phone = normalize_phone(request.phone)
    program = load_program()
    member = new_member(request, subject, phone, program, now)
    builder = PostingBuilder(
        LedgerState(member=member), program, source_key=f"signup:{member.member_id}",
        source_type="signup", reason="signup_gift", actor="system", now=now,
    )
    gift = program.signup_gift.points
    if gift:
        builder.credit_points(gift, lot_id=f"signup-{member.member_id}")
    for grant in program.signup_gift.coupons:
        builder.issue_coupons(grant.template_id, grant.quantity, source="signup")
    builder.emit("member.signed_up", {
        "memberId": member.member_id,
        "phone": mask_phone(phone),
        "channel": member.channel,
        "storeId": member.store_id,
        "referralCode": member.referral_code,
        "tier": member.tier_id,
        "signupGiftPoints": gift,
        "occurredAt": calendar.wire(now, program.time_zone),
    })
    posting = builder.build()
    created = store.create_member(posting)
    if created:
        return profile_of(posting.member, program, now), True
    existing = store.get_member(member.member_id, consistent=True)
    return profile_of(existing, program, now), False


def profile(subject: str, now: datetime | None = None) -> MemberProfile:
    now = now or _now()
    member = store.get_member(member_id_for(subject))
    return profile_of(member, load_program(), now)


def edit_profile(subject: str, update: ProfileUpdate, now: datetime | None = None
                 ) -> MemberProfile:
    now = now or _now()
    member = store.update_profile(member_id_for(subject), update, now)
    return profile_of(member, load_program(), now)
