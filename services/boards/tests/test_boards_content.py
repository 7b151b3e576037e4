"""Posts, mentions and feed keys (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from shequtong_boards.domain import content
from shequtong_boards.domain.content import FeedKey, feed_key, handles_in, roles_for_handles

from shequtong_kit.errors import InvalidArgument


def test_role_handles_are_read_from_text_longest_first() -> None:
    assert handles_in("3号楼路灯坏了 @居委会 @物业 请看看") == ["committee", "property"]
    assert handles_in("@居委 和 @居委会 都一样") == ["committee"]
    assert handles_in("@民警@家庭医生@律师@业委会@书记") == [
        "police",
        "doctor",
        "lawyer",
        "owners_committee",
        "secretary",
    ]
    assert handles_in("@Committee please") == ["committee"]
    assert handles_in("@committeeman is not a handle; email a@b.cn") == []
    assert handles_in("居委会 without at-sign") == []


def test_handles_resolve_to_the_roles_that_hold_them() -> None:
    assert roles_for_handles(["committee"]) == {"cadre", "secretary"}
    assert roles_for_handles(["property", "police"]) == {"property_manager", "police"}
    assert roles_for_handles(["unknown"]) == set()


def test_post_validation_cleans_and_limits() -> None:
    draft = content.validate_post(
        " 标题 ", " 正文 ", ["img/a.jpg"], ["#垃圾分类", "垃圾分类", " 停车 "], ["p1", "p1", " "]
    )
    assert (draft.title, draft.body) == ("标题", "正文")
    assert draft.tags == ("垃圾分类", "停车")
    assert draft.mention_person_ids == ("p1",)
    cases = [
        (("", "b", [], [], []), "title_required"),
        (("t", "  ", [], [], []), "body_required"),
        (("t" * 81, "b", [], [], []), "title_too_long"),
        (("t", "b", [f"i{n}" for n in range(10)], [], []), "images_too_many"),
        (("t", "b", ["has space"], [], []), "image_ref_invalid"),
        (("t", "b", [], [f"t{n}" for n in range(6)], []), "tags_too_many"),
        (("t", "b", [], ["x" * 21], []), "tag_invalid"),
        (("t", "b", [], [], [f"p{n}" for n in range(21)]), "mentions_too_many"),
    ]
    for args, code in cases:
        with pytest.raises(InvalidArgument) as caught:
            content.validate_post(*args)
        assert caught.value.code == code


def test_reasons_are_required_when_the_author_will_read_them() -> None:
    with pytest.raises(InvalidArgument) as caught:
        content.validate_reason("  ")
    assert caught.value.code == "reason_required"
    assert content.validate_reason("", required=False) == ""
    with pytest.raises(InvalidArgument):
        content.validate_reason("x" * 501)


def test_feed_keys_round_trip_and_refuse_forgeries() -> None:
    key = FeedKey(True, datetime(2026, 5, 1, 8, tzinfo=UTC), "0190-id")
    assert feed_key(key.encode()) == key
    assert feed_key(None) is None
    for raw in ([1, "2026-05-01T08:00:00", "id"], [2, "2026-05-01T08:00:00+00:00", "id"], ["x"], [1, "nope", "id"]):
        with pytest.raises(InvalidArgument) as caught:
            feed_key(raw)  # type: ignore[arg-type]
        assert caught.value.code == "cursor_invalid"
