"""Members: identity, signup rules and the profile a member sees."""
from __future__ import annotations

import base64
import hashlib
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, field_validator

from membership.domain import calendar
from membership.domain.aggregates import OrderStats
from membership.domain.program import Benefit, Program
from membership.domain.tag_rules import TagMark
from membership.errors import Conflict, InvalidPhone

DEFAULT_PHONE_REGION = "CN"

Nickname = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$", min_length=1, max_length=64)]
Channel = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]+$", min_length=1, max_length=32)]


class ApiModel(BaseModel):
    """Wire models: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class SignupRequest(ApiModel):
    phone: str = Field(min_length=3, max_length=32)
    nickname: Nickname
    channel: Channel = Field(description="Registration source, e.g. app, mini_program, store")
    referral_code: Code | None = Field(alias="referralCode", default=None)
    store_id: Code | None = Field(alias="storeId", default=None)


def omit_default(schema: dict) -> None:
    """For a field that may be left out but not sent as null: no `default: null` in its
    JSON schema, which would tell clients that null is a value."""
    schema.pop("default", None)


class BirthdayAlreadySet(Conflict):
    """The birthday is set once: gifts depend on it, so it cannot be moved to farm them."""

    code = "birthday_already_set"


Gender = Literal["female", "male", "other", "undisclosed"]


class ProfileUpdate(ApiModel):
    """Fields left out are kept. `nickname` cannot be removed (null is refused);
    `storeId: null` removes the store."""

    nickname: Nickname = Field(default=None, json_schema_extra=omit_default)
    store_id: Code | None = Field(alias="storeId", default=None)
    # Privacy (docs/privacy.md): personal fields kept on the member item only.
    birthday: date = Field(default=None, json_schema_extra=omit_default,
                           description="YYYY-MM-DD; set once (the birthday gift depends on it)")
    gender: Gender | None = Field(default=None, description="null removes it")
    marketing_consent: StrictBool = Field(
        alias="marketingConsent", default=None, json_schema_extra=omit_default,
        description="Personalised marketing (PIPL Art. 24): false is never listed in a "
                    "marketing segment (docs/tags.md); every statement is recorded with its time")

    @field_validator("birthday", mode="before")
    @classmethod
    def _birthday_is_a_date_string(cls, value: object) -> object:
        # Lax mode would read a number as a timestamp: the wire form is YYYY-MM-DD only.
        if not isinstance(value, str | date):
            raise ValueError("birthday is a YYYY-MM-DD string")
        return value


class PaidPlanState(BaseModel):
    model_config = ConfigDict(frozen=True)

    plan_id: str
    started_at: datetime
    ends_at: datetime


class Member(BaseModel):
    """A member's state as stored on its one member item: the profile reads only this."""

    model_config = ConfigDict(frozen=True)

    member_id: str
    # Personal data: None once the account is closed (domain/privacy.py erases it).
    subject: str | None
    phone: str | None
    nickname: str | None
    channel: str
    store_id: str | None = None
    referral_code: str | None = None
    created_at: datetime
    updated_at: datetime
    tier_id: str
    tier_since: datetime
    version: int = 0
    balance_principal: int = 0
    balance_bonus: int = 0
    points_available: int = 0
    points_pending: int = 0
    points_next_expiry_at: datetime | None = None
    points_next_expiry_amount: int = 0
    growth_months: dict[str, int] = Field(default_factory=dict)
    paid_plan: PaidPlanState | None = None
    topup_total: int = 0
    topup_day: str | None = None
    topup_day_amount: int = 0
    settled_period: str | None = None
    # "active"; "frozen" by an operator (domain/member_status.py: earns, cannot spend);
    # "closed" by the member (domain/privacy.py: refused everywhere, never reopened).
    status: Literal["active", "frozen", "closed"] = "active"
    status_reason: str | None = None
    status_changed_at: datetime | None = None
    closed_at: datetime | None = None
    # A closed account's records are kept until then (domain/privacy.py: 3 years).
    retain_until: datetime | None = None
    # Personal profile fields and the marketing consent (docs/privacy.md).
    birthday: str | None = None  # YYYY-MM-DD
    gender: str | None = None
    marketing_consent: bool = True  # default at signup; changes are CONSENT# records
    marketing_consent_at: datetime | None = None
    # The check-in calendar of the recent months (membership.domain.checkins.CheckinLog).
    checkin_months: dict[str, int] = Field(default_factory=dict)
    checkin_since: str | None = None
    checkin_carry: int = 0
    # Value a reversal could not take back because it was spent or held (docs/money.md):
    # every later credit of the same asset pays it first. Moved only by ledger entries.
    points_debt: int = 0
    bonus_debt: int = 0
    # tier id -> month (YYYY-MM) its upgrade gift was last paid: once per tier per 12 months.
    tier_gifts: dict[str, str] = Field(default_factory=dict)
    birthday_gift_year: int | None = None  # the year the birthday gift was last given
    # Order aggregates and tags (docs/tags.md); without marketing consent, no segment.
    order_stats: OrderStats = Field(default_factory=OrderStats)
    tags: dict[str, TagMark] = Field(default_factory=dict)

    def rolling_growth(self, as_of_month: str) -> int:
        return sum(self.growth_months.get(m, 0) for m in calendar.rolling_months(as_of_month))


