"""What boards keeps from other services' events: verified members (households, display names), role
holders (who answers @居委会, badges), and issue → post links so an issue's progress shows on its post."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from shequtong.events.v1 import identity_events_pb2 as identity_ev
from shequtong.events.v1 import issues_events_pb2 as issues_ev
from shequtong_boards.domain.content import PEOPLE_PLACE
from shequtong_boards.repository import FeedVersionRepository, IssueLinkRepository, PeopleRepository, PostRepository
from shequtong_boards.usecases.base import Context
from shequtong_boards.usecases.posts import add_system_comment
from shequtong_boards.views import People
from shequtong_kit.consumer import ReceivedEvent

ISSUE_STATES = {
    "reported": "已登记",
    "acknowledged": "已受理",
    "assigned": "已分派",
    "in_progress": "处理中",
    "started": "处理中",
    "escalated": "已上报",
    "dispatched": "已派单至网格平台",
    "resolved": "已解决",
    "closed": "已办结",
    "rejected": "不予受理",
    "merged": "已合并",
    "reopened": "已重新打开",
    "returned": "已退回",
}
LEVELS = {"neighbourhood": "居委", "subdistrict": "街镇", "grid": "网格平台"}


def issue_status_text(message: issues_ev.IssueStateChanged) -> str:
    state = ISSUE_STATES.get(message.to_state, message.to_state or "状态更新")
    text = f"问题进展：{state}"
    if message.level:
        text += f"（{LEVELS.get(message.level, message.level)}）"
    if message.note:
        text += f"。{message.note}"
    return text


# (the people checked, those of them some post shows) for a consumer batch: see `prefetch_shown`.
ON_FEEDS = "boards.people_on_feeds"


async def prefetch_shown(session: AsyncSession, person_ids: Sequence[str]) -> None:
    """Which of a batch's people any post shows, in one statement (`ShownPerson.before` asks per event: a
    resident import sends hundreds of thousands of people, almost none of whom has posted yet)."""
    session.info[ON_FEEDS] = (set(person_ids), await PeopleRepository(session).on_feeds_among(person_ids))


@dataclass(frozen=True)
class ShownPerson:
    """A person as feed pages show them, read before a change to what boards knows of them; `name` is None
    when no post shows them (most people never post: their changes move no feed version)."""

    person_id: str
    name: str | None

    @classmethod
    async def before(cls, session: AsyncSession, person_id: str) -> ShownPerson:
        checked, shown = session.info.get(ON_FEEDS, ((), ()))
        if person_id in checked and person_id not in shown:
            return cls(person_id, None)
        if person_id not in checked and not await PeopleRepository(session).on_feeds(person_id):
            return cls(person_id, None)
        return cls(person_id, (await People.load(session, [person_id])).names.get(person_id, ""))

    async def changed(self, session: AsyncSession, badge_scope: str = "") -> None:
        """Moves the feed versions the change shows in: the scope's place when a badge there was granted or
        revoked, everyone's (`people`) when the name pages show changed."""
        if self.name is None:
            return
        places = [badge_scope] if badge_scope.startswith(("n:", "d:")) else []
        if (await People.load(session, [self.person_id])).names.get(self.person_id, "") != self.name:
            places.append(PEOPLE_PLACE)
        await FeedVersionRepository(session).bump(places)


class ProjectionUseCases:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def people_batch(self, session: AsyncSession, person_ids: Sequence[str]) -> None:
        """Before a batch of identity events about these people."""
        await prefetch_shown(session, person_ids)

    async def issue_batch(self, session: AsyncSession, issue_ids: Sequence[str]) -> None:
        """Before a batch of issue events: which of these issues came from a post, and those posts."""
        await IssueLinkRepository(session).prefetch_links(issue_ids)

    async def member_verified(
        self, session: AsyncSession, message: identity_ev.MemberVerified, event: ReceivedEvent
    ) -> None:
        shown = await ShownPerson.before(session, message.person_id)
        await PeopleRepository(session).record_member(
            {
                "person_id": message.person_id,
                "neighbourhood_id": message.neighbourhood_id,
                "household_id": message.household_id or None,
                "display_name": message.display_name[:100],
                "verified_at": _when(event, self.ctx),
                "active": True,
            }
        )
        await shown.changed(session)

    async def member_left(self, session: AsyncSession, message: identity_ev.MemberLeft, _event: ReceivedEvent) -> None:
        await PeopleRepository(session).member_left(message.person_id, message.neighbourhood_id)

    async def role_granted(
        self, session: AsyncSession, message: identity_ev.RoleGranted, _event: ReceivedEvent
    ) -> None:
        shown = await ShownPerson.before(session, message.person_id)
        await PeopleRepository(session).grant(
            {
                "person_id": message.person_id,
                "role": message.role,
                "scope": message.scope,
                "display_name": message.display_name[:100],
            }
        )
        await shown.changed(session, badge_scope=message.scope)

    async def role_revoked(
        self, session: AsyncSession, message: identity_ev.RoleRevoked, _event: ReceivedEvent
    ) -> None:
        shown = await ShownPerson.before(session, message.person_id)
        await PeopleRepository(session).revoke(message.person_id, message.role, message.scope)
        await shown.changed(session, badge_scope=message.scope)

    async def person_updated(
        self, session: AsyncSession, message: identity_ev.PersonProfileUpdated, _event: ReceivedEvent
    ) -> None:
        if message.display_name:
            shown = await ShownPerson.before(session, message.person_id)
            await PeopleRepository(session).rename(message.person_id, message.display_name[:100])
            await shown.changed(session)

    async def issue_reported(
        self, session: AsyncSession, message: issues_ev.IssueReported, event: ReceivedEvent
    ) -> None:
        if not message.source_post_id:
            return
        post = await PostRepository(session).get(message.source_post_id)
        if post is None:
            return
        linked = await IssueLinkRepository(session).link(
            message.issue_id, post.id, message.neighbourhood_id or post.neighbourhood_id or "", self.ctx.clock.now()
        )
        if linked:
            await FeedVersionRepository(session).posts_changed(post)  # the post shows its issue
            await add_system_comment(
                self.ctx,
                session,
                post,
                "已转为问题工单，居委会将在15小时内响应，处理进展会在这里更新。",
                source_event_id=event.id,
            )

    async def issue_state_changed(
        self, session: AsyncSession, message: issues_ev.IssueStateChanged, event: ReceivedEvent
    ) -> None:
        post_id = await IssueLinkRepository(session).post_of(message.issue_id)
        if post_id is None:
            return  # an issue not collected from a post
        post = await PostRepository(session).get(post_id)
        if post is None:
            return
        await add_system_comment(self.ctx, session, post, issue_status_text(message), source_event_id=event.id)


def _when(event: ReceivedEvent, ctx: Context) -> datetime:
    """When identity verified the member (the event's time), falling back to now."""
    try:
        when = event.occurred_at
    except ValueError:
        return ctx.clock.now()
    return when if when.tzinfo else ctx.clock.now()
