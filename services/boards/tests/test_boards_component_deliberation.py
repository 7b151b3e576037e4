"""Deliberation from proposal to convention, open affairs, the district's catalogue and issue feedback —
over real gRPC and the real consumer handlers."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import grpc

from shequtong.boards.v1 import boards_pb2 as pb
from shequtong.common.v1 import common_pb2
from shequtong.events.v1 import boards_events_pb2 as ev
from shequtong.events.v1 import issues_events_pb2 as issues_ev
from shequtong_kit.proto import ts

S = pb


async def _advance(caller: Any, topic: str, stage: int, reason: str = "经居委会讨论同意", **extra: Any) -> pb.Topic:
    reply = await caller.call(
        "AdvanceTopic", pb.AdvanceTopicRequest(topic_id=topic, to_stage=stage, reason=reason, **extra)
    )
    return reply.topic


async def _closed_poll(system: Any, cadre: Any, voters: list[Any], post_id: str) -> str:
    poll = (
        await cadre.call(
            "CreatePoll",
            pb.CreatePollRequest(
                post_id=post_id,
                question="是否通过《停车公约》？",
                options=["同意", "不同意"],
                closes_at=ts(system.clock.now() + timedelta(days=3)),
            ),
        )
    ).poll
    for voter in voters:
        await voter.call("CastVote", pb.CastVoteRequest(poll_id=poll.id, option_ids=[poll.options[0].id]))
    await cadre.call("ClosePoll", pb.ClosePollRequest(poll_id=poll.id))
    return str(poll.id)


async def test_a_topic_goes_through_the_seven_stages_to_a_convention(system: Any, place: Any) -> None:
    cadre = await system.resident(place, "cadre")
    proposer = await system.resident(place, name="陈*")
    voters = [await system.resident(place) for _ in range(3)]
    topic = (
        await proposer.call(
            "ProposeTopic",
            pb.ProposeTopicRequest(
                neighbourhood_id=place.neighbourhood, title="规范小区停车", description="夜间乱停车堵消防通道"
            ),
        )
    ).topic
    assert topic.stage == S.TOPIC_STAGE_PROPOSED and topic.proposer.display_name == "陈*"
    hall = (await proposer.call("GetPost", pb.GetPostRequest(post_id=topic.post_id))).post
    assert hall.board_kind == "deliberation_hall" and hall.topic_id == topic.id

    code, reason = await proposer.fails(
        "AdvanceTopic", pb.AdvanceTopicRequest(topic_id=topic.id, to_stage=S.TOPIC_STAGE_REVIEW, reason="我自己同意")
    )
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "not_committee")
    code, reason = await cadre.fails(
        "AdvanceTopic", pb.AdvanceTopicRequest(topic_id=topic.id, to_stage=S.TOPIC_STAGE_PROJECT, reason="直接立项")
    )
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "topic_transition_illegal")
    code, reason = await cadre.fails(
        "AdvanceTopic", pb.AdvanceTopicRequest(topic_id=topic.id, to_stage=S.TOPIC_STAGE_REVIEW)
    )
    assert reason == "topic_reason_required"

    await _advance(cadre, topic.id, S.TOPIC_STAGE_REVIEW, "进入两委把关")
    await _advance(cadre, topic.id, S.TOPIC_STAGE_CONSULTATION, "涉及全体居民利益，予以受理")
    await proposer.call("CreateComment", pb.CreateCommentRequest(post_id=topic.post_id, body="建议划定夜间临停区"))
    code, reason = await cadre.fails(
        "AdvanceTopic", pb.AdvanceTopicRequest(topic_id=topic.id, to_stage=S.TOPIC_STAGE_PROJECT, reason="立项")
    )
    assert reason == "project_plan_required"
    project = await _advance(
        cadre,
        topic.id,
        S.TOPIC_STAGE_PROJECT,
        "协商形成共识",
        project=pb.ProjectPlan(
            owner_id=cadre.id,
            budget_note="划线及标识约8000元，自治金列支",
            milestones=[pb.MilestonePlan(title="划线"), pb.MilestonePlan(title="安装标识")],
        ),
    )
    assert project.owner_id == cadre.id and [m.title for m in project.milestones] == ["划线", "安装标识"]
    code, reason = await cadre.fails(
        "UpdateMilestone",
        pb.UpdateMilestoneRequest(topic_id=topic.id, milestone_id=project.milestones[0].id, progress=50),
    )
    assert reason == "topic_wrong_stage"
    await _advance(cadre, topic.id, S.TOPIC_STAGE_IMPLEMENTATION, "开工")
    first, second = project.milestones
    await cadre.call(
        "UpdateMilestone", pb.UpdateMilestoneRequest(topic_id=topic.id, milestone_id=first.id, progress=100)
    )
    code, reason = await cadre.fails(
        "AdvanceTopic", pb.AdvanceTopicRequest(topic_id=topic.id, to_stage=S.TOPIC_STAGE_EVALUATION, reason="评估")
    )
    assert reason == "milestones_incomplete"
    await cadre.call(
        "UpdateMilestone",
        pb.UpdateMilestoneRequest(topic_id=topic.id, milestone_id=second.id, progress=100, note="完工"),
    )
    await _advance(cadre, topic.id, S.TOPIC_STAGE_EVALUATION, "项目完工")
    rated = (
        await voters[0].call("RateTopic", pb.RateTopicRequest(topic_id=topic.id, rating=5, comment="好多了"))
    ).topic
    await voters[1].call("RateTopic", pb.RateTopicRequest(topic_id=topic.id, rating=4))
    code, reason = await voters[0].fails("RateTopic", pb.RateTopicRequest(topic_id=topic.id, rating=1))
    assert (code, reason) == (grpc.StatusCode.ALREADY_EXISTS, "already_rated")
    assert rated.my_rating == 5
    poll_id = await _closed_poll(system, cadre, voters, topic.post_id)
    draft = pb.ConventionDraft(title="小区停车公约", text="一、夜间不得占用消防通道……", poll_id=poll_id)
    code, reason = await cadre.fails(
        "AdvanceTopic",
        pb.AdvanceTopicRequest(
            topic_id=topic.id, to_stage=S.TOPIC_STAGE_CONVENTION, reason="表决通过", convention=draft
        ),
    )
    assert reason == "evaluation_summary_required"
    await cadre.call(
        "SummariseEvaluation", pb.SummariseEvaluationRequest(topic_id=topic.id, summary="通道畅通，满意度高")
    )
    done = await _advance(cadre, topic.id, S.TOPIC_STAGE_CONVENTION, "居民表决通过", convention=draft)

    assert done.stage == S.TOPIC_STAGE_CONVENTION and done.rating_count == 2 and done.rating_average_x100 == 450
    assert [s.to_stage for s in done.steps] == [
        S.TOPIC_STAGE_PROPOSED,
        S.TOPIC_STAGE_REVIEW,
        S.TOPIC_STAGE_CONSULTATION,
        S.TOPIC_STAGE_PROJECT,
        S.TOPIC_STAGE_IMPLEMENTATION,
        S.TOPIC_STAGE_EVALUATION,
        S.TOPIC_STAGE_CONVENTION,
    ]
    assert all(s.actor_id and s.reason and s.HasField("at") for s in done.steps)
    code, reason = await cadre.fails(
        "AdvanceTopic", pb.AdvanceTopicRequest(topic_id=topic.id, to_stage=S.TOPIC_STAGE_CONCLUDED, reason="结束")
    )
    assert reason == "topic_closed"
    conventions = await voters[2].call(
        "ListConventions", pb.ListConventionsRequest(neighbourhood_id=place.neighbourhood)
    )
    adopted = next(c for c in conventions.conventions if c.id == done.convention_id)
    assert adopted.current_version == 1 and adopted.versions[0].ballot_count == 3
    assert [(t.option_label, t.votes) for t in adopted.versions[0].tally] == [("同意", 3), ("不同意", 0)]

    code, reason = await cadre.fails(
        "AmendConvention",
        pb.AmendConventionRequest(convention_id=done.convention_id, text="修订", poll_id=poll_id, reason="修订"),
    )
    assert reason == "convention_poll_used"
    second_poll = await _closed_poll(system, cadre, voters[:2], topic.post_id)
    amended = await cadre.call(
        "AmendConvention",
        pb.AmendConventionRequest(
            convention_id=done.convention_id,
            text="一、夜间……二、访客车辆……",
            poll_id=second_poll,
            reason="增补访客条款",
        ),
    )
    assert [v.version for v in amended.convention.versions] == [2, 1]

    stages = [
        e.to_stage
        for e in await system.events("boards.topic.stage_changed", ev.TopicStageChanged)
        if e.topic_id == topic.id
    ]
    assert stages == ["proposed", "review", "consultation", "project", "implementation", "evaluation", "convention"]
    adoptions = [
        e for e in await system.events("boards.convention.adopted", ev.ConventionAdopted) if e.topic_id == topic.id
    ]
    assert [e.version for e in adoptions] == [1, 2]
    thread = await proposer.call(
        "ListComments", pb.ListCommentsRequest(post_id=topic.post_id, page=common_pb2.PageRequest(page_size=50))
    )
    system_replies = [c.body for c in thread.comments if c.kind == pb.COMMENT_KIND_SYSTEM]
    assert len(system_replies) == 6 and "建立公约" in system_replies[-1]


async def test_review_may_decline_and_lists_filter_by_stage(system: Any, place: Any) -> None:
    cadre = await system.resident(place, "cadre")
    resident = await system.resident(place)
    topic = (
        await resident.call(
            "ProposeTopic",
            pb.ProposeTopicRequest(neighbourhood_id=place.neighbourhood, title="养鸽子", description="想在楼顶养鸽"),
        )
    ).topic
    await _advance(cadre, topic.id, S.TOPIC_STAGE_REVIEW, "把关")
    declined = await _advance(cadre, topic.id, S.TOPIC_STAGE_DECLINED, "违反物业管理规定")
    assert declined.stage == S.TOPIC_STAGE_DECLINED and declined.steps[-1].reason == "违反物业管理规定"
    listed = await resident.call(
        "ListTopics", pb.ListTopicsRequest(neighbourhood_id=place.neighbourhood, stage=S.TOPIC_STAGE_DECLINED)
    )
    assert topic.id in [t.id for t in listed.topics]
    assert all(t.stage == S.TOPIC_STAGE_DECLINED for t in listed.topics)
    outsider = system.person(f"resident@n:{uuid.uuid4()}")
    code, reason = await outsider.fails("GetTopic", pb.GetTopicRequest(topic_id=topic.id))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "not_a_member")


async def test_an_election_is_published_and_followed_stage_by_stage(system: Any, place: Any) -> None:
    secretary = await system.resident(place, "secretary")
    resident = await system.resident(place)
    code, reason = await resident.fails(
        "CreateAffair",
        pb.CreateAffairRequest(
            neighbourhood_id=place.neighbourhood, kind=pb.AFFAIR_KIND_ELECTION, title="换届", purpose="x"
        ),
    )
    assert reason == "not_committee"
    affair = (
        await secretary.call(
            "CreateAffair",
            pb.CreateAffairRequest(
                neighbourhood_id=place.neighbourhood,
                kind=pb.AFFAIR_KIND_ELECTION,
                title="第十二届居委会换届选举",
                purpose="依法选举产生新一届居民委员会",
                policy_basis="《城市居民委员会组织法》",
                procedure="选民登记→候选人提名→投票→公示",
            ),
        )
    ).affair
    assert affair.stage == "announced" and [s.key for s in affair.stages][:2] == ["announced", "voter_registration"]
    post = (await resident.call("GetPost", pb.GetPostRequest(post_id=affair.post_id))).post
    assert post.board_kind == "affairs_disclosure" and post.affair_id == affair.id
    code, reason = await secretary.fails(
        "AdvanceAffair", pb.AdvanceAffairRequest(affair_id=affair.id, to_stage="voting")
    )
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "affair_stage_out_of_order")
    code, reason = await secretary.fails("AddCandidate", pb.AddCandidateRequest(affair_id=affair.id, name="刘*"))
    assert reason == "affair_not_nominating"
    await secretary.call("AdvanceAffair", pb.AdvanceAffairRequest(affair_id=affair.id, to_stage="voter_registration"))
    await secretary.call(
        "AdvanceAffair", pb.AdvanceAffairRequest(affair_id=affair.id, to_stage="nomination", note="即日起提名")
    )
    first = await secretary.call(
        "AddCandidate", pb.AddCandidateRequest(affair_id=affair.id, name="刘*", statement="服务居民")
    )
    await secretary.call("AddCandidate", pb.AddCandidateRequest(affair_id=affair.id, name="孙*"))
    await secretary.call("AdvanceAffair", pb.AdvanceAffairRequest(affair_id=affair.id, to_stage="voting"))
    await secretary.call("AdvanceAffair", pb.AdvanceAffairRequest(affair_id=affair.id, to_stage="results"))
    candidates = first.affair.candidates
    result = await secretary.call(
        "RecordAffairResult",
        pb.RecordAffairResultRequest(
            affair_id=affair.id,
            summary="参选率92%",
            results=[pb.CandidateResult(candidate_id=candidates[0].id, votes=812, elected=True)],
        ),
    )
    assert result.affair.candidates[0].elected and result.affair.candidates[0].votes == 812
    final = (
        await secretary.call("AdvanceAffair", pb.AdvanceAffairRequest(affair_id=affair.id, to_stage="completed"))
    ).affair
    assert final.completed and all(s.HasField("reached_at") for s in final.stages)
    thread = await resident.call("ListComments", pb.ListCommentsRequest(post_id=affair.post_id))
    assert any("结果公示" in c.body and "刘*" in c.body for c in thread.comments)
    changes = [
        e.to_stage
        for e in await system.events("boards.affair.stage_changed", ev.AffairStageChanged)
        if e.affair_id == affair.id
    ]
    assert changes == ["announced", "voter_registration", "nomination", "voting", "results", "completed"]
    listed = await resident.call("ListAffairs", pb.ListAffairsRequest(neighbourhood_id=place.neighbourhood))
    assert affair.id in [a.id for a in listed.affairs]


async def test_district_staff_change_the_catalogue_and_open_district_boards(system: Any) -> None:
    district = str(uuid.uuid4())
    home = await system.place(district=district)
    other = await system.place(district=district)
    staff = system.person(f"district_staff@d:{district}")
    resident = await system.resident(home)
    cadre = await system.resident(home, "cadre")
    code, reason = await cadre.fails(
        "PutCatalogueEntry",
        pb.PutCatalogueEntryRequest(
            district_id=district,
            kind="district_news",
            name="区级新闻",
            policy=pb.BoardPolicy(read=["anyone"], moderate=["district_staff"]),
        ),
    )
    assert reason == "not_district_staff"
    survey = pb.BoardPolicy(
        read=["member", "staff"], post=["district_staff"], comment=["resident"], moderate=["district_staff"]
    )
    opened = await staff.call(
        "PutCatalogueEntry",
        pb.PutCatalogueEntryRequest(district_id=district, kind="district_survey", name="大调研", policy=survey),
    )
    assert opened.boards_opened == 1 and opened.entry.scope == pb.BOARD_SCOPE_DISTRICT
    again = await staff.call(
        "PutCatalogueEntry",
        pb.PutCatalogueEntryRequest(district_id=district, kind="district_survey", name="大调研", policy=survey),
    )
    assert again.boards_opened == 0
    for place in (home, other):
        boards = await system.operator().call("ListBoards", pb.ListBoardsRequest(neighbourhood_id=place.neighbourhood))
        assert [b.kind for b in boards.boards][-1] == "district_survey" and len(boards.boards) == 11
    board_id = next(
        b.id
        for b in (await resident.call("ListBoards", pb.ListBoardsRequest(neighbourhood_id=home.neighbourhood))).boards
        if b.kind == "district_survey"
    )
    code, reason = await cadre.fails("CreatePost", pb.CreatePostRequest(board_id=board_id, title="t", body="b"))
    assert reason == "board_post_forbidden"
    post = (
        await staff.call("CreatePost", pb.CreatePostRequest(board_id=board_id, title="2026大调研", body="请留言"))
    ).post
    home_feed = await resident.call("ListHomeFeed", pb.ListHomeFeedRequest(neighbourhood_id=home.neighbourhood))
    assert post.id in [p.id for p in home_feed.posts]
    await resident.call("CreateComment", pb.CreateCommentRequest(post_id=post.id, body="希望增加停车位"))
    stranger = await system.resident(await system.place())
    code, _ = await stranger.fails("GetPost", pb.GetPostRequest(post_id=post.id))
    assert code == grpc.StatusCode.PERMISSION_DENIED

    closed = pb.BoardPolicy(
        read=["member", "staff"],
        post=["committee"],
        comment=["member"],
        answer=["committee"],
        moderate=["committee", "staff"],
    )
    changed = await staff.call(
        "PutCatalogueEntry",
        pb.PutCatalogueEntryRequest(district_id=district, kind="neighbourhood_matters", name="身边事", policy=closed),
    )
    assert changed.entry.customised
    code, reason = await resident.fails(
        "CreatePost", pb.CreatePostRequest(board_id=home.boards["neighbourhood_matters"], title="t", body="b")
    )
    assert reason == "board_post_forbidden"
    catalogue = await resident.call("ListCatalogue", pb.ListCatalogueRequest(district_id=district))
    entries = {e.kind: e for e in catalogue.entries}
    assert entries["neighbourhood_matters"].customised and list(entries["neighbourhood_matters"].policy.post) == [
        "committee"
    ]
    assert entries["district_survey"].opened and not entries["district_news"].opened
    code, reason = await staff.fails(
        "PutCatalogueEntry",
        pb.PutCatalogueEntryRequest(
            district_id=district,
            kind="waste_sorting",
            name="垃圾分类",
            policy=pb.BoardPolicy(read=["everyone"], moderate=["committee"]),
            scope=pb.BOARD_SCOPE_NEIGHBOURHOOD,
        ),
    )
    assert reason == "policy_audience_unknown"
    added = await staff.call(
        "PutCatalogueEntry",
        pb.PutCatalogueEntryRequest(
            district_id=district,
            kind="waste_sorting",
            name="垃圾分类",
            policy=closed,
            scope=pb.BOARD_SCOPE_NEIGHBOURHOOD,
        ),
    )
    assert added.boards_opened == 2
    later = await system.place(district=district)
    assert "waste_sorting" in later.boards


async def test_issue_progress_comes_back_as_system_replies_once(system: Any, place: Any) -> None:
    resident = await system.resident(place)
    post = (
        await resident.call(
            "CreatePost",
            pb.CreatePostRequest(board_id=place.boards["neighbourhood_matters"], title="下水道堵了", body="@居委会"),
        )
    ).post
    issue_id = str(uuid.uuid4())
    reported = issues_ev.IssueReported(
        issue_id=issue_id,
        neighbourhood_id=place.neighbourhood,
        source="post",
        source_post_id=post.id,
        reporter_id=resident.id,
    )
    event_id = str(uuid.uuid4())
    assert await system.deliver("issues.issue.reported", reported, event_id=event_id)
    assert not await system.deliver("issues.issue.reported", reported, event_id=event_id)
    await system.deliver("issues.issue.reported", reported)  # a copy under a new id: the link already exists
    change = issues_ev.IssueStateChanged(
        issue_id=issue_id,
        neighbourhood_id=place.neighbourhood,
        from_state="reported",
        to_state="acknowledged",
        level="neighbourhood",
        note="已安排疏通",
    )
    change_id = str(uuid.uuid4())
    await system.deliver("issues.issue.acknowledged", change, event_id=change_id)
    await system.deliver("issues.issue.acknowledged", change, event_id=change_id)
    await system.deliver(
        "issues.issue.sla_breached", issues_ev.IssueSlaBreached(issue_id=issue_id, neighbourhood_id=place.neighbourhood)
    )
    await system.deliver(
        "issues.issue.acknowledged",
        issues_ev.IssueStateChanged(issue_id=str(uuid.uuid4()), to_state="acknowledged"),
    )
    thread = await resident.call("ListComments", pb.ListCommentsRequest(post_id=post.id))
    bodies = [c.body for c in thread.comments]
    assert len(bodies) == 2 and all(c.kind == pb.COMMENT_KIND_SYSTEM for c in thread.comments)
    assert "已转为问题工单" in bodies[0] and "已受理" in bodies[1] and "已安排疏通" in bodies[1]
    seen = (await resident.call("GetPost", pb.GetPostRequest(post_id=post.id))).post
    assert seen.issue_id == issue_id and seen.comment_count == 2


async def test_an_issue_reported_and_progressed_in_one_batch_replies_on_its_post(system: Any, place: Any) -> None:
    """The feedback consumer reads a batch's issue links at once (most issues were never a post); an issue
    linked by an event of the same batch still gets its progress reply."""
    resident = await system.resident(place)
    posts = [
        (
            await resident.call(
                "CreatePost",
                pb.CreatePostRequest(board_id=place.boards["neighbourhood_matters"], title=f"路灯{i}", body="不亮"),
            )
        ).post
        for i in range(2)
    ]
    linked_before, linked_now, never_a_post = (str(uuid.uuid4()) for _ in range(3))

    def reported(issue_id: str, post_id: str) -> tuple[str, Any]:
        message = issues_ev.IssueReported(
            issue_id=issue_id, neighbourhood_id=place.neighbourhood, source="post", source_post_id=post_id
        )
        return "issues.issue.reported", message

    def progressed(issue_id: str, note: str) -> tuple[str, Any]:
        message = issues_ev.IssueStateChanged(
            issue_id=issue_id, neighbourhood_id=place.neighbourhood, to_state="in_progress", note=note
        )
        return "issues.issue.started", message

    assert await system.deliver(*reported(linked_before, posts[0].id))
    batch = [
        progressed(never_a_post, "无关"),
        progressed(linked_before, "已派人"),
        reported(linked_now, posts[1].id),
        progressed(linked_now, "已登记维修"),
    ]
    assert await system.deliver_batch(batch) == [True] * len(batch)
    for post, note in ((posts[0], "已派人"), (posts[1], "已登记维修")):
        thread = await resident.call("ListComments", pb.ListCommentsRequest(post_id=post.id))
        bodies = [c.body for c in thread.comments]
        assert len(bodies) == 2 and "已转为问题工单" in bodies[0] and note in bodies[1], bodies


async def test_an_imported_issues_events_in_one_pack_reply_as_if_each_had_come_alone(system: Any, place: Any) -> None:
    """An import of issues sends their events packed (`issues.record.imported`): each item is handled as the
    event it stands for — the post shows it became an issue and each progress reply; two state changes of
    one pack are two replies (each item its own source event); the rest (assigned, rated) changes nothing."""
    resident = await system.resident(place)
    board = place.boards["neighbourhood_matters"]
    post = (await resident.call("CreatePost", pb.CreatePostRequest(board_id=board, title="井盖", body="松动"))).post
    issue_id = str(uuid.uuid4())

    def item(subject: str, **event: Any) -> issues_ev.ImportedIssueEvent:
        return issues_ev.ImportedIssueEvent(subject=subject, **event)

    def changed(note: str) -> issues_ev.IssueStateChanged:
        return issues_ev.IssueStateChanged(issue_id=issue_id, neighbourhood_id=place.neighbourhood, note=note)

    pack = issues_ev.IssueEventsImported(
        events=[
            item("issues.record.assigned", assigned=issues_ev.IssueAssigned(issue_id=issue_id)),
            item(
                "issues.issue.reported",
                reported=issues_ev.IssueReported(
                    issue_id=issue_id, neighbourhood_id=place.neighbourhood, source="post", source_post_id=post.id
                ),
            ),
            item("issues.issue.acknowledged", state_changed=changed("已受理")),
            item("issues.issue.rated", rated=issues_ev.IssueRated(issue_id=issue_id, rating=5)),
            item("issues.issue.resolved", state_changed=changed("已更换井盖")),
        ]
    )
    assert await system.deliver_batch([("issues.record.imported", pack)]) == [True]
    thread = await resident.call("ListComments", pb.ListCommentsRequest(post_id=post.id))
    bodies = [c.body for c in thread.comments]
    assert len(bodies) == 3 and all(c.kind == pb.COMMENT_KIND_SYSTEM for c in thread.comments), bodies
    assert "已转为问题工单" in bodies[0] and "已受理" in bodies[1] and "已更换井盖" in bodies[2]
    seen = (await resident.call("GetPost", pb.GetPostRequest(post_id=post.id))).post
    assert seen.issue_id == issue_id and seen.comment_count == 3
