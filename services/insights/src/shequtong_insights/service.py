"""Insights use cases: portraits, comparisons, exports, pain-point detection, prompts and rebuilds.

Reads never change anything. Prompts are insights' own state: each is created (by detection) or
decided (by a cadre) in one transaction. Insights publishes no events of its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shequtong.common.v1 import common_pb2
from shequtong_insights.domain import access
from shequtong_insights.domain import figures as fig
from shequtong_insights.domain import metrics as m
from shequtong_insights.domain import painpoints as pp
from shequtong_insights.domain import prompts as prompt_rules
from shequtong_insights.domain.csvexport import to_csv
from shequtong_insights.domain.periods import Period, period_days, period_ending
from shequtong_insights.domain.trends import Trend, trends
from shequtong_insights.models import Neighbourhood, Prompt, RebuildRun
from shequtong_insights.region_names import RegionNames
from shequtong_insights.replay import Progress, Replayer
from shequtong_insights.repository import DETECTOR_LOCK, PROJECTION_LOCK, Reader, drop_projections, take_lock
from shequtong_insights.views import evidence_json
from shequtong_kit import regions
from shequtong_kit.auth import Principal
from shequtong_kit.clock import Clock
from shequtong_kit.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from shequtong_kit.ids import new_id
from shequtong_kit.telemetry import meter

log = logging.getLogger(__name__)

TOP_CATEGORIES = 5
MAX_EXPORT_ROWS = 200_000
RESET_GRACE = timedelta(seconds=30)

SUBDISTRICT = "subdistrict"
KIND = "kind"
NEIGHBOURHOOD = "neighbourhood"
GROUPINGS = (SUBDISTRICT, KIND, NEIGHBOURHOOD)
KIND_NAMES = {
    common_pb2.NEIGHBOURHOOD_KIND_RESIDENTIAL: "residential",
    common_pb2.NEIGHBOURHOOD_KIND_VILLAGE: "village",
}


@dataclass
class PortraitView:
    neighbourhood: Neighbourhood
    visibility: str
    period: Period
    figures: fig.Figures
    previous_period: Period | None = None
    previous_figures: fig.Figures | None = None
    peer_figures: fig.Figures | None = None
    peer_ids: list[str] = field(default_factory=list)
    top_categories: list[tuple[str, int, float]] = field(default_factory=list)
    trends: list[Trend] = field(default_factory=list)
    generated_at: datetime | None = None
    days_on_platform: int = 0
    rebuilding: bool = False


@dataclass(frozen=True)
class ComparisonRow:
    key: str
    label: str
    neighbourhoods: int
    figures: fig.Figures


@dataclass
class DetectionResult:
    created: list[Prompt]
    findings: int
    window_end: datetime


@dataclass
class RebuildView:
    run: RebuildRun
    progress: list[Progress]


def kind_name(kind: int) -> str:
    return KIND_NAMES.get(kind, "unspecified")  # type: ignore[call-overload]


class InsightsService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        replayer: Replayer,
        day_offset_minutes: int,
        region_names: RegionNames | None = None,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.replayer = replayer
        self.offset = day_offset_minutes
        self.region_names = region_names
        m_ = meter("shequtong.insights")
        self._prompts_raised = m_.create_counter(
            "insights_prompts_raised_total", description="work prompts raised, by rule and level"
        )
        self._rebuilds = m_.create_counter("insights_rebuilds_total", description="projection rebuilds started")

    # --- portraits -------------------------------------------------------------------------------
    async def portrait(self, principal: Principal, neighbourhood_id: str, requested_days: int) -> PortraitView:
        if not neighbourhood_id:
            raise InvalidArgument("neighbourhood_id is required", code="neighbourhood_id_required")
        days = period_days(requested_days)
        now = self.clock.now()
        async with self.sessions() as session:
            lineage = await regions.lineage(session, neighbourhood_id)
            visibility = access.portrait_visibility(principal, lineage)
            reader = Reader(session)
            place = await reader.neighbourhood(neighbourhood_id)
            if place is None:
                raise NotFound("no such neighbourhood", code="neighbourhood_not_found")
            period = period_ending(now, days, self.offset)
            rebuilding = bool(await reader.unfinished_rebuilds())
            view = PortraitView(
                neighbourhood=place,
                visibility=visibility,
                period=period,
                figures=fig.Figures(),
                generated_at=now,
                days_on_platform=max(0, (now - place.created_at).days),
                rebuilding=rebuilding,
            )
            if visibility == access.PUBLIC:
                raw = (await reader.raw_figures([neighbourhood_id], period, now))[neighbourhood_id]
                view.figures = fig.public_view(fig.build(raw))
                return view
            peers = [
                n.neighbourhood_id
                for n in await reader.neighbourhoods(subdistrict_id=place.subdistrict_id, kind=place.kind)
                if n.neighbourhood_id != neighbourhood_id
            ]
            current = await reader.raw_figures([neighbourhood_id, *peers], period, now)
            previous = period.previous()
            before = (await reader.raw_figures([neighbourhood_id], previous, now))[neighbourhood_id]
        own = current[neighbourhood_id]
        view.figures = fig.build(own)
        view.previous_period = previous
        view.previous_figures = fig.build(before)
        peer_figures = [fig.build(current[p]) for p in peers]
        view.peer_figures = fig.peer_median(peer_figures)
        view.peer_ids = peers
        total = sum(own.categories.values())
        view.top_categories = [
            (code, count, round(count / total, 4))
            for code, count in sorted(own.categories.items(), key=lambda item: (-item[1], item[0]))[:TOP_CATEGORIES]
        ]
        view.trends = trends(view.figures, view.previous_figures, peer_figures, days)
        return view

    # --- comparisons -----------------------------------------------------------------------------
    async def _scope(
        self, session: AsyncSession, principal: Principal, district_id: str, subdistrict_id: str
    ) -> list[Neighbourhood]:
        if bool(district_id) == bool(subdistrict_id):
            raise InvalidArgument("give exactly one of district_id and subdistrict_id", code="scope_invalid")
        reader = Reader(session)
        parent = await reader.district_of_subdistrict(subdistrict_id) if subdistrict_id else ""
        access.ensure_may_compare(principal, district_id, subdistrict_id, parent)
        return await reader.neighbourhoods(district_id=district_id, subdistrict_id=subdistrict_id)

    @staticmethod
    def _group_key(grouping: str, n: Neighbourhood) -> tuple[str, str]:
        if grouping == SUBDISTRICT:
            return n.subdistrict_id, n.subdistrict_id
        if grouping == KIND:
            return kind_name(n.kind), kind_name(n.kind)
        return n.neighbourhood_id, n.name

    async def compare(
        self,
        principal: Principal,
        *,
        district_id: str,
        subdistrict_id: str,
        grouping: str,
        requested_days: int,
        after: str = "",
        limit: int | None = None,
    ) -> tuple[Period, list[ComparisonRow], bool]:
        days = period_days(requested_days)
        grouping = grouping or (SUBDISTRICT if district_id else KIND)
        if grouping not in GROUPINGS:
            raise InvalidArgument("group by subdistrict, kind or neighbourhood", code="group_by_invalid")
        now = self.clock.now()
        period = period_ending(now, days, self.offset)
        async with self.sessions() as session:
            members = await self._scope(session, principal, district_id, subdistrict_id)
            groups: dict[str, list[Neighbourhood]] = {}
            labels: dict[str, str] = {}
            for n in members:
                key, label = self._group_key(grouping, n)
                groups.setdefault(key, []).append(n)
                labels[key] = label
            keys = sorted(k for k in groups if k > after)
            more = limit is not None and len(keys) > limit
            if limit is not None:
                keys = keys[:limit]
            ids = [n.neighbourhood_id for key in keys for n in groups[key]]
            raws = await Reader(session).raw_figures(ids, period, now)
        if grouping == SUBDISTRICT and self.region_names is not None:
            names = await self.region_names.names(keys)
            labels.update({key: name for key, name in names.items() if name})
        rows = [
            ComparisonRow(
                key=key,
                label=labels[key],
                neighbourhoods=len(groups[key]),
                figures=fig.build(fig.merge_all([raws[n.neighbourhood_id] for n in groups[key]])),
            )
            for key in keys
        ]
        return period, rows, more

    # --- exports ---------------------------------------------------------------------------------
    async def export(
        self,
        principal: Principal,
        *,
        kind: str,
        neighbourhood_id: str,
        subdistrict_id: str,
        district_id: str,
        grouping: str,
        requested_days: int,
    ) -> tuple[str, bytes, int]:
        if kind == "comparison":
            if neighbourhood_id:
                raise InvalidArgument("a comparison is of a sub-district or a district", code="scope_invalid")
            period, rows, _ = await self.compare(
                principal,
                district_id=district_id,
                subdistrict_id=subdistrict_id,
                grouping=grouping,
                requested_days=requested_days,
            )
            content, count = to_csv(COMPARISON_HEADER, (comparison_cells(row) for row in rows))
            scope = district_id or subdistrict_id
            return f"comparison-{scope}-{period.first_day}-{period.last_day}.csv", content, count
        if kind != "daily":
            raise InvalidArgument("export kind is daily or comparison", code="export_kind_invalid")
        days = period_days(requested_days)
        period = period_ending(self.clock.now(), days, self.offset)
        async with self.sessions() as session:
            if neighbourhood_id:
                if subdistrict_id or district_id:
                    raise InvalidArgument("give one scope", code="scope_invalid")
                access.ensure_may_export_scope(principal, await regions.lineage(session, neighbourhood_id), "", "")
                place = await Reader(session).neighbourhood(neighbourhood_id)
                places = [place] if place else []
            else:
                places = await self._scope(session, principal, district_id, subdistrict_id)
            if len(places) * days > MAX_EXPORT_ROWS:
                raise InvalidArgument("export fewer days or a smaller scope", code="export_too_large")
            daily = await Reader(session).daily([p.neighbourhood_id for p in places], period)
        header = (
            "day",
            "neighbourhood_id",
            "code",
            "name",
            "kind",
            "subdistrict_id",
            "active_residents",
            *m.DAILY_COLUMNS,
        )
        lines = (
            (
                day.isoformat(),
                p.neighbourhood_id,
                p.code,
                p.name,
                kind_name(p.kind),
                p.subdistrict_id,
                daily.get((p.neighbourhood_id, day), Counter())["active_residents"],
                *(daily.get((p.neighbourhood_id, day), Counter())[column] for column in m.DAILY_COLUMNS),
            )
            for day in period.each_day()
            for p in places
        )
        content, count = to_csv(header, lines)
        scope = neighbourhood_id or subdistrict_id or district_id
        return f"daily-{scope}-{period.first_day}-{period.last_day}.csv", content, count

    # --- pain points -----------------------------------------------------------------------------
    async def detect(self, session: AsyncSession) -> DetectionResult:
        """One detection run in the caller's transaction (one run at a time across replicas)."""
        now = self.clock.now()
        end = pp.window_end_for(now)
        await take_lock(session, DETECTOR_LOCK)
        reader = Reader(session)
        places = await reader.places()
        sightings = await reader.sightings(end - timedelta(days=pp.LOOKBACK_DAYS), end)
        findings = [
            *pp.detect_spikes(sightings, places, end),
            *pp.detect_repeated_places(sightings, places, end),
            *pp.detect_overdue_clusters(await reader.overdue(now), places, end),
        ]
        raised = await reader.raised_since(end - timedelta(days=pp.LOOKBACK_DAYS))
        created = []
        for finding in pp.new_findings(findings, raised):
            prompt = Prompt(
                id=new_id(),
                level=finding.level,
                place_id=finding.place_id,
                neighbourhood_id=finding.neighbourhood_id,
                subdistrict_id=finding.subdistrict_id,
                district_id=finding.district_id,
                rule=finding.rule,
                subject=finding.subject[:200],
                window_start=finding.window_start,
                window_end=finding.window_end,
                title=finding.title[:300],
                statement=finding.statement,
                evidence=evidence_json(finding.evidence),
                status=prompt_rules.OPEN,
                decided_by="",
                decision_note="",
                decided_at=None,
                created_at=now,
            )
            session.add(prompt)
            created.append(prompt)
        await session.flush()
        for prompt in created:
            self._prompts_raised.add(1, {"rule": prompt.rule, "level": prompt.level})
        if created:
            log.info("work prompts raised", extra={"prompts_created": len(created), "findings": len(findings)})
        return DetectionResult(created, len(findings), end)

    async def detect_now(self, session: AsyncSession, principal: Principal) -> DetectionResult:
        access.ensure_may_run_detection(principal)
        return await self.detect(session)

    async def detection_loop(self, interval: float) -> None:
        """The scheduled task: detection every `interval` seconds (each replica; runs serialise)."""
        while True:
            await asyncio.sleep(interval)
            try:
                async with self.sessions() as session, session.begin():
                    await self.detect(session)
            except IntegrityError:
                log.info("another replica raised the same prompts first")
            except Exception as exc:
                log.warning("scheduled detection failed", extra={"error": type(exc).__name__})

    # --- prompts ---------------------------------------------------------------------------------
    async def list_prompts(
        self,
        principal: Principal,
        *,
        neighbourhood_id: str,
        subdistrict_id: str,
        district_id: str,
        status: str,
        rule: str,
        before: str,
        limit: int,
    ) -> list[Prompt]:
        scope = access.prompt_scope(principal)
        if scope.empty:
            raise PermissionDenied("work prompts are for cadres and staff", code="prompts_forbidden")
        async with self.sessions() as session:
            return await Reader(session).prompts(
                scope,
                neighbourhood_id=neighbourhood_id,
                subdistrict_id=subdistrict_id,
                district_id=district_id,
                status=status,
                rule=rule,
                before=before,
                limit=limit,
            )

    @staticmethod
    def _ensure_may_handle(principal: Principal, prompt: Prompt | None) -> Prompt:
        if prompt is None or not access.may_handle_prompt(
            principal, prompt.level, prompt.neighbourhood_id, prompt.subdistrict_id, prompt.district_id
        ):
            # The same answer whether it does not exist or is someone else's: ids reveal nothing.
            raise NotFound("no such prompt", code="prompt_not_found")
        return prompt

    async def get_prompt(self, principal: Principal, prompt_id: str) -> Prompt:
        async with self.sessions() as session:
            return self._ensure_may_handle(principal, await Reader(session).prompt(prompt_id))

    async def decide_prompt(
        self, session: AsyncSession, principal: Principal, prompt_id: str, target: str, note: str
    ) -> Prompt:
        """In the caller's transaction: acknowledge or dismiss (a repeat of the same decision is a no-op)."""
        cleaned = prompt_rules.clean_note(note, required=target == prompt_rules.DISMISSED)
        prompt = self._ensure_may_handle(principal, await Reader(session).prompt(prompt_id, for_update=True))
        if prompt_rules.decide(prompt.status, target):
            prompt.status = target
            prompt.decided_by = principal.subject
            prompt.decision_note = cleaned
            prompt.decided_at = self.clock.now()
            await session.flush()
        return prompt

    # --- rebuild ---------------------------------------------------------------------------------
    async def begin_rebuild(self, session: AsyncSession, principal: Principal, targets: dict[str, int]) -> RebuildRun:
        """Drops every projection (in the caller's transaction, holding the projection lock alone)."""
        access.ensure_operator(principal)
        await take_lock(session, PROJECTION_LOCK)
        if await Reader(session).unfinished_rebuilds():
            raise FailedPrecondition("a rebuild is already running", code="rebuild_in_progress")
        dropped = await drop_projections(session, [spec.name for spec in self.replayer.specs])
        run = RebuildRun(
            id=new_id(),
            phase="resetting",
            requested_by=principal.subject,
            started_at=self.clock.now(),
            finished_at=None,
            rows_dropped=dropped,
            targets=dict(targets),
        )
        session.add(run)
        await session.flush()
        self._rebuilds.add(1)
        log.info("projections dropped for a rebuild", extra={"rebuild_id": run.id, "rows_dropped": dropped})
        return run

    async def stream_positions(self) -> dict[str, int]:
        return await self.replayer.positions()

    async def reset_consumers(self, rebuild_id: str) -> None:
        """After the drop has committed: replay from the start, then mark the run as replaying."""
        async with self.sessions() as session:
            run = await Reader(session).rebuild(rebuild_id)
        if run is None or run.phase != "resetting":
            return
        await self.replayer.reset()
        async with self.sessions() as session, session.begin():
            run = await session.get(RebuildRun, rebuild_id, with_for_update=True)
            if run is not None and run.phase == "resetting":
                run.phase = "replaying"

    async def rebuild_status(self, principal: Principal, rebuild_id: str) -> RebuildView:
        access.ensure_operator(principal)
        async with self.sessions() as session:
            run = await Reader(session).rebuild(rebuild_id)
        if run is None:
            raise NotFound("no such rebuild", code="rebuild_not_found")
        return await self._advance(run)

    async def _advance(self, run: RebuildRun) -> RebuildView:
        if run.phase == "done":
            return RebuildView(run, [])
        progress = await self.replayer.progress(run.targets)
        if run.phase == "replaying" and all(p.caught_up for p in progress):
            async with self.sessions() as session, session.begin():
                fresh = await session.get(RebuildRun, run.id, with_for_update=True)
                if fresh is not None and fresh.phase == "replaying":
                    fresh.phase = "done"
                    fresh.finished_at = self.clock.now()
                    log.info("rebuild done", extra={"rebuild_id": run.id})
                run = fresh or run
        return RebuildView(run, progress)

    async def maintenance_loop(self, interval: float) -> None:
        """Resumes an interrupted reset, finishes replays that caught up, recreates missing durables."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.replayer.ensure()
                async with self.sessions() as session:
                    runs = await Reader(session).unfinished_rebuilds()
                for run in runs:
                    if run.phase == "resetting" and self.clock.now() - run.started_at > RESET_GRACE:
                        await self.reset_consumers(run.id)
                    elif run.phase == "replaying":
                        await self._advance(run)
            except Exception as exc:
                log.warning("rebuild maintenance failed", extra={"error": type(exc).__name__})


COMPARISON_HEADER = (
    "key",
    "label",
    "neighbourhoods",
    "residents",
    "households",
    "active_residents",
    "participation_rate",
    "posts",
    "comments",
    "votes",
    "topics_proposed",
    "conventions_adopted",
    "conventions_total",
    "issues_reported",
    "issues_acknowledged",
    "issues_resolved",
    "issues_escalated",
    "issues_dispatched",
    "issues_reopened",
    "issues_open",
    "sla_breaches",
    "response_count",
    "response_median_hours",
    "response_p90_hours",
    "resolution_count",
    "resolution_median_hours",
    "resolution_p90_hours",
    "resolved_inside",
    "share_resolved_inside",
    "ratings",
    "mean_rating",
    "share_satisfied",
    "volunteer_hours",
    "volunteers_approved",
    "bookings",
    "booking_ratings",
    "mean_booking_rating",
    "grid_tickets_sent",
    "grid_tickets_closed",
    "grid_tickets_failed",
)


def comparison_cells(row: ComparisonRow) -> Sequence[object]:
    f = row.figures
    return (
        row.key,
        row.label,
        row.neighbourhoods,
        f.residents,
        f.households,
        f.active_residents,
        f.participation_rate,
        f.posts,
        f.comments,
        f.votes,
        f.topics_proposed,
        f.conventions_adopted,
        f.conventions_total,
        f.issues_reported,
        f.issues_acknowledged,
        f.issues_resolved,
        f.issues_escalated,
        f.issues_dispatched,
        f.issues_reopened,
        f.issues_open,
        f.sla_breaches,
        f.response_time.count,
        f.response_time.median_hours,
        f.response_time.p90_hours,
        f.resolution_time.count,
        f.resolution_time.median_hours,
        f.resolution_time.p90_hours,
        f.resolved_inside,
        f.share_resolved_inside,
        f.ratings,
        f.mean_rating,
        f.share_satisfied,
        f.volunteer_hours,
        f.volunteers_approved,
        f.bookings,
        f.booking_ratings,
        f.mean_booking_rating,
        f.grid_tickets_sent,
        f.grid_tickets_closed,
        f.grid_tickets_failed,
    )
