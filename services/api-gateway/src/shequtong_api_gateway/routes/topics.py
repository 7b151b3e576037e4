"""Deliberation (议事): topics from proposal to convention, and the neighbourhood's conventions (公约)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args

from fastapi import Query
from pydantic import AwareDatetime, BaseModel, Field

from shequtong.boards.v1 import boards_pb2
from shequtong_api_gateway.deps import SignedIn
from shequtong_api_gateway.routes.posts import AuthorOut, author_out, page_request
from shequtong_api_gateway.routing import gateway_router
from shequtong_kit.proto import from_ts, ts

router = gateway_router(tags=["deliberation"])

Stage = Literal[
    "proposed",
    "review",
    "consultation",
    "project",
    "implementation",
    "evaluation",
    "convention",
    "declined",
    "concluded",
]
STAGES = {name: getattr(boards_pb2, f"TOPIC_STAGE_{name.upper()}") for name in get_args(Stage)}


def stage_name(value: int) -> Stage:
    return next((k for k, v in STAGES.items() if v == value), "proposed")  # type: ignore[return-value]


class TopicIn(BaseModel):
    title: str = Field(min_length=1, max_length=80, examples=["规范小区夜间停车"])
    description: str = Field(min_length=1, max_length=5000, examples=["夜间车辆占用消防通道，建议划定临停区"])


class MilestoneIn(BaseModel):
    title: str = Field(min_length=1, max_length=100, examples=["划线"])
    due_at: AwareDatetime | None = None


class ProjectIn(BaseModel):
    owner_id: str = Field(min_length=1, max_length=64)
    budget_note: str = Field(default="", max_length=1000, examples=["约8000元，自治金列支"])
    milestones: list[MilestoneIn] = Field(min_length=1, max_length=20)


class ConventionDraftIn(BaseModel):
    title: str = Field(min_length=1, max_length=80, examples=["小区停车公约"])
    text: str = Field(min_length=1, max_length=20000)
    poll_id: str = Field(min_length=1, max_length=36, description="The closed poll that adopted the text")


class TransitionIn(BaseModel):
    to_stage: Stage
    reason: str = Field(min_length=1, max_length=1000, examples=["涉及全体居民利益，予以受理"])
    project: ProjectIn | None = Field(default=None, description="Required when moving to project")
    convention: ConventionDraftIn | None = Field(default=None, description="Required when moving to convention")


class MilestoneUpdate(BaseModel):
    progress: int = Field(ge=0, le=100)
    note: str = Field(default="", max_length=1000)


class RatingIn(BaseModel):
    rating: int = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=500)


class SummaryIn(BaseModel):
    summary: str = Field(min_length=1, max_length=5000)


class StepOut(BaseModel):
    from_stage: Stage | None
    to_stage: Stage
    actor_id: str
    reason: str
    at: datetime | None


class MilestoneOut(BaseModel):
    id: str
    title: str
    due_at: datetime | None
    progress: int
    note: str
    updated_by: str | None
    updated_at: datetime | None


class TopicOut(BaseModel):
    id: str
    neighbourhood_id: str
    post_id: str = Field(description="The discussion thread in 议事厅")
    title: str
    description: str
    proposer: AuthorOut
    stage: Stage
    steps: list[StepOut] = Field(description="Who moved the topic, when and why")
    owner_id: str | None
    budget_note: str
    milestones: list[MilestoneOut]
    rating_count: int
    rating_average: float
    my_rating: int | None
    evaluation_summary: str
    convention_id: str | None
    poll_ids: list[str]
    created_at: datetime | None
    updated_at: datetime | None


class TopicPage(BaseModel):
    items: list[TopicOut]
    next_cursor: str | None


class TallyOut(BaseModel):
    option: str
    votes: int


class ConventionVersionOut(BaseModel):
    version: int
    text: str
    poll_id: str
    tally: list[TallyOut]
    ballot_count: int
    adopted_by: str
    adopted_at: datetime | None
    reason: str


class ConventionOut(BaseModel):
    id: str
    neighbourhood_id: str
    topic_id: str
    title: str
    current_version: int
    versions: list[ConventionVersionOut] = Field(description="Newest first")
    created_at: datetime | None
    updated_at: datetime | None


class ConventionPage(BaseModel):
    items: list[ConventionOut]
    next_cursor: str | None


class AmendmentIn(BaseModel):
    text: str = Field(min_length=1, max_length=20000)
    poll_id: str = Field(min_length=1, max_length=36)
    reason: str = Field(min_length=1, max_length=1000)


def topic_out(t: boards_pb2.Topic) -> TopicOut:
    return TopicOut(
        id=t.id,
        neighbourhood_id=t.neighbourhood_id,
        post_id=t.post_id,
        title=t.title,
        description=t.description,
        proposer=author_out(t.proposer),
        stage=stage_name(t.stage),
        steps=[
            StepOut(
                from_stage=stage_name(s.from_stage) if s.from_stage else None,
                to_stage=stage_name(s.to_stage),
                actor_id=s.actor_id,
                reason=s.reason,
                at=from_ts(s.at),
            )
            for s in t.steps
        ],
        owner_id=t.owner_id or None,
        budget_note=t.budget_note,
        milestones=[
            MilestoneOut(
                id=m.id,
                title=m.title,
                due_at=from_ts(m.due_at),
                progress=m.progress,
                note=m.note,
                updated_by=m.updated_by or None,
                updated_at=from_ts(m.updated_at),
            )
            for m in t.milestones
        ],
        rating_count=t.rating_count,
        rating_average=t.rating_average_x100 / 100,
        my_rating=t.my_rating or None,
        evaluation_summary=t.evaluation_summary,
        convention_id=t.convention_id or None,
        poll_ids=list(t.poll_ids),
        created_at=from_ts(t.created_at),
        updated_at=from_ts(t.updated_at),
    )


def convention_out(c: boards_pb2.Convention) -> ConventionOut:
    return ConventionOut(
        id=c.id,
        neighbourhood_id=c.neighbourhood_id,
        topic_id=c.topic_id,
        title=c.title,
        current_version=c.current_version,
        versions=[
            ConventionVersionOut(
                version=v.version,
                text=v.text,
                poll_id=v.poll_id,
                tally=[TallyOut(option=t.option_label, votes=t.votes) for t in v.tally],
                ballot_count=v.ballot_count,
                adopted_by=v.adopted_by,
                adopted_at=from_ts(v.adopted_at),
                reason=v.reason,
            )
            for v in c.versions
        ],
        created_at=from_ts(c.created_at),
        updated_at=from_ts(c.updated_at),
    )


@router.post(
    "/v1/neighbourhoods/{neighbourhood_id}/topics", status_code=201, response_model=TopicOut, summary="Propose a topic"
)
async def propose(neighbourhood_id: str, body: TopicIn, caller: SignedIn) -> TopicOut:
    reply = await caller.call(
        caller.clients.boards.ProposeTopic,
        boards_pb2.ProposeTopicRequest(
            neighbourhood_id=neighbourhood_id, title=body.title, description=body.description
        ),
    )
    return topic_out(reply.topic)


@router.get("/v1/neighbourhoods/{neighbourhood_id}/topics", response_model=TopicPage, summary="Topics, newest first")
async def list_topics(
    neighbourhood_id: str,
    caller: SignedIn,
    stage: Stage | None = None,
    cursor: str | None = Query(default=None, max_length=400),
    page_size: int = Query(default=20, ge=1, le=100),
) -> TopicPage:
    reply = await caller.call(
        caller.clients.boards.ListTopics,
        boards_pb2.ListTopicsRequest(
            neighbourhood_id=neighbourhood_id,
            stage=STAGES.get(stage or "", boards_pb2.TOPIC_STAGE_UNSPECIFIED),
            page=page_request(cursor, page_size),
        ),
    )
    return TopicPage(items=[topic_out(t) for t in reply.topics], next_cursor=reply.page.next_cursor or None)


@router.get("/v1/topics/{topic_id}", response_model=TopicOut, summary="A topic with its whole record")
async def get_topic(topic_id: str, caller: SignedIn) -> TopicOut:
    reply = await caller.call(caller.clients.boards.GetTopic, boards_pb2.GetTopicRequest(topic_id=topic_id))
    return topic_out(reply.topic)


@router.post(
    "/v1/topics/{topic_id}/transitions",
    response_model=TopicOut,
    summary="Move a topic to its next stage (the committee); illegal jumps are refused",
)
async def advance(topic_id: str, body: TransitionIn, caller: SignedIn) -> TopicOut:
    request = boards_pb2.AdvanceTopicRequest(topic_id=topic_id, to_stage=STAGES[body.to_stage], reason=body.reason)
    if body.project is not None:
        request.project.CopyFrom(
            boards_pb2.ProjectPlan(
                owner_id=body.project.owner_id,
                budget_note=body.project.budget_note,
                milestones=[
                    boards_pb2.MilestonePlan(title=m.title, due_at=ts(m.due_at) if m.due_at else None)
                    for m in body.project.milestones
                ],
            )
        )
    if body.convention is not None:
        request.convention.CopyFrom(boards_pb2.ConventionDraft(**body.convention.model_dump()))
    reply = await caller.call(caller.clients.boards.AdvanceTopic, request)
    return topic_out(reply.topic)


@router.patch(
    "/v1/topics/{topic_id}/milestones/{milestone_id}", response_model=TopicOut, summary="Report a milestone's progress"
)
async def update_milestone(topic_id: str, milestone_id: str, body: MilestoneUpdate, caller: SignedIn) -> TopicOut:
    reply = await caller.call(
        caller.clients.boards.UpdateMilestone,
        boards_pb2.UpdateMilestoneRequest(
            topic_id=topic_id, milestone_id=milestone_id, progress=body.progress, note=body.note
        ),
    )
    return topic_out(reply.topic)


@router.post(
    "/v1/topics/{topic_id}/ratings", status_code=201, response_model=TopicOut, summary="Rate the result (residents)"
)
async def rate(topic_id: str, body: RatingIn, caller: SignedIn) -> TopicOut:
    reply = await caller.call(
        caller.clients.boards.RateTopic,
        boards_pb2.RateTopicRequest(topic_id=topic_id, rating=body.rating, comment=body.comment),
    )
    return topic_out(reply.topic)


@router.put(
    "/v1/topics/{topic_id}/evaluation-summary", response_model=TopicOut, summary="The committee's evaluation summary"
)
async def summarise(topic_id: str, body: SummaryIn, caller: SignedIn) -> TopicOut:
    reply = await caller.call(
        caller.clients.boards.SummariseEvaluation,
        boards_pb2.SummariseEvaluationRequest(topic_id=topic_id, summary=body.summary),
    )
    return topic_out(reply.topic)


@router.get(
    "/v1/neighbourhoods/{neighbourhood_id}/conventions",
    response_model=ConventionPage,
    summary="The neighbourhood's conventions, each with its current version",
)
async def list_conventions(
    neighbourhood_id: str,
    caller: SignedIn,
    cursor: str | None = Query(default=None, max_length=400),
    page_size: int = Query(default=20, ge=1, le=100),
) -> ConventionPage:
    reply = await caller.call(
        caller.clients.boards.ListConventions,
        boards_pb2.ListConventionsRequest(neighbourhood_id=neighbourhood_id, page=page_request(cursor, page_size)),
    )
    return ConventionPage(
        items=[convention_out(c) for c in reply.conventions], next_cursor=reply.page.next_cursor or None
    )


@router.get("/v1/conventions/{convention_id}", response_model=ConventionOut, summary="A convention with every version")
async def get_convention(convention_id: str, caller: SignedIn) -> ConventionOut:
    reply = await caller.call(
        caller.clients.boards.GetConvention, boards_pb2.GetConventionRequest(convention_id=convention_id)
    )
    return convention_out(reply.convention)


@router.post(
    "/v1/conventions/{convention_id}/versions",
    status_code=201,
    response_model=ConventionOut,
    summary="Adopt an amended text with its vote",
)
async def amend(convention_id: str, body: AmendmentIn, caller: SignedIn) -> ConventionOut:
    reply = await caller.call(
        caller.clients.boards.AmendConvention,
        boards_pb2.AmendConventionRequest(
            convention_id=convention_id, text=body.text, poll_id=body.poll_id, reason=body.reason
        ),
    )
    return convention_out(reply.convention)
