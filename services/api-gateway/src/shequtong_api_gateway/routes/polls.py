"""Polls on posts: single or multiple choice, one ballot per resident or per household."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field

from shequtong.boards.v1 import boards_pb2
from shequtong_api_gateway.deps import SignedIn
from shequtong_api_gateway.routing import gateway_router
from shequtong_kit.proto import from_ts, ts

router = gateway_router(tags=["polls"])

Kind = Literal["single", "multiple"]
KINDS = {"single": boards_pb2.POLL_KIND_SINGLE, "multiple": boards_pb2.POLL_KIND_MULTIPLE}
Basis = Literal["resident", "household"]
BASES = {"resident": boards_pb2.VOTE_BASIS_RESIDENT, "household": boards_pb2.VOTE_BASIS_HOUSEHOLD}


class PollIn(BaseModel):
    question: str = Field(min_length=1, max_length=200, examples=["周末是否开放活动室？"])
    options: list[str] = Field(min_length=2, max_length=20, examples=[["开放", "不开放"]])
    kind: Kind = "single"
    max_choices: int = Field(default=0, ge=0, le=20, description="Multiple choice: most options per ballot (0 = all)")
    basis: Basis = Field(default="resident", description="One ballot per verified resident, or per household")
    hide_results_until_close: bool = False
    opens_at: AwareDatetime | None = Field(default=None, description="Default: now")
    closes_at: AwareDatetime = Field(examples=["2026-12-01T12:00:00+08:00"])


class VoteIn(BaseModel):
    option_ids: list[str] = Field(min_length=1, max_length=20)


class OptionOut(BaseModel):
    id: str
    label: str
    votes: int = Field(description="Zero while results are hidden")


class PollOut(BaseModel):
    id: str
    post_id: str
    board_id: str
    neighbourhood_id: str | None
    topic_id: str | None
    question: str
    kind: Kind
    max_choices: int
    basis: Basis
    hide_results_until_close: bool
    opens_at: datetime | None
    closes_at: datetime | None
    closed_at: datetime | None
    created_by: str
    created_at: datetime | None
    options: list[OptionOut]
    is_open: bool
    is_closed: bool
    results_visible: bool
    ballot_count: int
    my_choice_ids: list[str]


def poll_out(p: boards_pb2.Poll) -> PollOut:
    return PollOut(
        id=p.id,
        post_id=p.post_id,
        board_id=p.board_id,
        neighbourhood_id=p.neighbourhood_id or None,
        topic_id=p.topic_id or None,
        question=p.question,
        kind="multiple" if p.kind == boards_pb2.POLL_KIND_MULTIPLE else "single",
        max_choices=p.max_choices,
        basis="household" if p.basis == boards_pb2.VOTE_BASIS_HOUSEHOLD else "resident",
        hide_results_until_close=p.hide_results_until_close,
        opens_at=from_ts(p.opens_at),
        closes_at=from_ts(p.closes_at),
        closed_at=from_ts(p.closed_at),
        created_by=p.created_by,
        created_at=from_ts(p.created_at),
        options=[OptionOut(id=o.id, label=o.label, votes=o.votes) for o in p.options],
        is_open=p.is_open,
        is_closed=p.is_closed,
        results_visible=p.results_visible,
        ballot_count=p.ballot_count,
        my_choice_ids=list(p.my_choice_ids),
    )


@router.post("/v1/posts/{post_id}/polls", status_code=201, response_model=PollOut, summary="Add a poll to a post")
async def create_poll(post_id: str, body: PollIn, caller: SignedIn) -> PollOut:
    request = boards_pb2.CreatePollRequest(
        post_id=post_id,
        question=body.question,
        options=body.options,
        kind=KINDS[body.kind],
        max_choices=body.max_choices,
        basis=BASES[body.basis],
        hide_results_until_close=body.hide_results_until_close,
        closes_at=ts(body.closes_at),
    )
    if body.opens_at is not None:
        request.opens_at.CopyFrom(ts(body.opens_at))
    reply = await caller.call(caller.clients.boards.CreatePoll, request)
    return poll_out(reply.poll)


@router.get("/v1/polls/{poll_id}", response_model=PollOut, summary="A poll, with results when they may be shown")
async def get_poll(poll_id: str, caller: SignedIn) -> PollOut:
    reply = await caller.call(caller.clients.boards.GetPoll, boards_pb2.GetPollRequest(poll_id=poll_id))
    return poll_out(reply.poll)


@router.post("/v1/polls/{poll_id}/votes", status_code=201, response_model=PollOut, summary="Vote (once)")
async def vote(poll_id: str, body: VoteIn, caller: SignedIn) -> PollOut:
    reply = await caller.call(
        caller.clients.boards.CastVote, boards_pb2.CastVoteRequest(poll_id=poll_id, option_ids=body.option_ids)
    )
    return poll_out(reply.poll)


@router.post("/v1/polls/{poll_id}/close", response_model=PollOut, summary="Close a poll early")
async def close_poll(poll_id: str, caller: SignedIn) -> PollOut:
    reply = await caller.call(caller.clients.boards.ClosePoll, boards_pb2.ClosePollRequest(poll_id=poll_id))
    return poll_out(reply.poll)
