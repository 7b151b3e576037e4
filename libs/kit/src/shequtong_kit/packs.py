"""Packed events: a bulk import's created events travel many to one event (built with `outbox.packed`),
and so do runs of the events in `PACKED_RUNS` a consumer batch sends; a consumer applies each item exactly
as the event it stands for.

`route` and `peeked` (shequtong_kit.consumer) open these packs by themselves: a consumer that handles
`identity.membership.verified` handles an imported resident's verification by also filtering the packed
subject. See docs/DEVELOPING.md, "Imports send packed events".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from shequtong.events.v1 import boards_events_pb2 as boards_ev
from shequtong.events.v1 import identity_events_pb2 as identity_ev
from shequtong.events.v1 import issues_events_pb2 as issues_ev
from shequtong.events.v1 import volunteers_events_pb2 as volunteers_ev

RESIDENTS_IMPORTED = "identity.membership.imported"
POSTS_IMPORTED = "boards.post.imported"
COMMENTS_IMPORTED = "boards.comment.imported"
VOLUNTEERS_IMPORTED = "volunteers.volunteer.imported"
ROLES_GRANTED_MANY = "identity.role.granted_many"
ISSUES_IMPORTED = "issues.record.imported"


@dataclass(frozen=True)
class Pack:
    """A packed subject's message type, and the (subject, message) events a decoded one holds, in order."""

    message: type[Message]
    items: Callable[[Any], Iterator[tuple[str, Message]]]


def _residents(pack: identity_ev.ResidentsImported) -> Iterator[tuple[str, Message]]:
    for resident in pack.residents:
        if resident.HasField("household"):
            yield "identity.household.created", resident.household
        yield "identity.membership.joined", resident.joined
        yield "identity.membership.verified", resident.verified
        if resident.HasField("party_member"):
            yield "identity.role.granted", resident.party_member


def _posts(pack: boards_ev.PostsImported) -> Iterator[tuple[str, Message]]:
    for post in pack.posts:
        yield "boards.post.created", post


def _comments(pack: boards_ev.CommentsImported) -> Iterator[tuple[str, Message]]:
    for comment in pack.comments:
        yield "boards.comment.created", comment


def _volunteers(pack: volunteers_ev.VolunteersImported) -> Iterator[tuple[str, Message]]:
    for volunteer in pack.volunteers:
        yield "volunteers.volunteer.applied", volunteer.applied
        yield "volunteers.volunteer.approved", volunteer.approved


def _grants(pack: identity_ev.RolesGranted) -> Iterator[tuple[str, Message]]:
    for grant in pack.grants:
        yield "identity.role.granted", grant


def _issue_events(pack: issues_ev.IssueEventsImported) -> Iterator[tuple[str, Message]]:
    for item in pack.events:
        kind = item.WhichOneof("event")
        if kind is not None:  # an item of a kind added later than this reader: not for it
            yield item.subject, getattr(item, kind)


PACKS: dict[str, Pack] = {
    RESIDENTS_IMPORTED: Pack(identity_ev.ResidentsImported, _residents),
    POSTS_IMPORTED: Pack(boards_ev.PostsImported, _posts),
    COMMENTS_IMPORTED: Pack(boards_ev.CommentsImported, _comments),
    VOLUNTEERS_IMPORTED: Pack(volunteers_ev.VolunteersImported, _volunteers),
    ROLES_GRANTED_MANY: Pack(identity_ev.RolesGranted, _grants),
    ISSUES_IMPORTED: Pack(issues_ev.IssueEventsImported, _issue_events),
}

# Events a consumer batch sends packed when two or more of them come in a row (its outbox rows, written at
# the batch's commit: `outbox.write_deferred`), as the packed subject whose one repeated field holds them.
PACKED_RUNS: dict[str, str] = {"identity.role.granted": ROLES_GRANTED_MANY}