def member_id_for(subject: str) -> str:
    """A member id derived from the JWT subject, so `/me` needs no lookup read."""
    digest = hashlib.sha256(subject.encode()).digest()[:15]
    return "M" + base64.b32encode(digest).decode().lower()


def normalize_phone(raw: str, region: str = DEFAULT_PHONE_REGION) -> str:
    """E.164 form of a phone number; national numbers are read in `region`."""
    import phonenumbers  # only signup needs the metadata; keeps other handlers' init small

    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(e164: str) -> str:
    """+8613812345678 -> +86138****5678: enough to recognise, not to dial."""
    import phonenumbers

    number = phonenumbers.parse(e164, None)
    national = str(number.national_number)
    prefix = f"+{number.country_code}"
    if len(national) <= 7:
        return prefix + national[:1] + "*" * (len(national) - 3) + national[-2:]
    return prefix + national[:3] + "*" * (len(national) - 7) + national[-4:]


def new_member(request: SignupRequest, subject: str, phone: str, program: Program,
               now: datetime) -> Member:
    return Member(
        member_id=member_id_for(subject),
        subject=subject,
        phone=phone,
        nickname=request.nickname,
        channel=request.channel,
        store_id=request.store_id,
        referral_code=request.referral_code,
        created_at=now,
        updated_at=now,
        tier_id=program.tiers[0].id,
        tier_since=now,
        order_stats=OrderStats(complete=True),  # no order before signup: nothing to backfill
    )


def apply_profile_update(member: Member, update: ProfileUpdate, now: datetime) -> Member:
    changes = update.model_dump(exclude_unset=True)
    if not changes:
        return member
    if changes.get("birthday") is not None:
        birthday = changes["birthday"].isoformat()
        if member.birthday is not None and member.birthday != birthday:
            raise BirthdayAlreadySet("the birthday is set once; it cannot change",
                                     birthday=member.birthday)
        changes["birthday"] = birthday
    if "marketing_consent" in changes:
        changes["marketing_consent_at"] = now  # every statement, repeated or not (PIPL)
    return member.model_copy(update={**changes, "updated_at": now})


# ---- the profile a member reads -------------------------------------------------------

class TierRef(ApiModel):
    id: str
    name: str


class NextTier(ApiModel):
    id: str
    name: str
    growth_needed: int = Field(alias="growthNeeded")


class GrowthView(ApiModel):
    rolling_12_months: int = Field(alias="rolling12Months")


class PointsView(ApiModel):
    available: int
    pending: int
    next_expiry: dict | None = Field(alias="nextExpiry", description="{at, points} or null")


class BalanceView(ApiModel):
    principal: int
    bonus: int
    total: int


