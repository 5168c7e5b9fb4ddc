"""A handler called from several threads at once answers each call with its own request.

Lambda resolves one request per process at a time; the local stack and these tests call
the same handler from several threads, and Powertools keeps the request being resolved
on the resolver. Each thread must see its own event, route arguments and body.
"""
import json
import sys
import threading

from membership.domain.members import member_id_for
from membership.handlers import members as members_handler

THREADS = 16


def test_concurrent_calls_of_one_handler_each_answer_their_own_request(
        table, apigw_event, lambda_context):
    subs = [f"user-{n}" for n in range(THREADS)]
    for n, sub in enumerate(subs):
        response = members_handler.handler(apigw_event(
            "POST", "/v1/members", {"phone": f"139{n:08d}", "nickname": "Before",
                                    "channel": "app"}, sub=sub), lambda_context)
        assert response["statusCode"] == 201
    barrier = threading.Barrier(THREADS)
    answers: dict[str, list] = {sub: [] for sub in subs}

    def run(sub: str) -> None:
        barrier.wait()
        for round_ in range(3):
            patch = members_handler.handler(apigw_event(
                "PATCH", "/v1/members/me", {"nickname": f"{sub}-{round_}"}, sub=sub),
                lambda_context.next_invocation())
            read = members_handler.handler(apigw_event("GET", "/v1/members/me", sub=sub),
                                           lambda_context.next_invocation())
            answers[sub].append((patch["statusCode"], json.loads(patch["body"]),
                                 read["statusCode"], json.loads(read["body"])))

    threads = [threading.Thread(target=run, args=(sub,)) for sub in subs]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so an unsafe resolver shows it
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        sys.setswitchinterval(interval)
    for sub in subs:
        assert len(answers[sub]) == 3
        for round_, (patch_status, patched, read_status, read) in enumerate(answers[sub]):
            assert (patch_status, read_status) == (200, 200)
            assert patched["memberId"] == read["memberId"] == member_id_for(sub)
            assert patched["nickname"] == f"{sub}-{round_}"
            assert read["nickname"] == f"{sub}-{round_}"
