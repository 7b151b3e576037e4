"""gRPC ⇄ domain translation for insights: unpack, ask who is calling, run the use case, pack."""

from __future__ import annotations

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from shequtong.common.v1 import common_pb2
from shequtong.insights.v1 import insights_pb2 as pb
from shequtong.insights.v1 import insights_pb2_grpc
from shequtong_insights import views
from shequtong_insights.domain import access
from shequtong_insights.domain import prompts as prompt_rules
from shequtong_insights.replay import Progress
from shequtong_insights.service import KIND, NEIGHBOURHOOD, SUBDISTRICT, InsightsService, PortraitView
from shequtong_kit import auth
from shequtong_kit.errors import InvalidArgument
from shequtong_kit.grpc_server import metadata_value
from shequtong_kit.idempotency import IDEMPOTENCY_METADATA, run_once
from shequtong_kit.pagination import decode_cursor, encode_cursor, page_size
from shequtong_kit.proto import ts

GROUPINGS = {
    pb.GROUP_BY_UNSPECIFIED: "",
    pb.GROUP_BY_SUBDISTRICT: SUBDISTRICT,
    pb.GROUP_BY_KIND: KIND,
    pb.GROUP_BY_NEIGHBOURHOOD: NEIGHBOURHOOD,
}
STATUSES = {value: name for name, value in views.PROMPT_STATUS.items()}
EXPORT_KINDS = {pb.EXPORT_KIND_DAILY: "daily", pb.EXPORT_KIND_COMPARISON: "comparison"}


def _cursor_key(cursor: str) -> str:
    decoded = decode_cursor(cursor)
    if decoded is None:
        return ""
    if len(decoded) != 1 or not isinstance(decoded[0], str):
        raise InvalidArgument("cursor is not one we issued", code="cursor_invalid")
    return decoded[0]


def _grouping(value: int) -> str:
    if value not in GROUPINGS:
        raise InvalidArgument("group by subdistrict, kind or neighbourhood", code="group_by_invalid")
    return GROUPINGS[value]


def portrait_to_proto(view: PortraitView) -> pb.Portrait:
    place = view.neighbourhood
    portrait = pb.Portrait(
        neighbourhood_id=place.neighbourhood_id,
        name=place.name,
        code=place.code,
        kind=place.kind,
        subdistrict_id=place.subdistrict_id,
        district_id=place.district_id,
        on_platform_since=ts(place.created_at),
        days_on_platform=view.days_on_platform,
        visibility=pb.VISIBILITY_FULL if view.visibility == access.FULL else pb.VISIBILITY_PUBLIC,
        period=views.period(view.period),
        figures=views.figures(view.figures),
        peer_ids=view.peer_ids,
        top_categories=[pb.CategoryCount(category_code=c, count=n, share=s) for c, n, s in view.top_categories],
        trends=[views.trend(t) for t in view.trends],
        generated_at=ts(view.generated_at),
        rebuilding=view.rebuilding,
    )
    if view.previous_period is not None and view.previous_figures is not None:
        portrait.previous_period.CopyFrom(views.period(view.previous_period))
        portrait.previous_figures.CopyFrom(views.figures(view.previous_figures))
    if view.peer_figures is not None:
        portrait.peer_figures.CopyFrom(views.figures(view.peer_figures))
    return portrait


def progress_to_proto(progress: list[Progress]) -> list[pb.StreamProgress]:
    return [
        pb.StreamProgress(
            stream=p.stream,
            consumer=p.consumer,
            target_sequence=p.target,
            acked_sequence=p.acked,
            pending=p.pending,
            caught_up=p.caught_up,
        )
        for p in progress
    ]


