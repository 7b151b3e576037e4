"""gRPC ⇄ domain translation for issues: unpack, `auth.current()`, call the use case, pack (masked as the
viewer may see it)."""

from __future__ import annotations

import json

import grpc

from shequtong.common.v1 import common_pb2
from shequtong.issues.v1 import issues_pb2 as pb
from shequtong.issues.v1 import issues_pb2_grpc
from shequtong_issues import imports
from shequtong_issues.domain import reports, sla
from shequtong_issues.domain.access import View
from shequtong_issues.domain.catalogue import Category as CategoryRule
from shequtong_issues.domain.states import Transition
from shequtong_issues.models import SlaBreach, SlaClock, TimelineEntry
from shequtong_issues.service import (
    Idem,
    IssuesService,
    IssueView,
    ReportCommand,
    TransitionCommand,
)
from shequtong_kit import auth, grpc_server
from shequtong_kit.errors import InvalidArgument
from shequtong_kit.idempotency import IDEMPOTENCY_METADATA
from shequtong_kit.pagination import decode_cursor, encode_cursor, page_size
from shequtong_kit.proto import from_ts, ts

ACTIONS = {
    pb.ISSUE_ACTION_ACKNOWLEDGE: Transition.ACKNOWLEDGE,
    pb.ISSUE_ACTION_START: Transition.START,
    pb.ISSUE_ACTION_ESCALATE: Transition.ESCALATE,
    pb.ISSUE_ACTION_DISPATCH: Transition.DISPATCH,
    pb.ISSUE_ACTION_RESOLVE: Transition.RESOLVE,
    pb.ISSUE_ACTION_REJECT: Transition.REJECT,
    pb.ISSUE_ACTION_MERGE: Transition.MERGE,
}
SCOPES = {
    pb.ISSUE_SCOPE_NEIGHBOURHOOD: "neighbourhood",
    pb.ISSUE_SCOPE_SUBDISTRICT: "subdistrict",
    pb.ISSUE_SCOPE_ASSIGNED_TO_ME: "assigned",
    pb.ISSUE_SCOPE_REPORTED_BY_ME: "reported",
    pb.ISSUE_SCOPE_NEIGHBOURHOOD_PUBLIC: "public",
}
# Roles whose person ids a masked (public) view still shows: people acting in an official capacity.
OFFICIAL_ROLES = frozenset({"committee", "subdistrict", "district", "operator", "grid", "system", "service"})


def issue_to_proto(item: IssueView) -> pb.Issue:
    issue, view = item.issue, item.view
    masked = view == View.PUBLIC
    location = pb.IssueLocation(
        household_id="" if masked else issue.household_id,
        building=issue.building,
        address=issue.address,
        has_point=issue.lat is not None,
    )
    if issue.lat is not None and issue.lon is not None:
        location.point.CopyFrom(common_pb2.GeoPoint(lat=issue.lat, lon=issue.lon))
    return pb.Issue(
        id=issue.id,
        neighbourhood_id=issue.neighbourhood_id,
        category_code=issue.category_code,
        description=issue.description,
        state=issue.state,
        reported_at=ts(issue.reported_at),
        subdistrict_id=issue.subdistrict_id,
        district_id=issue.district_id,
        level=issue.level,
        reporter_id="" if masked else (issue.reporter_id or ""),
        reporter_masked=masked,
        source=issue.source,
        source_post_id=issue.source_post_id or "",
        assignee_id=issue.assignee_id or "",
        location=location,
        photo_urls=list(issue.photo_urls or []),
        public=issue.public,
        response_due_at=ts(issue.response_due_at),
        resolution_due_at=ts(issue.resolution_due_at),
        overdue=sla.is_overdue(issue.response_due_at, issue.resolution_due_at, item.now),
        round=issue.round,
        version=issue.version,
        updated_at=ts(issue.updated_at),
        resolved_at=ts(issue.resolved_at),
        closed_at=ts(issue.closed_at),
        duplicate_of_id=issue.duplicate_of_id or "",
        reject_reason=issue.reject_reason,
        dispatch_id="" if masked else (issue.dispatch_id or ""),
        grid_service_code=issue.grid_service_code,
        category_name=item.category_name,
        title=issue.title,
        created_by="" if masked else issue.created_by,
        escalated=issue.escalated,
        awaiting_feedback=issue.state == "resolved" and issue.feedback_due_at is not None,
        feedback_due_at=ts(issue.feedback_due_at),
        resolved_level=issue.resolved_level or "",
        rating=issue.rating or 0,
    )


