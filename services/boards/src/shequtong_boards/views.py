"""What a use case returns: rows plus what readers see around them (authors with badges, mentions,
the caller's likes, polls), loaded in a few batched queries per page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shequtong_boards.domain.affairs import AffairProcess
from shequtong_boards.domain.policy import Permissions, Policy
from shequtong_boards.models import (
    AffairRow,
    AffairStep,
    Board,
    CandidateRow,
    Comment,
    ContentReport,
    ConventionRow,
    ConventionVersionRow,
    MentionRow,
    MilestoneRow,
    Poll,
    PollOption,
    Post,
    Topic,
    TopicStepRow,
)
from shequtong_boards.repository import (
    LiveCounts,
    Mentioned,
    PeopleRepository,
    comment_facts,
    page_facts,
)
from shequtong_kit import auth

SYSTEM_AUTHOR = "system"

# Roles shown next to an author's name (党员亮身份, the volunteer badge, offices).
BADGE_ROLES = (
    auth.SECRETARY,
    auth.CADRE,
    auth.PARTY_MEMBER,
    auth.VOLUNTEER,
    auth.POLICE,
    auth.DOCTOR,
    auth.LAWYER,
    auth.PROPERTY_MANAGER,
    auth.OWNERS_COMMITTEE,
    auth.DISTRICT_STAFF,
)


@dataclass(frozen=True)
class AuthorView:
    person_id: str
    display_name: str = ""
    badges: tuple[str, ...] = ()


@dataclass(frozen=True)
class MentionView:
    person_id: str
    display_name: str
    via_handle: str


@dataclass(frozen=True)
class BoardView:
    board: Board
    policy: Policy
    perms: Permissions


@dataclass(frozen=True)
class PostView:
    post: Post
    author: AuthorView
    mentions: tuple[MentionView, ...] = ()
    liked_by_me: bool = False
    poll_ids: tuple[str, ...] = ()
    issue_id: str = ""
    # Read after the post (a cached feed page's counters are read again on each use).
    counts: LiveCounts | None = None

    @property
    def like_count(self) -> int:
        return self.counts.like_count if self.counts else self.post.like_count

    @property
    def comment_count(self) -> int:
        return self.counts.comment_count if self.counts else self.post.comment_count

    @property
    def official_answer_count(self) -> int:
        return self.counts.official_answer_count if self.counts else self.post.official_answer_count


@dataclass(frozen=True)
class CommentView:
    comment: Comment
    author: AuthorView
    mentions: tuple[MentionView, ...] = ()
    liked_by_me: bool = False


@dataclass(frozen=True)
class ReportView:
    report: ContentReport
    excerpt: str


@dataclass(frozen=True)
class PollView:
    poll: Poll
    options: tuple[PollOption, ...]
    tally: dict[str, int] | None
    ballot_count: int
    state: str
    results_visible: bool
    my_choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class TopicView:
    topic: Topic
    proposer: AuthorView
    steps: tuple[TopicStepRow, ...] = ()
    milestones: tuple[MilestoneRow, ...] = ()
    rating_count: int = 0
    rating_average: float = 0.0
    my_rating: int = 0
    poll_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConventionView:
    convention: ConventionRow
    versions: tuple[ConventionVersionRow, ...]


@dataclass(frozen=True)
class AffairView:
    affair: AffairRow
    process: AffairProcess
    steps: tuple[AffairStep, ...] = ()
    candidates: tuple[CandidateRow, ...] = ()


@dataclass
class Paged:
    items: list[Any] = field(default_factory=list)
    next_cursor: str = ""


def scopes_for(neighbourhood_id: str | None, district_id: str | None) -> list[str]:
    scopes = []
    if neighbourhood_id:
        scopes.append(f"n:{neighbourhood_id}")
    if district_id:
        scopes.append(f"d:{district_id}")
    return scopes


@dataclass
class People:
    """Names and roles of everyone a page shows, fetched once (one query), then read per place."""

    names: dict[str, str]
    roles: dict[str, set[tuple[str, str]]]

    @classmethod
    async def load(cls, session: AsyncSession, person_ids: Sequence[str]) -> People:
        ids = sorted({p for p in person_ids if p and p != SYSTEM_AUTHOR})
        names: dict[str, str] = {}
        roles: dict[str, set[tuple[str, str]]] = {}
        for fact in await PeopleRepository(session).roles_and_names(ids):
            if fact.role is not None and fact.scope is not None:
                roles.setdefault(fact.person_id, set()).add((fact.role, fact.scope))
                if fact.display_name:
                    names.setdefault(fact.person_id, fact.display_name)
            elif fact.display_name:
                names[fact.person_id] = fact.display_name
        return cls(names, roles)

    def author(self, person_id: str, neighbourhood_id: str | None, district_id: str | None) -> AuthorView:
        if person_id == SYSTEM_AUTHOR:
            return AuthorView(SYSTEM_AUTHOR, "社区通", ("system",))
        scopes = set(scopes_for(neighbourhood_id, district_id))
        held = {role for role, scope in self.roles.get(person_id, set()) if scope in scopes}
        return AuthorView(person_id, self.names.get(person_id, ""), tuple(r for r in BADGE_ROLES if r in held))

    def mention(self, row: MentionRow | Mentioned) -> MentionView:
        return MentionView(row.person_id, self.names.get(row.person_id, ""), row.via_handle)


async def authors(
    session: AsyncSession, person_ids: Sequence[str], neighbourhood_id: str | None, district_id: str | None
) -> dict[str, AuthorView]:
    people = await People.load(session, person_ids)
    return {pid: people.author(pid, neighbourhood_id, district_id) for pid in {*person_ids, SYSTEM_AUTHOR}}


async def post_views(session: AsyncSession, posts: Sequence[Post], viewer: str) -> list[PostView]:
    if not posts:
        return []
    facts = await page_facts(session, [p.id for p in posts], viewer)
    people = await People.load(
        session, [p.author_id for p in posts] + [m.person_id for rows in facts.mentions.values() for m in rows]
    )
    return [
        PostView(
            post=post,
            author=people.author(post.author_id, post.neighbourhood_id, post.district_id),
            mentions=tuple(people.mention(m) for m in facts.mentions.get(post.id, [])),
            liked_by_me=post.id in facts.liked,
            poll_ids=tuple(facts.polls.get(post.id, [])),
            issue_id=facts.issues.get(post.id, ""),
        )
        for post in posts
    ]


async def comment_views(
    session: AsyncSession, comments: Sequence[Comment], viewer: str, district_id: str | None
) -> list[CommentView]:
    if not comments:
        return []
    facts = await comment_facts(session, [c.id for c in comments], viewer)
    people = await People.load(
        session, [c.author_id for c in comments] + [m.person_id for rows in facts.mentions.values() for m in rows]
    )
    return [
        CommentView(
            comment=c,
            author=people.author(c.author_id, c.neighbourhood_id, district_id),
            mentions=tuple(people.mention(m) for m in facts.mentions.get(c.id, [])),
            liked_by_me=c.id in facts.liked,
        )
        for c in comments
    ]


def time_cursor(created_at: datetime, ident: str) -> list[object]:
    return [created_at.isoformat(), ident]
