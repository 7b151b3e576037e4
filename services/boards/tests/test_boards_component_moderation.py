"""Reports, the moderators' queue, hide/restore, locks, mutes and the author's notices over real gRPC."""

from __future__ import annotations

from typing import Any

import grpc

from shequtong.boards.v1 import boards_pb2 as pb
from shequtong.common.v1 import common_pb2
from shequtong.events.v1 import boards_events_pb2 as ev

MATTERS = "neighbourhood_matters"


async def _post(caller: Any, board: str, title: str = "有人乱停车") -> pb.Post:
    reply = await caller.call("CreatePost", pb.CreatePostRequest(board_id=board, title=title, body="小区门口"))
    return reply.post


async def _feed_ids(caller: Any, board: str) -> list[str]:
    reply = await caller.call(
        "ListBoardFeed", pb.ListBoardFeedRequest(board_id=board, page=common_pb2.PageRequest(page_size=100))
    )
    return [p.id for p in reply.posts]


async def test_report_queue_hide_restore_and_the_authors_notice(system: Any, place: Any) -> None:
    cadre = await system.resident(place, "cadre")
    author = await system.resident(place)
    reporter = await system.resident(place)
    post = await _post(author, place.boards[MATTERS], "广告：低价装修")
    report = await reporter.call(
        "ReportContent",
        pb.ReportContentRequest(
            target_type=pb.TARGET_TYPE_POST, target_id=post.id, reason=pb.REPORT_REASON_SPAM, note="广告"
        ),
    )
    again = await reporter.call(
        "ReportContent",
        pb.ReportContentRequest(target_type=pb.TARGET_TYPE_POST, target_id=post.id, reason=pb.REPORT_REASON_SPAM),
    )
    assert again.report.id == report.report.id and report.report.excerpt.startswith("广告")
    code, reason = await author.fails(
        "ReportContent",
        pb.ReportContentRequest(target_type=pb.TARGET_TYPE_POST, target_id=post.id, reason=pb.REPORT_REASON_ABUSE),
    )
    assert reason == "report_own_content"
    code, reason = await reporter.fails("ListReports", pb.ListReportsRequest(neighbourhood_id=place.neighbourhood))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "not_a_moderator")
    queue = await cadre.call("ListReports", pb.ListReportsRequest(neighbourhood_id=place.neighbourhood))
    assert report.report.id in [r.id for r in queue.reports]

    code, reason = await reporter.fails(
        "ModerateContent",
        pb.ModerateContentRequest(
            target_type=pb.TARGET_TYPE_POST, target_id=post.id, action=pb.MODERATION_ACTION_KIND_HIDE, reason="广告"
        ),
    )
    assert reason == "not_a_moderator"
    code, reason = await cadre.fails(
        "ModerateContent",
        pb.ModerateContentRequest(
            target_type=pb.TARGET_TYPE_POST, target_id=post.id, action=pb.MODERATION_ACTION_KIND_HIDE
        ),
    )
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "reason_required")
    assert post.id in await _feed_ids(reporter, place.boards[MATTERS])
    hidden = await cadre.call(
        "ModerateContent",
        pb.ModerateContentRequest(
            target_type=pb.TARGET_TYPE_POST, target_id=post.id, action=pb.MODERATION_ACTION_KIND_HIDE, reason="商业广告"
        ),
    )
    assert hidden.action.subject_person_id == author.id
    assert post.id not in await _feed_ids(reporter, place.boards[MATTERS])
    code, reason = await reporter.fails("GetPost", pb.GetPostRequest(post_id=post.id))
    assert reason == "post_not_found"
    own = await author.call("GetPost", pb.GetPostRequest(post_id=post.id))
    assert own.post.status == pb.CONTENT_STATUS_HIDDEN
    notices = await author.call("ListMyModerationNotices", pb.ListMyModerationNoticesRequest())
    assert (notices.actions[0].action, notices.actions[0].reason) == (pb.MODERATION_ACTION_KIND_HIDE, "商业广告")
    actioned = await cadre.call(
        "ListReports", pb.ListReportsRequest(neighbourhood_id=place.neighbourhood, status=pb.REPORT_STATUS_ACTIONED)
    )
    assert report.report.id in [r.id for r in actioned.reports]
    code, reason = await cadre.fails(
        "ModerateContent",
        pb.ModerateContentRequest(
            target_type=pb.TARGET_TYPE_POST, target_id=post.id, action=pb.MODERATION_ACTION_KIND_HIDE, reason="again"
        ),
    )
    assert reason == "content_already_hidden"
    await cadre.call(
        "ModerateContent",
        pb.ModerateContentRequest(
            target_type=pb.TARGET_TYPE_POST, target_id=post.id, action=pb.MODERATION_ACTION_KIND_RESTORE, reason="误判"
        ),
    )
    assert post.id in await _feed_ids(reporter, place.boards[MATTERS])
    log = await cadre.call(
        "ListModerationActions", pb.ListModerationActionsRequest(neighbourhood_id=place.neighbourhood)
    )
    assert [a.action for a in log.actions if a.target_id == post.id] == [
        pb.MODERATION_ACTION_KIND_RESTORE,
        pb.MODERATION_ACTION_KIND_HIDE,
    ]
    events = [
        e
        for e in await system.events("boards.moderation.action_taken", ev.ModerationActionTaken)
        if e.target_id == post.id
    ]
    assert [e.action for e in events] == ["hide", "restore"]


