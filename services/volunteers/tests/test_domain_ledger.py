"""Ledger rules: corrections by reversal only, certificate lines and numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from shequtong_volunteers.domain import ledger as rules

from shequtong_kit.errors import FailedPrecondition, InvalidArgument

DAY = datetime(2026, 5, 1, tzinfo=UTC)


def test_a_correction_reverses_the_whole_entry_and_may_record_the_right_amount() -> None:
    plan = rules.plan_correction(rules.CREDIT, 120, False, " wrong check-out ", 90)
    assert (plan.reversal_minutes, plan.adjustment_minutes, plan.reason) == (-120, 90, "wrong check-out")
    assert rules.plan_correction(rules.ADJUSTMENT, 30, False, "typo", 0).reversal_minutes == -30


@pytest.mark.parametrize(
    ("kind", "reversed_", "reason", "minutes", "code"),
    [
        (rules.REVERSAL, False, "x", 0, "entry_is_reversal"),
        (rules.CREDIT, True, "x", 0, "entry_already_reversed"),
        (rules.CREDIT, False, "  ", 0, "reason_required"),
        (rules.CREDIT, False, "x", -1, "corrected_minutes_invalid"),
        (rules.CREDIT, False, "x", 14 * 24 * 60 + 1, "corrected_minutes_invalid"),
    ],
)
def test_corrections_that_are_refused(kind: str, reversed_: bool, reason: str, minutes: int, code: str) -> None:
    with pytest.raises((FailedPrecondition, InvalidArgument)) as err:
        rules.plan_correction(kind, 60, reversed_, reason, minutes)
    assert err.value.code == code  # type: ignore[union-attr]


def test_hours_and_period() -> None:
    assert rules.hours(90) == 1.5
    assert rules.hours(-20) == -0.33
    rules.validate_period(None, DAY)
    rules.validate_period(DAY, None)
    with pytest.raises(InvalidArgument):
        rules.validate_period(DAY, DAY)


def test_certificate_lines_net_each_activity_and_drop_the_cancelled_out() -> None:
    entries = [
        rules.EntryView("e1", "a1", "敬老理发", DAY, 120),
        rules.EntryView("e2", "a1", "敬老理发", DAY, -120),
        rules.EntryView("e3", "a1", "敬老理发", DAY, 90),
        rules.EntryView("e4", "a2", "垃圾分类", DAY + timedelta(days=1), 60),
        rules.EntryView("e5", "a3", "清扫", DAY - timedelta(days=1), 30),
        rules.EntryView("e6", "a3", "清扫", DAY - timedelta(days=1), -30),
    ]
    lines = rules.certificate_lines(entries)
    assert [(line.activity_id, line.minutes) for line in lines] == [("a1", 90), ("a2", 60)]


def test_certificate_number_is_stable_and_changes_with_the_ledger() -> None:
    first = rules.certificate_number("p1", DAY, None, 90, ["e2", "e1"])
    assert first == rules.certificate_number("p1", DAY, None, 90, ["e1", "e2"])
    assert first.startswith("VH-") and len(first) == 19
    assert first != rules.certificate_number("p1", DAY, None, 90, ["e1", "e2", "e3"])
    assert first != rules.certificate_number("p2", DAY, None, 90, ["e1", "e2"])
