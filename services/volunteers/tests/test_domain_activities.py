"""Activity rules: validation, organisers, sign-up placement, attendance windows, credited time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from shequtong_volunteers.domain import activities as rules

from shequtong_kit.auth import Lineage, Principal, parse_roles
from shequtong_kit.errors import FailedPrecondition, InvalidArgument, PermissionDenied

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
START = NOW + timedelta(hours=1)
END = START + timedelta(hours=2)
HOST = Lineage("n1", "s1", "d1")
OTHER = Lineage("n2", "s1", "d1")
ELSEWHERE = Lineage("n9", "s9", "d9")


def person(*roles: str, subject: str = "p1") -> Principal:
    return Principal(subject=subject, roles=parse_roles(roles))


def draft(**changes: object) -> rules.Draft:
    values: dict[str, object] = {
        "title": " 敬老理发 ",
        "description": "",
        "place": "活动室",
        "starts_at": START,
        "ends_at": END,
        "capacity": 20,
        "required_skills": ["理发", "理发", " first aid "],
        "now": NOW,
    }
    values.update(changes)
    return rules.validate(**values)  # type: ignore[arg-type]


def test_a_valid_activity_is_trimmed_and_its_skills_deduplicated() -> None:
    result = draft()
    assert result.title == "敬老理发"
    assert result.required_skills == ["理发", "first aid"]


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"ends_at": START}, "activity_time_invalid"),
        ({"ends_at": START - timedelta(minutes=1)}, "activity_time_invalid"),
        ({"ends_at": START + timedelta(days=15)}, "activity_time_invalid"),
        ({"starts_at": NOW - timedelta(minutes=1)}, "activity_in_past"),
        ({"capacity": 0}, "capacity_invalid"),
        ({"capacity": 10_001}, "capacity_invalid"),
        ({"title": "   "}, "title_invalid"),
        ({"place": ""}, "place_invalid"),
        ({"starts_at": None}, "activity_time_invalid"),
    ],
)
def test_invalid_activities_are_refused_with_a_stable_code(changes: dict[str, object], code: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        draft(**changes)
    assert err.value.code == code


def test_committee_or_team_leader_hosts_but_a_resident_does_not() -> None:
    rules.ensure_may_host(person("cadre@n:n1"), HOST, leads_team=False)
    rules.ensure_may_host(person("resident@n:n1"), HOST, leads_team=True)
    rules.ensure_may_host(person("subdistrict_staff@s:s1"), HOST, leads_team=False)
    with pytest.raises(PermissionDenied) as err:
        rules.ensure_may_host(person("resident@n:n1"), HOST, leads_team=False)
    assert err.value.code == "not_organiser"
    with pytest.raises(PermissionDenied):
        rules.ensure_may_host(person("cadre@n:n2"), HOST, leads_team=False)


def test_the_audience_always_has_the_host_and_only_overseen_neighbourhoods() -> None:
    assert rules.neighbourhood_audience(person("cadre@n:n1"), HOST, []) == ["n1"]
    assert rules.neighbourhood_audience(person("subdistrict_staff@s:s1"), HOST, [OTHER, HOST]) == ["n1", "n2"]
    with pytest.raises(PermissionDenied) as err:
        rules.neighbourhood_audience(person("cadre@n:n1"), HOST, [OTHER])
    assert err.value.code == "audience_not_allowed"


def test_an_organisation_invites_only_its_own_district() -> None:
    assert rules.organisation_audience("d1", [HOST, OTHER]) == ["n1", "n2"]
    with pytest.raises(InvalidArgument) as err:
        rules.organisation_audience("d1", [HOST, ELSEWHERE])
    assert err.value.code == "neighbourhood_outside_district"
    with pytest.raises(InvalidArgument):
        rules.organisation_audience("d1", [])


def test_organisers() -> None:
    common = {"created_by": "creator", "host": HOST, "leads_team": False, "org_admin": False}
    assert rules.is_organiser(person(subject="creator"), organiser_kind=rules.NEIGHBOURHOOD, **common)  # type: ignore[arg-type]
    assert rules.is_organiser(person("cadre@n:n1"), organiser_kind=rules.NEIGHBOURHOOD, **common)  # type: ignore[arg-type]
    assert not rules.is_organiser(person("resident@n:n1"), organiser_kind=rules.NEIGHBOURHOOD, **common)  # type: ignore[arg-type]
    org = {**common, "host": None, "org_admin": True}
    assert rules.is_organiser(person(), organiser_kind=rules.ORGANISATION, **org)  # type: ignore[arg-type]
    org_not_admin = {**org, "org_admin": False}
    assert not rules.is_organiser(person(subject="creator"), organiser_kind=rules.ORGANISATION, **org_not_admin)  # type: ignore[arg-type]


def test_placement_fills_the_places_then_the_waitlist() -> None:
    assert rules.placement(0, 2) == rules.CONFIRMED
    assert rules.placement(1, 2) == rules.CONFIRMED
    assert rules.placement(2, 2) == rules.WAITLISTED


def test_sign_up_closes_at_the_start_and_on_cancellation() -> None:
    rules.ensure_open_for_signup(rules.OPEN, START, NOW)
    with pytest.raises(FailedPrecondition) as err:
        rules.ensure_open_for_signup(rules.OPEN, START, START)
    assert err.value.code == "activity_started"
    with pytest.raises(FailedPrecondition) as err:
        rules.ensure_open_for_signup(rules.CANCELLED, START, NOW)
    assert err.value.code == "activity_cancelled"


def test_the_neighbourhood_signed_up_through_must_be_in_the_audience_and_the_callers() -> None:
    resident = person("resident@n:n2")
    assert rules.choose_neighbourhood(resident, ["n1", "n2"], "") == "n2"
    assert rules.choose_neighbourhood(resident, ["n1", "n2"], "n2") == "n2"
    with pytest.raises(PermissionDenied) as err:
        rules.choose_neighbourhood(resident, ["n1"], "")
    assert err.value.code == "not_in_audience"
    with pytest.raises(PermissionDenied) as err:
        rules.choose_neighbourhood(resident, ["n1", "n2"], "n1")
    assert err.value.code == "not_a_member"


def test_qr_check_in_window_is_half_an_hour_before_start_to_the_end() -> None:
    def attempt(at: datetime) -> None:
        rules.ensure_may_check_in(rules.OPEN, rules.CONFIRMED, None, START, END, rules.QR, at)

    attempt(START - timedelta(minutes=30))
    attempt(END)
    for outside in (START - timedelta(minutes=31), END + timedelta(seconds=1)):
        with pytest.raises(FailedPrecondition) as err:
            attempt(outside)
        assert err.value.code == "outside_check_in_window"


def test_an_organiser_may_record_attendance_until_a_day_after_the_end() -> None:
    rules.ensure_may_check_in(rules.OPEN, rules.CONFIRMED, None, START, END, rules.ORGANISER, END + timedelta(hours=23))
    with pytest.raises(FailedPrecondition):
        rules.ensure_may_check_in(
            rules.OPEN, rules.CONFIRMED, None, START, END, rules.ORGANISER, START - timedelta(hours=1)
        )


@pytest.mark.parametrize(
    ("state", "checked_in", "code"),
    [
        (rules.WAITLISTED, None, "not_confirmed"),
        (None, None, "not_confirmed"),
        (rules.CONFIRMED, START, "already_checked_in"),
    ],
)
def test_only_a_confirmed_participant_checks_in_once(state: str | None, checked_in: datetime | None, code: str) -> None:
    with pytest.raises(FailedPrecondition) as err:
        rules.ensure_may_check_in(rules.OPEN, state, checked_in, START, END, rules.QR, START)
    assert err.value.code == code


def test_check_out_needs_a_check_in_and_closes_two_hours_after_the_end() -> None:
    rules.ensure_may_check_out(START, None, START, END, rules.QR, END + timedelta(hours=2))
    with pytest.raises(FailedPrecondition) as err:
        rules.ensure_may_check_out(None, None, START, END, rules.QR, END)
    assert err.value.code == "not_checked_in"
    with pytest.raises(FailedPrecondition) as err:
        rules.ensure_may_check_out(START, END, START, END, rules.QR, END)
    assert err.value.code == "already_checked_out"
    with pytest.raises(FailedPrecondition) as err:
        rules.ensure_may_check_out(START, None, START, END, rules.QR, END + timedelta(hours=2, seconds=1))
    assert err.value.code == "outside_check_out_window"


def test_credited_time_is_attended_time_capped_by_the_span() -> None:
    assert rules.credited_minutes(START, START + timedelta(minutes=45, seconds=59), START, END) == 45
    assert rules.credited_minutes(START - timedelta(minutes=30), END + timedelta(hours=1), START, END) == 120
    assert rules.credited_minutes(START, START, START, END) == 0
    assert rules.credited_minutes(START, START - timedelta(minutes=5), START, END) == 0


def test_the_check_in_code_must_match() -> None:
    rules.ensure_code("secret", "secret")
    for wrong in ("", "secreT", "secret "):
        with pytest.raises(PermissionDenied) as err:
            rules.ensure_code(wrong, "secret")
        assert err.value.code == "checkin_code_invalid"


def test_cancelling_a_sign_up_or_an_activity() -> None:
    rules.ensure_may_cancel_signup(rules.WAITLISTED, None, END, NOW)
    with pytest.raises(FailedPrecondition) as err:
        rules.ensure_may_cancel_signup(rules.CONFIRMED, START, END, START)
    assert err.value.code == "already_checked_in"
    with pytest.raises(FailedPrecondition) as err:
        rules.ensure_may_cancel_signup(rules.SIGNUP_CANCELLED, None, END, NOW)
    assert err.value.code == "signup_not_active"
    assert rules.ensure_may_cancel_activity(rules.OPEN, END, NOW, " 暴雨 ") == "暴雨"
    with pytest.raises(InvalidArgument) as err:
        rules.ensure_may_cancel_activity(rules.OPEN, END, NOW, " ")
    assert err.value.code == "reason_required"
    with pytest.raises(FailedPrecondition) as err:
        rules.ensure_may_cancel_activity(rules.OPEN, END, END, "late")
    assert err.value.code == "activity_over"
