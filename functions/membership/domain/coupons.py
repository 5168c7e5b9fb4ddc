"""Coupons (优惠券): templates, instances, claims and the discount rules, all pure.

A *template* (admin) says what a coupon is and how many may ever exist (`stock`, always
finite). An *instance* belongs to one member; it copies its template's terms when it is
issued, so an operator editing a template never changes a coupon a member already holds.

Status. Stored: `available`, `held` (by one order), `used`. Derived at read time:
an `available` coupon whose window has closed is `expired` — no job runs for expiry.

Stock is held in shards (docs/coupons.md): `stock_split` spreads a template's stock over
`SHARDS` items so concurrent claims hit different items; each claim decrements one
shard under the condition `remaining > 0` in the claim's one transaction.

Discounts (checkout calls these, it does not contain them). After the tier (or plan)
discount, each coupon in the request's order:
- its scope: the order's store must be in `scope.stores` (if any); a line is in scope when
  the template names no categories and no SKUs, or its category or SKU is named;
- its base: the scope lines' amounts after the tier discount; `minSpend` is met when the
  base reaches it (one fen below is not enough);
- its discount: `amountOff`, or `percentOffBps` of the base rounded down and capped by
  `maxDiscount`; `free_shipping` takes nothing off the goods (it answers freeShipping);
- never more than what is left of its lines after earlier coupons, so nothing is payable
  below zero; spread over its lines by largest remainder, so per-line shares are exact.
At most one non-stackable coupon per order; stackable ones combine with anything.
"""
from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from membership.domain import calendar
from membership.domain.instants import Instant
from membership.errors import Conflict, InvalidRequest, NotFound

BPS = 10_000
SHARDS = 8  # stock shards per template: enough to spread 32 concurrent claimers
MAX_STOCK = 10**8
MAX_COUPONS_PER_ORDER = 10
MAX_FEN = 10**12

