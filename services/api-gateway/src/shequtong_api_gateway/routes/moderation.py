"""Moderation: reports, the moderators' queue, hide/restore, mutes, the log and each person's notices."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args

from fastapi import Query
from pydantic import BaseModel, Field

from shequtong.boards.v1 import boards_pb2
from shequtong_api_gateway.deps import SignedIn
from shequtong_api_gateway.routes.posts import page_request
from shequtong_api_gateway.routing import gateway_router
from shequtong_kit.proto import from_ts

router = gateway_router(tags=["moderation"])

Target = Literal["post", "comment", "member"]
TARGETS = {"post": boards_pb2.TARGET_TYPE_POST, "comment": boards_pb2.TARGET_TYPE_COMMENT}
Reason = Literal["spam", "abuse", "rumour", "privacy", "illegal", "other"]
REASONS = {name: getattr(boards_pb2, f"REPORT_REASON_{name.upper()}") for name in get_args(Reason)}
ReportStatus = Literal["open", "actioned", "dismissed"]
REPORT_STATUSES = {name: getattr(boards_pb2, f"REPORT_STATUS_{name.upper()}") for name in get_args(ReportStatus)}
Action = Literal["hide", "restore", "lock", "unlock", "mute", "unmute", "pin", "unpin", "delete"]
ACTIONS = {name: getattr(boards_pb2, f"MODERATION_ACTION_KIND_{name.upper()}") for name in get_args(Action)}


def _name(table: dict[str, int], value: int, default: str) -> str:
    return next((k for k, v in table.items() if v == value), default)


class ReportIn(BaseModel):
    target_type: Literal["post", "comment"]
    target_id: str = Field(min_length=1, max_length=36)
    reason: Reason
    note: str = Field(default="", max_length=500, examples=["发布商业广告"])


class ReportOut(BaseModel):
    id: str
    target_type: Target
    target_id: str
    post_id: str
    board_id: str
    neighbourhood_id: str | None
    reporter_id: str
    reason: Reason
    note: str
    status: ReportStatus
    excerpt: str
    created_at: datetime | None
    resolved_by: str | None
    resolved_at: datetime | None
    resolution: str


class ReportPage(BaseModel):
    items: list[ReportOut]
    next_cursor: str | None


class DismissIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500, examples=["内容属实，不属违规"])


class ModerateIn(BaseModel):
    target_type: Literal["post", "comment"]
    target_id: str = Field(min_length=1, max_length=36)
    action: Literal["hide", "restore"]
    reason: str = Field(min_length=1, max_length=500, examples=["含有不文明用语"])


class MuteIn(BaseModel):
    person_id: str = Field(min_length=1, max_length=64)
    duration_minutes: int = Field(ge=1, le=43200, examples=[1440])
    reason: str = Field(min_length=1, max_length=500, examples=["连续刷屏"])


class ActionOut(BaseModel):
    id: str
    action: Action
    target_type: Target
    target_id: str
    post_id: str | None
    board_id: str | None
    neighbourhood_id: str | None
    subject_person_id: str
    actor_id: str
    reason: str
    created_at: datetime | None
    until: datetime | None


class ActionPage(BaseModel):
    items: list[ActionOut]
    next_cursor: str | None


def report_out(r: boards_pb2.Report) -> ReportOut:
    return ReportOut(
        id=r.id,
        target_type=_name(TARGETS, r.target_type, "post"),  # type: ignore[arg-type]
        target_id=r.target_id,
        post_id=r.post_id,
        board_id=r.board_id,
        neighbourhood_id=r.neighbourhood_id or None,
        reporter_id=r.reporter_id,
        reason=_name(REASONS, r.reason, "other"),  # type: ignore[arg-type]
        note=r.note,
        status=_name(REPORT_STATUSES, r.status, "open"),  # type: ignore[arg-type]
        excerpt=r.excerpt,
        created_at=from_ts(r.created_at),
        resolved_by=r.resolved_by or None,
        resolved_at=from_ts(r.resolved_at),
        resolution=r.resolution,
    )


def action_out(a: boards_pb2.ModerationAction) -> ActionOut:
    return ActionOut(
        id=a.id,
        action=_name(ACTIONS, a.action, "hide"),  # type: ignore[arg-type]
        target_type=_name(TARGETS, a.target_type, "member"),  # type: ignore[arg-type]
        target_id=a.target_id,
        post_id=a.post_id or None,
        board_id=a.board_id or None,
        neighbourhood_id=a.neighbourhood_id or None,
        subject_person_id=a.subject_person_id,
        actor_id=a.actor_id,
        reason=a.reason,
        created_at=from_ts(a.created_at),
        until=from_ts(a.until),
    )


@router.post("/v1/reports", status_code=201, response_model=ReportOut, summary="Report a post or comment")
async def report(body: ReportIn, caller: SignedIn) -> ReportOut:
    reply = await caller.call(
        caller.clients.boards.ReportContent,
        boards_pb2.ReportContentRequest(
            target_type=TARGETS[body.target_type], target_id=body.target_id, reason=REASONS[body.reason], note=body.note
        ),
    )
    return report_out(reply.report)


@router.get(
    "/v1/neighbourhoods/{neighbourhood_id}/reports",
    response_model=ReportPage,
    summary="The moderators' queue: reports on the boards the caller moderates, oldest first",
)
async def list_reports(
    neighbourhood_id: str,
    caller: SignedIn,
    status: ReportStatus = "open",
    cursor: str | None = Query(default=None, max_length=400),
    page_size: int = Query(default=20, ge=1, le=100),
) -> ReportPage:
    reply = await caller.call(
        caller.clients.boards.ListReports,
        boards_pb2.ListReportsRequest(
            neighbourhood_id=neighbourhood_id, status=REPORT_STATUSES[status], page=page_request(cursor, page_size)
        ),
    )
    return ReportPage(items=[report_out(r) for r in reply.reports], next_cursor=reply.page.next_cursor or None)


@router.post("/v1/reports/{report_id}/dismiss", response_model=ReportOut, summary="Dismiss a report with a reason")
async def dismiss(report_id: str, body: DismissIn, caller: SignedIn) -> ReportOut:
    reply = await caller.call(
        caller.clients.boards.DismissReport, boards_pb2.DismissReportRequest(report_id=report_id, reason=body.reason)
    )
    return report_out(reply.report)


@router.post(
    "/v1/moderation/actions",
    status_code=201,
    response_model=ActionOut,
    summary="Hide or restore a post or comment (logged, shown to its author)",
)
async def moderate(body: ModerateIn, caller: SignedIn) -> ActionOut:
    reply = await caller.call(
        caller.clients.boards.ModerateContent,
        boards_pb2.ModerateContentRequest(
            target_type=TARGETS[body.target_type],
            target_id=body.target_id,
            action=ACTIONS[body.action],
            reason=body.reason,
        ),
    )
    return action_out(reply.action)


@router.post(
    "/v1/neighbourhoods/{neighbourhood_id}/mutes",
    status_code=201,
    response_model=ActionOut,
    summary="Mute a member for a period (the committee)",
)
async def mute(neighbourhood_id: str, body: MuteIn, caller: SignedIn) -> ActionOut:
    reply = await caller.call(
        caller.clients.boards.MuteMember,
        boards_pb2.MuteMemberRequest(
            neighbourhood_id=neighbourhood_id,
            person_id=body.person_id,
            duration_minutes=body.duration_minutes,
            reason=body.reason,
        ),
    )
    return action_out(reply.action)


@router.delete(
    "/v1/neighbourhoods/{neighbourhood_id}/mutes/{person_id}", response_model=ActionOut, summary="Lift a mute"
)
async def unmute(
    neighbourhood_id: str, person_id: str, caller: SignedIn, reason: str = Query(min_length=1, max_length=500)
) -> ActionOut:
    reply = await caller.call(
        caller.clients.boards.UnmuteMember,
        boards_pb2.UnmuteMemberRequest(neighbourhood_id=neighbourhood_id, person_id=person_id, reason=reason),
    )
    return action_out(reply.action)


@router.get(
    "/v1/neighbourhoods/{neighbourhood_id}/moderation/actions",
    response_model=ActionPage,
    summary="The moderation log of the neighbourhood, newest first",
)
async def list_actions(
    neighbourhood_id: str,
    caller: SignedIn,
    cursor: str | None = Query(default=None, max_length=400),
    page_size: int = Query(default=20, ge=1, le=100),
) -> ActionPage:
    reply = await caller.call(
        caller.clients.boards.ListModerationActions,
        boards_pb2.ListModerationActionsRequest(
            neighbourhood_id=neighbourhood_id, page=page_request(cursor, page_size)
        ),
    )
    return ActionPage(items=[action_out(a) for a in reply.actions], next_cursor=reply.page.next_cursor or None)


@router.get(
    "/v1/me/moderation-notices",
    response_model=ActionPage,
    summary="Every moderation action on the caller's content or on the caller, with its reason",
)
async def my_notices(
    caller: SignedIn,
    cursor: str | None = Query(default=None, max_length=400),
    page_size: int = Query(default=20, ge=1, le=100),
) -> ActionPage:
    reply = await caller.call(
        caller.clients.boards.ListMyModerationNotices,
        boards_pb2.ListMyModerationNoticesRequest(page=page_request(cursor, page_size)),
    )
    return ActionPage(items=[action_out(a) for a in reply.actions], next_cursor=reply.page.next_cursor or None)
