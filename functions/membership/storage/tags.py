"""Tag items: the sparse, sharded index of who carries a tag, and member-only changes.

PK            SK          GSI1PK (only while the member consents)   GSI1SK
MEMBER#<id>   TAG#<tag>   TAG#<tag>#<shard>                         <memberId>

Each tag a member carries (`Member.tags`) is mirrored by one small item in the member's
own partition, written in the same transaction as the member item that adds or removes it
(`index_changes`, called by every ledger commit). While the member consents to marketing
the item carries GSI1 keys, so a segment is one query per shard of GSI1 (keys only, never
a scan); a member who withdrew consent keeps the items but leaves the index. Shards keep
a popular tag (`new_member` on a signup day) off a single index partition.
"""
from __future__ import annotations

import base64
import json
from collections.abc import Iterator

from pynamodb.attributes import UnicodeAttribute
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from membership.domain import calendar
from membership.domain.members import Member
from membership.domain.tag_rules import TagMark
from membership.domain.tags import MemberFacts
from membership.errors import InvalidRequest, MemberNotFound, Unavailable
from membership.storage.models import (
    MemberItem,
    TimeAttribute,
    hash_shard,
    member_pk,
    stats_from_json,
    tags_from_json,
)
from membership.storage.table import Retry, TableModel, connection, with_retries

TAG_SHARDS = 16
TAG_INDEX = "TAG"  # GSI1PK prefix; the due-work prefixes (HOLDS, PENDING) never collide
MAX_PAGE = 1000


class InvalidCursor(InvalidRequest):
    code = "invalid_cursor"


def index_pk(tag: str, shard: int) -> str:
    return f"{TAG_INDEX}#{tag}#{shard}"


class TagItem(TableModel):
    member_id = UnicodeAttribute(attr_name="memberId")
    tag = UnicodeAttribute()
    source = UnicodeAttribute()
    since = TimeAttribute()
    program_id = UnicodeAttribute(attr_name="programId", default="default")
    GSI1PK = UnicodeAttribute(null=True)
    GSI1SK = UnicodeAttribute(null=True)

    @staticmethod
    def key(member_id: str, tag: str) -> tuple[str, str]:
        return member_pk(member_id), f"TAG#{tag}"

    @classmethod
    def of(cls, member_id: str, tag: str, mark: TagMark, *, listed: bool) -> TagItem:
        item = cls(*cls.key(member_id, tag), member_id=member_id, tag=tag, source=mark.source,
                   since=mark.since)
        if listed:
            item.GSI1PK = index_pk(tag, hash_shard(member_id, TAG_SHARDS))
            item.GSI1SK = member_id
        return item


def index_changes(before: Member, after: Member) -> list[tuple[str, TagItem]]:
    """("put" | "delete", item) for every tag item that must change with the member."""
    changes = []
    consent_moved = before.marketing_consent != after.marketing_consent
    for tag in sorted(before.tags.keys() | after.tags.keys()):
        old, new = before.tags.get(tag), after.tags.get(tag)
        if new is None:
            changes.append(("delete", TagItem(*TagItem.key(after.member_id, tag))))
        elif old != new or consent_moved:
            changes.append(("put", TagItem.of(after.member_id, tag, new,
                                              listed=after.marketing_consent)))
    return changes


def member_tags(member_id: str) -> list[TagItem]:
    """The tag items of one member (the tests compare them with the member item)."""
    return list(TagItem.query(member_pk(member_id), TagItem.SK.startswith("TAG#"),
                              consistent_read=True))


# ---- changes that are no ledger posting --------------------------------------------------

def read_member(member_id: str) -> Member:
    try:
        return MemberItem.get(*MemberItem.key(member_id), consistent_read=True).to_domain()
    except MemberItem.DoesNotExist:
        raise MemberNotFound(f"no member {member_id}") from None


def commit_member_change(before: Member, after: Member, also_update=(), also_put=()) -> bool:
    """The member's changed fields and its tag items in one transaction, conditional on the
    version read (which moves on, so a posting built on the old state retries).
    `also_update`: (item, actions) pairs written in the same transaction (the backfill's
    count of members it wrote, so that a crash can neither lose nor repeat one);
    `also_put`: new items written with it (a consent statement's record).

    False when nothing changed (nothing written); raises Retry when the member moved."""
    if after.model_copy(update={"version": before.version}) == before:
        return False
    after = after.model_copy(update={"version": before.version + 1})
    actions = MemberItem.changed_actions(before, after)
    t = TransactWrite(connection=connection())
    t.update(MemberItem(*MemberItem.key(before.member_id)), actions=actions,
             condition=MemberItem.version == before.version)
    for kind, item in index_changes(before, after):
        if kind == "delete":
            t.delete(item)
        else:
            t.save(item)
    for item, item_actions in also_update:
        t.update(item, actions=item_actions)
    for item in also_put:
        t.save(item, condition=type(item).PK.does_not_exist())
    try:
        t._commit()
    except TransactWriteError:
        raise Retry() from None
    return True


