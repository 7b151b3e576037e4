"""Outgoing events of issues (subjects `issues.issue.<event>`), written into the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from shequtong.events.v1 import issues_events_pb2 as ev
from shequtong_issues.domain.states import Step
from shequtong_issues.models import Dispatch, Feedback, Issue, SlaBreach
from shequtong_kit.outbox import Outbox, packed
from shequtong_kit.packs import ISSUES_IMPORTED
from shequtong_kit.proto import ts

PREFIX = "issues.issue."
REPORTED = PREFIX + "reported"
# Facts of the record that are not state changes live under `issues.record.*`: consumers of `issues.issue.>`
# read every subject there except dispatch_requested, sla_breached and rated as an IssueStateChanged.
RECORD = "issues.record."
ASSIGNED = RECORD + "assigned"
NOTED = RECORD + "noted"
RECATEGORISED = RECORD + "recategorised"
DISPATCH_REQUESTED = PREFIX + "dispatch_requested"
SLA_BREACHED = PREFIX + "sla_breached"
RATED = PREFIX + "rated"


def state_subject(step: Step) -> str:
    return PREFIX + step.subject_suffix


async def reported(outbox: Outbox, session: AsyncSession, issue: Issue) -> None:
    await outbox.add(session, REPORTED, reported_message(issue))


def reported_message(issue: Issue) -> ev.IssueReported:
    return ev.IssueReported(
        issue_id=issue.id,
        neighbourhood_id=issue.neighbourhood_id,
        category_code=issue.category_code,
        reporter_id=issue.reporter_id or "",
        source=issue.source,
        source_post_id=issue.source_post_id or "",
        assignee_id=issue.assignee_id or "",
        reported_at=ts(issue.reported_at),
        response_due_at=ts(issue.response_due_at),
        building=issue.building,
        subdistrict_id=issue.subdistrict_id,
        district_id=issue.district_id,
        resolution_due_at=ts(issue.resolution_due_at),
        public=issue.public,
        created_by=issue.created_by,
        lat=issue.lat or 0.0,
        lon=issue.lon or 0.0,
        has_point=issue.lat is not None,
    )


async def assigned(outbox: Outbox, session: AsyncSession, issue: Issue, fallback: bool, at: datetime) -> None:
    await outbox.add(session, ASSIGNED, assigned_message(issue, fallback, at))


def assigned_message(issue: Issue, fallback: bool, at: datetime) -> ev.IssueAssigned:
    return ev.IssueAssigned(
        issue_id=issue.id,
        neighbourhood_id=issue.neighbourhood_id,
        assignee_id=issue.assignee_id or "",
        fallback_to_secretary=fallback,
        assigned_at=ts(at),
    )


async def state_changed(
    outbox: Outbox,
    session: AsyncSession,
    issue: Issue,
    step: Step,
    actor_id: str,
    actor_kind: str,
    at: datetime,
    note: str = "",
    reason: str = "",
) -> None:
    await outbox.add(
        session, state_subject(step), state_changed_message(issue, step, actor_id, actor_kind, at, note, reason)
    )


def state_changed_message(
    issue: Issue, step: Step, actor_id: str, actor_kind: str, at: datetime, note: str = "", reason: str = ""
) -> ev.IssueStateChanged:
    return ev.IssueStateChanged(
        issue_id=issue.id,
        neighbourhood_id=issue.neighbourhood_id,
        from_state=step.from_state.value,
        to_state=step.to_state.value,
        actor_id=actor_id,
        note=note,
        level=step.to_level.value,
        occurred_at=ts(at),
        category_code=issue.category_code,
        reported_at=ts(issue.reported_at),
        subdistrict_id=issue.subdistrict_id,
        district_id=issue.district_id,
        transition=step.subject_suffix,
        round=issue.round,
        reason=reason,
        duplicate_of_id=issue.duplicate_of_id or "",
        dispatch_id=issue.dispatch_id or "",
        actor_kind=actor_kind,
    )


async def dispatch_requested(
    outbox: Outbox, session: AsyncSession, issue: Issue, dispatch: Dispatch, description: str, media: list[str]
) -> None:
    address = " ".join(part for part in (issue.address, issue.building) if part)
    await outbox.add(
        session,
        DISPATCH_REQUESTED,
        ev.IssueDispatchRequested(
            issue_id=issue.id,
            dispatch_id=dispatch.id,
            neighbourhood_id=issue.neighbourhood_id,
            category_code=issue.category_code,
            grid_service_code=dispatch.grid_service_code,
            description=description,
            address=address,
            lat=issue.lat or 0.0,
            lon=issue.lon or 0.0,
            media_urls=media,
            requested_by=dispatch.requested_by,
            requested_at=ts(dispatch.requested_at),
        ),
    )


async def sla_breached(
    outbox: Outbox, session: AsyncSession, issue: Issue, breach: SlaBreach, auto_escalated: bool
) -> None:
    await outbox.add(session, SLA_BREACHED, sla_breached_message(issue, breach, auto_escalated))


def sla_breached_message(issue: Issue, breach: SlaBreach, auto_escalated: bool) -> ev.IssueSlaBreached:
    return ev.IssueSlaBreached(
        issue_id=issue.id,
        neighbourhood_id=issue.neighbourhood_id,
        clock=breach.clock,
        level=breach.level,
        due_at=ts(breach.due_at),
        breached_at=ts(breach.detected_at),
        subdistrict_id=issue.subdistrict_id,
        district_id=issue.district_id,
        round=breach.round,
        notified_level=breach.notified_level,
        auto_escalated=auto_escalated,
        category_code=issue.category_code,
    )


async def rated(outbox: Outbox, session: AsyncSession, issue: Issue, feedback: Feedback) -> None:
    await outbox.add(session, RATED, rated_message(issue, feedback))


def rated_message(issue: Issue, feedback: Feedback) -> ev.IssueRated:
    return ev.IssueRated(
        issue_id=issue.id,
        neighbourhood_id=issue.neighbourhood_id,
        rating=feedback.rating,
        fixed=feedback.fixed,
        level=feedback.level,
        rated_at=ts(feedback.rated_at),
        subdistrict_id=issue.subdistrict_id,
        district_id=issue.district_id,
        round=feedback.round,
        reopened=feedback.reopened,
        category_code=issue.category_code,
    )


async def noted(
    outbox: Outbox,
    session: AsyncSession,
    issue: Issue,
    entry_id: str,
    actor_id: str,
    internal: bool,
    photos: int,
    at: datetime,
) -> None:
    await outbox.add(
        session,
        NOTED,
        ev.IssueNoteAdded(
            issue_id=issue.id,
            neighbourhood_id=issue.neighbourhood_id,
            entry_id=entry_id,
            actor_id=actor_id,
            internal=internal,
            photo_count=photos,
            added_at=ts(at),
        ),
    )


async def recategorised(
    outbox: Outbox, session: AsyncSession, issue: Issue, before: str, actor_id: str, at: datetime
) -> None:
    await outbox.add(
        session,
        RECATEGORISED,
        ev.IssueRecategorised(
            issue_id=issue.id,
            neighbourhood_id=issue.neighbourhood_id,
            from_category_code=before,
            to_category_code=issue.category_code,
            actor_id=actor_id,
            occurred_at=ts(at),
        ),
    )


# The field of `ImportedIssueEvent` each message an import sends goes in.
_IMPORTED_AS = {
    ev.IssueReported: "reported",
    ev.IssueStateChanged: "state_changed",
    ev.IssueSlaBreached: "sla_breached",
    ev.IssueRated: "rated",
    ev.IssueAssigned: "assigned",
}


def imported_messages(items: Sequence[tuple[str, Message]]) -> list[tuple[str, Message]]:
    """An import's events (subject, message), in order, as packed `issues.record.imported` events."""
    held = [
        ev.ImportedIssueEvent(subject=subject, **{_IMPORTED_AS[type(message)]: message}) for subject, message in items
    ]
    return [(ISSUES_IMPORTED, ev.IssueEventsImported(events=chunk)) for chunk in packed(held)]