TemplateId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
CouponId = Annotated[str, StringConstraints(pattern=r"^c[0-9a-z]{8,64}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
ScopeValue = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Fen = Annotated[int, Field(ge=0, le=MAX_FEN, strict=True)]
Kind = Literal["amount_off", "percent_off", "free_shipping"]
Status = Literal["available", "held", "used", "expired"]
Source = Literal["claim", "signup", "upgrade", "birthday", "plan_monthly", "grant"]
NOT_APPLICABLE_REASONS = ("scope", "threshold", "window", "status", "owner", "stacking")


# ---- errors -------------------------------------------------------------------------

class CouponOutOfStock(Conflict):
    code = "coupon_out_of_stock"


class CouponLimitReached(Conflict):
    code = "coupon_limit_reached"


class CouponNotClaimable(InvalidRequest):
    """`details.reason`: not_claimable, paused, before_window, after_window."""

    code = "coupon_not_claimable"


class CouponNotApplicable(InvalidRequest):
    """`details.reason` says why: one of NOT_APPLICABLE_REASONS."""

    code = "coupon_not_applicable"


class CouponInUse(Conflict):
    """Held or used by another order: the same code as any refusal, answered as 409."""

    code = "coupon_not_applicable"


class CouponTemplateNotFound(NotFound):
    code = "coupon_template_not_found"


class CouponTemplateExists(Conflict):
    code = "coupon_template_exists"


class StockBelowIssued(Conflict):
    code = "stock_below_issued"


class ClaimWindowShortened(InvalidRequest):
    code = "claim_window_shortened"


def not_applicable(coupon_id: str, reason: str, message: str, **details) -> CouponNotApplicable:
    return CouponNotApplicable(message, couponId=coupon_id, reason=reason, **details)


# ---- templates ----------------------------------------------------------------------

class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Scope(ApiModel):
    stores: tuple[ScopeValue, ...] = Field(default=(), max_length=500)
    categories: tuple[ScopeValue, ...] = Field(default=(), max_length=500)
    skus: tuple[ScopeValue, ...] = Field(default=(), max_length=500)


class CouponTerms(ApiModel):
    """What a coupon gives: copied onto each instance when it is issued."""

    name: Name
    kind: Kind
    amount_off: Fen | None = Field(alias="amountOff", default=None)
    percent_off_bps: int | None = Field(alias="percentOffBps", default=None, ge=1, le=BPS,
                                        strict=True)
    max_discount: Fen | None = Field(alias="maxDiscount", default=None)
    min_spend: Fen = Field(alias="minSpend", default=0)
    scope: Scope = Field(default_factory=Scope)
    stackable: bool = False

    @model_validator(mode="after")
    def _kind_fields(self) -> CouponTerms:
        if self.kind == "amount_off":
            if not self.amount_off or self.percent_off_bps is not None:
                raise ValueError("amount_off takes amountOff (> 0) and no percentOffBps")
            if self.max_discount is not None:
                raise ValueError("maxDiscount is for percent_off coupons")
        elif self.kind == "percent_off":
            if self.percent_off_bps is None or self.amount_off is not None:
                raise ValueError("percent_off takes percentOffBps and no amountOff")
        elif (self.amount_off is not None or self.percent_off_bps is not None
              or self.max_discount is not None):
            raise ValueError("free_shipping takes no amountOff, percentOffBps or maxDiscount")
        return self


class TemplateSpec(CouponTerms):
    """`POST /v1/admin/coupon-templates`."""

    template_id: TemplateId = Field(alias="templateId")
    valid_from: Instant | None = Field(alias="validFrom", default=None)
    valid_until: Instant | None = Field(alias="validUntil", default=None)
    valid_days: int | None = Field(alias="validDays", default=None, ge=1, le=3650, strict=True)
    stock: int = Field(ge=1, le=MAX_STOCK, strict=True,
                       description="How many may ever be issued; required, never unlimited")
    per_member_limit: int = Field(alias="perMemberLimit", default=1, ge=1, le=10_000,
                                  strict=True)
    claimable: bool = False
    claim_from: Instant | None = Field(alias="claimFrom", default=None)
    claim_until: Instant | None = Field(alias="claimUntil", default=None)
    paused: bool = False

    @model_validator(mode="after")
    def _validity(self) -> TemplateSpec:
        fixed = self.valid_from is not None or self.valid_until is not None
        if fixed == (self.valid_days is not None):
            raise ValueError("validity is either validFrom + validUntil or validDays")
        if fixed and (self.valid_from is None or self.valid_until is None
                      or self.valid_until <= self.valid_from):
            raise ValueError("a fixed window needs validFrom before validUntil")
        if (self.claim_from is not None and self.claim_until is not None
                and self.claim_until <= self.claim_from):
            raise ValueError("claimUntil must come after claimFrom")
        return self

    def terms(self) -> CouponTerms:
        return CouponTerms.model_validate(self.model_dump(include=set(CouponTerms.model_fields)))


class TemplatePatch(ApiModel):
    """`PATCH /v1/admin/coupon-templates/{templateId}`: what an operator may change later."""

    paused: bool | None = None
    stock: int | None = Field(default=None, ge=1, le=MAX_STOCK, strict=True,
                              description="Never below what was issued")
    claim_until: Instant | None = Field(alias="claimUntil", default=None,
                                        description="Only later than the current one")
    name: Name | None = None

    @model_validator(mode="after")
    def _something(self) -> TemplatePatch:
        if self.model_dump(exclude_none=True) == {}:
            raise ValueError("a patch changes paused, stock, claimUntil or name")
        return self


class Template(BaseModel):
    """A stored template: its spec, and the version optimistic updates move."""

    model_config = ConfigDict(frozen=True)

    spec: TemplateSpec
    created_at: datetime
    version: int = 0
    shards: int = SHARDS

    @property
    def template_id(self) -> str:
        return self.spec.template_id


class Shard(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int
    stock: int
    remaining: int
    issued: int
    redeemed: int = 0
    paused: bool = False


class StockView(ApiModel):
    stock: int
    issued: int
    redeemed: int
    remaining: int


class TemplateView(ApiModel):
    template: dict
    stock: int
    issued: int
    redeemed: int
    remaining: int
    version: int
    created_at: str = Field(alias="createdAt")


def stock_split(stock: int, shards: int = SHARDS) -> list[int]:
    """`stock` over the shards as evenly as whole coupons allow (earlier shards first)."""
    base, extra = divmod(stock, shards)
    return [base + (1 if i < extra else 0) for i in range(shards)]


def stock_change(shards: list[Shard], new_stock: int) -> dict[int, int]:
    """Per-shard stock deltas that bring the total to `new_stock`: a raise spreads evenly;
    a cut takes only from coupons not yet issued, and never below what was issued."""
    total = sum(s.stock for s in shards)
    issued = sum(s.issued for s in shards)
    if new_stock < issued:
        raise StockBelowIssued(f"{issued} coupons were issued already; stock cannot go "
                               f"below that", issued=issued, requested=new_stock)
    delta = new_stock - total
    if delta >= 0:
        return {s.index: d for s, d in zip(shards, stock_split(delta, len(shards))) if d}
    cut, out = -delta, {}
    for s in sorted(shards, key=lambda s: -s.remaining):
        take = min(cut, s.remaining)
        if take:
            out[s.index] = -take
            cut -= take
    return out


def stock_view(shards: list[Shard]) -> StockView:
    return StockView(stock=sum(s.stock for s in shards), issued=sum(s.issued for s in shards),
                     redeemed=sum(s.redeemed for s in shards),
                     remaining=sum(s.remaining for s in shards))


def template_view(template: Template, shards: list[Shard], tz: str) -> TemplateView:
    stock = stock_view(shards)
    spec = template.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    for field in ("validFrom", "validUntil", "claimFrom", "claimUntil"):
        value = getattr(template.spec, _attr(field))
        if value is not None:
            spec[field] = calendar.wire(value, tz)
    spec["stock"] = stock.stock
    return TemplateView(template=spec, stock=stock.stock, issued=stock.issued,
                        redeemed=stock.redeemed, remaining=stock.remaining,
                        version=template.version,
                        createdAt=calendar.wire(template.created_at, tz))


def _attr(alias: str) -> str:
    return {"validFrom": "valid_from", "validUntil": "valid_until", "claimFrom": "claim_from",
            "claimUntil": "claim_until"}[alias]


def patched(template: Template, patch: TemplatePatch) -> TemplateSpec:
    """The spec after a patch (stock is applied to the shards separately)."""
    spec = template.spec
    changes: dict = {}
    if patch.paused is not None:
        changes["paused"] = patch.paused
    if patch.name is not None:
        changes["name"] = patch.name
    if patch.claim_until is not None:
        if spec.claim_until is not None and patch.claim_until < spec.claim_until:
            raise ClaimWindowShortened("the claim window may be extended, not shortened",
                                       claimUntil=calendar.iso(spec.claim_until))
        if spec.claim_from is not None and patch.claim_until <= spec.claim_from:
            raise ClaimWindowShortened("claimUntil must come after claimFrom")
        changes["claim_until"] = patch.claim_until
    if patch.stock is not None:
        changes["stock"] = patch.stock
    return spec.model_copy(update=changes)


# ---- claims and issuance --------------------------------------------------------------

def check_claimable(spec: TemplateSpec, now: datetime) -> None:
    if not spec.claimable:
        raise CouponNotClaimable(f"{spec.template_id} is not claimable by members",
                                 reason="not_claimable")
    if spec.paused:
        raise CouponNotClaimable(f"issuing {spec.template_id} is paused", reason="paused")
    if spec.claim_from is not None and now < spec.claim_from:
        raise CouponNotClaimable(f"{spec.template_id} may be claimed from "
                                 f"{calendar.iso(spec.claim_from)}", reason="before_window")
    if spec.claim_until is not None and now > spec.claim_until:
        raise CouponNotClaimable(f"claiming {spec.template_id} ended at "
                                 f"{calendar.iso(spec.claim_until)}", reason="after_window")


def validity_of(spec: TemplateSpec, issued_at: datetime, tz: str) -> tuple[datetime, datetime]:
    """(valid from, valid until) of an instance issued at `issued_at`.

    `validDays` N: from issue until the end of the day N days after the issue day, in the
    program's time zone (issued on 1 March with 30 days: valid through 31 March).
    """
    if spec.valid_days is None:
        return calendar.utc(spec.valid_from), calendar.utc(spec.valid_until)
    zone = calendar.zone(tz)
    day: date = calendar.utc(issued_at).astimezone(zone).date() + timedelta(
        days=spec.valid_days + 1)
    end = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC) - timedelta(
        microseconds=1)
    return calendar.utc(issued_at), end


def coupon_id_for(source_key: str, issued_at: datetime) -> str:
    """Time-ordered (the wallet lists newest first) and deterministic per source."""
    stamp = calendar.utc(issued_at).strftime("%Y%m%d%H%M%S")
    digest = hashlib.sha256(source_key.encode()).hexdigest()[:16]
    return f"c{stamp}{digest}"


class Coupon(BaseModel):
    """An instance: one member's coupon, with its template's terms as issued."""

    model_config = ConfigDict(frozen=True)

    coupon_id: str
    member_id: str
    template_id: str
    terms: CouponTerms
    shard: int
    source: str
    status: Literal["available", "held", "used"] = "available"
    issued_at: datetime
    valid_from: datetime
    valid_until: datetime
    order_id: str | None = None
    used_at: datetime | None = None
    version: int = 0

    def status_at(self, now: datetime) -> Status:
        if self.status == "available" and calendar.utc(now) > self.valid_until:
            return "expired"
        return self.status

    def in_window(self, now: datetime) -> bool:
        return self.valid_from <= calendar.utc(now) <= self.valid_until


class CouponSummary(ApiModel):
    """The operator's view of a member's coupons: how many in each status, now."""

    available: int = 0
    held: int = 0
    used: int = 0
    expired: int = 0
    total: int = 0


def summarize(coupons: list[Coupon], now: datetime) -> CouponSummary:
    counts = {"available": 0, "held": 0, "used": 0, "expired": 0}
    for coupon in coupons:
        counts[coupon.status_at(now)] += 1
    return CouponSummary(**counts, total=len(coupons))


def issue(template: Template, member_id: str, *, shard: int, source: str, source_key: str,
          now: datetime, tz: str) -> Coupon:
    start, end = validity_of(template.spec, now, tz)
    return Coupon(coupon_id=coupon_id_for(source_key, now), member_id=member_id,
                  template_id=template.template_id, terms=template.spec.terms(), shard=shard,
                  source=source, issued_at=calendar.utc(now), valid_from=start,
                  valid_until=end)


def pick_shard(shards: list[Shard], salt: int) -> Shard:
    """A shard with stock left, spread by `salt` (random per attempt); raises when none."""
    open_ = [s for s in shards if s.remaining > 0 and not s.paused]
    if not open_:
        raise CouponOutOfStock("no coupons of this template are left")
    return open_[salt % len(open_)]


class ClaimRequest(ApiModel):
    template_id: TemplateId = Field(alias="templateId")


class CouponView(ApiModel):
    coupon_id: str = Field(alias="couponId")
    template_id: str = Field(alias="templateId")
    status: Status
    source: str
    terms: dict
    issued_at: str = Field(alias="issuedAt")
    valid_from: str = Field(alias="validFrom")
    valid_until: str = Field(alias="validUntil")
    order_id: str | None = Field(alias="orderId", default=None)
    used_at: str | None = Field(alias="usedAt", default=None)


class CouponPage(ApiModel):
    coupons: list[CouponView]
    next_cursor: str | None = Field(alias="nextCursor", default=None)


def coupon_view(coupon: Coupon, now: datetime, tz: str) -> dict:
    return CouponView(
        couponId=coupon.coupon_id, templateId=coupon.template_id,
        status=coupon.status_at(now), source=coupon.source,
        terms=coupon.terms.model_dump(mode="json", by_alias=True, exclude_none=True),
        issuedAt=calendar.wire(coupon.issued_at, tz),
        validFrom=calendar.wire(coupon.valid_from, tz),
        validUntil=calendar.wire(coupon.valid_until, tz), orderId=coupon.order_id,
        usedAt=calendar.wire(coupon.used_at, tz),
    ).model_dump(mode="json", by_alias=True, exclude_none=True)


def issued_event(coupon: Coupon, tz: str) -> dict:
    """The detail of `coupon.issued` (events/schemas/coupon.issued.json)."""
    return {"couponId": coupon.coupon_id, "memberId": coupon.member_id,
            "templateId": coupon.template_id, "source": coupon.source,
            "validFrom": calendar.wire(coupon.valid_from, tz),
            "validUntil": calendar.wire(coupon.valid_until, tz),
            "issuedAt": calendar.wire(coupon.issued_at, tz)}


def claim_source_key(member_id: str, idempotency_key: str) -> str:
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"coupon.claim:{member_id}:{digest}"


# ---- discounts ----------------------------------------------------------------------

class LineAmount(BaseModel):
    """What a coupon sees of an order line: its identity and its amount so far."""

    model_config = ConfigDict(frozen=True)

    line_id: str
    sku: str
    category: str
    amount: int


class CouponDiscount(BaseModel):
    model_config = ConfigDict(frozen=True)

    coupon_id: str
    discount: int
    lines: tuple[int, ...]  # per order line, zero outside the scope
    free_shipping: bool = False


def in_scope(terms: CouponTerms, line: LineAmount) -> bool:
    scope = terms.scope
    if not scope.categories and not scope.skus:
        return True
    return line.category in scope.categories or line.sku in scope.skus


def _allocate(total: int, weights: list[int]) -> list[int]:
    """Largest remainder: shares sum to `total`, none above its weight (total <= sum)."""
    whole = sum(weights)
    if total == 0 or whole == 0:
        return [0] * len(weights)
    shares = [total * w // whole for w in weights]
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in order[:total - sum(shares)]:
        shares[i] += 1
    return shares


def discount_of(coupon: Coupon, lines: list[LineAmount], left: list[int], *,
                store_id: str | None, now: datetime | None) -> CouponDiscount:
    """One coupon on lines whose amounts after the tier discount are `lines[i].amount` and
    of which `left[i]` is still payable (after earlier coupons). Raises when it does not
    apply. `now` None: the window was checked already (the coupon is held by the order)."""
    terms, cid = coupon.terms, coupon.coupon_id
    if now is not None and not coupon.in_window(now):
        raise not_applicable(cid, "window", f"coupon {cid} is valid from "
                             f"{calendar.iso(coupon.valid_from)} to "
                             f"{calendar.iso(coupon.valid_until)}")
    if terms.scope.stores and store_id not in terms.scope.stores:
        raise not_applicable(cid, "scope", f"coupon {cid} is for other stores")
    mask = [in_scope(terms, line) for line in lines]
    if not any(mask):
        raise not_applicable(cid, "scope", f"no line of this order is in coupon {cid}'s scope")
    base = sum(line.amount for line, m in zip(lines, mask) if m)
    if base < terms.min_spend:
        raise not_applicable(cid, "threshold", f"coupon {cid} needs {terms.min_spend} fen in "
                             f"its scope; the order has {base}", minSpend=terms.min_spend,
                             scopeAmount=base)
    if terms.kind == "amount_off":
        wanted = terms.amount_off or 0
    elif terms.kind == "percent_off":
        wanted = base * (terms.percent_off_bps or 0) // BPS
        if terms.max_discount is not None:
            wanted = min(wanted, terms.max_discount)
    else:
        wanted = 0
    weights = [room if m else 0 for room, m in zip(left, mask)]
    discount = min(wanted, sum(weights))
    return CouponDiscount(coupon_id=cid, discount=discount,
                          lines=tuple(_allocate(discount, weights)),
                          free_shipping=terms.kind == "free_shipping")


def check_stacking(coupons: list[Coupon]) -> None:
    plain = [c.coupon_id for c in coupons if not c.terms.stackable]
    if len(plain) > 1:
        raise not_applicable(plain[1], "stacking", "at most one non-stackable coupon per order",
                             nonStackable=plain)


def check_usable(coupon: Coupon | None, coupon_id: str, member_id: str, now: datetime,
                 order_id: str | None = None) -> Coupon:
    """The coupon exists, is this member's, and is available (or held by this order)."""
    if coupon is None or coupon.member_id != member_id:
        raise not_applicable(coupon_id, "owner", f"the member has no coupon {coupon_id}")
    status = coupon.status_at(now)
    if status == "available" or (status == "held" and order_id is not None
                                 and coupon.order_id == order_id):
        return coupon
    if status in ("held", "used"):
        raise CouponInUse(f"coupon {coupon_id} is {status} by another order",
                          couponId=coupon_id, reason="status", couponStatus=status)
    raise not_applicable(coupon_id, "status", f"coupon {coupon_id} is {status}",
                         couponStatus=status)


def apply_coupons(coupons: list[Coupon], lines: list[LineAmount], *, store_id: str | None,
                  now: datetime | None) -> list[CouponDiscount]:
    """Every coupon in order (the non-stackable one first), each on what is left."""
    if len({c.coupon_id for c in coupons}) != len(coupons):
        raise InvalidRequest("a coupon is named twice")
    check_stacking(coupons)
    ordered = sorted(coupons, key=lambda c: c.terms.stackable)  # stable: request order kept
    left = [line.amount for line in lines]
    out = []
    for coupon in ordered:
        d = discount_of(coupon, lines, left, store_id=store_id, now=now)
        left = [a - b for a, b in zip(left, d.lines)]
        out.append(d)
    return out


def line_totals(discounts: list[CouponDiscount], count: int) -> list[int]:
    return [sum(d.lines[i] for d in discounts) for i in range(count)]


class ApplicableCoupon(ApiModel):
    coupon_id: str = Field(alias="couponId")
    template_id: str = Field(alias="templateId")
    name: str
    kind: Kind
    discount: int = Field(description="fen this coupon alone would take off these lines")
    stackable: bool
    free_shipping: bool = Field(alias="freeShipping")
    valid_until: str = Field(alias="validUntil")


def applicable_coupons(wallet: list[Coupon], lines: list[LineAmount], *,
                       store_id: str | None, now: datetime, tz: str) -> list[ApplicableCoupon]:
    """The member's usable coupons for these lines, best first (largest discount, then the
    soonest to expire, then the id)."""
    found = []
    left = [line.amount for line in lines]
    for coupon in wallet:
        if coupon.status_at(now) != "available":
            continue
        try:
            d = discount_of(coupon, lines, left, store_id=store_id, now=now)
        except CouponNotApplicable:
            continue
        found.append((coupon, d))
    found.sort(key=lambda cd: (-cd[1].discount, cd[0].valid_until, cd[0].coupon_id))
    return [ApplicableCoupon(couponId=c.coupon_id, templateId=c.template_id, name=c.terms.name,
                             kind=c.terms.kind, discount=d.discount,
                             stackable=c.terms.stackable, freeShipping=d.free_shipping,
                             validUntil=calendar.wire(c.valid_until, tz))
            for c, d in found]


# ---- the default templates ----------------------------------------------------------

def default_templates() -> tuple[TemplateSpec, ...]:
    """The templates the default program's gift packs name (design brief)."""
    return (
        TemplateSpec(templateId="WELCOME-10OFF100", name="10 yuan off 100 (welcome)",
                     kind="amount_off", amountOff=1_000, minSpend=10_000, validDays=30,
                     stock=1_000_000, perMemberLimit=1),
        TemplateSpec(templateId="V3-5PCT", name="5% off, up to 50 yuan (Gold upgrade)",
                     kind="percent_off", percentOffBps=500, maxDiscount=5_000, validDays=30,
                     stock=1_000_000, perMemberLimit=1),
        TemplateSpec(templateId="BIRTHDAY-20OFF100", name="20 yuan off 100 (birthday)",
                     kind="amount_off", amountOff=2_000, minSpend=10_000, validDays=30,
                     stock=1_000_000, perMemberLimit=100),
        TemplateSpec(templateId="PLUS-10OFF100", name="10 yuan off 100 (PLUS monthly)",
                     kind="amount_off", amountOff=1_000, minSpend=10_000, validDays=30,
                     stock=1_000_000, perMemberLimit=240),
    )
