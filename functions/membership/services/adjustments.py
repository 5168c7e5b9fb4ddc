"""An operator adjusts one member's points, growth or bonus: one posting, one write call.

The posting's guard `adjustment:<adjustmentId>` keeps the first answer and a hash of the
request, so a retry answers again and a reused id with another body is refused. The
audit record rides in the same transaction.
"""
from __future__ import annotations

from datetime import UTC, datetime

from membership.domain import adjustments as rules
from membership.domain.adjustments import AdjustmentIdReused, AdjustmentRequest
from membership.domain.ledger import LedgerState, PostingBuilder
from membership.domain.tiers import upgrade_if_qualified
from membership.storage import admin_members as audit
from membership.storage import ledger
from membership.storage.program import load_program


def _now() -> datetime:
    return datetime.now(UTC)


def adjust(member_id: str, request: AdjustmentRequest, *, actor: str,
           now: datetime | None = None) -> tuple[dict, bool]:
    """(result, replayed)"""
    program = load_program()
    rules.check_reason_code(program, request.reason_code)
    digest = rules.request_hash(member_id, request)
    source_key = rules.source_key(request.adjustment_id)

    def build(state: LedgerState):
        builder = PostingBuilder(state, program, source_key=source_key,
                                 source_type="adjustment", reason=request.reason_code,
                                 actor=actor, now=now or _now())
        rules.apply_adjustment(builder, program, request, upgrade=upgrade_if_qualified)
        builder.result["requestHash"] = digest
        return builder.build()

    def extra(posting):
        r = posting.result
        return (audit.audit_extra(audit.audit_item(
            member_id, "adjustment", actor, posting.created_at, reason=request.reason_code,
            details={"adjustmentId": r["adjustmentId"], "asset": r["asset"],
                     "amount": r["amount"], "note": r["note"]},
            discriminator=source_key)),)

    outcome = ledger.post(member_id, source_key, build, extra)
    if outcome.replayed and outcome.result.get("requestHash") != digest:
        raise AdjustmentIdReused(
            f"adjustment {request.adjustment_id} was applied with another body; use a new "
            "adjustmentId for a new adjustment", adjustmentId=request.adjustment_id)
    return rules.public(outcome.result), outcome.replayed
