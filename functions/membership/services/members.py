"""Signup and the member's own profile."""
from __future__ import annotations

from datetime import UTC, datetime

from membership.domain import calendar, tags
from membership.domain.ledger import LedgerState, PostingBuilder
from membership.domain.members import (
    Member,
    MemberProfile,
    ProfileUpdate,
    SignupRequest,
    apply_profile_update,
    member_id_for,
    new_member,
    normalize_phone,
    profile_of,
)
from membership.errors import AccountClosed, MemberClosed
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
        "channel": member.channel,
        "storeId": member.store_id,
        "referralCode": member.referral_code,
        "tier": member.tier_id,
        "signupGiftPoints": gift,
        "occurredAt": calendar.wire(now, program.time_zone),
    })
    tags.retag(builder, program)  # e.g. new_member, from the first day
    posting = builder.build()
    # New members of the month (docs/metrics.md), counted in the signup's transaction.
    from membership.storage.metrics import counter_add

    created = store.create_member(posting, extra=(counter_add(
        calendar.month_of(now, program.time_zone), member.member_id, new_members=1),))
    if created:
        return profile_of(posting.member, program, now), True
    existing = store.get_member(member.member_id, consistent=True, include_closed=True)
    if existing.status == "closed":
        raise AccountClosed("this login closed its account; a new membership needs a new "
                            "login (the phone number is free to sign up again)")
    return profile_of(existing, program, now), False


def profile(subject: str, now: datetime | None = None) -> MemberProfile:
    now = now or _now()
    member = store.get_member(member_id_for(subject))
    return profile_of(member, load_program(), now)


def edit_profile(subject: str, update: ProfileUpdate, now: datetime | None = None
                 ) -> MemberProfile:
    now = now or _now()
    if "marketing_consent" in update.model_fields_set:
        # Consent moves the member's tag items in or out of the segment index (docs/tags.md)
        # and its statement is recorded (docs/privacy.md): one transaction with the member.
        from membership.domain.consents import ConsentRecord
        from membership.storage.consents import ConsentItem
        from membership.storage.tags import change_member

        member_id = member_id_for(subject)
        record = ConsentItem.of(member_id, ConsentRecord(
            purpose="marketing", granted=update.marketing_consent, at=now, source="member"))

        def consent_given(member: Member) -> Member:
            if member.status == "closed":
                raise MemberClosed("this account was closed", memberId=member_id)
            return apply_profile_update(member, update, now)

        _, member = change_member(member_id, consent_given, what="the profile update",
                                  also_put=(record,))
        return profile_of(member, load_program(), now)
    member = store.update_profile(member_id_for(subject), update, now)
    return profile_of(member, load_program(), now)
