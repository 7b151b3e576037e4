"""JetStream handlers of boards: every event it reacts to, idempotent through the kit's inbox and through
its own unique keys (upserts for projections, one system reply per source event)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import cast

from sqlalchemy.ext.asyncio import AsyncSession

from shequtong.events.v1 import identity_events_pb2 as identity_ev
from shequtong.events.v1 import issues_events_pb2 as issues_ev
from shequtong_boards.service import BoardsService
from shequtong_kit import packs, regions
from shequtong_kit.consumer import ConsumerSpec, ReceivedEvent, pack_items, peeked, route

MEMBERSHIP_VERIFIED = "identity.membership.verified"
MEMBERSHIP_LEFT = "identity.membership.left"
ROLE_GRANTED = "identity.role.granted"
ROLE_REVOKED = "identity.role.revoked"
PERSON_UPDATED = "identity.person.updated"
# An import's residents: their verifications and party-member badges, packed (`route` opens it).
RESIDENTS_IMPORTED = packs.RESIDENTS_IMPORTED
ROLES_GRANTED_MANY = packs.ROLES_GRANTED_MANY

ISSUE_REPORTED = "issues.issue.reported"
# issues.issue.<transition> carry IssueStateChanged, except these, which have payloads of their own.
ISSUE_OTHER = {"issues.issue.dispatch_requested", "issues.issue.sla_breached", "issues.issue.rated"}
# An import's historic issues: their events, packed (under issues.record.*: not a state change).
ISSUES_IMPORTED = packs.ISSUES_IMPORTED


def consumer_specs(service: BoardsService) -> list[ConsumerSpec]:
    async def neighbourhood_created(
        session: AsyncSession, message: identity_ev.NeighbourhoodCreated, event: ReceivedEvent
    ) -> None:
        await regions.record_neighbourhood(session, message, event)
        await service.open_boards_for(session, message.neighbourhood_id)

    people = service.projections

    def changes_state(subject: str) -> bool:
        return subject.startswith("issues.issue.") and subject not in ISSUE_OTHER and subject != ISSUE_REPORTED

    async def issue_event(session: AsyncSession, event: ReceivedEvent) -> None:
        items = pack_items(event)
        if items is None:
            if event.subject == ISSUE_REPORTED:
                await people.issue_reported(session, event.parse(issues_ev.IssueReported), event)
            elif changes_state(event.subject):
                await people.issue_state_changed(session, event.parse(issues_ev.IssueStateChanged), event)
            return
        for index, (subject, message) in enumerate(items):
            # Each item its own event id: a status reply is made once per source event.
            item = replace(event, id=f"{event.id}#{index}", subject=subject)
            if subject == ISSUE_REPORTED:
                await people.issue_reported(session, cast(issues_ev.IssueReported, message), item)
            elif changes_state(subject):
                await people.issue_state_changed(session, cast(issues_ev.IssueStateChanged, message), item)

    async def issue_batch(session: AsyncSession, events: Sequence[ReceivedEvent]) -> None:
        changed: list[str] = []
        for event in events:
            items = pack_items(event, peek=True)
            if items is not None:
                changed += [cast(issues_ev.IssueStateChanged, m).issue_id for s, m in items if changes_state(s)]
            elif changes_state(event.subject) and (message := event.peek(issues_ev.IssueStateChanged)) is not None:
                changed.append(message.issue_id)
        await people.issue_batch(session, changed)

    people_events = {
        MEMBERSHIP_VERIFIED: identity_ev.MemberVerified,
        MEMBERSHIP_LEFT: identity_ev.MemberLeft,
        ROLE_GRANTED: identity_ev.RoleGranted,
        ROLE_REVOKED: identity_ev.RoleRevoked,
        PERSON_UPDATED: identity_ev.PersonProfileUpdated,
    }

    async def people_batch(session: AsyncSession, events: Sequence[ReceivedEvent]) -> None:
        await people.people_batch(session, [message.person_id for message in peeked(events, people_events)])

    return [
        ConsumerSpec(
            name="boards-neighbourhoods",
            stream="IDENTITY",
            subjects=[regions.NEIGHBOURHOOD_CREATED],
            handler=route({regions.NEIGHBOURHOOD_CREATED: (identity_ev.NeighbourhoodCreated, neighbourhood_created)}),
        ),
        ConsumerSpec(
            name="boards-people",
            stream="IDENTITY",
            subjects=[
                MEMBERSHIP_VERIFIED,
                MEMBERSHIP_LEFT,
                ROLE_GRANTED,
                ROLE_REVOKED,
                PERSON_UPDATED,
                RESIDENTS_IMPORTED,
                ROLES_GRANTED_MANY,
            ],
            handler=route(
                {
                    MEMBERSHIP_VERIFIED: (identity_ev.MemberVerified, people.member_verified),
                    MEMBERSHIP_LEFT: (identity_ev.MemberLeft, people.member_left),
                    ROLE_GRANTED: (identity_ev.RoleGranted, people.role_granted),
                    ROLE_REVOKED: (identity_ev.RoleRevoked, people.role_revoked),
                    PERSON_UPDATED: (identity_ev.PersonProfileUpdated, people.person_updated),
                }
            ),
            prefetch=people_batch,
            # A resident import sends people by the hundred thousand: members and role holders are kept and
            # upserted once per batch, at its commit (PeopleRepository writes them first when it reads).
            flush_each=False,
        ),
        ConsumerSpec(
            name="boards-issue-feedback",
            stream="ISSUES",
            subjects=["issues.issue.>", ISSUES_IMPORTED],
            handler=issue_event,
            prefetch=issue_batch,
        ),
    ]
