"""The feeds send `PostPage` as plain fields (`routes.posts.post_page`) instead of building its models:
the JSON must be exactly what FastAPI would have sent for the models."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from fastapi.encoders import jsonable_encoder
from google.protobuf.timestamp_pb2 import Timestamp
from shequtong_api_gateway.routes.posts import PostOut, PostPage, post_fields, post_out, post_page

from shequtong.boards.v1 import boards_pb2


def _stamp(when: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return stamp


def _posts() -> list[boards_pb2.Post]:
    full = boards_pb2.Post(
        id="p1",
        board_id="b1",
        board_kind="neighbourhood_matters",
        neighbourhood_id="n1",
        district_id="d1",
        author=boards_pb2.Author(person_id="a1", display_name="王*", badges=["party_member", "volunteer"]),
        title="路灯坏了",
        body="3号楼 @居委会",
        image_refs=["uploads/lamp.jpg"],
        tags=["路灯"],
        mentions=[
            boards_pb2.Mention(person_id="c1", display_name="李*", via_handle="committee"),
            boards_pb2.Mention(person_id="r2", display_name="赵*"),
        ],
        mentioned_handles=["committee"],
        pinned=True,
        locked=True,
        status=boards_pb2.CONTENT_STATUS_HIDDEN,
        like_count=3,
        comment_count=2,
        official_answer_count=1,
        liked_by_me=True,
        version=4,
        created_at=_stamp(datetime(2026, 11, 27, 5, 6, 7, 120000, tzinfo=UTC)),
        edited_at=_stamp(datetime(2026, 11, 27, 6, 0, 0, tzinfo=UTC)),
        topic_id="t1",
        affair_id="f1",
        poll_ids=["poll1"],
        issue_id="i1",
    )
    bare = boards_pb2.Post(id="p2", board_id="b2", district_id="d1", author=boards_pb2.Author(person_id="system"))
    return [full, bare]


def test_post_fields_are_the_models_json_form() -> None:
    for post in _posts():
        fields = post_fields(post)
        assert set(fields) == set(PostOut.model_fields)
        assert post_out(post).model_dump(mode="json") == fields


def test_a_feed_page_sends_the_bytes_the_model_would() -> None:
    posts = _posts()
    for cursor in ("next-page", ""):
        model = PostPage(items=[post_out(p) for p in posts], next_cursor=cursor or None)
        expected = orjson.dumps(jsonable_encoder(model.model_dump(mode="json")))
        assert post_page(posts, cursor).body == expected
    assert orjson.loads(post_page(posts, "").body)["items"][0]["created_at"] == "2026-11-27T05:06:07.120000Z"
