"""The stated pain-point rules, their thresholds and the no-duplicate window rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from shequtong_insights.domain import painpoints as pp

END = datetime(2026, 3, 20, 10, 0, tzinfo=UTC)
PLACES = {
    "n1": pp.Place("n1", "s1", "d1"),
    "n2": pp.Place("n2", "s1", "d1"),
    "n3": pp.Place("n3", "s1", "d1"),
    "m1": pp.Place("m1", "s2", "d1"),
}
_seq = iter(range(1_000_000))


def sightings(nid: str, category: str, count: int, days_ago: float, building: str = "") -> list[pp.Sighting]:
    return [
        pp.Sighting(f"i{next(_seq)}", nid, category, building, END - timedelta(days=days_ago, minutes=index))
        for index in range(count)
    ]


def test_spike_rule_thresholds() -> None:
    # Five in a week against nothing before: expected (0 + 1) x 7/28 = 0.25, P(X >= 5) ~ 6e-6.
    flagged = pp.spike_test(5, 0)
    assert flagged.flagged and flagged.expected == 0.25 and flagged.p_value < 1e-5
    # Four is below the minimum count however unlikely.
    assert not pp.spike_test(4, 0).flagged
    # Five against a baseline of 19 in 28 days: expected 5.0, P(X >= 5) ~ 0.56 - usual.
    usual = pp.spike_test(5, 19)
    assert not usual.flagged and usual.p_value > 0.5
    # Twelve against 19: P(X >= 12 | 5) ~ 0.005 < 0.01.
    assert pp.spike_test(12, 19).flagged


def test_spike_in_one_neighbourhood_is_that_neighbourhoods_alone() -> None:
    seen = [
        *sightings("n1", "sanitation", 7, 2),
        *sightings("n2", "sanitation", 1, 3),
        *sightings("n3", "sanitation", 1, 20),  # baseline
        *sightings("m1", "greening", 2, 1),
    ]
    findings = pp.detect_spikes(seen, PLACES, END)
    assert [(x.level, x.place_id, x.subject) for x in findings] == [("neighbourhood", "n1", "sanitation")]
    evidence = findings[0].evidence
    assert evidence.observed == 7 and evidence.baseline_count == 0
    assert len(evidence.issue_ids) == 7
    assert "P(X >= 7)" in findings[0].statement
    assert findings[0].window_start == END - timedelta(days=7)


def test_spread_rise_flags_the_subdistrict() -> None:
    seen = [*sightings("n1", "parking", 3, 2), *sightings("n2", "parking", 3, 2), *sightings("n3", "parking", 1, 1)]
    findings = pp.detect_spikes(seen, PLACES, END)
    assert [(x.level, x.place_id) for x in findings] == [("subdistrict", "s1")]
    assert findings[0].neighbourhood_id == ""
    assert findings[0].evidence.neighbourhood_ids == ("n1", "n2", "n3")


def test_events_outside_the_window_or_unknown_places_are_ignored() -> None:
    seen = [*sightings("n1", "noise", 9, 7.5), *sightings("zz", "noise", 9, 1)]
    # 9 in the baseline (days 7.5 ago) and none in the window; the unknown neighbourhood is skipped.
    assert pp.detect_spikes(seen, PLACES, END) == []


def test_repeated_place() -> None:
    seen = [
        *sightings("n1", "leak", 2, 3, building=" 3号楼 "),
        *sightings("n1", "lift", 1, 10, building="3号楼"),
        *sightings("n1", "lift", 2, 40, building="3号楼"),  # too old
        *sightings("n2", "leak", 2, 1, building="3号楼"),  # another neighbourhood's 3号楼
    ]
    findings = pp.detect_repeated_places(seen, PLACES, END)
    assert [(x.place_id, x.subject, x.evidence.observed) for x in findings] == [("n1", "3号楼", 3)]
    assert findings[0].evidence.categories == (("leak", 2), ("lift", 1))


def test_overdue_cluster() -> None:
    findings = pp.detect_overdue_clusters({"n1": ["a", "b", "c"], "n2": ["d", "e"]}, PLACES, END)
    assert [(x.place_id, x.evidence.issue_ids) for x in findings] == [("n1", ("a", "b", "c"))]


def test_window_ends_on_the_hour() -> None:
    assert pp.window_end_for(datetime(2026, 3, 20, 10, 59, 59, 999, tzinfo=UTC)) == END


@pytest.mark.parametrize(
    ("earlier_end", "raised_again"),
    [(END, False), (END - timedelta(hours=1), False), (END - timedelta(days=7), True)],
)
def test_no_second_prompt_for_an_overlapping_window(earlier_end: datetime, raised_again: bool) -> None:
    finding = pp.detect_spikes(sightings("n1", "sanitation", 6, 1), PLACES, END)[0]
    raised = [pp.Raised("neighbourhood", "n1", pp.SPIKE, "sanitation", earlier_end)]
    assert (pp.new_findings([finding], raised) == [finding]) is raised_again
    other_subject = [pp.Raised("neighbourhood", "n1", pp.SPIKE, "parking", END)]
    assert pp.new_findings([finding], other_subject) == [finding]
