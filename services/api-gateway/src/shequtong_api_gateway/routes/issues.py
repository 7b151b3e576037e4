"""Problems (身边事 → issues): report, follow, handle, rate — and the queues that go with them."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from fastapi import Query
from pydantic import BaseModel, Field, model_validator

from shequtong.common.v1 import common_pb2
from shequtong.issues.v1 import issues_pb2 as pb
from shequtong_api_gateway.deps import Caller, SignedIn
from shequtong_api_gateway.routing import gateway_router
from shequtong_kit.proto import from_ts

router = gateway_router(tags=["issues"])

State = Literal[
    "reported",
    "acknowledged",
    "in_progress",
    "escalated",
    "dispatched",
    "returned_from_grid",
    "resolved",
    "closed",
    "rejected",
    "merged",
    "reopened",
]


# --- models ----------------------------------------------------------------------------------------------
class LocationIn(BaseModel):
    household_id: str | None = Field(default=None, max_length=36)
    building: str | None = Field(default=None, max_length=100, examples=["12号楼"])
    address: str | None = Field(default=None, max_length=200, examples=["淞南十村12号楼东侧"])
    lat: float | None = Field(default=None, ge=-90, le=90, examples=[31.3921])
    lon: float | None = Field(default=None, ge=-180, le=180, examples=[121.4836])

    @model_validator(mode="after")
    def _point(self) -> LocationIn:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("a point needs both lat and lon")
        return self


class IssueIn(BaseModel):
    neighbourhood_id: str = Field(min_length=1, max_length=36)
    category_code: str | None = Field(
        default=None, max_length=48, examples=["rubbish"], description="From the catalogue; empty: guessed"
    )
    title: str | None = Field(default=None, max_length=100, examples=["楼下垃圾三天没人清"])
    description: str = Field(min_length=1, max_length=2000, examples=["3号楼下垃圾堆了三天，异味很大"])
    location: LocationIn
    photo_urls: list[str] = Field(default_factory=list, max_length=9, examples=[["https://media.example/1.jpg"]])
    public: bool = Field(default=True, description="Shown (reporter masked) on the neighbourhood's public list")
    on_behalf_of_person_id: str | None = Field(
        default=None, max_length=64, description="Cadres only: the resident this report is for (a phone call)"
    )


class LocationOut(BaseModel):
    household_id: str | None
    building: str | None
    address: str | None
    lat: float | None
    lon: float | None


class IssueOut(BaseModel):
    id: str
    neighbourhood_id: str
    subdistrict_id: str
    district_id: str
    category_code: str
    category_name: str | None
    title: str | None
    description: str
    state: str
    level: str
    reporter_id: str | None = Field(description="Absent when the viewer may not know who reported it")
    reporter_masked: bool
    source: str
    source_post_id: str | None
    assignee_id: str | None
    created_by: str | None
    location: LocationOut
    photo_urls: list[str]
    public: bool
    reported_at: datetime | None
    updated_at: datetime | None
    response_due_at: datetime | None
    resolution_due_at: datetime | None
    overdue: bool
    round: int
    version: int
    escalated: bool
    resolved_at: datetime | None
    resolved_level: str | None
    closed_at: datetime | None
    awaiting_feedback: bool
    feedback_due_at: datetime | None
    rating: int | None
    duplicate_of_id: str | None
    reject_reason: str | None
    dispatch_id: str | None
    grid_service_code: str | None


class IssuePage(BaseModel):
    items: list[IssueOut]
    next_cursor: str | None


class ActionIn(BaseModel):
    note: str | None = Field(default=None, max_length=2000, examples=["已联系物业，明早清运"])
    expected_version: int | None = Field(
        default=None,
        ge=1,
        le=2**63 - 1,
        description="Refuse (409 version_mismatch) if the issue changed since this version",
    )


class RejectIn(ActionIn):
    reason: str = Field(min_length=1, max_length=500, examples=["属于业主私人纠纷，已告知调解渠道"])


class MergeIn(ActionIn):
    duplicate_of_id: str = Field(min_length=1, max_length=36)


class DispatchIn(ActionIn):
    grid_service_code: str | None = Field(
        default=None, max_length=32, examples=["01-02"], description="Overrides the category's grid code"
    )
    address: str | None = Field(
        default=None, max_length=200, examples=["淞南十村5号楼门口"], description="Where, if the issue has no location"
    )


class DispatchOut(BaseModel):
    issue: IssueOut
    dispatch_id: str


class CategoryChangeIn(BaseModel):
    category_code: str = Field(min_length=1, max_length=48, examples=["illegal_parking"])


class NoteIn(BaseModel):
    text: str | None = Field(default=None, max_length=2000, examples=["今天又堆了一些"])
    internal: bool = Field(default=False, description="Staff only: not shown to the reporter or residents")
    photo_urls: list[str] = Field(default_factory=list, max_length=9)


class TimelineEntryOut(BaseModel):
    id: str
    seq: int
    at: datetime | None
    kind: str
    actor_id: str | None
    actor_role: str
    from_state: str | None
    to_state: str | None
    level: str | None
    internal: bool
    text: str | None
    photo_urls: list[str]
    data: dict[str, Any]


class TimelinePage(BaseModel):
    items: list[TimelineEntryOut]
    next_cursor: str | None


class FeedbackIn(BaseModel):
    rating: int = Field(ge=1, le=5, examples=[4])
    fixed: bool = Field(examples=[True])
    comment: str | None = Field(default=None, max_length=500, examples=["清理得很及时"])


class FeedbackOut(BaseModel):
    issue: IssueOut
    reopened: bool


class ClockOut(BaseModel):
    id: str
    round: int
    clock: str
    level: str
    started_at: datetime | None
    due_at: datetime | None
    stopped_at: datetime | None
    outcome: str
    breached_at: datetime | None


class BreachOut(BaseModel):
    id: str
    round: int
    clock: str
    level: str
    due_at: datetime | None
    detected_at: datetime | None
    auto_escalated: bool
    notified_level: str


class SlaOut(BaseModel):
    clocks: list[ClockOut]
    breaches: list[BreachOut]


class NeighbourhoodCountOut(BaseModel):
    neighbourhood_id: str
    total: int
    open: int
    overdue: int


class CountsOut(BaseModel):
    total: int
    open: int
    overdue: int
    breaches: int
    by_state: dict[str, int]
    by_category: dict[str, int]
    by_neighbourhood: list[NeighbourhoodCountOut]


# --- conversions -----------------------------------------------------------------------------------------
def issue_out(i: pb.Issue) -> IssueOut:
    loc = i.location
    return IssueOut(
        id=i.id,
        neighbourhood_id=i.neighbourhood_id,
        subdistrict_id=i.subdistrict_id,
        district_id=i.district_id,
        category_code=i.category_code,
        category_name=i.category_name or None,
        title=i.title or None,
        description=i.description,
        state=i.state,
        level=i.level,
        reporter_id=i.reporter_id or None,
        reporter_masked=i.reporter_masked,
        source=i.source,
        source_post_id=i.source_post_id or None,
        assignee_id=i.assignee_id or None,
        created_by=i.created_by or None,
        location=LocationOut(
            household_id=loc.household_id or None,
            building=loc.building or None,
            address=loc.address or None,
            lat=loc.point.lat if loc.has_point else None,
            lon=loc.point.lon if loc.has_point else None,
        ),
        photo_urls=list(i.photo_urls),
        public=i.public,
        reported_at=from_ts(i.reported_at),
        updated_at=from_ts(i.updated_at),
        response_due_at=from_ts(i.response_due_at),
        resolution_due_at=from_ts(i.resolution_due_at),
        overdue=i.overdue,
        round=i.round,
        version=i.version,
        escalated=i.escalated,
        resolved_at=from_ts(i.resolved_at),
        resolved_level=i.resolved_level or None,
        closed_at=from_ts(i.closed_at),
        awaiting_feedback=i.awaiting_feedback,
        feedback_due_at=from_ts(i.feedback_due_at),
        rating=i.rating or None,
        duplicate_of_id=i.duplicate_of_id or None,
        reject_reason=i.reject_reason or None,
        dispatch_id=i.dispatch_id or None,
        grid_service_code=i.grid_service_code or None,
    )


def entry_out(e: pb.TimelineEntry) -> TimelineEntryOut:
    return TimelineEntryOut(
        id=e.id,
        seq=e.seq,
        at=from_ts(e.at),
        kind=e.kind,
        actor_id=e.actor_id or None,
        actor_role=e.actor_role,
        from_state=e.from_state or None,
        to_state=e.to_state or None,
        level=e.level or None,
        internal=e.internal,
        text=e.text or None,
        photo_urls=list(e.photo_urls),
        data=json.loads(e.data_json) if e.data_json else {},
    )


def counts_out(c: pb.CountIssuesResponse) -> CountsOut:
    return CountsOut(
        total=c.total,
        open=c.open,
        overdue=c.overdue,
        breaches=c.breaches,
        by_state={e.key: e.count for e in c.by_state},
        by_category={e.key: e.count for e in c.by_category},
        by_neighbourhood=[
            NeighbourhoodCountOut(neighbourhood_id=n.neighbourhood_id, total=n.total, open=n.open, overdue=n.overdue)
            for n in c.by_neighbourhood
        ],
    )


def _filter(state: list[State] | None, category: str | None, overdue: bool) -> pb.IssueFilter:
    return pb.IssueFilter(states=list(state or []), category_code=category or "", overdue_only=overdue)


async def _list(
    caller: Caller,
    scope: int,
    *,
    neighbourhood_id: str = "",
    subdistrict_id: str = "",
    state: list[State] | None,
    category: str | None,
    overdue: bool,
    cursor: str | None,
    page_size: int,
) -> IssuePage:
    reply = await caller.call(
        caller.clients.issues.ListIssues,
        pb.ListIssuesRequest(
            scope=scope,  # type: ignore[arg-type]
            neighbourhood_id=neighbourhood_id,
            subdistrict_id=subdistrict_id,
            filter=_filter(state, category, overdue),
            page=common_pb2.PageRequest(cursor=cursor or "", page_size=page_size),
        ),
    )
    return IssuePage(items=[issue_out(i) for i in reply.issues], next_cursor=reply.page.next_cursor or None)


async def _act(caller: Caller, issue_id: str, action: int, body: ActionIn, **extra: str) -> pb.TransitionIssueResponse:
    return await caller.call(  # type: ignore[no-any-return]
        caller.clients.issues.TransitionIssue,
        pb.TransitionIssueRequest(
            issue_id=issue_id,
            action=action,  # type: ignore[arg-type]
            note=body.note or "",
            expected_version=body.expected_version or 0,
            **extra,
        ),
    )


StateFilter = Query(default=None, description="Only these states (repeat the parameter)")
CategoryFilter = Query(default=None, max_length=48)
OverdueFilter = Query(default=False, description="Only issues past a response or resolution deadline")
PageSize = Query(default=20, ge=1, le=100)


# --- one issue -------------------------------------------------------------------------------------------
@router.post("/v1/issues", status_code=201, response_model=IssueOut, summary="Report a problem")
async def report_issue(body: IssueIn, caller: SignedIn) -> IssueOut:
    loc = body.location
    location = pb.IssueLocation(
        household_id=loc.household_id or "",
        building=loc.building or "",
        address=loc.address or "",
        has_point=loc.lat is not None,
    )
    if loc.lat is not None and loc.lon is not None:
        location.point.CopyFrom(common_pb2.GeoPoint(lat=loc.lat, lon=loc.lon))
    reply = await caller.call(
        caller.clients.issues.ReportIssue,
        pb.ReportIssueRequest(
            neighbourhood_id=body.neighbourhood_id,
            category_code=body.category_code or "",
            title=body.title or "",
            description=body.description,
            location=location,
            photo_urls=body.photo_urls,
            public=body.public,
            on_behalf_of_person_id=body.on_behalf_of_person_id or "",
        ),
    )
    return issue_out(reply.issue)


@router.get("/v1/issues/{issue_id}", response_model=IssueOut, summary="One issue, as the caller may see it")
async def get_issue(issue_id: str, caller: SignedIn) -> IssueOut:
    reply = await caller.call(caller.clients.issues.GetIssue, pb.GetIssueRequest(id=issue_id))
    return issue_out(reply.issue)


@router.get("/v1/issues/{issue_id}/timeline", response_model=TimelinePage, summary="The full record, oldest first")
async def issue_timeline(
    issue_id: str, caller: SignedIn, cursor: str | None = None, page_size: int = Query(default=50, ge=1, le=100)
) -> TimelinePage:
    reply = await caller.call(
        caller.clients.issues.ListIssueTimeline,
        pb.ListIssueTimelineRequest(
            issue_id=issue_id, page=common_pb2.PageRequest(cursor=cursor or "", page_size=page_size)
        ),
    )
    return TimelinePage(items=[entry_out(e) for e in reply.entries], next_cursor=reply.page.next_cursor or None)


@router.get("/v1/issues/{issue_id}/sla", response_model=SlaOut, summary="Each level's clocks and the breaches")
async def issue_sla(issue_id: str, caller: SignedIn) -> SlaOut:
    reply = await caller.call(caller.clients.issues.GetIssueSla, pb.GetIssueSlaRequest(issue_id=issue_id))
    return SlaOut(
        clocks=[
            ClockOut(
                id=c.id,
                round=c.round,
                clock=c.clock,
                level=c.level,
                started_at=from_ts(c.started_at),
                due_at=from_ts(c.due_at),
                stopped_at=from_ts(c.stopped_at),
                outcome=c.outcome,
                breached_at=from_ts(c.breached_at),
            )
            for c in reply.clocks
        ],
        breaches=[
            BreachOut(
                id=b.id,
                round=b.round,
                clock=b.clock,
                level=b.level,
                due_at=from_ts(b.due_at),
                detected_at=from_ts(b.detected_at),
                auto_escalated=b.auto_escalated,
                notified_level=b.notified_level,
            )
            for b in reply.breaches
        ],
    )


# --- handling (one click each) ---------------------------------------------------------------------------
@router.post("/v1/issues/{issue_id}/acknowledge", response_model=IssueOut, summary="Respond: we have seen it")
async def acknowledge(issue_id: str, caller: SignedIn, body: ActionIn | None = None) -> IssueOut:
    reply = await _act(caller, issue_id, pb.ISSUE_ACTION_ACKNOWLEDGE, body or ActionIn())
    return issue_out(reply.issue)


@router.post("/v1/issues/{issue_id}/start", response_model=IssueOut, summary="Work on it")
async def start(issue_id: str, caller: SignedIn, body: ActionIn | None = None) -> IssueOut:
    reply = await _act(caller, issue_id, pb.ISSUE_ACTION_START, body or ActionIn())
    return issue_out(reply.issue)


@router.post("/v1/issues/{issue_id}/escalate", response_model=IssueOut, summary="Up to the sub-district")
async def escalate(issue_id: str, caller: SignedIn, body: ActionIn | None = None) -> IssueOut:
    reply = await _act(caller, issue_id, pb.ISSUE_ACTION_ESCALATE, body or ActionIn())
    return issue_out(reply.issue)


@router.post(
    "/v1/issues/{issue_id}/dispatch", response_model=DispatchOut, summary="One click: to the district grid platform"
)
async def dispatch(issue_id: str, caller: SignedIn, body: DispatchIn | None = None) -> DispatchOut:
    body = body or DispatchIn()
    reply = await _act(caller, issue_id, pb.ISSUE_ACTION_DISPATCH, body, grid_service_code=body.grid_service_code or "")
    return DispatchOut(issue=issue_out(reply.issue), dispatch_id=reply.dispatch_id)


@router.post("/v1/issues/{issue_id}/resolve", response_model=IssueOut, summary="Solved: ask the reporter")
async def resolve(issue_id: str, caller: SignedIn, body: ActionIn | None = None) -> IssueOut:
    reply = await _act(caller, issue_id, pb.ISSUE_ACTION_RESOLVE, body or ActionIn())
    return issue_out(reply.issue)


@router.post("/v1/issues/{issue_id}/reject", response_model=IssueOut, summary="Not a problem for us (with reason)")
async def reject(issue_id: str, body: RejectIn, caller: SignedIn) -> IssueOut:
    reply = await _act(caller, issue_id, pb.ISSUE_ACTION_REJECT, body, reason=body.reason)
    return issue_out(reply.issue)


@router.post("/v1/issues/{issue_id}/merge", response_model=IssueOut, summary="A duplicate of another issue")
async def merge(issue_id: str, body: MergeIn, caller: SignedIn) -> IssueOut:
    reply = await _act(caller, issue_id, pb.ISSUE_ACTION_MERGE, body, duplicate_of_id=body.duplicate_of_id)
    return issue_out(reply.issue)


@router.post("/v1/issues/{issue_id}/category", response_model=IssueOut, summary="Put it in another category")
async def recategorise(issue_id: str, body: CategoryChangeIn, caller: SignedIn) -> IssueOut:
    reply = await caller.call(
        caller.clients.issues.RecategoriseIssue,
        pb.RecategoriseIssueRequest(issue_id=issue_id, category_code=body.category_code),
    )
    return issue_out(reply.issue)


@router.post(
    "/v1/issues/{issue_id}/notes", status_code=201, response_model=TimelineEntryOut, summary="A note or photos"
)
async def add_note(issue_id: str, body: NoteIn, caller: SignedIn) -> TimelineEntryOut:
    reply = await caller.call(
        caller.clients.issues.AddIssueNote,
        pb.AddIssueNoteRequest(
            issue_id=issue_id, text=body.text or "", internal=body.internal, photo_urls=body.photo_urls
        ),
    )
    return entry_out(reply.entry)


@router.post("/v1/issues/{issue_id}/feedback", response_model=FeedbackOut, summary="The reporter's verdict")
async def feedback(issue_id: str, body: FeedbackIn, caller: SignedIn) -> FeedbackOut:
    reply = await caller.call(
        caller.clients.issues.RateIssue,
        pb.RateIssueRequest(issue_id=issue_id, rating=body.rating, fixed=body.fixed, comment=body.comment or ""),
    )
    return FeedbackOut(issue=issue_out(reply.issue), reopened=reply.reopened)


# --- queues and views -------------------------------------------------------------------------------------
@router.get(
    "/v1/neighbourhoods/{neighbourhood_id}/issues", response_model=IssuePage, summary="The neighbourhood's queue"
)
async def neighbourhood_queue(
    neighbourhood_id: str,
    caller: SignedIn,
    state: list[State] | None = StateFilter,
    category: str | None = CategoryFilter,
    overdue: bool = OverdueFilter,
    cursor: str | None = None,
    page_size: int = PageSize,
) -> IssuePage:
    return await _list(
        caller,
        pb.ISSUE_SCOPE_NEIGHBOURHOOD,
        neighbourhood_id=neighbourhood_id,
        state=state,
        category=category,
        overdue=overdue,
        cursor=cursor,
        page_size=page_size,
    )


@router.get(
    "/v1/neighbourhoods/{neighbourhood_id}/issues/public",
    response_model=IssuePage,
    summary="The neighbourhood's public issues, reporters masked",
)
async def neighbourhood_public(
    neighbourhood_id: str,
    caller: SignedIn,
    state: list[State] | None = StateFilter,
    category: str | None = CategoryFilter,
    overdue: bool = OverdueFilter,
    cursor: str | None = None,
    page_size: int = PageSize,
) -> IssuePage:
    return await _list(
        caller,
        pb.ISSUE_SCOPE_NEIGHBOURHOOD_PUBLIC,
        neighbourhood_id=neighbourhood_id,
        state=state,
        category=category,
        overdue=overdue,
        cursor=cursor,
        page_size=page_size,
    )


@router.get(
    "/v1/neighbourhoods/{neighbourhood_id}/issues/counts", response_model=CountsOut, summary="Counts and overdue"
)
async def neighbourhood_counts(
    neighbourhood_id: str,
    caller: SignedIn,
    state: list[State] | None = StateFilter,
    category: str | None = CategoryFilter,
    overdue: bool = OverdueFilter,
) -> CountsOut:
    reply = await caller.call(
        caller.clients.issues.CountIssues,
        pb.CountIssuesRequest(
            scope=pb.ISSUE_SCOPE_NEIGHBOURHOOD,
            neighbourhood_id=neighbourhood_id,
            filter=_filter(state, category, overdue),
        ),
    )
    return counts_out(reply)


@router.get(
    "/v1/subdistricts/{subdistrict_id}/issues",
    response_model=IssuePage,
    summary="Issues escalated to the sub-district",
)
async def subdistrict_queue(
    subdistrict_id: str,
    caller: SignedIn,
    state: list[State] | None = StateFilter,
    category: str | None = CategoryFilter,
    overdue: bool = OverdueFilter,
    cursor: str | None = None,
    page_size: int = PageSize,
) -> IssuePage:
    return await _list(
        caller,
        pb.ISSUE_SCOPE_SUBDISTRICT,
        subdistrict_id=subdistrict_id,
        state=state,
        category=category,
        overdue=overdue,
        cursor=cursor,
        page_size=page_size,
    )


@router.get(
    "/v1/subdistricts/{subdistrict_id}/issues/counts",
    response_model=CountsOut,
    summary="Statistics of every neighbourhood of the sub-district",
)
async def subdistrict_counts(
    subdistrict_id: str,
    caller: SignedIn,
    state: list[State] | None = StateFilter,
    category: str | None = CategoryFilter,
    overdue: bool = OverdueFilter,
) -> CountsOut:
    reply = await caller.call(
        caller.clients.issues.CountIssues,
        pb.CountIssuesRequest(
            scope=pb.ISSUE_SCOPE_SUBDISTRICT,
            subdistrict_id=subdistrict_id,
            filter=_filter(state, category, overdue),
        ),
    )
    return counts_out(reply)


@router.get("/v1/me/issues/assigned", response_model=IssuePage, summary="Issues assigned to me")
async def my_assigned(
    caller: SignedIn,
    state: list[State] | None = StateFilter,
    category: str | None = CategoryFilter,
    overdue: bool = OverdueFilter,
    cursor: str | None = None,
    page_size: int = PageSize,
) -> IssuePage:
    return await _list(
        caller,
        pb.ISSUE_SCOPE_ASSIGNED_TO_ME,
        state=state,
        category=category,
        overdue=overdue,
        cursor=cursor,
        page_size=page_size,
    )


@router.get("/v1/me/issues/reported", response_model=IssuePage, summary="Issues I reported")
async def my_reported(
    caller: SignedIn,
    state: list[State] | None = StateFilter,
    category: str | None = CategoryFilter,
    overdue: bool = OverdueFilter,
    cursor: str | None = None,
    page_size: int = PageSize,
) -> IssuePage:
    return await _list(
        caller,
        pb.ISSUE_SCOPE_REPORTED_BY_ME,
        state=state,
        category=category,
        overdue=overdue,
        cursor=cursor,
        page_size=page_size,
    )