class DebtsView(ApiModel):
    """What reversals could not take back (docs/money.md): later credits pay it first."""

    points: int = Field(description="Points owed back (a refunded order's points, spent)")
    bonus: int = Field(description="Bonus owed back, fen (a refunded top-up's bonus, spent)")


class BenefitView(ApiModel):
    code: str
    name: str


class PaidPlanView(ApiModel):
    plan_id: str = Field(alias="planId")
    ends_at: str = Field(alias="endsAt")
    active: bool


class MemberProfile(ApiModel):
    member_id: str = Field(alias="memberId")
    phone: str
    nickname: str
    channel: str
    store_id: str | None = Field(alias="storeId")
    referral_code: str | None = Field(alias="referralCode")
    tier: TierRef
    next_tier: NextTier | None = Field(alias="nextTier")
    growth: GrowthView
    points: PointsView
    balance: BalanceView
    debts: DebtsView
    stored_value_member: bool = Field(alias="storedValueMember")
    benefits: list[BenefitView]
    paid_plan: PaidPlanView | None = Field(alias="paidPlan")
    created_at: str = Field(alias="createdAt")
    birthday: str | None = None
    gender: str | None = None
    marketing_consent: bool = Field(alias="marketingConsent", default=True,
                                    description="false: never listed in a segment")
    status: Literal["active", "frozen"] = Field(
        default="active", description="frozen: earns, but cannot spend, hold or top up "
                                      "(a closed account has no profile: 404)")


def is_stored_value_member(member: Member, program: Program) -> bool:
    return member.topup_total >= program.topup.stored_value_member_threshold


def member_benefits(member: Member, program: Program, now: datetime) -> list[Benefit]:
    benefits: dict[str, Benefit] = {b.code: b for b in program.tier(member.tier_id).benefits}
    if is_stored_value_member(member, program):
        benefits.update({b.code: b for b in program.topup.stored_value_member_benefits})
    if member.paid_plan and member.paid_plan.ends_at > now:
        for plan in program.paid_plans:
            if plan.id == member.paid_plan.plan_id:
                benefits.update({b.code: b for b in plan.benefits})
    return list(benefits.values())


def profile_of(member: Member, program: Program, now: datetime) -> MemberProfile:
    tz = program.time_zone
    tier = program.tier(member.tier_id)
    rolling = member.rolling_growth(calendar.month_of(now, tz))
    nxt = program.next_tier(tier.id)
    next_expiry = None
    if member.points_next_expiry_at is not None and member.points_next_expiry_amount > 0:
        next_expiry = {
            "at": calendar.wire(member.points_next_expiry_at, tz),
            "points": member.points_next_expiry_amount,
        }
    plan = None
    if member.paid_plan is not None:
        plan = PaidPlanView(
            planId=member.paid_plan.plan_id,
            endsAt=calendar.wire(member.paid_plan.ends_at, tz),
            active=member.paid_plan.ends_at > now,
        )
    return MemberProfile(
        memberId=member.member_id,
        phone=mask_phone(member.phone),
        nickname=member.nickname,
        channel=member.channel,
        storeId=member.store_id,
        referralCode=member.referral_code,
        tier=TierRef(id=tier.id, name=tier.name),
        nextTier=None if nxt is None else NextTier(
            id=nxt.id, name=nxt.name, growthNeeded=max(nxt.threshold - rolling, 0)
        ),
        growth=GrowthView(rolling12Months=rolling),
        points=PointsView(
            available=member.points_available, pending=member.points_pending,
            nextExpiry=next_expiry,
        ),
        balance=BalanceView(
            principal=member.balance_principal, bonus=member.balance_bonus,
            total=member.balance_principal + member.balance_bonus,
        ),
        debts=DebtsView(points=member.points_debt, bonus=member.bonus_debt),
        storedValueMember=is_stored_value_member(member, program),
        benefits=[BenefitView(code=b.code, name=b.name)
                  for b in member_benefits(member, program, now)],
        paidPlan=plan,
        createdAt=calendar.wire(member.created_at, tz),
        birthday=member.birthday,
        gender=member.gender,
        marketingConsent=member.marketing_consent,
        status=member.status,
    )
