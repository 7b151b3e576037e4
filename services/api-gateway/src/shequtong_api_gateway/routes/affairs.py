"""Open affairs (居务公开 / 业委连线): elections and owners'-committee formation as tracked processes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import Query
from pydantic import BaseModel, Field

from shequtong.boards.v1 import boards_pb2
from shequtong_api_gateway.deps import SignedIn
from shequtong_api_gateway.routes.posts import page_request
from shequtong_api_gateway.routing import gateway_router
from shequtong_kit.proto import from_ts

router = gateway_router(tags=["affairs"])

Kind = Literal["election", "owners_committee_formation"]
KINDS = {
    "election": boards_pb2.AFFAIR_KIND_ELECTION,
    "owners_committee_formation": boards_pb2.AFFAIR_KIND_OWNERS_COMMITTEE_FORMATION,
}


class AffairIn(BaseModel):
    kind: Kind
    title: str = Field(min_length=1, max_length=80, examples=["第十二届居委会换届选举"])
    purpose: str = Field(min_length=1, max_length=5000, examples=["依法选举产生新一届居民委员会"])
    policy_basis: str = Field(default="", max_length=5000, examples=["《中华人民共和国城市居民委员会组织法》"])
    procedure: str = Field(default="", max_length=5000, examples=["选民登记→候选人提名→投票选举→结果公示"])


class StageIn(BaseModel):
    to_stage: str = Field(min_length=1, max_length=32, examples=["voter_registration"])
    note: str = Field(default="", max_length=1000)


class CandidateIn(BaseModel):
    name: str = Field(min_length=1, max_length=40, examples=["刘*"])
    person_id: str | None = Field(default=None, max_length=64)
    statement: str = Field(default="", max_length=5000)


class CandidateResultIn(BaseModel):
    candidate_id: str = Field(min_length=1, max_length=36)
    votes: int = Field(ge=0, le=2_147_483_647)
    elected: bool = False


class ResultIn(BaseModel):
    summary: str = Field(min_length=1, max_length=5000, examples=["参选率92%，选举有效"])
    results: list[CandidateResultIn] = Field(default_factory=list, max_length=100)


class StageOut(BaseModel):
    key: str
    name: str
    reached_at: datetime | None
    actor_id: str | None
    note: str


class CandidateOut(BaseModel):
    id: str
    name: str
    person_id: str | None
    statement: str
    votes: int
    elected: bool


class AffairOut(BaseModel):
    id: str
    neighbourhood_id: str
    kind: Kind
    board_id: str
    post_id: str = Field(description="The post members follow")
    title: str
    purpose: str
    policy_basis: str
    procedure: str
    stage: str
    stages: list[StageOut]
    candidates: list[CandidateOut]
    result_summary: str
    completed: bool
    created_by: str
    created_at: datetime | None
    updated_at: datetime | None


class AffairPage(BaseModel):
    items: list[AffairOut]
    next_cursor: str | None


def affair_out(a: boards_pb2.Affair) -> AffairOut:
    return AffairOut(
        id=a.id,
        neighbourhood_id=a.neighbourhood_id,
        kind="owners_committee_formation"
        if a.kind == boards_pb2.AFFAIR_KIND_OWNERS_COMMITTEE_FORMATION
        else "election",
        board_id=a.board_id,
        post_id=a.post_id,
        title=a.title,
        purpose=a.purpose,
        policy_basis=a.policy_basis,
        procedure=a.procedure,
        stage=a.stage,
        stages=[
            StageOut(key=s.key, name=s.name, reached_at=from_ts(s.reached_at), actor_id=s.actor_id or None, note=s.note)
            for s in a.stages
        ],
        candidates=[
            CandidateOut(
                id=c.id,
                name=c.name,
                person_id=c.person_id or None,
                statement=c.statement,
                votes=c.votes,
                elected=c.elected,
            )
            for c in a.candidates
        ],
        result_summary=a.result_summary,
        completed=a.completed,
        created_by=a.created_by,
        created_at=from_ts(a.created_at),
        updated_at=from_ts(a.updated_at),
    )


@router.post(
    "/v1/neighbourhoods/{neighbourhood_id}/affairs",
    status_code=201,
    response_model=AffairOut,
    summary="Publish an election or owners'-committee formation (the committee)",
)
async def create_affair(neighbourhood_id: str, body: AffairIn, caller: SignedIn) -> AffairOut:
    reply = await caller.call(
        caller.clients.boards.CreateAffair,
        boards_pb2.CreateAffairRequest(
            neighbourhood_id=neighbourhood_id,
            kind=KINDS[body.kind],
            title=body.title,
            purpose=body.purpose,
            policy_basis=body.policy_basis,
            procedure=body.procedure,
        ),
    )
    return affair_out(reply.affair)


@router.get("/v1/neighbourhoods/{neighbourhood_id}/affairs", response_model=AffairPage, summary="Open affairs")
async def list_affairs(
    neighbourhood_id: str,
    caller: SignedIn,
    cursor: str | None = Query(default=None, max_length=400),
    page_size: int = Query(default=20, ge=1, le=100),
) -> AffairPage:
    reply = await caller.call(
        caller.clients.boards.ListAffairs,
        boards_pb2.ListAffairsRequest(neighbourhood_id=neighbourhood_id, page=page_request(cursor, page_size)),
    )
    return AffairPage(items=[affair_out(a) for a in reply.affairs], next_cursor=reply.page.next_cursor or None)


@router.get("/v1/affairs/{affair_id}", response_model=AffairOut, summary="An affair with every stage")
async def get_affair(affair_id: str, caller: SignedIn) -> AffairOut:
    reply = await caller.call(caller.clients.boards.GetAffair, boards_pb2.GetAffairRequest(affair_id=affair_id))
    return affair_out(reply.affair)


@router.post("/v1/affairs/{affair_id}/stages", response_model=AffairOut, summary="Move to the next stage")
async def advance_affair(affair_id: str, body: StageIn, caller: SignedIn) -> AffairOut:
    reply = await caller.call(
        caller.clients.boards.AdvanceAffair,
        boards_pb2.AdvanceAffairRequest(affair_id=affair_id, to_stage=body.to_stage, note=body.note),
    )
    return affair_out(reply.affair)


@router.post("/v1/affairs/{affair_id}/candidates", status_code=201, response_model=AffairOut, summary="Add a candidate")
async def add_candidate(affair_id: str, body: CandidateIn, caller: SignedIn) -> AffairOut:
    reply = await caller.call(
        caller.clients.boards.AddCandidate,
        boards_pb2.AddCandidateRequest(
            affair_id=affair_id, name=body.name, person_id=body.person_id or "", statement=body.statement
        ),
    )
    return affair_out(reply.affair)


@router.put("/v1/affairs/{affair_id}/result", response_model=AffairOut, summary="Record the result")
async def record_result(affair_id: str, body: ResultIn, caller: SignedIn) -> AffairOut:
    reply = await caller.call(
        caller.clients.boards.RecordAffairResult,
        boards_pb2.RecordAffairResultRequest(
            affair_id=affair_id,
            summary=body.summary,
            results=[boards_pb2.CandidateResult(**r.model_dump()) for r in body.results],
        ),
    )
    return affair_out(reply.affair)