async def test_hidden_comments_leave_the_thread_and_the_count(system: Any, place: Any) -> None:
    cadre = await system.resident(place, "cadre")
    author = await system.resident(place)
    post = await _post(author, place.boards[MATTERS])
    rude = (await author.call("CreateComment", pb.CreateCommentRequest(post_id=post.id, body="粗话"))).comment
    await cadre.call(
        "ModerateContent",
        pb.ModerateContentRequest(
            target_type=pb.TARGET_TYPE_COMMENT,
            target_id=rude.id,
            action=pb.MODERATION_ACTION_KIND_HIDE,
            reason="不文明",
        ),
    )
    thread = await author.call("ListComments", pb.ListCommentsRequest(post_id=post.id))
    assert thread.comments == []
    assert (await author.call("GetPost", pb.GetPostRequest(post_id=post.id))).post.comment_count == 0


async def test_locked_threads_and_muted_members(system: Any, place: Any) -> None:
    cadre = await system.resident(place, "cadre")
    member = await system.resident(place)
    post = await _post(member, place.boards[MATTERS])
    await cadre.call("LockPost", pb.LockPostRequest(post_id=post.id, locked=True, reason="已答复，关闭讨论"))
    code, reason = await member.fails("CreateComment", pb.CreateCommentRequest(post_id=post.id, body="还有问题"))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "post_locked")
    await cadre.call("CreateComment", pb.CreateCommentRequest(post_id=post.id, body="已处理", official_answer=True))

    code, reason = await member.fails(
        "MuteMember",
        pb.MuteMemberRequest(neighbourhood_id=place.neighbourhood, person_id=cadre.id, duration_minutes=60, reason="x"),
    )
    assert reason == "not_committee"
    muted = await cadre.call(
        "MuteMember",
        pb.MuteMemberRequest(
            neighbourhood_id=place.neighbourhood, person_id=member.id, duration_minutes=60, reason="连续刷屏"
        ),
    )
    assert muted.action.HasField("until")
    code, reason = await member.fails(
        "CreatePost", pb.CreatePostRequest(board_id=place.boards[MATTERS], title="a", body="b")
    )
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "member_muted")
    system.clock.advance(minutes=61)
    await _post(member, place.boards[MATTERS], "禁言结束")
    await cadre.call(
        "MuteMember",
        pb.MuteMemberRequest(
            neighbourhood_id=place.neighbourhood, person_id=member.id, duration_minutes=5, reason="再犯"
        ),
    )
    await cadre.call(
        "UnmuteMember",
        pb.UnmuteMemberRequest(neighbourhood_id=place.neighbourhood, person_id=member.id, reason="已道歉"),
    )
    await _post(member, place.boards[MATTERS], "解除禁言")
    notices = await member.call("ListMyModerationNotices", pb.ListMyModerationNoticesRequest())
    assert [n.action for n in notices.actions][:3] == [
        pb.MODERATION_ACTION_KIND_UNMUTE,
        pb.MODERATION_ACTION_KIND_MUTE,
        pb.MODERATION_ACTION_KIND_MUTE,
    ]
    locked = await member.call("ListMyModerationNotices", pb.ListMyModerationNoticesRequest())
    assert pb.MODERATION_ACTION_KIND_LOCK in [n.action for n in locked.actions]


async def test_moderators_delete_with_a_reason_the_author_sees(system: Any, place: Any) -> None:
    cadre = await system.resident(place, "cadre")
    author = await system.resident(place)
    post = await _post(author, place.boards[MATTERS], "泄露邻居电话")
    _code, reason = await cadre.fails("DeletePost", pb.DeletePostRequest(post_id=post.id))
    assert reason == "reason_required"
    await cadre.call("DeletePost", pb.DeletePostRequest(post_id=post.id, reason="含他人隐私"))
    notices = await author.call("ListMyModerationNotices", pb.ListMyModerationNoticesRequest())
    assert (notices.actions[0].action, notices.actions[0].reason) == (pb.MODERATION_ACTION_KIND_DELETE, "含他人隐私")


async def test_only_the_secretary_moderates_party_building(system: Any, place: Any) -> None:
    secretary = await system.resident(place, "secretary")
    cadre = await system.resident(place, "cadre")
    post = await _post(secretary, place.boards["party_building"], "主题党日活动")
    _code, reason = await cadre.fails("PinPost", pb.PinPostRequest(post_id=post.id, pinned=True))
    assert reason == "not_a_moderator"
    pinned = await secretary.call("PinPost", pb.PinPostRequest(post_id=post.id, pinned=True))
    assert pinned.post.pinned


async def test_an_operator_moderating_an_id_with_a_nul_byte_is_refused_not_a_crash(system: Any, place: Any) -> None:
    """Found by tests/security/test_fuzz.py: POST /v1/moderation/actions as an operator answered 500."""
    for target_type in (pb.TARGET_TYPE_POST, pb.TARGET_TYPE_COMMENT):
        code, reason = await system.operator().fails(
            "ModerateContent",
            pb.ModerateContentRequest(
                target_type=target_type, target_id="\x00", action=pb.MODERATION_ACTION_KIND_HIDE, reason="违规"
            ),
        )
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "target_id_invalid")
    post = await _post(await system.resident(place), place.boards[MATTERS])
    code, reason = await system.operator().fails(
        "ModerateContent",
        pb.ModerateContentRequest(
            target_type=pb.TARGET_TYPE_POST, target_id=post.id, action=pb.MODERATION_ACTION_KIND_HIDE, reason="违\x00规"
        ),
    )
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "reason_invalid")
