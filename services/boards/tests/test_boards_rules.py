"""Polls, moderation and open-affairs rules (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from shequtong_boards.domain import affairs, moderation, polls
from shequtong_boards.domain.content import DELETED, HIDDEN, VISIBLE

from shequtong_kit.errors import FailedPrecondition, InvalidArgument

NOW = datetime(2026, 6, 1, 9, tzinfo=UTC)


def poll(**overrides: object) -> polls.PollSpec:
    args: dict[str, object] = {
        "question": "周末开放活动室？",
        "options": ["开放", "不开放"],
        "kind": "single",
        "max_choices": 0,
        "basis": "resident",
        "hide_results_until_close": False,
        "opens_at": None,
        "closes_at": NOW + timedelta(days=3),
        "now": NOW,
    }
    args.update(overrides)
    return polls.validate_poll(**args)  # type: ignore[arg-type]


def test_valid_polls() -> None:
    single = poll()
    assert (single.max_choices, single.opens_at) == (1, NOW)
    multiple = poll(kind="multiple", options=["a", "b", "c"])
    assert multiple.max_choices == 3
    assert poll(kind="multiple", options=["a", "b", "c"], max_choices=2).max_choices == 2
    assert poll(opens_at=NOW - timedelta(minutes=2)).opens_at == NOW


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"question": " "}, "poll_question_invalid"),
        ({"options": ["only"]}, "poll_options_count"),
        ({"options": ["a", "a"]}, "poll_options_duplicate"),
        ({"options": ["a", ""]}, "poll_option_invalid"),
        ({"kind": "ranked"}, "poll_kind_invalid"),
        ({"max_choices": 2}, "poll_max_choices_invalid"),
        ({"kind": "multiple", "max_choices": 5}, "poll_max_choices_invalid"),
        ({"basis": "building"}, "poll_basis_invalid"),
        ({"closes_at": None}, "poll_closes_at_required"),
        ({"closes_at": NOW}, "poll_window_invalid"),
        ({"closes_at": NOW + timedelta(days=91)}, "poll_window_too_long"),
        ({"opens_at": NOW - timedelta(hours=1)}, "poll_opens_in_past"),
    ],
)
def test_invalid_polls(overrides: dict[str, object], code: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        poll(**overrides)
    assert caught.value.code == code


def test_poll_states_and_result_visibility() -> None:
    opens, closes = NOW, NOW + timedelta(days=1)
    assert polls.state(opens, closes, None, NOW - timedelta(seconds=1)) == polls.SCHEDULED
    assert polls.state(opens, closes, None, NOW) == polls.OPEN
    assert polls.state(opens, closes, None, closes) == polls.CLOSED
    assert polls.state(opens, closes, NOW, NOW) == polls.CLOSED
    assert polls.results_visible(False, polls.OPEN)
    assert not polls.results_visible(True, polls.OPEN)
    assert polls.results_visible(True, polls.CLOSED)
    with pytest.raises(FailedPrecondition) as early:
        polls.ensure_open(polls.SCHEDULED)
    assert early.value.code == "poll_not_open"
    with pytest.raises(FailedPrecondition) as late:
        polls.ensure_open(polls.CLOSED)
    assert late.value.code == "poll_closed"


def test_ballots() -> None:
    assert polls.validate_ballot("single", 1, ["a"], ["a", "b"]) == ("a",)
    assert polls.validate_ballot("multiple", 2, ["b", "a"], ["a", "b", "c"]) == ("b", "a")
    for args, code in [
        (("single", 1, [], ["a"]), "ballot_empty"),
        (("single", 1, ["a", "b"], ["a", "b"]), "ballot_too_many_choices"),
        (("multiple", 2, ["a", "b", "c"], ["a", "b", "c"]), "ballot_too_many_choices"),
        (("multiple", 2, ["a", "a"], ["a", "b"]), "ballot_duplicate_option"),
        (("single", 1, ["z"], ["a", "b"]), "ballot_option_unknown"),
    ]:
        with pytest.raises(InvalidArgument) as caught:
            polls.validate_ballot(*args)  # type: ignore[arg-type]
        assert caught.value.code == code


def test_one_ballot_per_person_or_per_household() -> None:
    assert polls.voter_key("resident", "p1", "h1") == "p:p1"
    assert polls.voter_key("household", "p1", "h1") == "h:h1"
    with pytest.raises(FailedPrecondition) as caught:
        polls.voter_key("household", "p1", None)
    assert caught.value.code == "household_unknown"


def test_moderation_transitions() -> None:
    assert moderation.status_after("hide", VISIBLE) == HIDDEN
    assert moderation.status_after("restore", HIDDEN) == VISIBLE
    for action, status, code in [
        ("hide", HIDDEN, "content_already_hidden"),
        ("restore", VISIBLE, "content_not_hidden"),
        ("hide", DELETED, "content_deleted"),
    ]:
        with pytest.raises(FailedPrecondition) as caught:
            moderation.status_after(action, status)
        assert caught.value.code == code
    with pytest.raises(InvalidArgument):
        moderation.status_after("pin", VISIBLE)


def test_reports_and_mutes() -> None:
    assert moderation.validate_report("spam", " ") == ("spam", "")
    with pytest.raises(InvalidArgument) as reason:
        moderation.validate_report("boring", "")
    assert reason.value.code == "report_reason_invalid"
    with pytest.raises(InvalidArgument) as note:
        moderation.validate_report("other", "")
    assert note.value.code == "report_note_required"
    until = moderation.mute_until(NOW, 60)
    assert until == NOW + timedelta(hours=1)
    assert moderation.is_muted(until, NOW) and not moderation.is_muted(until, until)
    for minutes in (0, 60 * 24 * 31):
        with pytest.raises(InvalidArgument) as caught:
            moderation.mute_until(NOW, minutes)
        assert caught.value.code == "mute_duration_invalid"


def test_affairs_move_one_stage_at_a_time() -> None:
    process = affairs.process_of("election")
    assert process.board_kind == "affairs_disclosure"
    keys = process.stage_keys()
    for current, target in pairwise(keys):
        assert affairs.next_stage(process, current, target) == target
    with pytest.raises(FailedPrecondition) as skip:
        affairs.next_stage(process, "announced", "voting")
    assert skip.value.code == "affair_stage_out_of_order"
    with pytest.raises(FailedPrecondition) as back:
        affairs.next_stage(process, "voting", "nomination")
    assert back.value.code == "affair_stage_out_of_order"
    with pytest.raises(FailedPrecondition) as done:
        affairs.next_stage(process, keys[-1], keys[0])
    assert done.value.code == "affair_completed"
    with pytest.raises(InvalidArgument) as unknown:
        affairs.next_stage(process, "announced", "preparatory_group")
    assert unknown.value.code == "affair_stage_invalid"
    formation = affairs.process_of("owners_committee_formation")
    assert formation.board_kind == "owners_committee_line" and "owners_meeting" in formation.stage_keys()
    with pytest.raises(InvalidArgument):
        affairs.process_of("referendum")
    with pytest.raises(FailedPrecondition):
        affairs.ensure_nominating(process, "announced")
    with pytest.raises(FailedPrecondition):
        affairs.ensure_results_stage(process, "voting")
