"""gRPC ⇄ domain translation for boards: unpack, ask who is calling, run the use case, pack the reply.

Create-style RPCs run through `idempotency.run_once` with the caller's `idempotency-key`.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from shequtong.boards.v1 import boards_pb2 as pb
from shequtong.boards.v1 import boards_pb2_grpc
from shequtong.common.v1 import common_pb2
from shequtong_boards.domain import catalogue
from shequtong_boards.domain import deliberation as chain
from shequtong_boards.domain import moderation as mod
from shequtong_boards.domain import polls as poll_rules
from shequtong_boards.domain.affairs import ELECTION, OWNERS_COMMITTEE_FORMATION
from shequtong_boards.domain.catalogue import BoardKind
from shequtong_boards.domain.content import COMMENT, HIDDEN, MEMBER_COMMENT, OFFICIAL_COMMENT, POST, SYSTEM_COMMENT
from shequtong_boards.domain.policy import ACTIONS, Permissions, Policy
from shequtong_boards.domain.ratelimit import TokenBuckets
from shequtong_boards.models import Board, ModerationLog, Post, Revision
from shequtong_boards.service import BoardsService
from shequtong_boards.usecases import imports
from shequtong_boards.usecases.base import Page
from shequtong_boards.views import (
    AffairView,
    AuthorView,
    BoardView,
    CommentView,
    ConventionView,
    MentionView,
    Paged,
    PollView,
    PostView,
    ReportView,
    TopicView,
)
from shequtong_kit import auth, grpc_server
from shequtong_kit.errors import InvalidArgument
from shequtong_kit.idempotency import IDEMPOTENCY_METADATA, run_once
from shequtong_kit.proto import from_ts, ts

R = TypeVar("R", bound=Message)

SCOPES = {catalogue.NEIGHBOURHOOD: pb.BOARD_SCOPE_NEIGHBOURHOOD, catalogue.DISTRICT: pb.BOARD_SCOPE_DISTRICT}
STATUSES = {
    "visible": pb.CONTENT_STATUS_VISIBLE,
    HIDDEN: pb.CONTENT_STATUS_HIDDEN,
    "deleted": pb.CONTENT_STATUS_DELETED,
}
COMMENT_KINDS = {
    MEMBER_COMMENT: pb.COMMENT_KIND_MEMBER,
    OFFICIAL_COMMENT: pb.COMMENT_KIND_OFFICIAL,
    SYSTEM_COMMENT: pb.COMMENT_KIND_SYSTEM,
}
TARGETS = {POST: pb.TARGET_TYPE_POST, COMMENT: pb.TARGET_TYPE_COMMENT}
REASONS = {name: getattr(pb, f"REPORT_REASON_{name.upper()}") for name in mod.REPORT_REASONS}
REPORT_STATUSES = {
    mod.OPEN: pb.REPORT_STATUS_OPEN,
    mod.ACTIONED: pb.REPORT_STATUS_ACTIONED,
    mod.DISMISSED: pb.REPORT_STATUS_DISMISSED,
}
ACTION_KINDS = {name: getattr(pb, f"MODERATION_ACTION_KIND_{name.upper()}") for name in mod.ACTIONS}
POLL_KINDS = {poll_rules.SINGLE: pb.POLL_KIND_SINGLE, poll_rules.MULTIPLE: pb.POLL_KIND_MULTIPLE}
BASES = {poll_rules.RESIDENT: pb.VOTE_BASIS_RESIDENT, poll_rules.HOUSEHOLD: pb.VOTE_BASIS_HOUSEHOLD}
STAGES = {name: getattr(pb, f"TOPIC_STAGE_{name.upper()}") for name in chain.STAGES}
AFFAIR_KINDS = {
    ELECTION: pb.AFFAIR_KIND_ELECTION,
    OWNERS_COMMITTEE_FORMATION: pb.AFFAIR_KIND_OWNERS_COMMITTEE_FORMATION,
}


def _name(table: Mapping[str, int], value: int, default: str = "") -> str:
    return next((name for name, number in table.items() if number == value), default)


def _page(page: common_pb2.PageRequest) -> Page:
    return Page.of(page.cursor, page.page_size)


def _info(paged: Paged) -> common_pb2.PageInfo:
    return common_pb2.PageInfo(next_cursor=paged.next_cursor, has_more=bool(paged.next_cursor))


# --- packing ---------------------------------------------------------------------------------------


def policy_to_proto(policy: Policy) -> pb.BoardPolicy:
    return pb.BoardPolicy(**{action: sorted(getattr(policy, action)) for action in ACTIONS})


def policy_from_proto(policy: pb.BoardPolicy) -> dict[str, list[str]]:
    return {action: list(getattr(policy, action)) for action in ACTIONS}


def permissions_to_proto(perms: Permissions) -> pb.BoardPermissions:
    return pb.BoardPermissions(
        can_read=perms.can_read,
        can_post=perms.can_post,
        can_comment=perms.can_comment,
        can_answer=perms.can_answer,
        can_moderate=perms.can_moderate,
    )


def board_to_proto(board: Board, view: BoardView | None = None) -> pb.Board:
    message = pb.Board(
        id=board.id,
        neighbourhood_id=board.neighbourhood_id or "",
        kind=board.kind,
        name=board.name,
        created_at=ts(board.created_at),
        district_id=board.district_id or "",
        scope=SCOPES.get(board.scope, pb.BOARD_SCOPE_UNSPECIFIED),
        position=board.position,
    )
    if view is not None:
        message.policy.CopyFrom(policy_to_proto(view.policy))
        message.permissions.CopyFrom(permissions_to_proto(view.perms))
    return message


def entry_to_proto(kind: BoardKind, customised: bool, opened: bool) -> pb.CatalogueEntry:
    return pb.CatalogueEntry(
        kind=kind.key,
        name=kind.name,
        scope=SCOPES[kind.scope],
        policy=policy_to_proto(kind.policy),
        customised=customised,
        opened=opened,
        position=kind.position,
    )


def author_to_proto(author: AuthorView) -> pb.Author:
    return pb.Author(person_id=author.person_id, display_name=author.display_name, badges=list(author.badges))


def mention_to_proto(mention: MentionView) -> pb.Mention:
    return pb.Mention(person_id=mention.person_id, display_name=mention.display_name, via_handle=mention.via_handle)


# The message of each post of a kept feed page, built on its first use: a kept view's post, author,
# mentions, polls and issue never change (the page is built again when they do); only its counters and
# the caller's like are its own per request. Entries go with the kept page's rows.
_KEPT_MESSAGES: weakref.WeakKeyDictionary[Post, pb.Post] = weakref.WeakKeyDictionary()


def post_to_proto(view: PostView) -> pb.Post:
    if view.counts is None:  # not from a kept page
        return _post_message(view)
    kept = _KEPT_MESSAGES.get(view.post)
    if kept is None:
        kept = _KEPT_MESSAGES[view.post] = _post_message(view)
    message = pb.Post()
    message.CopyFrom(kept)
    message.like_count = view.like_count
    message.comment_count = view.comment_count
    message.official_answer_count = view.official_answer_count
    message.liked_by_me = view.liked_by_me
    return message


def _post_message(view: PostView) -> pb.Post:
    post = view.post
    return pb.Post(
        id=post.id,
        board_id=post.board_id,
        board_kind=post.board_kind,
        neighbourhood_id=post.neighbourhood_id or "",
        district_id=post.district_id,
        author=author_to_proto(view.author),
        title=post.title,
        body=post.body,
        image_refs=list(post.image_refs),
        tags=list(post.tags),
        mentions=[mention_to_proto(m) for m in view.mentions],
        mentioned_handles=list(post.mentioned_handles),
        pinned=post.pinned,
        locked=post.locked,
        status=STATUSES.get(post.status, pb.CONTENT_STATUS_UNSPECIFIED),
        like_count=view.like_count,
        comment_count=view.comment_count,
        official_answer_count=view.official_answer_count,
        liked_by_me=view.liked_by_me,
        version=post.version,
        created_at=ts(post.created_at),
        edited_at=ts(post.edited_at),
        topic_id=post.topic_id or "",
        affair_id=post.affair_id or "",
        poll_ids=list(view.poll_ids),
        issue_id=view.issue_id,
    )


def comment_to_proto(view: CommentView) -> pb.Comment:
    c = view.comment
    return pb.Comment(
        id=c.id,
        post_id=c.post_id,
        parent_id=c.parent_id or "",
        author=author_to_proto(view.author),
        body=c.body,
        kind=COMMENT_KINDS.get(c.kind, pb.COMMENT_KIND_UNSPECIFIED),
        status=STATUSES.get(c.status, pb.CONTENT_STATUS_UNSPECIFIED),
        mentions=[mention_to_proto(m) for m in view.mentions],
        like_count=c.like_count,
        reply_count=c.reply_count,
        liked_by_me=view.liked_by_me,
        version=c.version,
        created_at=ts(c.created_at),
        edited_at=ts(c.edited_at),
    )


def revision_to_proto(r: Revision) -> pb.Revision:
    return pb.Revision(
        version=r.version,
        title=r.title,
        body=r.body,
        image_refs=list(r.image_refs),
        tags=list(r.tags),
        edited_by=r.edited_by,
        edited_at=ts(r.edited_at),
    )


def report_to_proto(view: ReportView) -> pb.Report:
    r = view.report
    return pb.Report(
        id=r.id,
        target_type=TARGETS.get(r.target_type, pb.TARGET_TYPE_UNSPECIFIED),
        target_id=r.target_id,
        post_id=r.post_id,
        board_id=r.board_id,
        neighbourhood_id=r.neighbourhood_id or "",
        reporter_id=r.reporter_id,
        reason=REASONS.get(r.reason, pb.REPORT_REASON_UNSPECIFIED),
        note=r.note,
        status=REPORT_STATUSES.get(r.status, pb.REPORT_STATUS_UNSPECIFIED),
        created_at=ts(r.created_at),
        resolved_by=r.resolved_by or "",
        resolved_at=ts(r.resolved_at),
        resolution=r.resolution,
        excerpt=view.excerpt,
    )


def action_to_proto(a: ModerationLog) -> pb.ModerationAction:
    return pb.ModerationAction(
        id=a.id,
        action=ACTION_KINDS.get(a.action, pb.MODERATION_ACTION_KIND_UNSPECIFIED),
        target_type=TARGETS.get(a.target_type, pb.TARGET_TYPE_UNSPECIFIED),
        target_id=a.target_id,
        post_id=a.post_id or "",
        board_id=a.board_id or "",
        neighbourhood_id=a.neighbourhood_id or "",
        subject_person_id=a.subject_person_id,
        actor_id=a.actor_id,
        reason=a.reason,
        created_at=ts(a.created_at),
        until=ts(a.until),
    )


def poll_to_proto(view: PollView) -> pb.Poll:
    p = view.poll
    tally = view.tally or {}
    return pb.Poll(
        id=p.id,
        post_id=p.post_id,
        board_id=p.board_id,
        neighbourhood_id=p.neighbourhood_id or "",
        topic_id=p.topic_id or "",
        question=p.question,
        kind=POLL_KINDS.get(p.kind, pb.POLL_KIND_UNSPECIFIED),
        max_choices=p.max_choices,
        basis=BASES.get(p.basis, pb.VOTE_BASIS_UNSPECIFIED),
        hide_results_until_close=p.hide_results_until_close,
        opens_at=ts(p.opens_at),
        closes_at=ts(p.closes_at),
        created_by=p.created_by,
        created_at=ts(p.created_at),
        options=[pb.PollOption(id=o.id, label=o.label, votes=tally.get(o.id, 0)) for o in view.options],
        is_open=view.state == poll_rules.OPEN,
        is_closed=view.state == poll_rules.CLOSED,
        results_visible=view.results_visible,
        ballot_count=view.ballot_count,
        my_choice_ids=list(view.my_choices),
        closed_at=ts(p.closed_at),
    )


def topic_to_proto(view: TopicView) -> pb.Topic:
    t = view.topic
    return pb.Topic(
        id=t.id,
        neighbourhood_id=t.neighbourhood_id,
        post_id=t.post_id,
        title=t.title,
        description=t.description,
        proposer=author_to_proto(view.proposer),
        stage=STAGES.get(t.stage, pb.TOPIC_STAGE_UNSPECIFIED),
        steps=[
            pb.TopicStep(
                from_stage=STAGES.get(s.from_stage, pb.TOPIC_STAGE_UNSPECIFIED),
                to_stage=STAGES.get(s.to_stage, pb.TOPIC_STAGE_UNSPECIFIED),
                actor_id=s.actor_id,
                reason=s.reason,
                at=ts(s.at),
            )
            for s in view.steps
        ],
        owner_id=t.owner_id or "",
        budget_note=t.budget_note,
        milestones=[
            pb.Milestone(
                id=m.id,
                title=m.title,
                due_at=ts(m.due_at),
                progress=m.progress,
                note=m.note,
                updated_by=m.updated_by or "",
                updated_at=ts(m.updated_at),
            )
            for m in view.milestones
        ],
        rating_count=view.rating_count,
        rating_average_x100=round(view.rating_average * 100),
        my_rating=view.my_rating,
        evaluation_summary=t.evaluation_summary,
        convention_id=t.convention_id or "",
        created_at=ts(t.created_at),
        updated_at=ts(t.updated_at),
        poll_ids=list(view.poll_ids),
    )


def convention_to_proto(view: ConventionView) -> pb.Convention:
    c = view.convention
    return pb.Convention(
        id=c.id,
        neighbourhood_id=c.neighbourhood_id,
        topic_id=c.topic_id,
        title=c.title,
        current_version=c.current_version,
        versions=[
            pb.ConventionVersion(
                version=v.version,
                text=v.text,
                poll_id=v.poll_id,
                tally=[pb.VoteTally(option_label=str(t["label"]), votes=int(t["votes"])) for t in v.tally],
                ballot_count=v.ballot_count,
                adopted_by=v.adopted_by,
                adopted_at=ts(v.adopted_at),
                reason=v.reason,
            )
            for v in view.versions
        ],
        created_at=ts(c.created_at),
        updated_at=ts(c.updated_at),
    )


def affair_to_proto(view: AffairView) -> pb.Affair:
    a = view.affair
    reached = {s.stage: s for s in view.steps}
    return pb.Affair(
        id=a.id,
        neighbourhood_id=a.neighbourhood_id,
        kind=AFFAIR_KINDS.get(a.kind, pb.AFFAIR_KIND_UNSPECIFIED),
        board_id=a.board_id,
        post_id=a.post_id,
        title=a.title,
        purpose=a.purpose,
        policy_basis=a.policy_basis,
        procedure=a.procedure,
        stage=a.stage,
        stages=[
            pb.AffairStage(
                key=key,
                name=name,
                reached_at=ts(reached[key].at) if key in reached else None,
                actor_id=reached[key].actor_id if key in reached else "",
                note=reached[key].note if key in reached else "",
            )
            for key, name in view.process.stages
        ],
        candidates=[
            pb.Candidate(
                id=c.id,
                name=c.name,
                person_id=c.person_id or "",
                statement=c.statement,
                votes=c.votes,
                elected=c.elected,
            )
            for c in view.candidates
        ],
        result_summary=a.result_summary,
        completed=a.stage == view.process.stage_keys()[-1],
        created_by=a.created_by,
        created_at=ts(a.created_at),
        updated_at=ts(a.updated_at),
    )


def _required(table: Mapping[str, int], value: int, what: str, code: str) -> str:
    name = _name(table, value)
    if not name:
        raise InvalidArgument(f"give the {what}", code=code)
    return name


class BoardsServicer(boards_pb2_grpc.BoardsServiceServicer):
    def __init__(self, service: BoardsService, writes: TokenBuckets | None = None) -> None:
        self.service = service
        self.writes = writes

    def _limit(self) -> None:
        """Posting rate per person (service principals are not limited)."""
        principal = auth.current()
        if self.writes is not None and not principal.is_service:
            self.writes.take(principal.subject, time.monotonic())

    async def _once(
        self,
        context: grpc.aio.ServicerContext,
        method: str,
        request: Message,
        response_type: type[R],
        work: Callable[[AsyncSession, auth.Principal], Awaitable[R]],
    ) -> R:
        principal = auth.current()
        key = grpc_server.metadata_value(context, IDEMPOTENCY_METADATA)

        async def run(session: AsyncSession) -> R:
            return await work(session, principal)

        return await run_once(
            self.service.sessions, key, f"{method}:{principal.subject}", request, response_type, run, self.service.clock
        )

    # --- boards ---------------------------------------------------------------------------------

    async def ListBoards(
        self, request: pb.ListBoardsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListBoardsResponse:
        views = await self.service.boards.list_boards(auth.current(), request.neighbourhood_id)
        return pb.ListBoardsResponse(boards=[board_to_proto(v.board, v) for v in views])

    async def GetBoard(self, request: pb.GetBoardRequest, context: grpc.aio.ServicerContext) -> pb.GetBoardResponse:
        view = await self.service.boards.get_board(auth.current(), request.board_id)
        return pb.GetBoardResponse(board=board_to_proto(view.board, view))

    async def ListCatalogue(
        self, request: pb.ListCatalogueRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCatalogueResponse:
        entries = await self.service.boards.list_catalogue(auth.current(), request.district_id)
        return pb.ListCatalogueResponse(entries=[entry_to_proto(*e) for e in entries])

    async def PutCatalogueEntry(
        self, request: pb.PutCatalogueEntryRequest, context: grpc.aio.ServicerContext
    ) -> pb.PutCatalogueEntryResponse:
        entry, opened = await self.service.boards.put_catalogue_entry(
            auth.current(),
            request.district_id,
            request.kind,
            request.name,
            _name(SCOPES, request.scope),
            policy_from_proto(request.policy),
        )
        return pb.PutCatalogueEntryResponse(entry=entry_to_proto(entry, True, True), boards_opened=opened)

    async def GetUnreadCounts(
        self, request: pb.GetUnreadCountsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetUnreadCountsResponse:
        counts = await self.service.boards.unread_counts(auth.current(), request.neighbourhood_id)
        return pb.GetUnreadCountsResponse(
            counts=[pb.UnreadCount(board_id=b.id, kind=b.kind, unread=n, capped=capped) for b, n, capped in counts]
        )

    async def MarkBoardRead(
        self, request: pb.MarkBoardReadRequest, context: grpc.aio.ServicerContext
    ) -> pb.MarkBoardReadResponse:
        when = await self.service.boards.mark_read(auth.current(), request.board_id)
        return pb.MarkBoardReadResponse(read_at=ts(when))

    # --- posts ----------------------------------------------------------------------------------

    async def CreatePost(
        self, request: pb.CreatePostRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreatePostResponse:
        self._limit()

        async def work(session: AsyncSession, principal: auth.Principal) -> pb.CreatePostResponse:
            view = await self.service.posts.create(
                session,
                principal,
                request.board_id,
                request.title,
                request.body,
                list(request.image_refs),
                list(request.tags),
                list(request.mention_person_ids),
            )
            return pb.CreatePostResponse(post=post_to_proto(view))

        return await self._once(context, "CreatePost", request, pb.CreatePostResponse, work)

    async def GetPost(self, request: pb.GetPostRequest, context: grpc.aio.ServicerContext) -> pb.GetPostResponse:
        return pb.GetPostResponse(post=post_to_proto(await self.service.posts.get(auth.current(), request.post_id)))

    async def EditPost(self, request: pb.EditPostRequest, context: grpc.aio.ServicerContext) -> pb.EditPostResponse:
        view = await self.service.posts.edit(
            auth.current(),
            request.post_id,
            request.title,
            request.body,
            list(request.image_refs),
            list(request.tags),
            list(request.mention_person_ids),
            request.expected_version,
        )
        return pb.EditPostResponse(post=post_to_proto(view))

    async def DeletePost(
        self, request: pb.DeletePostRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeletePostResponse:
        view = await self.service.posts.delete(auth.current(), request.post_id, request.reason)
        return pb.DeletePostResponse(post=post_to_proto(view))

    async def ListPostRevisions(
        self, request: pb.ListPostRevisionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListPostRevisionsResponse:
        paged = await self.service.posts.revisions(auth.current(), request.post_id, _page(request.page))
        return pb.ListPostRevisionsResponse(revisions=[revision_to_proto(r) for r in paged.items], page=_info(paged))

    async def ListBoardFeed(
        self, request: pb.ListBoardFeedRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListBoardFeedResponse:
        paged = await self.service.posts.board_feed(auth.current(), request.board_id, _page(request.page))
        return pb.ListBoardFeedResponse(posts=[post_to_proto(v) for v in paged.items], page=_info(paged))

    async def ListHomeFeed(
        self, request: pb.ListHomeFeedRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListHomeFeedResponse:
        paged = await self.service.posts.home_feed(auth.current(), request.neighbourhood_id, _page(request.page))
        return pb.ListHomeFeedResponse(posts=[post_to_proto(v) for v in paged.items], page=_info(paged))

    async def SetPostLike(
        self, request: pb.SetPostLikeRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetPostLikeResponse:
        count, liked = await self.service.posts.set_like(auth.current(), request.post_id, request.liked)
        return pb.SetPostLikeResponse(like_count=count, liked=liked)

    async def PinPost(self, request: pb.PinPostRequest, context: grpc.aio.ServicerContext) -> pb.PinPostResponse:
        principal = auth.current()
        post = await self.service.moderation.pin(principal, request.post_id, request.pinned, request.reason)
        return pb.PinPostResponse(post=post_to_proto(await self.service.posts.get(principal, post.id)))

    async def LockPost(self, request: pb.LockPostRequest, context: grpc.aio.ServicerContext) -> pb.LockPostResponse:
        principal = auth.current()
        post = await self.service.moderation.lock(principal, request.post_id, request.locked, request.reason)
        return pb.LockPostResponse(post=post_to_proto(await self.service.posts.get(principal, post.id)))

    # --- comments -------------------------------------------------------------------------------

    async def CreateComment(
        self, request: pb.CreateCommentRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateCommentResponse:
        self._limit()

        async def work(session: AsyncSession, principal: auth.Principal) -> pb.CreateCommentResponse:
            view = await self.service.comments.create(
                session,
                principal,
                request.post_id,
                request.parent_id,
                request.body,
                list(request.mention_person_ids),
                request.official_answer,
            )
            return pb.CreateCommentResponse(comment=comment_to_proto(view))

        return await self._once(context, "CreateComment", request, pb.CreateCommentResponse, work)

    async def ListComments(
        self, request: pb.ListCommentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCommentsResponse:
        paged = await self.service.comments.list_comments(
            auth.current(), request.post_id, request.parent_id, _page(request.page)
        )
        return pb.ListCommentsResponse(comments=[comment_to_proto(v) for v in paged.items], page=_info(paged))

    async def EditComment(
        self, request: pb.EditCommentRequest, context: grpc.aio.ServicerContext
    ) -> pb.EditCommentResponse:
        view = await self.service.comments.edit(
            auth.current(), request.comment_id, request.body, request.expected_version
        )
        return pb.EditCommentResponse(comment=comment_to_proto(view))

    async def DeleteComment(
        self, request: pb.DeleteCommentRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteCommentResponse:
        view = await self.service.comments.delete(auth.current(), request.comment_id, request.reason)
        return pb.DeleteCommentResponse(comment=comment_to_proto(view))

    async def SetCommentLike(
        self, request: pb.SetCommentLikeRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetCommentLikeResponse:
        count, liked = await self.service.comments.set_like(auth.current(), request.comment_id, request.liked)
        return pb.SetCommentLikeResponse(like_count=count, liked=liked)

    # --- moderation -----------------------------------------------------------------------------

    async def ReportContent(
        self, request: pb.ReportContentRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReportContentResponse:
        target = _required(TARGETS, request.target_type, "target type", "target_type_invalid")
        reason = _name(REASONS, request.reason)

        async def work(session: AsyncSession, principal: auth.Principal) -> pb.ReportContentResponse:
            view = await self.service.moderation.report(
                session, principal, target, request.target_id, reason, request.note
            )
            return pb.ReportContentResponse(report=report_to_proto(view))

        return await self._once(context, "ReportContent", request, pb.ReportContentResponse, work)

    async def ListReports(
        self, request: pb.ListReportsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListReportsResponse:
        paged = await self.service.moderation.list_reports(
            auth.current(), request.neighbourhood_id, _name(REPORT_STATUSES, request.status), _page(request.page)
        )
        return pb.ListReportsResponse(reports=[report_to_proto(v) for v in paged.items], page=_info(paged))

    async def DismissReport(
        self, request: pb.DismissReportRequest, context: grpc.aio.ServicerContext
    ) -> pb.DismissReportResponse:
        view = await self.service.moderation.dismiss(auth.current(), request.report_id, request.reason)
        return pb.DismissReportResponse(report=report_to_proto(view))

    async def ModerateContent(
        self, request: pb.ModerateContentRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModerateContentResponse:
        target = _required(TARGETS, request.target_type, "target type", "target_type_invalid")
        action = await self.service.moderation.moderate(
            auth.current(), target, request.target_id, _name(ACTION_KINDS, request.action), request.reason
        )
        return pb.ModerateContentResponse(action=action_to_proto(action))

    async def MuteMember(
        self, request: pb.MuteMemberRequest, context: grpc.aio.ServicerContext
    ) -> pb.MuteMemberResponse:
        action = await self.service.moderation.mute(
            auth.current(), request.neighbourhood_id, request.person_id, request.duration_minutes, request.reason
        )
        return pb.MuteMemberResponse(action=action_to_proto(action))

    async def UnmuteMember(
        self, request: pb.UnmuteMemberRequest, context: grpc.aio.ServicerContext
    ) -> pb.UnmuteMemberResponse:
        action = await self.service.moderation.unmute(
            auth.current(), request.neighbourhood_id, request.person_id, request.reason
        )
        return pb.UnmuteMemberResponse(action=action_to_proto(action))

    async def ListModerationActions(
        self, request: pb.ListModerationActionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModerationActionsResponse:
        paged = await self.service.moderation.actions(auth.current(), request.neighbourhood_id, _page(request.page))
        return pb.ListModerationActionsResponse(
            actions=[action_to_proto(a) for a in paged.items],
            page=_info(paged),
        )

    async def ListMyModerationNotices(
        self, request: pb.ListMyModerationNoticesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListMyModerationNoticesResponse:
        paged = await self.service.moderation.my_notices(auth.current(), _page(request.page))
        return pb.ListMyModerationNoticesResponse(
            actions=[action_to_proto(a) for a in paged.items],
            page=_info(paged),
        )

    # --- polls ----------------------------------------------------------------------------------

    async def CreatePoll(
        self, request: pb.CreatePollRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreatePollResponse:
        async def work(session: AsyncSession, principal: auth.Principal) -> pb.CreatePollResponse:
            view = await self.service.polls.create(
                session,
                principal,
                request.post_id,
                request.question,
                list(request.options),
                _name(POLL_KINDS, request.kind, poll_rules.SINGLE),
                request.max_choices,
                _name(BASES, request.basis, poll_rules.RESIDENT),
                request.hide_results_until_close,
                from_ts(request.opens_at) if request.HasField("opens_at") else None,
                from_ts(request.closes_at) if request.HasField("closes_at") else None,
            )
            return pb.CreatePollResponse(poll=poll_to_proto(view))

        return await self._once(context, "CreatePoll", request, pb.CreatePollResponse, work)

    async def GetPoll(self, request: pb.GetPollRequest, context: grpc.aio.ServicerContext) -> pb.GetPollResponse:
        return pb.GetPollResponse(poll=poll_to_proto(await self.service.polls.get(auth.current(), request.poll_id)))

    async def CastVote(self, request: pb.CastVoteRequest, context: grpc.aio.ServicerContext) -> pb.CastVoteResponse:
        async def work(session: AsyncSession, principal: auth.Principal) -> pb.CastVoteResponse:
            view = await self.service.polls.vote(session, principal, request.poll_id, list(request.option_ids))
            return pb.CastVoteResponse(poll=poll_to_proto(view))

        return await self._once(context, "CastVote", request, pb.CastVoteResponse, work)

    async def ClosePoll(self, request: pb.ClosePollRequest, context: grpc.aio.ServicerContext) -> pb.ClosePollResponse:
        return pb.ClosePollResponse(poll=poll_to_proto(await self.service.polls.close(auth.current(), request.poll_id)))

    # --- deliberation ---------------------------------------------------------------------------

    async def ProposeTopic(
        self, request: pb.ProposeTopicRequest, context: grpc.aio.ServicerContext
    ) -> pb.ProposeTopicResponse:
        async def work(session: AsyncSession, principal: auth.Principal) -> pb.ProposeTopicResponse:
            view = await self.service.topics.propose(
                session, principal, request.neighbourhood_id, request.title, request.description
            )
            return pb.ProposeTopicResponse(topic=topic_to_proto(view))

        return await self._once(context, "ProposeTopic", request, pb.ProposeTopicResponse, work)

    async def GetTopic(self, request: pb.GetTopicRequest, context: grpc.aio.ServicerContext) -> pb.GetTopicResponse:
        return pb.GetTopicResponse(
            topic=topic_to_proto(await self.service.topics.get(auth.current(), request.topic_id))
        )

    async def ListTopics(
        self, request: pb.ListTopicsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTopicsResponse:
        paged = await self.service.topics.list_topics(
            auth.current(), request.neighbourhood_id, _name(STAGES, request.stage), _page(request.page)
        )
        return pb.ListTopicsResponse(topics=[topic_to_proto(v) for v in paged.items], page=_info(paged))

    async def AdvanceTopic(
        self, request: pb.AdvanceTopicRequest, context: grpc.aio.ServicerContext
    ) -> pb.AdvanceTopicResponse:
        target = _required(STAGES, request.to_stage, "stage to move to", "topic_stage_invalid")
        plan = None
        if request.HasField("project"):
            plan = (
                request.project.owner_id,
                request.project.budget_note,
                [(m.title, from_ts(m.due_at) if m.HasField("due_at") else None) for m in request.project.milestones],
            )
        draft = None
        if request.HasField("convention"):
            draft = (request.convention.title, request.convention.text, request.convention.poll_id)
        view = await self.service.topics.advance(auth.current(), request.topic_id, target, request.reason, plan, draft)
        return pb.AdvanceTopicResponse(topic=topic_to_proto(view))

    async def UpdateMilestone(
        self, request: pb.UpdateMilestoneRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateMilestoneResponse:
        view = await self.service.topics.update_milestone(
            auth.current(), request.topic_id, request.milestone_id, request.progress, request.note
        )
        return pb.UpdateMilestoneResponse(topic=topic_to_proto(view))

    async def RateTopic(self, request: pb.RateTopicRequest, context: grpc.aio.ServicerContext) -> pb.RateTopicResponse:
        async def work(session: AsyncSession, principal: auth.Principal) -> pb.RateTopicResponse:
            view = await self.service.topics.rate(session, principal, request.topic_id, request.rating, request.comment)
            return pb.RateTopicResponse(topic=topic_to_proto(view))

        return await self._once(context, "RateTopic", request, pb.RateTopicResponse, work)

    async def SummariseEvaluation(
        self, request: pb.SummariseEvaluationRequest, context: grpc.aio.ServicerContext
    ) -> pb.SummariseEvaluationResponse:
        view = await self.service.topics.summarise(auth.current(), request.topic_id, request.summary)
        return pb.SummariseEvaluationResponse(topic=topic_to_proto(view))

    async def ListConventions(
        self, request: pb.ListConventionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListConventionsResponse:
        paged = await self.service.topics.conventions(auth.current(), request.neighbourhood_id, _page(request.page))
        return pb.ListConventionsResponse(
            conventions=[convention_to_proto(v) for v in paged.items],
            page=_info(paged),
        )

    async def GetConvention(
        self, request: pb.GetConventionRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetConventionResponse:
        view = await self.service.topics.convention(auth.current(), request.convention_id)
        return pb.GetConventionResponse(convention=convention_to_proto(view))

    async def AmendConvention(
        self, request: pb.AmendConventionRequest, context: grpc.aio.ServicerContext
    ) -> pb.AmendConventionResponse:
        async def work(session: AsyncSession, principal: auth.Principal) -> pb.AmendConventionResponse:
            view = await self.service.topics.amend(
                session, principal, request.convention_id, request.text, request.poll_id, request.reason
            )
            return pb.AmendConventionResponse(convention=convention_to_proto(view))

        return await self._once(context, "AmendConvention", request, pb.AmendConventionResponse, work)

    # --- open affairs ---------------------------------------------------------------------------

    async def CreateAffair(
        self, request: pb.CreateAffairRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateAffairResponse:
        kind = _required(AFFAIR_KINDS, request.kind, "kind of affair", "affair_kind_invalid")

        async def work(session: AsyncSession, principal: auth.Principal) -> pb.CreateAffairResponse:
            view = await self.service.affairs.create(
                session,
                principal,
                request.neighbourhood_id,
                kind,
                request.title,
                request.purpose,
                request.policy_basis,
                request.procedure,
            )
            return pb.CreateAffairResponse(affair=affair_to_proto(view))

        return await self._once(context, "CreateAffair", request, pb.CreateAffairResponse, work)

    async def GetAffair(self, request: pb.GetAffairRequest, context: grpc.aio.ServicerContext) -> pb.GetAffairResponse:
        return pb.GetAffairResponse(
            affair=affair_to_proto(await self.service.affairs.get(auth.current(), request.affair_id))
        )

    async def ListAffairs(
        self, request: pb.ListAffairsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAffairsResponse:
        paged = await self.service.affairs.list_affairs(auth.current(), request.neighbourhood_id, _page(request.page))
        return pb.ListAffairsResponse(affairs=[affair_to_proto(v) for v in paged.items], page=_info(paged))

    async def AdvanceAffair(
        self, request: pb.AdvanceAffairRequest, context: grpc.aio.ServicerContext
    ) -> pb.AdvanceAffairResponse:
        view = await self.service.affairs.advance(auth.current(), request.affair_id, request.to_stage, request.note)
        return pb.AdvanceAffairResponse(affair=affair_to_proto(view))

    async def AddCandidate(
        self, request: pb.AddCandidateRequest, context: grpc.aio.ServicerContext
    ) -> pb.AddCandidateResponse:
        async def work(session: AsyncSession, principal: auth.Principal) -> pb.AddCandidateResponse:
            view = await self.service.affairs.add_candidate(
                session, principal, request.affair_id, request.name, request.person_id, request.statement
            )
            return pb.AddCandidateResponse(affair=affair_to_proto(view))

        return await self._once(context, "AddCandidate", request, pb.AddCandidateResponse, work)

    async def RecordAffairResult(
        self, request: pb.RecordAffairResultRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecordAffairResultResponse:
        view = await self.service.affairs.record_result(
            auth.current(),
            request.affair_id,
            request.summary,
            [(r.candidate_id, r.votes, r.elected) for r in request.results],
        )
        return pb.RecordAffairResultResponse(affair=affair_to_proto(view))

    # --- imports ---------------------------------------------------------------------------------------

    async def ImportPosts(
        self, request: pb.ImportPostsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ImportPostsResponse:
        records = [
            imports.PostRecord(
                external_ref=p.external_ref,
                board_id=p.board_id,
                author_id=p.author_id,
                title=p.title,
                body=p.body,
                tags=list(p.tags),
                created_at=from_ts(p.created_at) if p.HasField("created_at") else None,
            )
            for p in request.posts
        ]
        outcome = await self.service.imports.posts(auth.current(), records)
        return pb.ImportPostsResponse(result=import_result(outcome))

    async def ImportComments(
        self, request: pb.ImportCommentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ImportCommentsResponse:
        records = [
            imports.CommentRecord(
                external_ref=c.external_ref,
                post_id=c.post_id,
                post_external_ref=c.post_external_ref,
                author_id=c.author_id,
                body=c.body,
                created_at=from_ts(c.created_at) if c.HasField("created_at") else None,
            )
            for c in request.comments
        ]
        outcome = await self.service.imports.comments(auth.current(), records)
        return pb.ImportCommentsResponse(result=import_result(outcome))

    async def ImportTopics(
        self, request: pb.ImportTopicsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ImportTopicsResponse:
        imports.require_importer(auth.current())
        records = [
            imports.TopicRecord(
                external_ref=t.external_ref,
                neighbourhood_id=t.neighbourhood_id,
                proposer_id=t.proposer_id,
                title=t.title,
                description=t.description,
                created_at=from_ts(t.created_at) if t.HasField("created_at") else None,
                steps=[
                    imports.StepRecord(
                        to_stage=_import_stage(s.to_stage),
                        actor_id=s.actor_id,
                        reason=s.reason,
                        at=from_ts(s.at) if s.HasField("at") else None,
                    )
                    for s in t.steps
                ],
                owner_id=t.owner_id,
                budget_note=t.budget_note,
                milestones=[
                    imports.MilestoneRecord(m.title, from_ts(m.due_at) if m.HasField("due_at") else None, m.progress)
                    for m in t.milestones
                ],
                evaluation_summary=t.evaluation_summary,
                convention=imports.ConventionRecord(
                    t.convention.title,
                    t.convention.text,
                    [(v.option_label, v.votes) for v in t.convention.tally],
                    t.convention.ballot_count,
                )
                if t.HasField("convention")
                else None,
            )
            for t in request.topics
        ]
        outcome = await self.service.imports.topics(auth.current(), records)
        return pb.ImportTopicsResponse(result=import_result(outcome))


def _import_stage(value: int) -> str:
    name = _name(STAGES, value)
    if not name:
        raise InvalidArgument("every step names the stage it moves to", code="topic_stage_invalid")
    return name


def import_result(outcome: imports.ImportOutcome) -> pb.ImportResult:
    return pb.ImportResult(
        received=outcome.received,
        created=outcome.created,
        skipped=outcome.skipped,
        records=[pb.ImportedRecord(external_ref=r, id=i, created=c) for r, i, c in outcome.records],
    )
