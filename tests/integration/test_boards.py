"""Boards and deliberation through the gateway: real identity tokens and events, real NATS and databases.

One community (district → sub-district → two neighbourhoods, with a secretary, an on-duty cadre, residents
and a party member) serves every journey here; each journey makes its own posts, topics and polls.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from shequtong_stack import Stack

from integration.helpers import eventually, stream_payloads
from integration.people import Community, Person, register, register_and_verify, sign_in
from shequtong.events.v1 import boards_events_pb2 as ev

MATTERS = "neighbourhood_matters"


def ok(reply: httpx.Response, status: int = 200) -> Any:
    assert reply.status_code == status, f"{reply.request.method} {reply.request.url.path}: {reply.text}"
    return reply.json()


def refused(reply: httpx.Response, status: int, code: str) -> None:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert reply.json()["code"] == code, reply.text


class Town:
    def __init__(self, community: Community, boards: dict[str, str]) -> None:
        self.c = community
        self.n = community.neighbourhood_id
        self.boards = boards


def boards_of(api: httpx.Client, person: Person, neighbourhood: str) -> dict[str, str]:
    reply = api.get(f"/v1/neighbourhoods/{neighbourhood}/boards", headers=person.headers)
    return {b["kind"]: b["id"] for b in reply.json()} if reply.status_code == 200 else {}


@pytest.fixture(scope="module")
def town(api: httpx.Client, ops_headers: dict[str, str]) -> Town:
    from integration.people import new_neighbourhood_with_people

    community = new_neighbourhood_with_people(api, ops_headers)
    n = community.neighbourhood_id
    boards = eventually(lambda: (b := boards_of(api, community.resident, n)) and len(b) == 10 and b, what="boards")
    # Boards learns people from identity's events: wait until it knows the committee and the residents
    # (a mention of someone it does not know yet is refused, and changes nothing).
    mentioned = [community.cadre.person_id, *(r.person_id for r in community.residents)]
    notice = eventually(
        lambda: (
            (
                reply := api.post(
                    f"/v1/boards/{boards['announcements']}/posts",
                    json={"title": "欢迎加入社区通", "body": "请大家实名发帖", "mention_person_ids": mentioned},
                    headers=community.secretary.headers,
                )
            ).status_code
            == 201
            and reply.json()
        ),
        what="boards' projection of the committee and residents",
    )
    eventually(
        lambda: (
            "secretary"
            in api.get(f"/v1/posts/{notice['id']}", headers=community.resident.headers).json()["author"]["badges"]
        ),
        what="the secretary's badge",
    )
    return Town(community, boards)


def post(api: httpx.Client, person: Person, board: str, title: str, body: str = "详情见图", **extra: Any) -> Any:
    return ok(
        api.post(f"/v1/boards/{board}/posts", json={"title": title, "body": body, **extra}, headers=person.headers), 201
    )


def feed_ids(api: httpx.Client, person: Person, path: str) -> list[str]:
    return [p["id"] for p in ok(api.get(path, params={"page_size": 100}, headers=person.headers))["items"]]


def test_committee_mention_is_resolved_and_carried_by_the_event(api: httpx.Client, system: Stack, town: Town) -> None:
    c = town.c
    created = post(api, c.resident, town.boards[MATTERS], "5号楼楼道灯不亮", "晚上很黑，老人上下楼危险 @居委会 请处理")
    mentioned = {m["person_id"]: m["via_handle"] for m in created["mentions"]}
    assert mentioned == {c.secretary.person_id: "committee", c.cadre.person_id: "committee"}
    assert created["mentioned_handles"] == ["committee"]

    def carried() -> ev.PostCreated | None:
        for payload in stream_payloads(system.nats_url, "BOARDS", "boards.post.created"):
            event = ev.PostCreated.FromString(payload)
            if event.post_id == created["id"]:
                return event
        return None

    event = eventually(carried, what="boards.post.created on the BOARDS stream")
    assert event.mentions_committee and event.board_kind == MATTERS and event.neighbourhood_id == town.n
    assert set(event.mentioned_person_ids) == set(mentioned) and list(event.mentioned_roles) == ["committee"]
    assert event.author_id == c.resident.person_id


def test_residents_comment_where_the_policy_allows_but_post_only_where_it_does(api: httpx.Client, town: Town) -> None:
    c = town.c
    for kind in ("party_building", "announcements"):
        reply = api.post(
            f"/v1/boards/{town.boards[kind]}/posts",
            json={"title": "我想发", "body": "可以吗"},
            headers=c.resident.headers,
        )
        refused(reply, 403, "board_post_forbidden")
    refused(
        api.post(
            f"/v1/boards/{town.boards['party_building']}/posts",
            json={"title": "t", "body": "b"},
            headers=c.cadre.headers,
        ),
        403,
        "board_post_forbidden",
    )
    lesson = post(api, c.secretary, town.boards["party_building"], "七一主题党日", "地点：党群服务站")
    comment = ok(
        api.post(f"/v1/posts/{lesson['id']}/comments", json={"body": "准时参加"}, headers=c.party_member.headers), 201
    )
    assert comment["author"]["badges"] == ["party_member"] and comment["kind"] == "member"
    refused(
        api.put(f"/v1/posts/{lesson['id']}/pin", json={"pinned": True}, headers=c.cadre.headers), 403, "not_a_moderator"
    )
    assert ok(api.put(f"/v1/posts/{lesson['id']}/pin", json={"pinned": True}, headers=c.secretary.headers))["pinned"]
    boards = {b["kind"]: b for b in ok(api.get(f"/v1/neighbourhoods/{town.n}/boards", headers=c.resident.headers))}
    assert boards["party_building"]["permissions"] == {
        "can_read": True,
        "can_post": False,
        "can_comment": True,
        "can_answer": False,
        "can_moderate": False,
    }


def test_another_neighbourhood_reads_neither_posts_nor_boards(api: httpx.Client, town: Town) -> None:
    c = town.c
    created = post(api, c.resident, town.boards[MATTERS], "快递柜满了")
    for outsider in (c.other_resident, c.other_cadre):
        refused(api.get(f"/v1/neighbourhoods/{town.n}/boards", headers=outsider.headers), 403, "not_a_member")
        refused(api.get(f"/v1/posts/{created['id']}", headers=outsider.headers), 403, "board_read_forbidden")
        refused(
            api.get(f"/v1/boards/{town.boards[MATTERS]}/posts", headers=outsider.headers), 403, "board_read_forbidden"
        )
        refused(api.get(f"/v1/neighbourhoods/{town.n}/feed", headers=outsider.headers), 403, "not_a_member")
        refused(api.get(f"/v1/posts/{created['id']}/comments", headers=outsider.headers), 403, "board_read_forbidden")
    own = ok(api.get(f"/v1/neighbourhoods/{c.other_neighbourhood_id}/boards", headers=c.other_resident.headers))
    assert len(own) == 10
    assert created["id"] in feed_ids(api, c.subdistrict_staff, f"/v1/boards/{town.boards[MATTERS]}/posts")


def test_a_topic_goes_through_seven_stages_to_a_convention(api: httpx.Client, town: Town) -> None:
    c = town.c
    topic = ok(
        api.post(
            f"/v1/neighbourhoods/{town.n}/topics",
            json={"title": "规范非机动车停放", "description": "电瓶车楼道充电有火灾隐患，建议建集中充电棚"},
            headers=c.resident.headers,
        ),
        201,
    )
    assert topic["stage"] == "proposed"

    def move(to: str, reason: str, who: Person = c.cadre, **extra: Any) -> httpx.Response:
        return api.post(
            f"/v1/topics/{topic['id']}/transitions",
            json={"to_stage": to, "reason": reason, **extra},
            headers=who.headers,
        )

    refused(move("project", "直接立项"), 409, "topic_transition_illegal")
    refused(move("review", "我同意", who=c.resident), 403, "not_committee")
    ok(move("review", "两委把关"))
    ok(move("consultation", "涉及消防安全，予以受理"))
    ok(
        api.post(f"/v1/posts/{topic['post_id']}/comments", json={"body": "支持建棚"}, headers=c.residents[1].headers),
        201,
    )
    project = ok(
        move(
            "project",
            "协商一致",
            project={
                "owner_id": c.cadre.person_id,
                "budget_note": "约3万元，街镇自治金",
                "milestones": [{"title": "选址"}, {"title": "建棚通电"}],
            },
        )
    )
    ok(move("implementation", "开工"))
    for milestone in project["milestones"]:
        ok(
            api.patch(
                f"/v1/topics/{topic['id']}/milestones/{milestone['id']}",
                json={"progress": 100},
                headers=c.cadre.headers,
            )
        )
    ok(move("evaluation", "已投入使用"))
    ok(api.post(f"/v1/topics/{topic['id']}/ratings", json={"rating": 5}, headers=c.resident.headers), 201)
    ok(
        api.put(
            f"/v1/topics/{topic['id']}/evaluation-summary",
            json={"summary": "楼道充电基本杜绝"},
            headers=c.cadre.headers,
        )
    )
    closes = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    poll = ok(
        api.post(
            f"/v1/posts/{topic['post_id']}/polls",
            json={"question": "是否通过《充电公约》？", "options": ["同意", "不同意"], "closes_at": closes},
            headers=c.cadre.headers,
        ),
        201,
    )
    for voter in c.residents:
        ok(
            api.post(
                f"/v1/polls/{poll['id']}/votes", json={"option_ids": [poll["options"][0]["id"]]}, headers=voter.headers
            ),
            201,
        )
    refused(
        move(
            "convention",
            "表决",
            convention={"title": "充电公约", "text": "电瓶车一律到充电棚充电", "poll_id": poll["id"]},
        ),
        409,
        "convention_poll_open",
    )
    ok(api.post(f"/v1/polls/{poll['id']}/close", headers=c.cadre.headers))
    done = ok(
        move(
            "convention",
            "居民表决通过",
            convention={"title": "充电公约", "text": "电瓶车一律到充电棚充电", "poll_id": poll["id"]},
        )
    )
    assert [s["to_stage"] for s in done["steps"]] == [
        "proposed",
        "review",
        "consultation",
        "project",
        "implementation",
        "evaluation",
        "convention",
    ]
    assert all(s["actor_id"] and s["reason"] and s["at"] for s in done["steps"])
    refused(move("concluded", "结束"), 409, "topic_closed")
    conventions = ok(api.get(f"/v1/neighbourhoods/{town.n}/conventions", headers=c.residents[1].headers))["items"]
    adopted = next(x for x in conventions if x["id"] == done["convention_id"])
    assert adopted["versions"][0]["tally"] == [{"option": "同意", "votes": 3}, {"option": "不同意", "votes": 0}]


def test_a_poll_counts_each_resident_once_under_50_concurrent_votes(api: httpx.Client, town: Town) -> None:
    c = town.c
    voters = [*c.residents, *(register_and_verify(api, c.join_code, c.cadre.headers) for _ in range(7))]
    question = post(api, c.cadre, town.boards["deliberation_hall"], "活动室开放时间")
    closes = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    poll = ok(
        api.post(
            f"/v1/posts/{question['id']}/polls",
            json={"question": "周末开放活动室？", "options": ["开放", "不开放"], "closes_at": closes},
            headers=c.cadre.headers,
        ),
        201,
    )
    yes = poll["options"][0]["id"]
    # Voters registered just now must be known to boards as residents: their token says so already.
    attempts = [voter for voter in voters for _ in range(5)]
    assert len(attempts) == 50
    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(
            pool.map(
                lambda v: (
                    api.post(f"/v1/polls/{poll['id']}/votes", json={"option_ids": [yes]}, headers=v.headers).status_code
                ),
                attempts,
            )
        )
    assert statuses.count(201) == len(voters) == 10 and statuses.count(409) == 40, statuses
    counted = ok(api.get(f"/v1/polls/{poll['id']}", headers=c.cadre.headers))
    assert counted["ballot_count"] == 10 and counted["options"][0]["votes"] == 10


def test_one_ballot_per_household(api: httpx.Client, town: Town) -> None:
    c = town.c
    address = {"building": f"{uuid.uuid4().hex[:4]}号楼", "unit": "2", "room": "302"}
    family = []
    for _ in range(2):
        person, reply = register(api, c.join_code, address=address)
        ok(reply, 201)
        ok(api.post(f"/v1/memberships/{person.membership_id}/verify", json={}, headers=c.cadre.headers))
        family.append(sign_in(api, person))
    question = post(api, c.cadre, town.boards["owners_committee_line"], "电梯加装意向")
    closes = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    poll = ok(
        api.post(
            f"/v1/posts/{question['id']}/polls",
            json={"question": "同意加装电梯？", "options": ["同意", "反对"], "basis": "household", "closes_at": closes},
            headers=c.cadre.headers,
        ),
        201,
    )
    body = {"option_ids": [poll["options"][0]["id"]]}
    eventually(
        lambda: api.post(f"/v1/polls/{poll['id']}/votes", json=body, headers=family[0].headers).status_code == 201,
        what="the first household member's vote (boards learns the household from identity's event)",
    )

    def second_members_vote() -> httpx.Response | None:
        # Each member's household reaches boards by an event of its own: the second may still be on its way.
        reply = api.post(f"/v1/polls/{poll['id']}/votes", json=body, headers=family[1].headers)
        return None if reply.status_code == 409 and reply.json()["code"] == "household_unknown" else reply

    refused(eventually(second_members_vote, what="boards knowing the second member's household"), 409, "already_voted")
    seen = ok(api.get(f"/v1/polls/{poll['id']}", headers=family[1].headers))
    assert seen["ballot_count"] == 1 and seen["my_choice_ids"] == body["option_ids"]


def test_a_hidden_post_disappears_from_feeds(api: httpx.Client, town: Town) -> None:
    c = town.c
    spam = post(api, c.residents[1], town.boards[MATTERS], "低价装修，加微信", "联系我")
    keep = post(api, c.resident, town.boards[MATTERS], "周末义诊")
    board_feed, home_feed = f"/v1/boards/{town.boards[MATTERS]}/posts", f"/v1/neighbourhoods/{town.n}/feed"
    assert spam["id"] in feed_ids(api, c.resident, board_feed) and spam["id"] in feed_ids(api, c.resident, home_feed)
    report = ok(
        api.post(
            "/v1/reports",
            json={"target_type": "post", "target_id": spam["id"], "reason": "spam"},
            headers=c.resident.headers,
        ),
        201,
    )
    refused(api.get(f"/v1/neighbourhoods/{town.n}/reports", headers=c.resident.headers), 403, "not_a_moderator")
    queue = ok(api.get(f"/v1/neighbourhoods/{town.n}/reports", headers=c.cadre.headers))["items"]
    assert report["id"] in [r["id"] for r in queue]
    action = ok(
        api.post(
            "/v1/moderation/actions",
            json={"target_type": "post", "target_id": spam["id"], "action": "hide", "reason": "商业广告"},
            headers=c.cadre.headers,
        ),
        201,
    )
    assert action["subject_person_id"] == c.residents[1].person_id
    for path in (board_feed, home_feed):
        ids = feed_ids(api, c.resident, path)
        assert spam["id"] not in ids and keep["id"] in ids
    refused(api.get(f"/v1/posts/{spam['id']}", headers=c.resident.headers), 404, "post_not_found")
    assert ok(api.get(f"/v1/posts/{spam['id']}", headers=c.residents[1].headers))["status"] == "hidden"
    notices = ok(api.get("/v1/me/moderation-notices", headers=c.residents[1].headers))["items"]
    assert (notices[0]["action"], notices[0]["reason"]) == ("hide", "商业广告")
    actioned = ok(
        api.get(f"/v1/neighbourhoods/{town.n}/reports", params={"status": "actioned"}, headers=c.cadre.headers)
    )
    assert report["id"] in [r["id"] for r in actioned["items"]]


def test_create_is_idempotent_and_feeds_page_by_cursor(api: httpx.Client, town: Town) -> None:
    c = town.c
    board = town.boards["property_window"]
    key = {"Idempotency-Key": uuid.uuid4().hex, **c.resident.headers}
    body = {"title": "电梯异响", "body": "2号楼电梯运行有异响"}
    first = ok(api.post(f"/v1/boards/{board}/posts", json=body, headers=key), 201)
    again = ok(api.post(f"/v1/boards/{board}/posts", json=body, headers=key), 201)
    assert first["id"] == again["id"]
    others = [post(api, c.residents[1], board, f"物业问题{n}")["id"] for n in range(4)]
    seen: list[str] = []
    cursor = None
    while True:
        page = ok(
            api.get(
                f"/v1/boards/{board}/posts",
                params={"page_size": 2, **({"cursor": cursor} if cursor else {})},
                headers=c.resident.headers,
            )
        )
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [*reversed(others), first["id"]]
    answer = {"body": "已报修", "official_answer": True}
    refused(
        api.post(f"/v1/posts/{first['id']}/comments", json=answer, headers=c.resident.headers), 403, "not_a_responder"
    )
