"""Polls over real gRPC: one ballot per resident or household under concurrency, hidden results, closing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import grpc

from shequtong.boards.v1 import boards_pb2 as pb
from shequtong.events.v1 import boards_events_pb2 as ev
from shequtong_kit.proto import ts

MATTERS = "neighbourhood_matters"


async def _poll(system: Any, creator: Any, board: str, **extra: Any) -> pb.Poll:
    post = (
        await creator.call("CreatePost", pb.CreatePostRequest(board_id=board, title="活动室开放时间", body="请投票"))
    ).post
    request = pb.CreatePollRequest(
        post_id=post.id,
        question="周末开放活动室吗？",
        options=["开放", "不开放"],
        kind=pb.POLL_KIND_SINGLE,
        closes_at=ts(system.clock.now() + timedelta(days=2)),
        **extra,
    )
    return (await creator.call("CreatePoll", request)).poll


async def test_each_resident_counts_once_under_concurrent_votes(system: Any, place: Any) -> None:
    cadre = await system.resident(place, "cadre")
    poll = await _poll(system, cadre, place.boards[MATTERS])
    yes = poll.options[0].id
    voters = [await system.resident(place) for _ in range(25)]

    async def vote(voter: Any) -> str:
        try:
            await voter.call("CastVote", pb.CastVoteRequest(poll_id=poll.id, option_ids=[yes]))
            return "ok"
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.ALREADY_EXISTS, exc
            return "again"

    outcomes = await asyncio.gather(*(vote(v) for v in voters for _ in range(2)))
    assert outcomes.count("ok") == 25 and outcomes.count("again") == 25
    seen = (await cadre.call("GetPoll", pb.GetPollRequest(poll_id=poll.id))).poll
    assert seen.ballot_count == 25 and seen.options[0].votes == 25
    mine = (await voters[0].call("GetPoll", pb.GetPollRequest(poll_id=poll.id))).poll
    assert list(mine.my_choice_ids) == [yes]
    events = [e for e in await system.events("boards.poll.voted", ev.VoteCast) if e.poll_id == poll.id]
    assert len(events) == 25 and len({e.person_id for e in events}) == 25


async def test_a_retried_vote_with_its_key_is_the_same_vote(system: Any, place: Any) -> None:
    cadre = await system.resident(place, "cadre")
    poll = await _poll(system, cadre, place.boards[MATTERS])
    voter = await system.resident(place)
    key = uuid.uuid4().hex
    request = pb.CastVoteRequest(poll_id=poll.id, option_ids=[poll.options[1].id])
    first = await voter.call("CastVote", request, key=key)
    second = await voter.call("CastVote", request, key=key)
    assert first.poll.ballot_count == second.poll.ballot_count == 1


async def test_one_ballot_per_household(system: Any, place: Any) -> None:
    cadre = await system.resident(place, "cadre")
    poll = await _poll(system, cadre, place.boards[MATTERS], basis=pb.VOTE_BASIS_HOUSEHOLD)
    household = str(uuid.uuid4())
    husband = await system.resident(place, household=household)
    wife = await system.resident(place, household=household)
    await husband.call("CastVote", pb.CastVoteRequest(poll_id=poll.id, option_ids=[poll.options[0].id]))
    code, reason = await wife.fails("CastVote", pb.CastVoteRequest(poll_id=poll.id, option_ids=[poll.options[1].id]))
    assert (code, reason) == (grpc.StatusCode.ALREADY_EXISTS, "already_voted")
    seen = (await wife.call("GetPoll", pb.GetPollRequest(poll_id=poll.id))).poll
    assert list(seen.my_choice_ids) == [poll.options[0].id] and seen.ballot_count == 1


async def test_only_verified_residents_of_the_neighbourhood_vote(system: Any, place: Any) -> None:
    cadre = await system.resident(place, "cadre")
    poll = await _poll(system, cadre, place.boards[MATTERS])
    volunteer_only = system.person(f"volunteer@n:{place.neighbourhood}")
    code, reason = await volunteer_only.fails(
        "CastVote", pb.CastVoteRequest(poll_id=poll.id, option_ids=[poll.options[0].id])
    )
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "not_a_resident")
    outsider = system.person(f"resident@n:{uuid.uuid4()}")
    code, _ = await outsider.fails("CastVote", pb.CastVoteRequest(poll_id=poll.id, option_ids=[poll.options[0].id]))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    voter = await system.resident(place)
    code, reason = await voter.fails("CastVote", pb.CastVoteRequest(poll_id=poll.id, option_ids=["not-an-option"]))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "ballot_option_unknown")


async def test_results_hidden_until_close_and_no_votes_after(system: Any, place: Any) -> None:
    cadre = await system.resident(place, "cadre")
    poll = await _poll(system, cadre, place.boards[MATTERS], hide_results_until_close=True)
    voter = await system.resident(place)
    await voter.call("CastVote", pb.CastVoteRequest(poll_id=poll.id, option_ids=[poll.options[0].id]))
    hidden = (await cadre.call("GetPoll", pb.GetPollRequest(poll_id=poll.id))).poll
    assert not hidden.results_visible and all(o.votes == 0 for o in hidden.options) and hidden.ballot_count == 1
    other = await system.resident(place)
    code, reason = await other.fails("ClosePoll", pb.ClosePollRequest(poll_id=poll.id))
    assert reason == "poll_close_forbidden"
    closed = (await cadre.call("ClosePoll", pb.ClosePollRequest(poll_id=poll.id))).poll
    assert closed.is_closed and closed.results_visible and closed.options[0].votes == 1
    code, reason = await other.fails("CastVote", pb.CastVoteRequest(poll_id=poll.id, option_ids=[poll.options[1].id]))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "poll_closed")


async def test_poll_validation_and_who_may_add_one(system: Any, place: Any) -> None:
    author = await system.resident(place)
    other = await system.resident(place)
    post = (
        await author.call("CreatePost", pb.CreatePostRequest(board_id=place.boards[MATTERS], title="t", body="b"))
    ).post
    closes = ts(system.clock.now() + timedelta(days=1))
    code, reason = await other.fails(
        "CreatePoll", pb.CreatePollRequest(post_id=post.id, question="q", options=["a", "b"], closes_at=closes)
    )
    assert reason == "poll_create_forbidden"
    code, reason = await author.fails(
        "CreatePoll", pb.CreatePollRequest(post_id=post.id, question="q", options=["a"], closes_at=closes)
    )
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "poll_options_count")
    multiple = await author.call(
        "CreatePoll",
        pb.CreatePollRequest(
            post_id=post.id,
            question="哪些时段？",
            options=["上午", "下午", "晚上"],
            kind=pb.POLL_KIND_MULTIPLE,
            max_choices=2,
            closes_at=closes,
        ),
    )
    ids = [o.id for o in multiple.poll.options]
    code, reason = await other.fails("CastVote", pb.CastVoteRequest(poll_id=multiple.poll.id, option_ids=ids))
    assert reason == "ballot_too_many_choices"
    voted = await other.call("CastVote", pb.CastVoteRequest(poll_id=multiple.poll.id, option_ids=ids[:2]))
    assert [o.votes for o in voted.poll.options] == [1, 1, 0]
    seen = (await author.call("GetPost", pb.GetPostRequest(post_id=post.id))).post
    assert list(seen.poll_ids) == [multiple.poll.id]
