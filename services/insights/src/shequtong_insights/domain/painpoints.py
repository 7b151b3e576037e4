"""Pain points (痛点/堵点): stated rules that turn projected issues into work prompts. Pure.

Rules (each prompt carries its rule text and the numbers it was applied to):

* category_spike — a category's reports in one place over the last WINDOW_DAYS (7) against the same
  place's own baseline of the BASELINE_DAYS (28) before. Expected count λ = (baseline + PRIOR) ×
  7 / 28 (PRIOR = 1 pseudo-report, so a quiet history is a low rate, not a zero one). The place is
  flagged when the observed count is at least MIN_COUNT (5) AND the Poisson upper tail
  P(X ≥ observed | λ) is below P_THRESHOLD (0.01). Neighbourhoods are tested first; a sub-district is
  tested on the same rule over its neighbourhoods that were not flagged themselves for that category,
  and only when at least 2 of them reported it in the window (a rise in one neighbourhood is that
  neighbourhood's prompt, not the sub-district's).
* repeated_place — at least REPEAT_MIN_COUNT (3) issues reported at the same building or place of a
  neighbourhood within REPEAT_WINDOW_DAYS (30).
* overdue_cluster — at least OVERDUE_MIN_COUNT (3) open issues in a neighbourhood that are overdue:
  past their response deadline without a response, or with a recorded SLA breach.

Windows end at the top of the hour (so repeated runs within an hour see the same window), and a
finding is not raised again while an earlier prompt for the same place, rule and subject covers an
overlapping window — re-running detection never duplicates a prompt.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from shequtong_insights.domain.stats import poisson_upper_tail

WINDOW_DAYS = 7
BASELINE_DAYS = 28
P_THRESHOLD = 0.01
MIN_COUNT = 5
PRIOR = 1
SUBDISTRICT_MIN_NEIGHBOURHOODS = 2
REPEAT_WINDOW_DAYS = 30
REPEAT_MIN_COUNT = 3
OVERDUE_WINDOW_DAYS = 7
OVERDUE_MIN_COUNT = 3

SPIKE = "category_spike"
REPEATED_PLACE = "repeated_place"
OVERDUE_CLUSTER = "overdue_cluster"
NEIGHBOURHOOD = "neighbourhood"
SUBDISTRICT = "subdistrict"

SPIKE_RULE_TEXT = (
    f"Flag a category when its reports in the last {WINDOW_DAYS} days number at least {MIN_COUNT} and the "
    f"Poisson upper-tail probability P(X >= observed) is below {P_THRESHOLD}, where the expected count is "
    f"(reports in the {BASELINE_DAYS} days before + {PRIOR}) x {WINDOW_DAYS}/{BASELINE_DAYS}. A sub-district is "
    f"tested over its neighbourhoods not flagged themselves, when at least {SUBDISTRICT_MIN_NEIGHBOURHOODS} of "
    "them reported the category in the window."
)
REPEAT_RULE_TEXT = (
    f"Flag a building or place with at least {REPEAT_MIN_COUNT} issues reported there in the last "
    f"{REPEAT_WINDOW_DAYS} days."
)
OVERDUE_RULE_TEXT = (
    f"Flag a neighbourhood with at least {OVERDUE_MIN_COUNT} open issues that are overdue: past their response "
    "deadline without a response, or with a recorded SLA breach."
)
LOOKBACK_DAYS = max(WINDOW_DAYS + BASELINE_DAYS, REPEAT_WINDOW_DAYS)


@dataclass(frozen=True)
class Place:
    neighbourhood_id: str
    subdistrict_id: str
    district_id: str


@dataclass(frozen=True)
class Sighting:
    """One reported issue as the detector sees it."""

    issue_id: str
    neighbourhood_id: str
    category_code: str
    building: str
    reported_at: datetime


@dataclass(frozen=True)
class Evidence:
    rule_text: str
    observed: int
    expected: float = 0.0
    baseline_count: int = 0
    baseline_days: int = 0
    window_days: int = 0
    p_value: float = 0.0
    p_threshold: float = 0.0
    min_count: int = 0
    issue_ids: tuple[str, ...] = ()
    categories: tuple[tuple[str, int], ...] = ()
    neighbourhood_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    level: str
    neighbourhood_id: str  # "" for a sub-district finding
    subdistrict_id: str
    district_id: str
    rule: str
    subject: str
    window_start: datetime
    window_end: datetime
    title: str
    statement: str
    evidence: Evidence

    @property
    def place_id(self) -> str:
        return self.neighbourhood_id if self.level == NEIGHBOURHOOD else self.subdistrict_id

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.level, self.place_id, self.rule, self.subject)


def normalise_place(building: str) -> str:
    """One spelling per place: surrounding and repeated whitespace removed."""
    return " ".join(building.split())


def window_end_for(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class SpikeTest:
    observed: int
    baseline: int
    expected: float
    p_value: float
    flagged: bool


def spike_test(observed: int, baseline: int) -> SpikeTest:
    expected = (baseline + PRIOR) * WINDOW_DAYS / BASELINE_DAYS
    p_value = poisson_upper_tail(observed, expected)
    return SpikeTest(observed, baseline, round(expected, 4), p_value, observed >= MIN_COUNT and p_value < P_THRESHOLD)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _spike_finding(
    level: str,
    place: Place,
    category: str,
    test: SpikeTest,
    start: datetime,
    end: datetime,
    ids: list[str],
    neighbourhoods: Sequence[str] = (),
) -> Finding:
    where = "this neighbourhood" if level == NEIGHBOURHOOD else "this sub-district"
    statement = (
        f"{test.observed} issues of category '{category}' were reported in {where} in the {WINDOW_DAYS} days to "
        f"{_stamp(end)}, against {test.baseline} in the {BASELINE_DAYS} days before (expected {test.expected:.2f}); "
        f"P(X >= {test.observed}) = {test.p_value:.3g} < {P_THRESHOLD}."
    )
    return Finding(
        level=level,
        neighbourhood_id=place.neighbourhood_id if level == NEIGHBOURHOOD else "",
        subdistrict_id=place.subdistrict_id,
        district_id=place.district_id,
        rule=SPIKE,
        subject=category,
        window_start=start,
        window_end=end,
        title=f"Unusual rise of '{category}' issues",
        statement=statement,
        evidence=Evidence(
            rule_text=SPIKE_RULE_TEXT,
            observed=test.observed,
            expected=test.expected,
            baseline_count=test.baseline,
            baseline_days=BASELINE_DAYS,
            window_days=WINDOW_DAYS,
            p_value=test.p_value,
            p_threshold=P_THRESHOLD,
            min_count=MIN_COUNT,
            issue_ids=tuple(sorted(ids)),
            neighbourhood_ids=tuple(sorted(neighbourhoods)),
        ),
    )


def detect_spikes(sightings: Iterable[Sighting], places: Mapping[str, Place], window_end: datetime) -> list[Finding]:
    start = window_end - timedelta(days=WINDOW_DAYS)
    baseline_start = start - timedelta(days=BASELINE_DAYS)
    window: dict[tuple[str, str], list[str]] = defaultdict(list)
    baseline: Counter[tuple[str, str]] = Counter()
    for s in sightings:
        if s.neighbourhood_id not in places or not s.category_code:
            continue
        key = (s.neighbourhood_id, s.category_code)
        if start <= s.reported_at < window_end:
            window[key].append(s.issue_id)
        elif baseline_start <= s.reported_at < start:
            baseline[key] += 1
    findings: list[Finding] = []
    flagged: set[tuple[str, str]] = set()
    for (nid, category), ids in sorted(window.items()):
        test = spike_test(len(ids), baseline[(nid, category)])
        if test.flagged:
            flagged.add((nid, category))
            findings.append(_spike_finding(NEIGHBOURHOOD, places[nid], category, test, start, window_end, ids))
    # Sub-districts: the same test over the neighbourhoods not flagged themselves.
    sub_window: dict[tuple[str, str], list[str]] = defaultdict(list)
    sub_baseline: Counter[tuple[str, str]] = Counter()
    sub_members: dict[tuple[str, str], set[str]] = defaultdict(set)
    for (nid, category), ids in window.items():
        if (nid, category) in flagged:
            continue
        key = (places[nid].subdistrict_id, category)
        sub_window[key].extend(ids)
        sub_members[key].add(nid)
    for (nid, category), count in baseline.items():
        if (nid, category) not in flagged:
            sub_baseline[(places[nid].subdistrict_id, category)] += count
    any_place = {place.subdistrict_id: place for place in places.values()}
    for (sid, category), ids in sorted(sub_window.items()):
        if len(sub_members[(sid, category)]) < SUBDISTRICT_MIN_NEIGHBOURHOODS:
            continue
        test = spike_test(len(ids), sub_baseline[(sid, category)])
        if test.flagged:
            findings.append(
                _spike_finding(
                    SUBDISTRICT,
                    any_place[sid],
                    category,
                    test,
                    start,
                    window_end,
                    ids,
                    sorted(sub_members[(sid, category)]),
                )
            )
    return findings


def detect_repeated_places(
    sightings: Iterable[Sighting], places: Mapping[str, Place], window_end: datetime
) -> list[Finding]:
    start = window_end - timedelta(days=REPEAT_WINDOW_DAYS)
    at_place: dict[tuple[str, str], list[Sighting]] = defaultdict(list)
    for s in sightings:
        building = normalise_place(s.building)
        if not building or s.neighbourhood_id not in places or not start <= s.reported_at < window_end:
            continue
        at_place[(s.neighbourhood_id, building)].append(s)
    findings = []
    for key, found in sorted(at_place.items()):
        if len(found) < REPEAT_MIN_COUNT:
            continue
        place = places[key[0]]
        building = key[1]
        categories = Counter(s.category_code for s in found)
        findings.append(
            Finding(
                level=NEIGHBOURHOOD,
                neighbourhood_id=place.neighbourhood_id,
                subdistrict_id=place.subdistrict_id,
                district_id=place.district_id,
                rule=REPEATED_PLACE,
                subject=building,
                window_start=start,
                window_end=window_end,
                title=f"Repeated problems at {building}",
                statement=(
                    f"{len(found)} issues were reported at {building} in the {REPEAT_WINDOW_DAYS} days to "
                    f"{_stamp(window_end)} (threshold {REPEAT_MIN_COUNT}): "
                    + ", ".join(f"{code or 'uncategorised'} x{n}" for code, n in sorted(categories.items()))
                    + "."
                ),
                evidence=Evidence(
                    rule_text=REPEAT_RULE_TEXT,
                    observed=len(found),
                    expected=float(REPEAT_MIN_COUNT),
                    window_days=REPEAT_WINDOW_DAYS,
                    min_count=REPEAT_MIN_COUNT,
                    issue_ids=tuple(sorted(s.issue_id for s in found)),
                    categories=tuple(sorted(categories.items())),
                ),
            )
        )
    return findings


def detect_overdue_clusters(
    overdue: Mapping[str, Sequence[str]], places: Mapping[str, Place], window_end: datetime
) -> list[Finding]:
    """`overdue`: neighbourhood id → ids of its open, overdue issues at the time of detection."""
    start = window_end - timedelta(days=OVERDUE_WINDOW_DAYS)
    findings = []
    for nid, ids in sorted(overdue.items()):
        if len(ids) < OVERDUE_MIN_COUNT or nid not in places:
            continue
        place = places[nid]
        findings.append(
            Finding(
                level=NEIGHBOURHOOD,
                neighbourhood_id=nid,
                subdistrict_id=place.subdistrict_id,
                district_id=place.district_id,
                rule=OVERDUE_CLUSTER,
                subject="",
                window_start=start,
                window_end=window_end,
                title="Overdue issues are piling up",
                statement=(
                    f"{len(ids)} open issues are overdue at {_stamp(window_end)} (threshold {OVERDUE_MIN_COUNT}): "
                    "past their response deadline without a response, or with a recorded SLA breach."
                ),
                evidence=Evidence(
                    rule_text=OVERDUE_RULE_TEXT,
                    observed=len(ids),
                    expected=float(OVERDUE_MIN_COUNT),
                    window_days=OVERDUE_WINDOW_DAYS,
                    min_count=OVERDUE_MIN_COUNT,
                    issue_ids=tuple(sorted(ids)),
                ),
            )
        )
    return findings


@dataclass(frozen=True)
class Raised:
    """A prompt already raised: its place, rule, subject and window end."""

    level: str
    place_id: str
    rule: str
    subject: str
    window_end: datetime


def new_findings(findings: Iterable[Finding], raised: Iterable[Raised]) -> list[Finding]:
    """Findings not covered by an earlier prompt for the same place, rule and subject whose window
    overlaps (same window length per rule, so overlap means the earlier one ends after this one starts)."""
    latest: dict[tuple[str, str, str, str], datetime] = {}
    for r in raised:
        key = (r.level, r.place_id, r.rule, r.subject)
        if key not in latest or r.window_end > latest[key]:
            latest[key] = r.window_end
    fresh = []
    for finding in findings:
        previous = latest.get(finding.key)
        if previous is not None and previous > finding.window_start:
            continue
        fresh.append(finding)
    return fresh
