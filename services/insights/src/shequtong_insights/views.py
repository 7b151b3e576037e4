"""Domain values and rows → protobuf messages (used by the servicer and for stored idempotent replies)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shequtong.insights.v1 import insights_pb2 as pb
from shequtong_insights.domain import painpoints as pp
from shequtong_insights.domain import prompts as prompt_rules
from shequtong_insights.domain.figures import Figures
from shequtong_insights.domain.periods import Period
from shequtong_insights.domain.stats import Summary
from shequtong_insights.domain.trends import Trend
from shequtong_insights.models import Prompt, RebuildRun
from shequtong_kit.proto import ts

PROMPT_STATUS = {
    prompt_rules.OPEN: pb.PROMPT_STATUS_OPEN,
    prompt_rules.ACKNOWLEDGED: pb.PROMPT_STATUS_ACKNOWLEDGED,
    prompt_rules.DISMISSED: pb.PROMPT_STATUS_DISMISSED,
}
PLACE_LEVEL = {pp.NEIGHBOURHOOD: pb.PLACE_LEVEL_NEIGHBOURHOOD, pp.SUBDISTRICT: pb.PLACE_LEVEL_SUBDISTRICT}
REBUILD_PHASE = {
    "resetting": pb.REBUILD_PHASE_RESETTING,
    "replaying": pb.REBUILD_PHASE_REPLAYING,
    "done": pb.REBUILD_PHASE_DONE,
}


def period(p: Period) -> pb.Period:
    return pb.Period(
        start=ts(p.start),
        end=ts(p.end),
        days=p.days,
        day_utc_offset_minutes=p.offset_minutes,
        first_day=p.first_day.isoformat(),
        last_day=p.last_day.isoformat(),
    )


def distribution(s: Summary) -> pb.Distribution:
    return pb.Distribution(
        count=s.count,
        median_hours=s.median_hours,
        p90_hours=s.p90_hours,
        mean_hours=s.mean_hours,
        max_hours=s.max_hours,
    )


def figures(f: Figures) -> pb.Figures:
    values: dict[str, Any] = {
        name: getattr(f, name)
        for name in f.__dataclass_fields__
        if name not in ("topics_by_stage", "response_time", "resolution_time")
    }
    return pb.Figures(
        **values,
        topics_by_stage=[pb.StageCount(stage=stage, count=count) for stage, count in f.topics_by_stage],
        response_time=distribution(f.response_time),
        resolution_time=distribution(f.resolution_time),
    )


def trend(t: Trend) -> pb.Trend:
    message = pb.Trend(
        measure=t.measure,
        peers=t.peers,
        direction=t.direction,
        versus_peers=t.versus_peers,
        higher_is_better=t.higher_is_better,
        statement=t.statement,
    )
    if t.current is not None:
        message.current = t.current
    if t.previous is not None:
        message.previous = t.previous
    if t.peer_median is not None:
        message.peer_median = t.peer_median
    return message


def evidence_json(e: pp.Evidence) -> dict[str, Any]:
    return {
        "rule_text": e.rule_text,
        "observed": e.observed,
        "expected": e.expected,
        "baseline_count": e.baseline_count,
        "baseline_days": e.baseline_days,
        "window_days": e.window_days,
        "p_value": e.p_value,
        "p_threshold": e.p_threshold,
        "min_count": e.min_count,
        "issue_ids": list(e.issue_ids),
        "categories": [[code, count] for code, count in e.categories],
        "neighbourhood_ids": list(e.neighbourhood_ids),
    }


def evidence(data: dict[str, Any]) -> pb.Evidence:
    total = sum(int(count) for _, count in data.get("categories", []))
    return pb.Evidence(
        rule_text=data.get("rule_text", ""),
        observed=int(data.get("observed", 0)),
        expected=float(data.get("expected", 0.0)),
        baseline_count=int(data.get("baseline_count", 0)),
        baseline_days=int(data.get("baseline_days", 0)),
        window_days=int(data.get("window_days", 0)),
        p_value=float(data.get("p_value", 0.0)),
        p_threshold=float(data.get("p_threshold", 0.0)),
        min_count=int(data.get("min_count", 0)),
        issue_ids=list(data.get("issue_ids", [])),
        categories=[
            pb.CategoryCount(category_code=code, count=int(count), share=round(int(count) / total, 4) if total else 0.0)
            for code, count in data.get("categories", [])
        ],
        neighbourhood_ids=list(data.get("neighbourhood_ids", [])),
    )


def prompt(row: Prompt) -> pb.Prompt:
    return pb.Prompt(
        id=row.id,
        level=PLACE_LEVEL.get(row.level, pb.PLACE_LEVEL_UNSPECIFIED),
        neighbourhood_id=row.neighbourhood_id,
        subdistrict_id=row.subdistrict_id,
        district_id=row.district_id,
        rule=row.rule,
        subject=row.subject,
        window_start=ts(row.window_start),
        window_end=ts(row.window_end),
        title=row.title,
        statement=row.statement,
        evidence=evidence(row.evidence),
        status=PROMPT_STATUS.get(row.status, pb.PROMPT_STATUS_UNSPECIFIED),
        decided_by=row.decided_by,
        decision_note=row.decision_note,
        decided_at=ts(row.decided_at),
        created_at=ts(row.created_at),
    )


def rebuild(run: RebuildRun, streams: Sequence[pb.StreamProgress] = ()) -> pb.Rebuild:
    return pb.Rebuild(
        id=run.id,
        phase=REBUILD_PHASE.get(run.phase, pb.REBUILD_PHASE_UNSPECIFIED),
        requested_by=run.requested_by,
        started_at=ts(run.started_at),
        finished_at=ts(run.finished_at),
        rows_dropped=run.rows_dropped,
        streams=list(streams),
    )
