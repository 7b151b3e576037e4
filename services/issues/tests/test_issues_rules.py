"""Catalogue, report validation, feedback and grid-status rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from shequtong_issues.domain import catalogue, feedback, grid, reports
from shequtong_issues.domain.catalogue import Category
from shequtong_issues.domain.states import State, Transition

from shequtong_kit.errors import FailedPrecondition, InvalidArgument

RUBBISH = Category("rubbish", "垃圾乱堆乱放", "01-02", "暴露垃圾", 15, 48, ("垃圾", "异味"))
PARKING = Category("illegal_parking", "车辆乱停放", "05-04", "乱停放", 15, 48, ("停车", "乱停"))
OTHER = Category("other", "其他问题", "", "", 15, 168)
CATALOGUE = [RUBBISH, PARKING, OTHER]
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_guess_picks_the_category_with_most_keywords() -> None:
    assert catalogue.guess(CATALOGUE, "楼下垃圾堆了三天，异味很大 @居委会") == "rubbish"
    assert catalogue.guess(CATALOGUE, "小区门口乱停车") == "illegal_parking"
    assert catalogue.guess(CATALOGUE, "路灯不亮") == "other"
    inactive = [Category(**{**RUBBISH.__dict__, "active": False}), OTHER]
    assert catalogue.guess(inactive, "垃圾") == "other"


def test_require_active() -> None:
    assert catalogue.require_active(CATALOGUE, "rubbish") is RUBBISH
    with pytest.raises(InvalidArgument) as unknown:
        catalogue.require_active(CATALOGUE, "no_such")
    assert unknown.value.code == "category_unknown"
    assert not OTHER.dispatchable and RUBBISH.dispatchable


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"code": "Bad Code"}, "category_code_invalid"),
        ({"name": " "}, "category_name_invalid"),
        ({"grid_service_code": "01 02"}, "grid_service_code_invalid"),
        ({"response_hours": 0}, "response_hours_invalid"),
        ({"resolution_hours": -5}, "resolution_hours_invalid"),
        ({"keywords": ("x" * 31,)}, "category_keywords_invalid"),
    ],
)
def test_category_validation(change: dict[str, object], code: str) -> None:
    with pytest.raises(InvalidArgument) as bad:
        catalogue.validate_category(Category(**{**RUBBISH.__dict__, **change}))  # type: ignore[arg-type]
    assert bad.value.code == code


def test_category_validation_cleans() -> None:
    cleaned = catalogue.validate_category(Category(**{**RUBBISH.__dict__, "keywords": (" 垃圾 ", "垃圾", "")}))
    assert cleaned.keywords == ("垃圾",)


def test_locations() -> None:
    assert reports.clean_location(reports.Location(building=" 12号楼 "), required=True).building == "12号楼"
    assert reports.clean_location(reports.Location(lat=31.4, lon=121.48), required=True).lat == 31.4
    for bad, code in [
        (reports.Location(), "location_required"),
        (reports.Location(lat=31.4), "location_invalid"),
        (reports.Location(lat=91, lon=0.5), "location_invalid"),
        (reports.Location(lat=0, lon=0), "location_invalid"),
        (reports.Location(building="x" * 101), "location_invalid"),
    ]:
        with pytest.raises(InvalidArgument) as refused:
            reports.clean_location(bad, required=True)
        assert refused.value.code == code
    assert reports.clean_location(reports.Location(), required=False).empty


def test_texts_and_photos() -> None:
    with pytest.raises(InvalidArgument) as empty:
        reports.clean_text("   ", 10, "description_invalid", "a description")
    assert empty.value.code == "description_invalid"
    with pytest.raises(InvalidArgument):
        reports.clean_text("x" * 11, 10, "description_invalid", "a description")
    with pytest.raises(InvalidArgument):
        reports.clean_text("bell\x07", 10, "description_invalid", "a description")
    assert reports.clean_photos(["https://media.example/a.jpg"]) == ["https://media.example/a.jpg"]
    assert reports.clean_photos(["uploads/2026/lamp.jpg"]) == ["uploads/2026/lamp.jpg"]
    assert reports.absolute("uploads/a.jpg", "https://cdn.example/") == "https://cdn.example/uploads/a.jpg"
    assert reports.absolute("https://m/x.jpg", "https://cdn.example") == "https://m/x.jpg"
    for photos in (
        ["ftp://x/a.jpg"],
        ["javascript:alert(1)"],
        ["https://m/x.jpg"] * 10,
        ["../etc/passwd"],
        ["/abs/path.jpg"],
        ["a b.jpg"],
    ):
        with pytest.raises(InvalidArgument) as bad:
            reports.clean_photos(photos)
        assert bad.value.code == "photos_invalid"
    assert reports.clean_note("", ["https://m/x.jpg"]) == ("", ["https://m/x.jpg"])
    with pytest.raises(InvalidArgument):
        reports.clean_note("", [])
    with pytest.raises(InvalidArgument) as reason:
        reports.clean_reason(" ")
    assert reason.value.code == "reason_required"


def test_feedback_rules() -> None:
    assert feedback.validate(2, True, "").reopens
    assert feedback.validate(5, False, "").reopens
    assert not feedback.validate(3, True, "ok").reopens
    for rating in (0, 6):
        with pytest.raises(InvalidArgument) as bad:
            feedback.validate(rating, True, "")
        assert bad.value.code == "rating_invalid"
    due = feedback.feedback_due(T0, 72)
    assert due == T0 + timedelta(hours=72)
    feedback.ensure_open(due, due)
    with pytest.raises(FailedPrecondition) as late:
        feedback.ensure_open(due, due + timedelta(seconds=1))
    assert late.value.code == "feedback_window_closed"
    with pytest.raises(FailedPrecondition) as none:
        feedback.ensure_open(None, T0)
    assert none.value.code == "not_awaiting_feedback"
    assert feedback.expired(due, due + timedelta(seconds=1)) and not feedback.expired(None, T0)


def test_grid_states_to_transitions() -> None:
    t = grid.transition_for
    assert t("closed", State.DISPATCHED, True, T0, None) == Transition.GRID_CLOSED
    assert t("closed", State.RETURNED_FROM_GRID, True, T0, None) == Transition.GRID_CLOSED
    assert t("rejected", State.DISPATCHED, True, T0, None) == Transition.GRID_RETURNED
    assert t("returned", State.DISPATCHED, True, T0, None) == Transition.GRID_RETURNED
    for progress in ("accepted", "dispatched", "handled", "deferred"):
        assert t(progress, State.DISPATCHED, True, T0, None) is None
    assert t("dispatched", State.RETURNED_FROM_GRID, True, T0, None, "returned") == Transition.GRID_RESUMED
    assert t("dispatched", State.RETURNED_FROM_GRID, True, T0, None, "rejected") is None
    assert t("closed", State.DISPATCHED, False, T0, None) is None, "an older dispatch never moves the issue"
    assert t("closed", State.DISPATCHED, True, T0, T0 + timedelta(minutes=1)) is None, "older than the last one"
    assert t("closed", State.RESOLVED, True, T0, None) is None
    assert grid.failure_transition(State.DISPATCHED, True) == Transition.GRID_FAILED
    assert grid.failure_transition(State.DISPATCHED, False) is None
    assert grid.failure_transition(State.RESOLVED, True) is None