class InsightsServicer(insights_pb2_grpc.InsightsServiceServicer):
    def __init__(self, service: InsightsService) -> None:
        self.service = service

    async def GetPortrait(
        self, request: pb.GetPortraitRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetPortraitResponse:
        view = await self.service.portrait(auth.current(), request.neighbourhood_id, request.period_days)
        return pb.GetPortraitResponse(portrait=portrait_to_proto(view))

    async def CompareGroups(
        self, request: pb.CompareGroupsRequest, context: grpc.aio.ServicerContext
    ) -> pb.CompareGroupsResponse:
        principal = auth.current()
        limit = page_size(request.page.page_size)
        period, rows, more = await self.service.compare(
            principal,
            district_id=request.district_id,
            subdistrict_id=request.subdistrict_id,
            grouping=_grouping(request.group_by),
            requested_days=request.period_days,
            after=_cursor_key(request.page.cursor),
            limit=limit,
        )
        return pb.CompareGroupsResponse(
            period=views.period(period),
            group_by=request.group_by,
            rows=[
                pb.ComparisonRow(
                    key=r.key, label=r.label, neighbourhoods=r.neighbourhoods, figures=views.figures(r.figures)
                )
                for r in rows
            ],
            page=common_pb2.PageInfo(next_cursor=encode_cursor(rows[-1].key) if more and rows else "", has_more=more),
        )

    async def ExportCsv(self, request: pb.ExportCsvRequest, context: grpc.aio.ServicerContext) -> pb.ExportCsvResponse:
        principal = auth.current()
        kind = EXPORT_KINDS.get(request.kind)
        if kind is None:
            raise InvalidArgument("export kind is daily or comparison", code="export_kind_invalid")
        filename, content, rows = await self.service.export(
            principal,
            kind=kind,
            neighbourhood_id=request.neighbourhood_id,
            subdistrict_id=request.subdistrict_id,
            district_id=request.district_id,
            grouping=_grouping(request.group_by),
            requested_days=request.period_days,
        )
        return pb.ExportCsvResponse(filename=filename, content=content, rows=rows)

    async def ListPrompts(
        self, request: pb.ListPromptsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListPromptsResponse:
        principal = auth.current()
        limit = page_size(request.page.page_size)
        if request.status not in STATUSES and request.status != pb.PROMPT_STATUS_UNSPECIFIED:
            raise InvalidArgument("unknown status", code="status_invalid")
        prompts = await self.service.list_prompts(
            principal,
            neighbourhood_id=request.neighbourhood_id,
            subdistrict_id=request.subdistrict_id,
            district_id=request.district_id,
            status=STATUSES.get(request.status, ""),
            rule=request.rule,
            before=_cursor_key(request.page.cursor),
            limit=limit + 1,
        )
        more = len(prompts) > limit
        prompts = prompts[:limit]
        return pb.ListPromptsResponse(
            prompts=[views.prompt(p) for p in prompts],
            page=common_pb2.PageInfo(next_cursor=encode_cursor(prompts[-1].id) if more else "", has_more=more),
        )

    async def GetPrompt(self, request: pb.GetPromptRequest, context: grpc.aio.ServicerContext) -> pb.GetPromptResponse:
        prompt = await self.service.get_prompt(auth.current(), request.prompt_id)
        return pb.GetPromptResponse(prompt=views.prompt(prompt))

    async def _decide(
        self,
        method: str,
        request: pb.AcknowledgePromptRequest | pb.DismissPromptRequest,
        context: grpc.aio.ServicerContext,
        target: str,
        note: str,
    ) -> pb.Prompt:
        principal = auth.current()

        async def work(session: AsyncSession) -> pb.GetPromptResponse:
            prompt = await self.service.decide_prompt(session, principal, request.prompt_id, target, note)
            return pb.GetPromptResponse(prompt=views.prompt(prompt))

        reply = await run_once(
            self.service.sessions,
            metadata_value(context, IDEMPOTENCY_METADATA),
            f"{method}:{principal.subject}",
            request,
            pb.GetPromptResponse,
            work,
            self.service.clock,
        )
        return reply.prompt

    async def AcknowledgePrompt(
        self, request: pb.AcknowledgePromptRequest, context: grpc.aio.ServicerContext
    ) -> pb.AcknowledgePromptResponse:
        prompt = await self._decide("AcknowledgePrompt", request, context, prompt_rules.ACKNOWLEDGED, request.note)
        return pb.AcknowledgePromptResponse(prompt=prompt)

    async def DismissPrompt(
        self, request: pb.DismissPromptRequest, context: grpc.aio.ServicerContext
    ) -> pb.DismissPromptResponse:
        prompt = await self._decide("DismissPrompt", request, context, prompt_rules.DISMISSED, request.reason)
        return pb.DismissPromptResponse(prompt=prompt)

    async def DetectPainPoints(
        self, request: pb.DetectPainPointsRequest, context: grpc.aio.ServicerContext
    ) -> pb.DetectPainPointsResponse:
        principal = auth.current()

        async def work(session: AsyncSession) -> pb.DetectPainPointsResponse:
            result = await self.service.detect_now(session, principal)
            return pb.DetectPainPointsResponse(
                created=[views.prompt(p) for p in result.created],
                findings=result.findings,
                window_end=ts(result.window_end),
            )

        return await run_once(
            self.service.sessions,
            metadata_value(context, IDEMPOTENCY_METADATA),
            f"DetectPainPoints:{principal.subject}",
            request,
            pb.DetectPainPointsResponse,
            work,
            self.service.clock,
        )

    async def StartRebuild(
        self, request: pb.StartRebuildRequest, context: grpc.aio.ServicerContext
    ) -> pb.StartRebuildResponse:
        principal = auth.current()
        access.ensure_operator(principal)
        targets = await self.service.stream_positions()

        async def work(session: AsyncSession) -> pb.StartRebuildResponse:
            run = await self.service.begin_rebuild(session, principal, targets)
            return pb.StartRebuildResponse(rebuild=views.rebuild(run))

        reply = await run_once(
            self.service.sessions,
            metadata_value(context, IDEMPOTENCY_METADATA),
            f"StartRebuild:{principal.subject}",
            request,
            pb.StartRebuildResponse,
            work,
            self.service.clock,
        )
        if reply.rebuild.phase == pb.REBUILD_PHASE_RESETTING:
            await self.service.reset_consumers(reply.rebuild.id)
        view = await self.service.rebuild_status(principal, reply.rebuild.id)
        return pb.StartRebuildResponse(rebuild=views.rebuild(view.run, progress_to_proto(view.progress)))

    async def GetRebuild(
        self, request: pb.GetRebuildRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRebuildResponse:
        view = await self.service.rebuild_status(auth.current(), request.rebuild_id)
        return pb.GetRebuildResponse(rebuild=views.rebuild(view.run, progress_to_proto(view.progress)))
