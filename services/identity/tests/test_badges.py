"""The volunteer badge decided for a batch of the volunteers service's events (pure): the same records,
badges and changes as the events handled one at a time."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st
from shequtong_identity.domain import badges
from shequtong_identity.domain.badges import Change, Record, VolunteerEvent, approval, departure

Records = dict[str, Record]
Held = dict[tuple[str, str], str]


def ids(prefix: str = "g") -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter)}"


def one_at_a_time(
    events: Sequence[VolunteerEvent], records: Records, held: Held, new_grant_id: Callable[[], str]
) -> tuple[Records, Held, list[Change]]:
    """The rule as the per-event handler applies it: each event reads the stored records (the active ones of
    its person and neighbourhood counted anew) and the badge held, writes, and the next event reads that."""
    records, held, changes = dict(records), dict(held), []
    for volunteer_id, person_id, place, team_id, left in events:
        record = records.get(volunteer_id)
        if left:
            if record is None:
                records[volunteer_id] = (volunteer_id, person_id, place, "", False)
            elif record[4]:
                records[volunteer_id] = (*record[:4], False)
            reason = "no volunteer team left"
        else:
            if record is None:
                records[volunteer_id] = (volunteer_id, person_id, place, team_id, True)
            elif not record[4]:
                continue
            reason = f"approved as a volunteer (team {team_id})"
        count = sum(1 for _, p, n, _, active in records.values() if active and (p, n) == (person_id, place))
        scope = f"n:{place}"
        grant = held.get((person_id, scope))
        change = badges.badge_change(count, grant is not None)
        if change == badges.GRANT:
            grant = held[(person_id, scope)] = new_grant_id()
            changes.append((badges.GRANT, grant, person_id, place, reason))
        elif change == badges.REVOKE:
            assert grant is not None
            del held[(person_id, scope)]
            changes.append((badges.REVOKE, grant, person_id, place, reason))
    return records, held, changes


def batched(
    events: Sequence[VolunteerEvent], stored: Records, held: Held, new_grant_id: Callable[[], str]
) -> tuple[Records, Held, badges.Plan]:
    """`badges.plan` given what the repository reads for the batch, and the state its writes leave."""
    people = {person_id for _, person_id, _, _, _ in events}
    volunteers = {volunteer_id for volunteer_id, _, _, _, _ in events}
    plan = badges.plan(
        events,
        {vid: r for vid, r in stored.items() if vid in volunteers},
        Counter((p, n) for _, p, n, _, active in stored.values() if active and p in people),
        {key: grant for key, grant in held.items() if key[0] in people},
        new_grant_id,
    )
    records = dict(stored)
    for vid in plan.ended:
        assert stored[vid][4] and vid not in plan.added
        records[vid] = (*stored[vid][:4], False)
    for vid, record in plan.added.items():
        assert vid not in stored
        records[vid] = record
    after = dict(held)
    for action, grant_id, person_id, place, _ in plan.changes:
        key = (person_id, badges.scope_of(place))
        if action == badges.GRANT:
            after[key] = grant_id
        else:
            assert after.pop(key) == grant_id
    return records, after, plan


def approved(vid: str, person: str, place: str, team: str = "t") -> VolunteerEvent:
    return approval(vid, person, place, team)


def left(vid: str, person: str, place: str) -> VolunteerEvent:
    return departure(vid, person, place)


def test_a_batch_mixing_approvals_and_departures_of_one_person_in_two_neighbourhoods() -> None:
    events = [
        approved("v1", "p", "n1", "a"),
        approved("v2", "p", "n1", "b"),
        approved("v3", "p", "n2", "c"),
        left("v1", "p", "n1"),  # p still in team b of n1: badge kept
        left("v3", "p", "n2"),  # p's only team of n2: its badge goes
        approved("v4", "p", "n2", "d"),  # and comes back, a new grant
        left("v2", "p", "n1"),
    ]
    records, held, plan = batched(events, {}, {}, ids())
    assert [(action, grant, place, reason) for action, grant, _, place, reason in plan.changes] == [
        (badges.GRANT, "g1", "n1", "approved as a volunteer (team a)"),
        (badges.GRANT, "g2", "n2", "approved as a volunteer (team c)"),
        (badges.REVOKE, "g2", "n2", "no volunteer team left"),
        (badges.GRANT, "g3", "n2", "approved as a volunteer (team d)"),
        (badges.REVOKE, "g1", "n1", "no volunteer team left"),
    ]
    assert held == {("p", "n:n2"): "g3"}
    assert {vid: r[4] for vid, r in plan.added.items()} == {"v1": False, "v2": False, "v3": False, "v4": True}
    assert plan.ended == [] and records == plan.added
    assert (records, held, plan.changes) == one_at_a_time(events, {}, {}, ids())


def test_stored_records_and_badges_are_ended_and_revoked() -> None:
    stored = {
        "v1": ("v1", "p", "n1", "a", True),
        "v2": ("v2", "p", "n1", "b", True),
        "v9": ("v9", "q", "n1", "", False),  # q left before its approval arrived
    }
    held = {("p", "n:n1"): "old"}
    events = [left("v1", "p", "n1"), left("v2", "p", "n1"), approved("v9", "q", "n1"), approved("v2", "p", "n1")]
    records, after, plan = batched(events, stored, held, ids())
    assert plan.ended == ["v1", "v2"] and plan.added == {}
    assert [change[:2] for change in plan.changes] == [(badges.REVOKE, "old")]
    assert after == {} and not any(r[4] for r in records.values())


def test_a_late_approval_after_the_departure_changes_nothing() -> None:
    events = [left("v1", "p", "n1"), approved("v1", "p", "n1")]
    _, held, plan = batched(events, {}, {}, ids())
    assert plan.changes == [] and held == {}
    assert plan.added == {"v1": ("v1", "p", "n1", "", False)}, "the tombstone"


def test_a_replayed_batch_writes_nothing() -> None:
    events = [approved("v1", "p", "n1"), approved("v2", "q", "n1"), left("v2", "q", "n1"), approved("v3", "p", "n2")]
    records, held, first = batched(events, {}, {}, ids())
    assert first.changes
    again_records, again_held, again = batched(events, records, held, ids("x"))
    assert (again.added, again.ended, again.changes) == ({}, [], [])
    assert (again_records, again_held) == (records, held)


VOLUNTEERS = [f"v{i}" for i in range(6)]
PEOPLE = ["p", "q", "r"]
PLACES = ["n1", "n2"]
events_strategy = st.tuples(
    st.sampled_from(VOLUNTEERS),
    st.sampled_from(PEOPLE),
    st.sampled_from(PLACES),
    st.sampled_from(["a", "b"]),
    st.booleans(),
)
records_strategy = st.dictionaries(
    st.sampled_from([*VOLUNTEERS, "w1", "w2"]),  # w…: records of the people no event of the batch is about
    st.tuples(st.sampled_from(PEOPLE), st.sampled_from(PLACES), st.booleans()),
    max_size=6,
)
held_strategy = st.dictionaries(st.tuples(st.sampled_from(PEOPLE), st.sampled_from(PLACES)), st.just(None), max_size=4)


@settings(max_examples=400, deadline=None)
@given(st.lists(events_strategy, max_size=12), records_strategy, held_strategy)
def test_a_batch_decides_as_its_events_one_at_a_time(
    events: list[VolunteerEvent],
    stored_as: Mapping[str, tuple[str, str, bool]],
    held_as: Mapping[tuple[str, str], None],
) -> None:
    stored: Records = {vid: (vid, p, n, "t", active) for vid, (p, n, active) in stored_as.items()}
    held = {(p, f"n:{n}"): f"old-{p}-{n}" for p, n in held_as}  # a badge may outlive its records: revoked then
    records, after, plan = batched(events, stored, held, ids())
    assert (records, after, plan.changes) == one_at_a_time(events, stored, held, ids())
