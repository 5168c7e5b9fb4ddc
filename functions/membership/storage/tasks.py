"""What task completions read besides the ledger: whether a member paid an order.

A paid order leaves its settlement item (`MEMBER#<memberId>` / `ORDER#<orderId>`) in the
member's own partition, so "an order this member paid" is one GetItem of a key built from
the member id: another member's order, or one not paid yet, is simply not there.
"""
from __future__ import annotations

from membership.storage.models import OrderItem


def paid_order_exists(member_id: str, order_id: str) -> bool:
    try:
        OrderItem.get(*OrderItem.key(member_id, order_id), consistent_read=True,
                      attributes_to_get=["orderId"])
    except OrderItem.DoesNotExist:
        return False
    return True
