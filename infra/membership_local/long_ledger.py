"""A member with a long ledger (e.g. 10,000 entries), for the export's measure and test.

The member signs up through the real service; then `entries` one-point credits, each its
own entry, are written with BatchWriteItem into one lot, and the member item's points are
raised by the same amount: the member item, its entries and its lots still reconcile.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta


def seed_long_ledger(subject: str, phone: str, entries: int, *, threads: int = 4) -> str:
    """Sign up `subject` and give it `entries` more points entries; returns the member id."""
    from membership.config import get_settings
    from membership.domain.ledger import Entry, Lot, entry_sort_id
    from membership.domain.members import SignupRequest, member_id_for
    from membership.services import members
    from membership.storage.ledger import read_live_range
    from membership.storage.models import EntryItem, LotItem, MemberItem
    from membership.storage.table import connection

    from .seed import _batches, write_batch

    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(minutes=entries)
    members.signup(subject, SignupRequest(phone=phone, nickname="Long", channel="app"),
                   now=start - timedelta(minutes=1))
    member_id = member_id_for(subject)
    before = read_live_range(member_id).member.points_available
    source = f"long-ledger:{member_id}"
    lot = Lot(lot_id=f"long-{member_id}", member_id=member_id, amount=entries,
              remaining=entries, earned_at=start, expires_at=now + timedelta(days=700),
              source_key=source)
    items = [LotItem.from_domain(lot).serialize()]
    for i in range(entries):
        at = start + timedelta(minutes=i)
        items.append(EntryItem.from_domain(Entry(
            entry_id=entry_sort_id(at, f"{source}:{i}", 0), member_id=member_id,
            asset="points", bucket="available", amount=1, balance_after=before + i + 1,
            source_type="task", source_key=f"{source}:{i}", reason="task_completed",
            actor="system", created_at=at, effective_at=at, lot_id=lot.lot_id)).serialize())
    client = connection().client
    table = get_settings().table_name
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda batch: write_batch(client, table, batch), _batches(iter(items))))
    MemberItem(*MemberItem.key(member_id)).update(actions=[
        MemberItem.points_available.add(entries), MemberItem.version.add(1)])
    return member_id
