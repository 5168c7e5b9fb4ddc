"""`membership-local reconcile` finds members whose ledgers do not add up."""
from membership.domain.members import SignupRequest, member_id_for
from membership.services import members as member_service
from membership.storage.models import MemberItem
from membership_local.reconcile import member_ids, run_reconcile


def _signup(sub, phone):
    member_service.signup(sub, SignupRequest(phone=phone, nickname="r", channel="app"))
    return member_id_for(sub)


def test_clean_ledgers_report_no_breach(table, capsys):
    ids = [_signup("r1", "13800000001"), _signup("r2", "13800000002")]
    assert sorted(member_ids()) == sorted(ids)
    assert run_reconcile(member_ids()) == 0


def test_a_balance_changed_behind_the_ledgers_back_is_a_breach(table, capsys):
    good, bad = _signup("r1", "13800000001"), _signup("r2", "13800000002")
    item = MemberItem.get(*MemberItem.key(bad))
    item.update(actions=[MemberItem.points_available.set(99)])
    assert run_reconcile([good, bad]) == 1
    out = capsys.readouterr().out
    assert f"{bad}: points.available expected 100, found 99" in out
    assert good not in out