def entry_to_proto(entry: TimelineEntry, view: View) -> pb.TimelineEntry:
    masked = view == View.PUBLIC and entry.actor_role not in OFFICIAL_ROLES
    data = dict(entry.data or {})
    if view == View.PUBLIC:
        data.pop("dispatch_id", None)
        data.pop("ticket_id", None)
    return pb.TimelineEntry(
        id=entry.id,
        issue_id=entry.issue_id,
        seq=entry.seq,
        at=ts(entry.at),
        kind=entry.kind,
        actor_id="" if masked else entry.actor_id,
        actor_role=entry.actor_role,
        from_state=entry.from_state,
        to_state=entry.to_state,
        level=entry.level,
        internal=entry.internal,
        text=entry.text,
        photo_urls=list(entry.photo_urls or []),
        data_json=json.dumps(data, ensure_ascii=False, sort_keys=True),
    )


def clock_to_proto(c: SlaClock) -> pb.SlaClock:
    outcome = c.outcome
    if c.stopped_at is None and c.breached_at is not None:
        outcome = sla.Outcome.BREACHED.value
    return pb.SlaClock(
        id=c.id,
        round=c.round,
        clock=c.clock,
        level=c.level,
        started_at=ts(c.started_at),
        due_at=ts(c.due_at),
        stopped_at=ts(c.stopped_at),
        outcome=outcome,
        breached_at=ts(c.breached_at),
    )


def breach_to_proto(b: SlaBreach) -> pb.SlaBreach:
    return pb.SlaBreach(
        id=b.id,
        round=b.round,
        clock=b.clock,
        level=b.level,
        due_at=ts(b.due_at),
        detected_at=ts(b.detected_at),
        auto_escalated=b.auto_escalated,
        notified_level=b.notified_level,
    )


def category_to_proto(c: CategoryRule, district_id: str) -> pb.IssueCategory:
    return pb.IssueCategory(
        code=c.code,
        name=c.name,
        district_id=district_id,
        grid_service_code=c.grid_service_code,
        grid_service_name=c.grid_service_name,
        response_hours=c.response_hours,
        resolution_hours=c.resolution_hours,
        keywords=list(c.keywords),
        active=c.active,
        sort_order=c.sort_order,
    )


def _idem(context: grpc.aio.ServicerContext, method: str, request: object) -> Idem:
    return Idem(grpc_server.metadata_value(context, IDEMPOTENCY_METADATA), method, request)  # type: ignore[arg-type]


def _cursor_id(cursor: str) -> str | None:
    key = decode_cursor(cursor)
    if key is None:
        return None
    if len(key) != 1 or not isinstance(key[0], str):
        raise InvalidArgument("cursor is not one we issued", code="cursor_invalid")
    return key[0]


def _cursor_seq(cursor: str) -> int:
    key = decode_cursor(cursor)
    if key is None:
        return 0
    if len(key) != 1 or not isinstance(key[0], int):
        raise InvalidArgument("cursor is not one we issued", code="cursor_invalid")
    return key[0]


