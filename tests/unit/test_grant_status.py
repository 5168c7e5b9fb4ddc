"""A grant's status from its chunks' tallies, with a tag grant's expansion in the way."""
from membership.domain.grants import ChunkProgress, status_of


def tallies(n):
    return [ChunkProgress(chunk=i, total=1, done=1, failed=0) for i in range(n)]


def test_a_member_list_grant_completes_when_every_chunk_reported():
    assert [status_of(3, tallies(n)) for n in range(4)] == [
        "queued", "running", "running", "completed"]


def test_a_tag_grant_is_not_completed_while_its_segment_is_being_expanded():
    # Every chunk expanded so far has reported, but more pages may follow.
    assert status_of(2, tallies(2), expanded=False) == "running"
    assert status_of(0, [], expanded=False) == "queued"


def test_an_expanded_tag_grant_with_no_member_is_completed():
    assert status_of(0, [], expanded=True) == "completed"
