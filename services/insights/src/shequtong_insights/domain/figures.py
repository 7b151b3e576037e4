"""From raw projected numbers to the measures of a portrait or a comparison row. Pure.

`RawFigures` holds what the repository reads for one neighbourhood over one period (counters, the
issues' own durations, ...). Raw figures of several neighbourhoods merge into a group's raw figures
*before* medians are taken, so a group's median is the median over all its issues, not a median of
medians.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace

from shequtong_insights.domain import metrics as m
from shequtong_insights.domain.stats import Summary, median, summarise


@dataclass
class RawFigures:
    counters: Counter[str] = field(default_factory=Counter)
    active: int = 0
    residents: int = 0
    households: int = 0
    response_seconds: list[float] = field(default_factory=list)
    # (seconds from report to standing resolution, resolved while the neighbourhood was responsible)
    resolutions: list[tuple[float, bool]] = field(default_factory=list)
    categories: Counter[str] = field(default_factory=Counter)
    topic_stages: Counter[str] = field(default_factory=Counter)
    conventions_total: int = 0
    issues_open: int = 0

    def merge(self, other: RawFigures) -> RawFigures:
        return RawFigures(
            counters=self.counters + other.counters,
            active=self.active + other.active,
            residents=self.residents + other.residents,
            households=self.households + other.households,
            response_seconds=self.response_seconds + other.response_seconds,
            resolutions=self.resolutions + other.resolutions,
            categories=self.categories + other.categories,
            topic_stages=self.topic_stages + other.topic_stages,
            conventions_total=self.conventions_total + other.conventions_total,
            issues_open=self.issues_open + other.issues_open,
        )


def merge_all(raws: Sequence[RawFigures]) -> RawFigures:
    total = RawFigures()
    for raw in raws:
        total = total.merge(raw)
    return total


NO_DURATIONS = Summary(0)


@dataclass(frozen=True)
class Figures:
    residents: int = 0
    households: int = 0
    residents_joined: int = 0
    residents_verified: int = 0
    residents_left: int = 0
    active_residents: int = 0
    participation_rate: float = 0.0
    posts: int = 0
    comments: int = 0
    votes: int = 0
    topics_proposed: int = 0
    topics_by_stage: tuple[tuple[str, int], ...] = ()
    conventions_adopted: int = 0
    issues_reported: int = 0
    issues_acknowledged: int = 0
    issues_resolved: int = 0
    issues_escalated: int = 0
    issues_dispatched: int = 0
    issues_reopened: int = 0
    sla_breaches: int = 0
    response_time: Summary = NO_DURATIONS
    resolution_time: Summary = NO_DURATIONS
    resolved_inside: int = 0
    share_resolved_inside: float = 0.0
    ratings: int = 0
    mean_rating: float = 0.0
    share_satisfied: float = 0.0
    volunteer_hours: float = 0.0
    volunteers_approved: int = 0
    bookings: int = 0
    booking_ratings: int = 0
    mean_booking_rating: float = 0.0
    conventions_total: int = 0
    issues_open: int = 0


def ratio(part: float, whole: float, digits: int = 4) -> float:
    return round(part / whole, digits) if whole else 0.0


def build(raw: RawFigures) -> Figures:
    c = raw.counters
    inside = sum(1 for _, is_inside in raw.resolutions if is_inside)
    return Figures(
        residents=raw.residents,
        households=raw.households,
        residents_joined=c[m.RESIDENTS_JOINED],
        residents_verified=c[m.RESIDENTS_VERIFIED],
        residents_left=c[m.RESIDENTS_LEFT],
        active_residents=raw.active,
        participation_rate=ratio(raw.active, raw.residents),
        posts=c[m.POSTS],
        comments=c[m.COMMENTS],
        votes=c[m.VOTES],
        topics_proposed=c[m.TOPICS_PROPOSED],
        topics_by_stage=tuple(sorted(raw.topic_stages.items())),
        conventions_adopted=c[m.CONVENTIONS_ADOPTED],
        issues_reported=c[m.ISSUES_REPORTED],
        issues_acknowledged=c[m.ISSUES_ACKNOWLEDGED],
        issues_resolved=c[m.ISSUES_RESOLVED],
        issues_escalated=c[m.ISSUES_ESCALATED],
        issues_dispatched=c[m.ISSUES_DISPATCHED],
        issues_reopened=c[m.ISSUES_REOPENED],
        sla_breaches=c[m.SLA_BREACHES],
        response_time=summarise(raw.response_seconds),
        resolution_time=summarise([seconds for seconds, _ in raw.resolutions]),
        resolved_inside=inside,
        share_resolved_inside=ratio(inside, len(raw.resolutions)),
        ratings=c[m.RATINGS],
        mean_rating=ratio(c[m.RATING_SUM], c[m.RATINGS], 2),
        share_satisfied=ratio(c[m.RATINGS_SATISFIED], c[m.RATINGS]),
        volunteer_hours=round(c[m.VOLUNTEER_MINUTES] / 60, 2),
        volunteers_approved=c[m.VOLUNTEERS_APPROVED],
        bookings=c[m.BOOKINGS],
        booking_ratings=c[m.BOOKING_RATINGS],
        mean_booking_rating=ratio(c[m.BOOKING_RATING_SUM], c[m.BOOKING_RATINGS], 2),
        conventions_total=raw.conventions_total,
        issues_open=raw.issues_open,
    )


def public_view(figures: Figures) -> Figures:
    """What a resident may see of their own neighbourhood: issues solved, response time, conventions."""
    return Figures(
        issues_resolved=figures.issues_resolved,
        response_time=figures.response_time,
        conventions_adopted=figures.conventions_adopted,
        conventions_total=figures.conventions_total,
    )


_SCALARS = tuple(
    f.name for f in fields(Figures) if f.name not in ("topics_by_stage", "response_time", "resolution_time")
)


def _median_or_zero(values: list[float]) -> float:
    return round(median(values), 4) if values else 0.0


def peer_median(peers: Sequence[Figures]) -> Figures:
    """Field-by-field median over peers (a typical similar neighbourhood; not any one of them).

    For the duration medians only peers that had any such duration count.
    """
    if not peers:
        return Figures()
    values: dict[str, float] = {name: _median_or_zero([float(getattr(p, name)) for p in peers]) for name in _SCALARS}
    ints = {f.name for f in fields(Figures) if f.type in ("int", int)}
    typed: dict[str, object] = {name: (round(v) if name in ints else v) for name, v in values.items()}

    def summary_median(attr: str) -> Summary:
        present = [getattr(p, attr) for p in peers if getattr(p, attr).count]
        if not present:
            return Summary(0)
        return Summary(
            count=round(median([s.count for s in present])),
            median_hours=_median_or_zero([s.median_hours for s in present]),
            p90_hours=_median_or_zero([s.p90_hours for s in present]),
            mean_hours=_median_or_zero([s.mean_hours for s in present]),
            max_hours=_median_or_zero([s.max_hours for s in present]),
        )

    return replace(
        Figures(**typed),  # type: ignore[arg-type]
        response_time=summary_median("response_time"),
        resolution_time=summary_median("resolution_time"),
    )