class IssuesServicer(issues_pb2_grpc.IssuesServiceServicer):
    def __init__(self, service: IssuesService) -> None:
        self.service = service

    async def ReportIssue(
        self, request: pb.ReportIssueRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReportIssueResponse:
        principal = auth.current()
        loc = request.location
        has_point = loc.has_point or loc.HasField("point")
        command = ReportCommand(
            neighbourhood_id=request.neighbourhood_id,
            category_code=request.category_code,
            title=request.title,
            description=request.description,
            location=reports.Location(
                household_id=loc.household_id,
                building=loc.building,
                address=loc.address,
                lat=loc.point.lat if has_point else None,
                lon=loc.point.lon if has_point else None,
            ),
            photo_urls=list(request.photo_urls),
            public=request.public,
            on_behalf_of=request.on_behalf_of_person_id,
        )
        return await self.service.report(
            principal,
            command,
            _idem(context, "ReportIssue", request),
            pb.ReportIssueResponse,
            lambda item: pb.ReportIssueResponse(issue=issue_to_proto(item)),
        )

    async def GetIssue(self, request: pb.GetIssueRequest, context: grpc.aio.ServicerContext) -> pb.GetIssueResponse:
        item = await self.service.get(auth.current(), request.id)
        return pb.GetIssueResponse(issue=issue_to_proto(item))

    async def ListIssues(
        self, request: pb.ListIssuesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListIssuesResponse:
        principal = auth.current()
        scope = SCOPES.get(request.scope)
        if scope is None:
            raise InvalidArgument("choose a scope", code="scope_invalid")
        limit = page_size(request.page.page_size)
        result = await self.service.list_issues(
            principal,
            scope,
            request.neighbourhood_id,
            request.subdistrict_id,
            list(request.filter.states),
            request.filter.category_code,
            request.filter.overdue_only,
            _cursor_id(request.page.cursor),
            limit,
        )
        return pb.ListIssuesResponse(
            issues=[issue_to_proto(i) for i in result.items],
            page=common_pb2.PageInfo(
                next_cursor=encode_cursor(result.next_cursor) if result.next_cursor else "",
                has_more=bool(result.next_cursor),
            ),
        )

    async def CountIssues(
        self, request: pb.CountIssuesRequest, context: grpc.aio.ServicerContext
    ) -> pb.CountIssuesResponse:
        scope = SCOPES.get(request.scope, "")
        counts = await self.service.count(
            auth.current(),
            scope,
            request.neighbourhood_id,
            request.subdistrict_id,
            list(request.filter.states),
            request.filter.category_code,
            request.filter.overdue_only,
        )
        return pb.CountIssuesResponse(
            total=counts.total,
            open=counts.open,
            overdue=counts.overdue,
            breaches=counts.breaches,
            by_state=[pb.CountEntry(key=k, count=v) for k, v in sorted(counts.by_state.items())],
            by_category=[pb.CountEntry(key=k, count=v) for k, v in sorted(counts.by_category.items())],
            by_neighbourhood=[
                pb.NeighbourhoodCounts(neighbourhood_id=n, total=t, open=o, overdue=d)
                for n, t, o, d in counts.by_neighbourhood
            ],
        )

    async def TransitionIssue(
        self, request: pb.TransitionIssueRequest, context: grpc.aio.ServicerContext
    ) -> pb.TransitionIssueResponse:
        principal = auth.current()
        transition = ACTIONS.get(request.action)
        if transition is None:
            raise InvalidArgument("choose an action", code="action_invalid")
        command = TransitionCommand(
            issue_id=request.issue_id,
            transition=transition,
            note=request.note,
            reason=request.reason,
            duplicate_of_id=request.duplicate_of_id,
            grid_service_code=request.grid_service_code,
            expected_version=request.expected_version,
            address=request.address,
        )
        return await self.service.transition(
            principal,
            command,
            _idem(context, "TransitionIssue", request),
            pb.TransitionIssueResponse,
            lambda item, dispatch_id: pb.TransitionIssueResponse(issue=issue_to_proto(item), dispatch_id=dispatch_id),
        )

    async def RecategoriseIssue(
        self, request: pb.RecategoriseIssueRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecategoriseIssueResponse:
        return await self.service.recategorise(
            auth.current(),
            request.issue_id,
            request.category_code,
            _idem(context, "RecategoriseIssue", request),
            pb.RecategoriseIssueResponse,
            lambda item: pb.RecategoriseIssueResponse(issue=issue_to_proto(item)),
        )

    async def AddIssueNote(
        self, request: pb.AddIssueNoteRequest, context: grpc.aio.ServicerContext
    ) -> pb.AddIssueNoteResponse:
        return await self.service.add_note(
            auth.current(),
            request.issue_id,
            request.text,
            request.internal,
            list(request.photo_urls),
            _idem(context, "AddIssueNote", request),
            pb.AddIssueNoteResponse,
            lambda entry: pb.AddIssueNoteResponse(entry=entry_to_proto(entry, View.STAFF)),
        )

    async def RateIssue(self, request: pb.RateIssueRequest, context: grpc.aio.ServicerContext) -> pb.RateIssueResponse:
        return await self.service.rate(
            auth.current(),
            request.issue_id,
            request.rating,
            request.fixed,
            request.comment,
            _idem(context, "RateIssue", request),
            pb.RateIssueResponse,
            lambda item, reopened: pb.RateIssueResponse(issue=issue_to_proto(item), reopened=reopened),
        )

    async def ListIssueTimeline(
        self, request: pb.ListIssueTimelineRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListIssueTimelineResponse:
        limit = page_size(request.page.page_size, default=50)
        entries, view, more = await self.service.timeline(
            auth.current(), request.issue_id, _cursor_seq(request.page.cursor), limit
        )
        return pb.ListIssueTimelineResponse(
            entries=[entry_to_proto(e, view) for e in entries],
            page=common_pb2.PageInfo(
                next_cursor=encode_cursor(entries[-1].seq) if more and entries else "", has_more=more
            ),
        )

    async def GetIssueSla(
        self, request: pb.GetIssueSlaRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetIssueSlaResponse:
        clocks, breaches = await self.service.sla_of(auth.current(), request.issue_id)
        return pb.GetIssueSlaResponse(
            clocks=[clock_to_proto(c) for c in clocks], breaches=[breach_to_proto(b) for b in breaches]
        )

    async def ListIssueCategories(
        self, request: pb.ListIssueCategoriesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListIssueCategoriesResponse:
        rules, is_default, district_id = await self.service.categories(
            auth.current(), request.district_id, request.neighbourhood_id, request.include_inactive
        )
        return pb.ListIssueCategoriesResponse(
            categories=[category_to_proto(r, "" if is_default else district_id) for r in rules],
            is_default=is_default,
        )

    async def UpsertIssueCategory(
        self, request: pb.UpsertIssueCategoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpsertIssueCategoryResponse:
        c = request.category
        rule = CategoryRule(
            code=c.code,
            name=c.name,
            grid_service_code=c.grid_service_code,
            grid_service_name=c.grid_service_name,
            response_hours=c.response_hours or sla.DEFAULT_RESPONSE_HOURS,
            resolution_hours=c.resolution_hours,
            keywords=tuple(c.keywords),
            active=c.active,
            sort_order=c.sort_order,
        )
        return await self.service.upsert_category(
            auth.current(),
            request.district_id,
            rule,
            _idem(context, "UpsertIssueCategory", request),
            pb.UpsertIssueCategoryResponse,
            lambda rule, district_id: pb.UpsertIssueCategoryResponse(category=category_to_proto(rule, district_id)),
        )

    async def SetResponseTarget(
        self, request: pb.SetResponseTargetRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetResponseTargetResponse:
        return await self.service.set_response_target(
            auth.current(),
            request.neighbourhood_id,
            request.category_code,
            request.response_hours,
            _idem(context, "SetResponseTarget", request),
            pb.SetResponseTargetResponse,
            lambda n, code, hours: pb.SetResponseTargetResponse(
                neighbourhood_id=n, category_code=code, response_hours=hours
            ),
        )

    async def ImportIssues(
        self, request: pb.ImportIssuesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ImportIssuesResponse:
        principal = auth.current()
        outcome = await self.service.imports.run(principal, [import_record(item) for item in request.issues])
        return pb.ImportIssuesResponse(
            received=outcome.received,
            created=outcome.created,
            skipped=outcome.skipped,
            issues=[
                pb.ImportedIssue(external_ref=ref, id=issue_id, created=created, state=state)
                for ref, issue_id, created, state in outcome.records
            ],
        )


IMPORT_ACTIONS = {
    pb.IMPORT_STEP_ACTION_ACKNOWLEDGE: "acknowledge",
    pb.IMPORT_STEP_ACTION_START: "start",
    pb.IMPORT_STEP_ACTION_ESCALATE: "escalate",
    pb.IMPORT_STEP_ACTION_DISPATCH: "dispatch",
    pb.IMPORT_STEP_ACTION_RESOLVE: "resolve",
    pb.IMPORT_STEP_ACTION_REJECT: "reject",
    pb.IMPORT_STEP_ACTION_GRID_RETURNED: "grid_returned",
    pb.IMPORT_STEP_ACTION_GRID_CLOSED: "grid_closed",
    pb.IMPORT_STEP_ACTION_RATE: "rate",
    pb.IMPORT_STEP_ACTION_CLOSE: "close",
}


def import_record(item: pb.ImportIssue) -> imports.IssueRecord:
    loc = item.location
    return imports.IssueRecord(
        external_ref=item.external_ref,
        neighbourhood_id=item.neighbourhood_id,
        category_code=item.category_code,
        title=item.title,
        description=item.description,
        location=reports.Location(
            household_id=loc.household_id,
            building=loc.building,
            address=loc.address,
            lat=loc.point.lat if loc.has_point else None,
            lon=loc.point.lon if loc.has_point else None,
        ),
        public=item.public,
        source=item.source,
        reporter_id=item.reporter_id,
        created_by=item.created_by,
        assignee_id=item.assignee_id,
        reported_at=from_ts(item.reported_at) if item.HasField("reported_at") else None,
        steps=[
            imports.StepRecord(
                action=IMPORT_ACTIONS.get(s.action, ""),
                at=from_ts(s.at) if s.HasField("at") else None,
                actor_id=s.actor_id,
                actor_role=s.actor_role,
                note=s.note,
                reason=s.reason,
                rating=s.rating,
                fixed=s.fixed,
                grid_service_code=s.grid_service_code,
            )
            for s in item.steps
        ],
    )
