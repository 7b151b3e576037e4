"""The insight centre (治慧中心): community portraits, comparisons, CSV exports, work prompts, and the
operators' detection and rebuild controls. The insights service checks every caller itself."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal
from urllib.parse import quote

from fastapi import Body, Query, Response
from pydantic import BaseModel, Field

from shequtong.common.v1 import common_pb2
from shequtong.insights.v1 import insights_pb2 as pb
from shequtong_api_gateway.deps import SignedIn
from shequtong_api_gateway.routing import gateway_router
from shequtong_kit.proto import from_ts

router = gateway_router(prefix="/v1/insights", tags=["insights"])

Kind = Literal["residential", "village", "unspecified"]
GroupBy = Literal["subdistrict", "kind", "neighbourhood"]
PromptStatus = Literal["open", "acknowledged", "dismissed"]

KINDS: dict[int, Kind] = {
    common_pb2.NEIGHBOURHOOD_KIND_RESIDENTIAL: "residential",
    common_pb2.NEIGHBOURHOOD_KIND_VILLAGE: "village",
}
GROUPS = {
    "subdistrict": pb.GROUP_BY_SUBDISTRICT,
    "kind": pb.GROUP_BY_KIND,
    "neighbourhood": pb.GROUP_BY_NEIGHBOURHOOD,
}
STATUSES = {
    "open": pb.PROMPT_STATUS_OPEN,
    "acknowledged": pb.PROMPT_STATUS_ACKNOWLEDGED,
    "dismissed": pb.PROMPT_STATUS_DISMISSED,
}
LEVELS = {pb.PLACE_LEVEL_NEIGHBOURHOOD: "neighbourhood", pb.PLACE_LEVEL_SUBDISTRICT: "subdistrict"}
PHASES = {
    pb.REBUILD_PHASE_RESETTING: "resetting",
    pb.REBUILD_PHASE_REPLAYING: "replaying",
    pb.REBUILD_PHASE_DONE: "done",
}
PeriodDays = Query(default=30, ge=1, le=366, description="Whole local days ending today (today included)")


# --- models ---------------------------------------------------------------------------------------------


class PeriodOut(BaseModel):
    start: datetime | None
    end: datetime | None = Field(description="Exclusive")
    days: int
    day_utc_offset_minutes: int = Field(examples=[480])
    first_day: str = Field(examples=["2026-03-01"])
    last_day: str = Field(examples=["2026-03-30"])


class DistributionOut(BaseModel):
    count: int
    median_hours: float = Field(examples=[3.5])
    p90_hours: float
    mean_hours: float
    max_hours: float


class StageCountOut(BaseModel):
    stage: str = Field(examples=["consultation"])
    count: int


class CategoryCountOut(BaseModel):
    category_code: str = Field(examples=["sanitation"])
    count: int
    share: float


class FiguresOut(BaseModel):
    residents: int
    households: int
    residents_joined: int
    residents_verified: int
    residents_left: int
    active_residents: int
    participation_rate: float = Field(examples=[0.31])
    posts: int
    comments: int
    votes: int
    topics_proposed: int
    topics_by_stage: list[StageCountOut]
    conventions_adopted: int
    conventions_total: int
    issues_reported: int
    issues_acknowledged: int
    issues_resolved: int
    issues_escalated: int
    issues_dispatched: int
    issues_reopened: int
    issues_open: int
    sla_breaches: int
    response_time: DistributionOut
    resolution_time: DistributionOut
    resolved_inside: int
    share_resolved_inside: float = Field(examples=[0.9])
    ratings: int
    mean_rating: float
    share_satisfied: float
    volunteer_hours: float
    volunteers_approved: int
    bookings: int
    booking_ratings: int
    mean_booking_rating: float
    grid_tickets_sent: int
    grid_tickets_closed: int
    grid_tickets_failed: int


class TrendOut(BaseModel):
    measure: str = Field(examples=["response_median_hours"])
    current: float | None
    previous: float | None
    peer_median: float | None
    peers: int
    direction: Literal["up", "down", "flat", "no_data"]
    versus_peers: Literal["above", "below", "level", "no_peers", "no_data"]
    higher_is_better: bool
    statement: str


class PortraitOut(BaseModel):
    neighbourhood_id: str
    name: str = Field(examples=["淞南十村"])
    code: str
    kind: Kind
    subdistrict_id: str
    district_id: str
    on_platform_since: datetime | None
    days_on_platform: int
    visibility: Literal["public", "full"] = Field(
        description="Residents see public figures only: issues solved, response time, conventions"
    )
    period: PeriodOut
    figures: FiguresOut
    previous_period: PeriodOut | None
    previous_figures: FiguresOut | None
    peer_figures: FiguresOut | None = Field(description="Median of the same kind in the same sub-district")
    peer_ids: list[str]
    top_categories: list[CategoryCountOut]
    trends: list[TrendOut]
    generated_at: datetime | None
    rebuilding: bool


class ComparisonRowOut(BaseModel):
    key: str
    label: str
    neighbourhoods: int
    figures: FiguresOut


class ComparisonPage(BaseModel):
    period: PeriodOut
    group_by: GroupBy
    items: list[ComparisonRowOut]
    next_cursor: str | None


class EvidenceOut(BaseModel):
    rule_text: str
    observed: int
    expected: float
    baseline_count: int
    baseline_days: int
    window_days: int
    p_value: float
    p_threshold: float
    min_count: int
    issue_ids: list[str]
    categories: list[CategoryCountOut]
    neighbourhood_ids: list[str]


class PromptOut(BaseModel):
    id: str
    level: Literal["neighbourhood", "subdistrict"]
    neighbourhood_id: str | None
    subdistrict_id: str
    district_id: str
    rule: Literal["category_spike", "repeated_place", "overdue_cluster"] | str
    subject: str = Field(examples=["sanitation"])
    window_start: datetime | None
    window_end: datetime | None
    title: str
    statement: str
    evidence: EvidenceOut
    status: PromptStatus
    decided_by: str | None
    decision_note: str | None
    decided_at: datetime | None
    created_at: datetime | None


class PromptPage(BaseModel):
    items: list[PromptOut]
    next_cursor: str | None


class AcknowledgeIn(BaseModel):
    note: str = Field(default="", max_length=500, examples=["物业已安排下周清理"])


class DismissIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500, examples=["已在上月专项整治中处理"])


class DetectionOut(BaseModel):
    created: list[PromptOut]
    findings: int
    window_end: datetime | None


class StreamProgressOut(BaseModel):
    stream: str = Field(examples=["ISSUES"])
    consumer: str = Field(examples=["insights-issues"])
    target_sequence: int
    acked_sequence: int
    pending: int
    caught_up: bool


class RebuildOut(BaseModel):
    id: str
    phase: Literal["resetting", "replaying", "done"]
    requested_by: str
    started_at: datetime | None
    finished_at: datetime | None
    rows_dropped: int
    streams: list[StreamProgressOut]


# --- conversions ----------------------------------------------------------------------------------------


def period_out(p: pb.Period) -> PeriodOut:
    return PeriodOut(
        start=from_ts(p.start),
        end=from_ts(p.end),
        days=p.days,
        day_utc_offset_minutes=p.day_utc_offset_minutes,
        first_day=p.first_day,
        last_day=p.last_day,
    )


def distribution_out(d: pb.Distribution) -> DistributionOut:
    return DistributionOut(
        count=d.count,
        median_hours=d.median_hours,
        p90_hours=d.p90_hours,
        mean_hours=d.mean_hours,
        max_hours=d.max_hours,
    )


SCALARS = tuple(
    name for name in FiguresOut.model_fields if name not in ("topics_by_stage", "response_time", "resolution_time")
)


def figures_out(f: pb.Figures) -> FiguresOut:
    return FiguresOut(
        **{name: getattr(f, name) for name in SCALARS},
        topics_by_stage=[StageCountOut(stage=s.stage, count=s.count) for s in f.topics_by_stage],
        response_time=distribution_out(f.response_time),
        resolution_time=distribution_out(f.resolution_time),
    )


def categories_out(items: list[pb.CategoryCount]) -> list[CategoryCountOut]:
    return [CategoryCountOut(category_code=c.category_code, count=c.count, share=c.share) for c in items]


def trend_out(t: pb.Trend) -> TrendOut:
    return TrendOut(
        measure=t.measure,
        current=t.current if t.HasField("current") else None,
        previous=t.previous if t.HasField("previous") else None,
        peer_median=t.peer_median if t.HasField("peer_median") else None,
        peers=t.peers,
        direction=t.direction,  # type: ignore[arg-type]
        versus_peers=t.versus_peers,  # type: ignore[arg-type]
        higher_is_better=t.higher_is_better,
        statement=t.statement,
    )


def portrait_out(p: pb.Portrait) -> PortraitOut:
    full = p.visibility == pb.VISIBILITY_FULL
    return PortraitOut(
        neighbourhood_id=p.neighbourhood_id,
        name=p.name,
        code=p.code,
        kind=KINDS.get(p.kind, "unspecified"),
        subdistrict_id=p.subdistrict_id,
        district_id=p.district_id,
        on_platform_since=from_ts(p.on_platform_since),
        days_on_platform=p.days_on_platform,
        visibility="full" if full else "public",
        period=period_out(p.period),
        figures=figures_out(p.figures),
        previous_period=period_out(p.previous_period) if p.HasField("previous_period") else None,
        previous_figures=figures_out(p.previous_figures) if p.HasField("previous_figures") else None,
        peer_figures=figures_out(p.peer_figures) if p.HasField("peer_figures") else None,
        peer_ids=list(p.peer_ids),
        top_categories=categories_out(list(p.top_categories)),
        trends=[trend_out(t) for t in p.trends],
        generated_at=from_ts(p.generated_at),
        rebuilding=p.rebuilding,
    )


def prompt_out(p: pb.Prompt) -> PromptOut:
    e = p.evidence
    return PromptOut(
        id=p.id,
        level=LEVELS.get(p.level, "neighbourhood"),  # type: ignore[arg-type]
        neighbourhood_id=p.neighbourhood_id or None,
        subdistrict_id=p.subdistrict_id,
        district_id=p.district_id,
        rule=p.rule,
        subject=p.subject,
        window_start=from_ts(p.window_start),
        window_end=from_ts(p.window_end),
        title=p.title,
        statement=p.statement,
        evidence=EvidenceOut(
            rule_text=e.rule_text,
            observed=e.observed,
            expected=e.expected,
            baseline_count=e.baseline_count,
            baseline_days=e.baseline_days,
            window_days=e.window_days,
            p_value=e.p_value,
            p_threshold=e.p_threshold,
            min_count=e.min_count,
            issue_ids=list(e.issue_ids),
            categories=categories_out(list(e.categories)),
            neighbourhood_ids=list(e.neighbourhood_ids),
        ),
        status=next((name for name, value in STATUSES.items() if value == p.status), "open"),  # type: ignore[arg-type]
        decided_by=p.decided_by or None,
        decision_note=p.decision_note or None,
        decided_at=from_ts(p.decided_at),
        created_at=from_ts(p.created_at),
    )


def rebuild_out(r: pb.Rebuild) -> RebuildOut:
    return RebuildOut(
        id=r.id,
        phase=PHASES.get(r.phase, "resetting"),  # type: ignore[arg-type]
        requested_by=r.requested_by,
        started_at=from_ts(r.started_at),
        finished_at=from_ts(r.finished_at),
        rows_dropped=r.rows_dropped,
        streams=[
            StreamProgressOut(
                stream=s.stream,
                consumer=s.consumer,
                target_sequence=s.target_sequence,
                acked_sequence=s.acked_sequence,
                pending=s.pending,
                caught_up=s.caught_up,
            )
            for s in r.streams
        ],
    )


def attachment(filename: str) -> str:
    """A Content-Disposition any client parses (RFC 6266): an ASCII-safe name, and the exact one in
    `filename*` — the name carries the scope a caller asked for, which may be anything."""
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", filename)[:120] or "export.csv"
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(filename[:120], safe='')}"


def csv_response(reply: pb.ExportCsvResponse) -> Response:
    return Response(
        content=reply.content,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": attachment(reply.filename), "X-Row-Count": str(reply.rows)},
    )


# --- routes ---------------------------------------------------------------------------------------------


@router.get(
    "/neighbourhoods/{neighbourhood_id}/portrait",
    response_model=PortraitOut,
    summary="A neighbourhood's community portrait (public figures only for its residents)",
)
async def get_portrait(neighbourhood_id: str, caller: SignedIn, period_days: int = PeriodDays) -> PortraitOut:
    reply = await caller.call(
        caller.clients.insights.GetPortrait,
        pb.GetPortraitRequest(neighbourhood_id=neighbourhood_id, period_days=period_days),
    )
    return portrait_out(reply.portrait)


@router.get(
    "/comparisons",
    response_model=ComparisonPage,
    summary="Sub-districts, kinds or neighbourhoods side by side on the same measures",
)
async def compare(
    caller: SignedIn,
    district_id: str | None = Query(default=None, max_length=36),
    subdistrict_id: str | None = Query(default=None, max_length=36),
    group_by: GroupBy | None = Query(default=None, description="Default: subdistrict for a district, kind below"),
    period_days: int = PeriodDays,
    cursor: str | None = Query(default=None, max_length=500),
    page_size: int = Query(default=20, ge=1, le=100),
) -> ComparisonPage:
    reply = await caller.call(
        caller.clients.insights.CompareGroups,
        pb.CompareGroupsRequest(
            district_id=district_id or "",
            subdistrict_id=subdistrict_id or "",
            group_by=GROUPS.get(group_by or "", pb.GROUP_BY_UNSPECIFIED),
            period_days=period_days,
            page=common_pb2.PageRequest(cursor=cursor or "", page_size=page_size),
        ),
    )
    grouping = group_by or ("subdistrict" if district_id else "kind")
    return ComparisonPage(
        period=period_out(reply.period),
        group_by=grouping,
        items=[
            ComparisonRowOut(key=r.key, label=r.label, neighbourhoods=r.neighbourhoods, figures=figures_out(r.figures))
            for r in reply.rows
        ],
        next_cursor=reply.page.next_cursor or None,
    )


CSV_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"text/csv": {}}, "description": "UTF-8 CSV (with a byte-order mark) and a header row"}
}


@router.get("/exports/daily.csv", response_class=Response, responses=CSV_RESPONSES, summary="Daily figures as CSV")
async def export_daily(
    caller: SignedIn,
    neighbourhood_id: str | None = Query(default=None, max_length=36),
    subdistrict_id: str | None = Query(default=None, max_length=36),
    district_id: str | None = Query(default=None, max_length=36),
    period_days: int = PeriodDays,
) -> Response:
    reply = await caller.call(
        caller.clients.insights.ExportCsv,
        pb.ExportCsvRequest(
            kind=pb.EXPORT_KIND_DAILY,
            neighbourhood_id=neighbourhood_id or "",
            subdistrict_id=subdistrict_id or "",
            district_id=district_id or "",
            period_days=period_days,
        ),
    )
    return csv_response(reply)


@router.get("/exports/comparison.csv", response_class=Response, responses=CSV_RESPONSES, summary="A comparison as CSV")
async def export_comparison(
    caller: SignedIn,
    district_id: str | None = Query(default=None, max_length=36),
    subdistrict_id: str | None = Query(default=None, max_length=36),
    group_by: GroupBy | None = None,
    period_days: int = PeriodDays,
) -> Response:
    reply = await caller.call(
        caller.clients.insights.ExportCsv,
        pb.ExportCsvRequest(
            kind=pb.EXPORT_KIND_COMPARISON,
            district_id=district_id or "",
            subdistrict_id=subdistrict_id or "",
            group_by=GROUPS.get(group_by or "", pb.GROUP_BY_UNSPECIFIED),
            period_days=period_days,
        ),
    )
    return csv_response(reply)


@router.get("/prompts", response_model=PromptPage, summary="Work prompts the caller may see, newest first")
async def list_prompts(
    caller: SignedIn,
    neighbourhood_id: str | None = Query(default=None, max_length=36),
    subdistrict_id: str | None = Query(default=None, max_length=36),
    district_id: str | None = Query(default=None, max_length=36),
    status: PromptStatus | None = None,
    rule: str | None = Query(default=None, max_length=32),
    cursor: str | None = Query(default=None, max_length=500),
    page_size: int = Query(default=20, ge=1, le=100),
) -> PromptPage:
    reply = await caller.call(
        caller.clients.insights.ListPrompts,
        pb.ListPromptsRequest(
            neighbourhood_id=neighbourhood_id or "",
            subdistrict_id=subdistrict_id or "",
            district_id=district_id or "",
            status=STATUSES.get(status or "", pb.PROMPT_STATUS_UNSPECIFIED),
            rule=rule or "",
            page=common_pb2.PageRequest(cursor=cursor or "", page_size=page_size),
        ),
    )
    return PromptPage(items=[prompt_out(p) for p in reply.prompts], next_cursor=reply.page.next_cursor or None)


@router.get("/prompts/{prompt_id}", response_model=PromptOut, summary="One work prompt with its evidence")
async def get_prompt(prompt_id: str, caller: SignedIn) -> PromptOut:
    reply = await caller.call(caller.clients.insights.GetPrompt, pb.GetPromptRequest(prompt_id=prompt_id))
    return prompt_out(reply.prompt)


@router.post("/prompts/{prompt_id}/acknowledge", response_model=PromptOut, summary="The committee takes the prompt up")
async def acknowledge_prompt(
    prompt_id: str, caller: SignedIn, body: AcknowledgeIn = Body(default_factory=AcknowledgeIn)
) -> PromptOut:
    reply = await caller.call(
        caller.clients.insights.AcknowledgePrompt, pb.AcknowledgePromptRequest(prompt_id=prompt_id, note=body.note)
    )
    return prompt_out(reply.prompt)


@router.post("/prompts/{prompt_id}/dismiss", response_model=PromptOut, summary="No action needed (say why)")
async def dismiss_prompt(prompt_id: str, body: DismissIn, caller: SignedIn) -> PromptOut:
    reply = await caller.call(
        caller.clients.insights.DismissPrompt, pb.DismissPromptRequest(prompt_id=prompt_id, reason=body.reason)
    )
    return prompt_out(reply.prompt)


@router.post("/detections", response_model=DetectionOut, summary="Run pain-point detection now (operators)")
async def detect(caller: SignedIn) -> DetectionOut:
    reply = await caller.call(caller.clients.insights.DetectPainPoints, pb.DetectPainPointsRequest(), deadline=30.0)
    return DetectionOut(
        created=[prompt_out(p) for p in reply.created], findings=reply.findings, window_end=from_ts(reply.window_end)
    )


@router.post(
    "/rebuilds",
    status_code=202,
    response_model=RebuildOut,
    summary="Drop every projection and replay the streams from the start (operators)",
)
async def start_rebuild(caller: SignedIn) -> RebuildOut:
    reply = await caller.call(caller.clients.insights.StartRebuild, pb.StartRebuildRequest(), deadline=60.0)
    return rebuild_out(reply.rebuild)


@router.get("/rebuilds/{rebuild_id}", response_model=RebuildOut, summary="A rebuild's progress")
async def get_rebuild(rebuild_id: str, caller: SignedIn) -> RebuildOut:
    reply = await caller.call(caller.clients.insights.GetRebuild, pb.GetRebuildRequest(rebuild_id=rebuild_id))
    return rebuild_out(reply.rebuild)