def change_member(member_id: str, change, *, what: str, also_update=(), also_put=()
                  ) -> tuple[Member, Member]:
    """Read the member, apply `change(member) -> member`, commit; (before, after).
    `also_update` and `also_put` ride in the commit's transaction (commit_member_change)."""

    def attempt() -> tuple[Member, Member]:
        before = read_member(member_id)
        after = change(before)
        if after == before:
            return before, before
        commit_member_change(before, after, also_update, also_put)
        return before, after

    return with_retries(attempt, lambda: Unavailable(f"{what} stayed contended; try again",
                                                     member_id=member_id))


# ---- segments -----------------------------------------------------------------------------

def encode_cursor(shard: int, last_key: dict | None) -> str:
    text = json.dumps({"s": shard, "k": last_key}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, tag: str) -> tuple[int, dict | None]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        shard, key = int(raw["s"]), raw["k"]
        if not 0 <= shard < TAG_SHARDS:
            raise ValueError("shard")
        if key is not None:
            # Only a key of this tag's index: a cursor is no way to read other items.
            if (not isinstance(key, dict) or set(key) != {"PK", "SK", "GSI1PK", "GSI1SK"}
                    or key["GSI1PK"] != {"S": index_pk(tag, shard)}
                    or any(set(v) != {"S"} or not isinstance(v["S"], str)
                           for v in key.values())):
                raise ValueError("key")
        return shard, key
    except (ValueError, KeyError, TypeError, json.JSONDecodeError, UnicodeDecodeError,
            base64.binascii.Error):
        raise InvalidCursor("the cursor is not one this segment handed out") from None


def segment_page(tag: str, limit: int, cursor: str | None
                 ) -> tuple[list[str], str | None, int]:
    """Member ids carrying `tag` (consenting members only), shard by shard.

    (member ids, next cursor or None at the end, queries issued). One query per shard
    touched; a shard that fills the page is resumed from its key by the next cursor."""
    shard, key = decode_cursor(cursor, tag) if cursor else (0, None)
    client = connection().client
    from membership.config import get_settings

    table = get_settings().table_name
    members: list[str] = []
    queries = 0
    while shard < TAG_SHARDS and len(members) < limit:
        request = {
            "TableName": table, "IndexName": "GSI1",
            "KeyConditionExpression": "GSI1PK = :pk",
            "ExpressionAttributeValues": {":pk": {"S": index_pk(tag, shard)}},
            "Limit": limit - len(members),
        }
        if key:
            request["ExclusiveStartKey"] = key
        page = client.query(**request)
        queries += 1
        members.extend(row["GSI1SK"]["S"] for row in page.get("Items", []))
        key = page.get("LastEvaluatedKey")
        if key is None:
            shard += 1
    if shard >= TAG_SHARDS:
        return members, None, queries
    return members, encode_cursor(shard, key), queries


def iter_tag_members(tag: str, page_size: int = MAX_PAGE) -> Iterator[str]:
    cursor = None
    while True:
        members, cursor, _ = segment_page(tag, page_size, cursor)
        yield from members
        if cursor is None:
            return


# ---- the settlement's scan row ------------------------------------------------------------

# What the rules read from a scanned member row, on top of the settlement's attributes.
SCAN_ATTRIBUTES = ("createdAt", "ordStats", "tags", "topupTotal", "status")


def facts_from_raw(raw: dict) -> MemberFacts:
    plan_end = raw.get("plan", {}).get("M", {}).get("ends_at", {}).get("S")
    return MemberFacts(
        member_id=raw["memberId"]["S"],
        created_at=calendar.parse_iso(raw["createdAt"]["S"]),
        tier_id=raw["tier"]["S"],
        paid_plan_ends_at=calendar.parse_iso(plan_end) if plan_end else None,
        topup_total=int(raw.get("topupTotal", {}).get("N", "0")),
        stats=stats_from_json(raw.get("ordStats", {}).get("S")),
        tags=tags_from_json(raw.get("tags", {}).get("S")),
        closed=raw.get("status", {}).get("S") == "closed",
    )

