"""Statements of a portrait: a measure now, against its own past and against similar neighbourhoods,
with the numbers behind each. Pure.

"Similar" means the same kind (residential committee or village) in the same sub-district. A change
within 5% (relative) is "flat"; within 5% of the peers' median is "level".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shequtong_insights.domain.figures import Figures
from shequtong_insights.domain.stats import median

TOLERANCE = 0.05


@dataclass(frozen=True)
class Measure:
    name: str
    label: str
    unit: str
    higher_is_better: bool
    value: Callable[[Figures], float | None]


def _rate(f: Figures) -> float | None:
    return f.participation_rate if f.residents else None


def _response(f: Figures) -> float | None:
    return f.response_time.median_hours if f.response_time.count else None


def _resolution(f: Figures) -> float | None:
    return f.resolution_time.median_hours if f.resolution_time.count else None


def _inside(f: Figures) -> float | None:
    return f.share_resolved_inside if f.resolution_time.count else None


def _rating(f: Figures) -> float | None:
    return f.mean_rating if f.ratings else None


MEASURES: tuple[Measure, ...] = (
    Measure("participation_rate", "share of residents taking part", "%", True, _rate),
    Measure("posts", "posts", "", True, lambda f: float(f.posts)),
    Measure("issues_reported", "issues reported", "", False, lambda f: float(f.issues_reported)),
    Measure("response_median_hours", "median response time", "h", False, _response),
    Measure("resolution_median_hours", "median resolution time", "h", False, _resolution),
    Measure("share_resolved_inside", "share solved inside the neighbourhood", "%", True, _inside),
    Measure("mean_rating", "mean satisfaction rating", "/5", True, _rating),
    Measure("volunteer_hours", "volunteer hours", "h", True, lambda f: f.volunteer_hours),
)


@dataclass(frozen=True)
class Trend:
    measure: str
    current: float | None
    previous: float | None
    peer_median: float | None
    peers: int
    direction: str
    versus_peers: str
    higher_is_better: bool
    statement: str


def _fmt(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value * 100:.1f}%"
    if unit == "h":
        return f"{value:.1f} h"
    if unit == "/5":
        return f"{value:.2f}/5"
    return f"{value:g}"


def _compare(a: float, b: float) -> int:
    """-1, 0, 1: a below, level with, above b (within the relative tolerance counts as level)."""
    scale = max(abs(a), abs(b))
    if scale == 0 or abs(a - b) <= TOLERANCE * scale:
        return 0
    return 1 if a > b else -1


def trend(measure: Measure, current: Figures, previous: Figures, peers: Sequence[Figures], days: int) -> Trend:
    now = measure.value(current)
    before = measure.value(previous)
    peer_values = [v for v in (measure.value(p) for p in peers) if v is not None]
    peer = round(median(peer_values), 4) if peer_values else None
    direction = "no_data" if now is None or before is None else {1: "up", -1: "down", 0: "flat"}[_compare(now, before)]
    if now is None or peer is None:
        versus = "no_peers" if peer is None else "no_data"
    else:
        versus = {1: "above", -1: "below", 0: "level"}[_compare(now, peer)]
    window = f"the last {days} days"
    if now is None:
        head = f"No {measure.label} in {window}"
    else:
        head = f"{measure.label.capitalize()}: {_fmt(now, measure.unit)} in {window}"
    if before is None:
        past = f"none in the {days} days before"
    elif direction == "flat" or now is None:
        past = f"{_fmt(before, measure.unit)} in the {days} days before"
    else:
        past = f"{direction} from {_fmt(before, measure.unit)} in the {days} days before"
    if peer is None:
        versus_text = "no similar neighbourhood to compare with"
    else:
        versus_text = (
            f"similar neighbourhoods (same kind, same sub-district; {len(peer_values)} with data) "
            f"had a median of {_fmt(peer, measure.unit)}"
        )
    return Trend(
        measure=measure.name,
        current=None if now is None else round(now, 4),
        previous=None if before is None else round(before, 4),
        peer_median=peer,
        peers=len(peer_values),
        direction=direction,
        versus_peers=versus,
        higher_is_better=measure.higher_is_better,
        statement=f"{head}, {past}; {versus_text}.",
    )


def trends(current: Figures, previous: Figures, peers: Sequence[Figures], days: int) -> list[Trend]:
    return [trend(measure, current, previous, peers, days) for measure in MEASURES]
