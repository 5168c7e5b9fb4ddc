"""Member identity items: signup's transaction, profile reads and profile edits."""
from __future__ import annotations

from datetime import datetime

from pynamodb.exceptions import UpdateError

from membership.domain.ledger import Posting
from membership.domain.members import BirthdayAlreadySet, Member, ProfileUpdate
from membership.errors import MemberClosed, MemberNotFound, PhoneTaken, Unavailable
from membership.storage.ledger import AlreadyApplied, ExtraItem, commit
from membership.storage.models import MemberItem, PhoneItem, SubjectItem
from membership.storage.table import Retry, with_retries

_THROTTLED = {"ThrottlingException", "ProvisionedThroughputExceededException",
              "TransactionConflict", "TransactionConflictException"}


def get_member(member_id: str, *, consistent: bool = False,
               include_closed: bool = False) -> Member:
    """One GetItem: the member item carries everything the profile shows. A closed
    account (domain/privacy.py) is not found, unless the caller reads the kept ledger."""
    try:
        member = MemberItem.get(*MemberItem.key(member_id),
                                consistent_read=consistent).to_domain()
    except MemberItem.DoesNotExist:
        raise MemberNotFound("no member for this subject; sign up first") from None
    if member.status == "closed" and not include_closed:
        raise MemberClosed("this account was closed", memberId=member_id)
    return member


def create_member(posting: Posting, extra: tuple[ExtraItem, ...] = ()) -> bool:
    """Member, phone, subject, signup gift and guard in one transaction.

    True when created; False when this subject already had a member (nothing written).
    A phone held by another member raises PhoneTaken.
    """
    member = posting.member
    phone = ExtraItem(
        model=PhoneItem(*PhoneItem.key(member.phone), member_id=member.member_id,
                        subject=member.subject),
        condition=PhoneItem.PK.does_not_exist(),
        on_condition_failed=lambda: PhoneTaken("this phone belongs to another member"),
    )
    subject = ExtraItem(
        model=SubjectItem(*SubjectItem.key(member.subject), member_id=member.member_id),
        condition=SubjectItem.PK.does_not_exist(),
        on_condition_failed=AlreadyApplied,
    )

    def attempt() -> bool:
        try:
            commit(posting, new_member=True, extra=(phone, subject, *extra))
        except AlreadyApplied:
            return False
        return True

    return with_retries(attempt, lambda: Unavailable("signup stayed contended; try again"))


def update_profile(member_id: str, update: ProfileUpdate, now: datetime) -> Member:
    """Profile fields only: one UpdateItem that returns the new item, no read. A consent
    change goes through services/members.edit_profile (tag index and record with it)."""
    item = MemberItem(*MemberItem.key(member_id))
    actions = [MemberItem.updated_at.set(now)]
    changes = update.model_dump(exclude_unset=True)
    if "nickname" in changes:
        actions.append(MemberItem.nickname.set(changes["nickname"]))
    if "store_id" in changes:
        actions.append(MemberItem.store_id.set(changes["store_id"])
                       if changes["store_id"] is not None else MemberItem.store_id.remove())
    condition = MemberItem.PK.exists() & (MemberItem.status != "closed")
    if changes.get("birthday") is not None:
        birthday = changes["birthday"].isoformat()
        actions.append(MemberItem.birthday.set(birthday))
        # Set once: the same date again is a no-op, another date is refused.
        condition &= MemberItem.birthday.does_not_exist() | (MemberItem.birthday == birthday)
    if "gender" in changes:
        actions.append(MemberItem.gender.set(changes["gender"])
                       if changes["gender"] is not None else MemberItem.gender.remove())

    def why_refused() -> Exception:
        try:
            current = MemberItem.get(*MemberItem.key(member_id), consistent_read=True)
        except MemberItem.DoesNotExist:
            return MemberNotFound("no member for this subject; sign up first")
        if current.status == "closed":
            return MemberClosed("this account was closed", memberId=member_id)
        if current.birthday is not None:
            return BirthdayAlreadySet("the birthday is set once; it cannot change",
                                      birthday=current.birthday)
        return Retry()

    def attempt() -> Member:
        try:
            item.update(actions=actions, condition=condition)
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise why_refused() from None
            if exc.cause_response_code in _THROTTLED:
                raise Retry() from None
            raise
        return item.to_domain()

    return with_retries(attempt, lambda: Unavailable("profile update stayed contended"))
