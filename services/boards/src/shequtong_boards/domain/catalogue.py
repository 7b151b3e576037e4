"""The board catalogue: every board kind, its scope and its default policy.

The catalogue is data. This module holds the reference district's defaults; a district changes a kind's
name or policy, or adds kinds, through `PutCatalogueEntry` (stored per district, resolved with
`effective_entry`). Neighbourhood-scope kinds open one board in every neighbourhood; district-scope kinds
open one board for the district, shown in each of its neighbourhoods.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from shequtong_boards.domain.policy import (
    ANYONE,
    COMMITTEE,
    DISTRICT_STAFF,
    MEMBER,
    RESIDENT,
    SECRETARY,
    STAFF,
    Policy,
)
from shequtong_kit import auth
from shequtong_kit.errors import InvalidArgument

NEIGHBOURHOOD = "neighbourhood"
DISTRICT = "district"
SCOPES = (NEIGHBOURHOOD, DISTRICT)

NEIGHBOURHOOD_MATTERS = "neighbourhood_matters"
DELIBERATION_HALL = "deliberation_hall"
AFFAIRS_DISCLOSURE = "affairs_disclosure"
OWNERS_COMMITTEE_LINE = "owners_committee_line"

_KEY = re.compile(r"^[a-z][a-z0-9_]{1,47}$")


# For a kind the catalogue no longer knows: members read, the committee moderates, nobody posts.
FALLBACK_POLICY = Policy.of(read=[MEMBER, STAFF], moderate=[COMMITTEE, STAFF])


@dataclass(frozen=True)
class BoardKind:
    key: str
    name: str
    scope: str = NEIGHBOURHOOD
    policy: Policy = FALLBACK_POLICY
    position: int = 0


_READERS = [MEMBER, STAFF]
_MODERATORS = [COMMITTEE, STAFF]


def _responder_board(key: str, name: str, responder: str, position: int) -> BoardKind:
    """A window to a responder: residents ask, the responder answers officially."""
    return BoardKind(
        key,
        name,
        policy=Policy.of(
            read=_READERS,
            post=[RESIDENT, COMMITTEE, responder],
            comment=[MEMBER, STAFF],
            answer=[responder],
            moderate=_MODERATORS,
        ),
        position=position,
    )


DEFAULT_CATALOGUE: tuple[BoardKind, ...] = (
    BoardKind(
        "announcements",
        "社区公告",
        policy=Policy.of(
            read=_READERS, post=[COMMITTEE], comment=[MEMBER, STAFF], answer=[COMMITTEE], moderate=_MODERATORS
        ),
        position=10,
    ),
    # 党建园地: the secretary alone posts and moderates; members may comment.
    BoardKind(
        "party_building",
        "党建园地",
        policy=Policy.of(read=_READERS, post=[SECRETARY], comment=[MEMBER], answer=[SECRETARY], moderate=[SECRETARY]),
        position=20,
    ),
    BoardKind(
        DELIBERATION_HALL,
        "议事厅",
        policy=Policy.of(
            read=_READERS,
            post=[RESIDENT, COMMITTEE],
            comment=[RESIDENT, COMMITTEE, STAFF],
            answer=[COMMITTEE],
            moderate=_MODERATORS,
        ),
        position=30,
    ),
    BoardKind(
        AFFAIRS_DISCLOSURE,
        "居务公开",
        policy=Policy.of(
            read=_READERS, post=[COMMITTEE], comment=[MEMBER, STAFF], answer=[COMMITTEE], moderate=_MODERATORS
        ),
        position=40,
    ),
    _responder_board("property_window", "物业之窗", auth.PROPERTY_MANAGER, 50),
    _responder_board(OWNERS_COMMITTEE_LINE, "业委连线", auth.OWNERS_COMMITTEE, 60),
    _responder_board("police_line", "警民直通车", auth.POLICE, 70),
    _responder_board("family_doctor", "家庭医生", auth.DOCTOR, 80),
    _responder_board("legal_service", "公共法律服务", auth.LAWYER, 90),
    BoardKind(
        NEIGHBOURHOOD_MATTERS,
        "身边事",
        policy=Policy.of(
            read=_READERS, post=[RESIDENT, COMMITTEE], comment=[MEMBER, STAFF], answer=[COMMITTEE], moderate=_MODERATORS
        ),
        position=100,
    ),
    # District-wide boards: managed by district staff, opened by the district (PutCatalogueEntry).
    BoardKind(
        "district_survey",
        "大调研",
        scope=DISTRICT,
        policy=Policy.of(
            read=[MEMBER, STAFF],
            post=[DISTRICT_STAFF],
            comment=[RESIDENT, STAFF],
            answer=[DISTRICT_STAFF],
            moderate=[DISTRICT_STAFF],
        ),
        position=200,
    ),
    BoardKind(
        "district_news",
        "区级新闻",
        scope=DISTRICT,
        policy=Policy.of(
            read=[ANYONE],
            post=[DISTRICT_STAFF],
            comment=[MEMBER, STAFF],
            answer=[DISTRICT_STAFF],
            moderate=[DISTRICT_STAFF],
        ),
        position=210,
    ),
)

DEFAULTS: dict[str, BoardKind] = {kind.key: kind for kind in DEFAULT_CATALOGUE}


def neighbourhood_kinds(entries: Iterable[BoardKind]) -> list[BoardKind]:
    return [kind for kind in entries if kind.scope == NEIGHBOURHOOD]


def effective_catalogue(overrides: Mapping[str, BoardKind]) -> list[BoardKind]:
    """The district's catalogue: defaults with the district's changes, then the district's own kinds."""
    merged = {key: overrides.get(key, kind) for key, kind in DEFAULTS.items()}
    merged.update({key: kind for key, kind in overrides.items() if key not in DEFAULTS})
    return sorted(merged.values(), key=lambda k: (k.position, k.key))


def effective_entry(kind_key: str, overrides: Mapping[str, BoardKind]) -> BoardKind | None:
    return overrides.get(kind_key) or DEFAULTS.get(kind_key)


def validate_entry(key: str, name: str, scope: str, policy: Policy, position: int | None = None) -> BoardKind:
    """A district's catalogue entry from input. A default kind keeps its scope."""
    key = key.strip()
    if not _KEY.match(key):
        raise InvalidArgument("kind must be a lower_snake_case key of 2-48 characters", code="board_kind_invalid")
    name = name.strip()
    if not 1 <= len(name) <= 40:
        raise InvalidArgument("board name must be 1-40 characters", code="board_name_invalid")
    default = DEFAULTS.get(key)
    if default is not None:
        if scope and scope != default.scope:
            raise InvalidArgument("a default board kind keeps its scope", code="board_scope_fixed")
        scope = default.scope
    if scope not in SCOPES:
        raise InvalidArgument("scope must be neighbourhood or district", code="board_scope_invalid")
    if position is None:
        position = default.position if default else 500
    return BoardKind(key=key, name=name, scope=scope, policy=policy, position=position)
