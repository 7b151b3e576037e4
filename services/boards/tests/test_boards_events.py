"""Boards' outgoing events that are built, not just copied: an import's created events packed together."""

from __future__ import annotations

from shequtong_boards.events import comments_imported_messages

from shequtong.events.v1 import boards_events_pb2 as ev
from shequtong_kit.outbox import PACKED_EVENT_BYTES, packed


def test_an_imports_created_events_are_packed_in_order_under_the_size_limit() -> None:
    items = [
        ev.CommentCreated(comment_id=f"c{i:05d}", post_id="p" * 36, author_id="a" * 36, neighbourhood_id="n" * 36)
        for i in range(8000)
    ]
    messages = comments_imported_messages(items)

    assert len(messages) > 1
    assert {subject for subject, _ in messages} == {"boards.comment.imported"}
    assert [c for _, pack in messages for c in pack.comments] == items  # nothing lost, nothing reordered
    assert all(pack.ByteSize() <= PACKED_EVENT_BYTES for _, pack in messages)
    assert not comments_imported_messages([])


def test_an_item_larger_than_the_limit_travels_alone() -> None:
    small = ev.PostCreated(post_id="small", body="短")
    huge = ev.PostCreated(post_id="huge", body="长" * PACKED_EVENT_BYTES)
    assert [[p.post_id for p in chunk] for chunk in packed([small, huge, small])] == [["small"], ["huge"], ["small"]]
