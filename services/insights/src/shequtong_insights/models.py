"""Insights' own tables: projections of other services' events (dropped and rebuilt by a replay),
the work prompts it raises (kept across rebuilds, with the cadres' decisions) and its bookkeeping."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Date, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shequtong_kit.db import UtcDateTime


class Base(DeclarativeBase):
    pass


# --- projections -------------------------------------------------------------------------------------


class Neighbourhood(Base):
    """identity.neighbourhood.created, with the time it was opened (the event's time)."""

    __tablename__ = "ins_neighbourhoods"

    neighbourhood_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[int] = mapped_column(Integer)
    subdistrict_id: Mapped[str] = mapped_column(String(36), index=True)
    district_id: Mapped[str] = mapped_column(String(36), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class DailyCounter(Base):
    """One number per neighbourhood, local day and metric (sums of events)."""

    __tablename__ = "ins_daily"

    neighbourhood_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    metric: Mapped[str] = mapped_column(String(48), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class Activity(Base):
    """Someone took part in their neighbourhood on a day (for distinct active residents)."""

    __tablename__ = "ins_activity"

    neighbourhood_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    person_id: Mapped[str] = mapped_column(String(36), primary_key=True)


class Member(Base):
    """A membership's life: joined, verified, left (residents at any instant)."""

    __tablename__ = "ins_members"

    membership_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    neighbourhood_id: Mapped[str] = mapped_column(String(36), index=True)
    person_id: Mapped[str] = mapped_column(String(36))
    household_id: Mapped[str] = mapped_column(String(36), default="")
    joined_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    verified_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    left_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    rejected_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Issue(Base):
    """Per-issue facts (see domain.facts): exact response and resolution times, where it was solved."""

    __tablename__ = "ins_issues"
    __table_args__ = (
        Index("ix_ins_issues_reported", "neighbourhood_id", "reported_at"),
        Index("ix_ins_issues_resolved", "neighbourhood_id", "last_resolved_at"),
    )

    issue_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    neighbourhood_id: Mapped[str] = mapped_column(String(36), default="")
    category_code: Mapped[str] = mapped_column(String(64), default="")
    category_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    building: Mapped[str] = mapped_column(String(200), default="")
    source: Mapped[str] = mapped_column(String(32), default="")
    reported_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    response_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    first_response_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    first_resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolved_level: Mapped[str] = mapped_column(String(32), default="")
    last_reopened_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    state: Mapped[str] = mapped_column(String(32), default="")
    state_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    first_escalated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    first_dispatched_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    sla_breaches: Mapped[int] = mapped_column(Integer, default=0)
    rating: Mapped[int] = mapped_column(Integer, default=0)
    fixed: Mapped[bool] = mapped_column(Boolean, default=False)
    rated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Topic(Base):
    """A deliberation topic's current stage (the latest change by its own time)."""

    __tablename__ = "ins_topics"

    topic_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    neighbourhood_id: Mapped[str] = mapped_column(String(36), index=True)
    stage: Mapped[str] = mapped_column(String(32))
    stage_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Convention(Base):
    __tablename__ = "ins_conventions"

    convention_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    neighbourhood_id: Mapped[str] = mapped_column(String(36), index=True)
    first_adopted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    version: Mapped[int] = mapped_column(Integer)


# Every projection table, in the order a rebuild empties them (the kit's region directory too).
PROJECTION_TABLES = (
    DailyCounter.__table__,
    Activity.__table__,
    Member.__table__,
    Issue.__table__,
    Topic.__table__,
    Convention.__table__,
    Neighbourhood.__table__,
)

# --- own state ----------------------------------------------------------------------------------------


class Lock(Base):
    """Rows locked to serialise work across replicas: 'projection' (handlers share it, a rebuild takes
    it alone) and 'detector' (one detection run at a time)."""

    __tablename__ = "ins_locks"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)


class RebuildRun(Base):
    __tablename__ = "ins_rebuilds"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    phase: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(80))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    rows_dropped: Mapped[int] = mapped_column(BigInteger, default=0)
    # {stream: last sequence when the rebuild started}
    targets: Mapped[dict[str, Any]] = mapped_column(JSON)


class Prompt(Base):
    """A work prompt for the cadres of a place: unique per (level, place, rule, subject, window end)."""

    __tablename__ = "ins_prompts"
    __table_args__ = (
        UniqueConstraint("level", "place_id", "rule", "subject", "window_end", name="uq_ins_prompts_finding"),
        Index("ix_ins_prompts_place", "level", "place_id", "rule", "subject"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    level: Mapped[str] = mapped_column(String(16))
    place_id: Mapped[str] = mapped_column(String(36))
    neighbourhood_id: Mapped[str] = mapped_column(String(36), index=True, default="")
    subdistrict_id: Mapped[str] = mapped_column(String(36), index=True)
    district_id: Mapped[str] = mapped_column(String(36), index=True)
    rule: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(200))
    window_start: Mapped[datetime] = mapped_column(UtcDateTime)
    window_end: Mapped[datetime] = mapped_column(UtcDateTime)
    title: Mapped[str] = mapped_column(String(300))
    statement: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    decided_by: Mapped[str] = mapped_column(String(80), default="")
    decision_note: Mapped[str] = mapped_column(String(500), default="")
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
