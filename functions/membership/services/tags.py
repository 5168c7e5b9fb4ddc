"""Tags and segments: operators' manual tags, the rules' re-evaluation outside a posting,
a segment's pages, and the list of a tag's members that other capabilities call."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from membership.domain import tags as rules
from membership.domain.program import Program
from membership.domain.tags import MemberFacts, MemberTags, SegmentMember, SegmentPage
from membership.storage import tags as store
from membership.storage.program import load_program

DEFAULT_PAGE = 100


def _now() -> datetime:
    return datetime.now(UTC)


def _view(member, program: Program) -> MemberTags:
    return MemberTags(memberId=member.member_id,
                      tags=rules.tag_views(member.tags, program.time_zone))


def put_tag(member_id: str, tag: str, now: datetime | None = None) -> MemberTags:
    """An operator's tag (idempotent: the same tag again changes nothing)."""
    now = now or _now()
    program = load_program()
    rules.check_tag(tag)

    def change(member):
        tags = rules.add_manual(member.tags, tag, program, now)
        if tags == member.tags:
            return member
        return member.model_copy(update={"tags": tags, "updated_at": now})

    _, after = store.change_member(member_id, change, what="tagging")
    return _view(after, program)


def delete_tag(member_id: str, tag: str, now: datetime | None = None) -> MemberTags:
    """Remove an operator's tag (removing one the member does not carry changes nothing)."""
    now = now or _now()
    program = load_program()
    rules.check_tag(tag)

    def change(member):
        tags = rules.remove_manual(member.tags, tag, program)
        if tags == member.tags:
            return member
        return member.model_copy(update={"tags": tags, "updated_at": now})

    _, after = store.change_member(member_id, change, what="untagging")
    return _view(after, program)


def member_tags(member_id: str) -> MemberTags:
    return _view(store.read_member(member_id), load_program())


def segment(tag: str, limit: int = DEFAULT_PAGE, cursor: str | None = None) -> SegmentPage:
    """A page of the members carrying `tag` who consent to marketing."""
    rules.check_tag(tag)
    members, next_cursor, _ = store.segment_page(tag, limit, cursor)
    return SegmentPage(tag=tag, members=[SegmentMember(memberId=m) for m in members],
                       nextCursor=next_cursor)


def members_with_tag(tag: str) -> Iterator[str]:
    """Every member id carrying `tag` who consents to marketing, page by page (one query
    per shard): what a bulk grant to a tag iterates."""
    rules.check_tag(tag)
    return store.iter_tag_members(tag)


def retag(facts: MemberFacts, program: Program, now: datetime) -> tuple[int, int]:
    """The rules again for one member outside any posting (the settlement's scan found its
    rule tags out of date); (added, removed). Writes only if the fresh member differs."""
    if rules.evaluate(facts, program, now) == facts.tags:
        return 0, 0

    def change(member):
        tags = rules.evaluate(rules.facts_of(member), program, now)
        if tags == member.tags:
            return member
        return member.model_copy(update={"tags": tags, "updated_at": now})

    before, after = store.change_member(facts.member_id, change, what="re-tagging")
    return rules.diff(before.tags, after.tags)
