"""The volunteer badge: held while the person is an approved volunteer of at least one team of the
neighbourhood (the volunteers service says so through events). Pure."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

GRANT = "grant"
REVOKE = "revoke"
LEFT_REASON = "no volunteer team left"


def badge_change(active_records: int, holds_badge: bool) -> str | None:
    """GRANT, REVOKE or None (nothing to do) given the active volunteer records in the neighbourhood."""
    if active_records > 0 and not holds_badge:
        return GRANT
    if active_records == 0 and holds_badge:
        return REVOKE
    return None


def scope_of(neighbourhood_id: str) -> str:
    """The badge's scope in a neighbourhood."""
    return f"n:{neighbourhood_id}"


def approved_reason(team_id: str) -> str:
    return f"approved as a volunteer (team {team_id})"


# Plain tuples, named by these aliases and unpacked where read: a batch holds one of each per volunteer
# (by the hundred thousand in an import), and the garbage collector stops tracking a tuple of strings —
# a NamedTuple it tracks for as long as it lives (each full collection then walks the whole heap again).

VolunteerEvent = tuple[str, str, str, str, bool]
"""One of the volunteers service's events: (volunteer_id, person_id, neighbourhood_id, team_id, left) —
an approval (`left` False) or a departure (team_id "")."""

Record = tuple[str, str, str, str, bool]
"""A volunteer record, keyed by the volunteers service's volunteer id: (volunteer_id, person_id,
neighbourhood_id, team_id, active). Active while the volunteer is approved; an inactive one is also the
tombstone that makes a late approval change nothing."""
ACTIVE = 4  # a Record's `active`

Change = tuple[str, str, str, str, str]
"""A badge granted or revoked: (action, grant_id, person_id, neighbourhood_id, reason). `grant_id`: the new
grant's id (GRANT), or the revoked one's — held before the batch or granted earlier in it (REVOKE)."""


def approval(volunteer_id: str, person_id: str, neighbourhood_id: str, team_id: str) -> VolunteerEvent:
    return (volunteer_id, person_id, neighbourhood_id, team_id, False)


def departure(volunteer_id: str, person_id: str, neighbourhood_id: str) -> VolunteerEvent:
    return (volunteer_id, person_id, neighbourhood_id, "", True)


@dataclass
class Plan:
    """What a batch of events writes: `added` records to insert (as they stand at the end of the batch),
    `ended` existing records that turn inactive, and the badges' `changes` in order."""

    added: dict[str, Record] = field(default_factory=dict)
    ended: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)


def plan(
    events: Iterable[VolunteerEvent],
    records: Mapping[str, Record],
    active: Mapping[tuple[str, str], int],
    held: Mapping[tuple[str, str], str],
    new_grant_id: Callable[[], str],
) -> Plan:
    """Decides a batch of events as if each were handled alone, one after the other.

    `records`: the stored records of the events' volunteer ids (by volunteer id); `active`: the stored
    active records per (person, neighbourhood), for every person of the events (absent: none); `held`:
    the active volunteer badges of those people, grant id by (person, scope).

    Per event: an approval adds an active record, unless the volunteer has one (an inactive one means the
    volunteer left before this approval arrived: left wins, nothing happens); a departure makes the record
    inactive or adds an inactive one (the tombstone). Then the badge of the event's person and
    neighbourhood follows `badge_change`. A replayed event finds its record as it left it: no change."""
    records = dict(records)
    active = dict(active)
    held = dict(held)
    result = Plan()
    for volunteer_id, person_id, neighbourhood_id, team_id, left in events:
        record = records.get(volunteer_id)
        if left:
            if record is None:
                record = (volunteer_id, person_id, neighbourhood_id, "", False)
                records[volunteer_id] = result.added[volunteer_id] = record
            elif record[ACTIVE]:
                _, of_person, of_place, of_team, _ = record  # counted where it was recorded
                ended = (volunteer_id, of_person, of_place, of_team, False)
                records[volunteer_id] = ended
                active[(of_person, of_place)] = active.get((of_person, of_place), 0) - 1
                if volunteer_id in result.added:
                    result.added[volunteer_id] = ended
                else:
                    result.ended.append(volunteer_id)
            reason = LEFT_REASON
        else:
            if record is None:
                record = (volunteer_id, person_id, neighbourhood_id, team_id, True)
                records[volunteer_id] = result.added[volunteer_id] = record
                active[(person_id, neighbourhood_id)] = active.get((person_id, neighbourhood_id), 0) + 1
            elif not record[ACTIVE]:
                continue  # this volunteer already left (events arrived out of order): left wins
            reason = approved_reason(team_id)
        badge = (person_id, scope_of(neighbourhood_id))
        grant_id = held.get(badge)
        change = badge_change(active.get((person_id, neighbourhood_id), 0), grant_id is not None)
        if change == GRANT:
            grant_id = held[badge] = new_grant_id()
            result.changes.append((GRANT, grant_id, person_id, neighbourhood_id, reason))
        elif change == REVOKE:
            assert grant_id is not None
            del held[badge]
            result.changes.append((REVOKE, grant_id, person_id, neighbourhood_id, reason))
    return result
