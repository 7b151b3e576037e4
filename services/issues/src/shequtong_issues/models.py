from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shequtong_kit.db import UtcDateTime


class Base(DeclarativeBase):
    pass


class Issue(Base):
    """The current position of an issue; its history lives in `issue_timeline` (append-only)."""

    __tablename__ = "issues"
    __table_args__ = (
        Index("ix_issues_neighbourhood", "neighbourhood_id", "id"),
        Index("ix_issues_subdistrict_escalated", "subdistrict_id", "escalated", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    neighbourhood_id: Mapped[str] = mapped_column(String(36))
    subdistrict_id: Mapped[str] = mapped_column(String(36))
    district_id: Mapped[str] = mapped_column(String(36), index=True)
    category_code: Mapped[str] = mapped_column(String(48))
    title: Mapped[str] = mapped_column(String(100), default="")
    description: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(16))
    round: Mapped[int] = mapped_column(Integer, default=1)
    version: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str] = mapped_column(String(16))
    # One issue per post, however often boards.post.created is delivered.
    source_post_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    reporter_id: Mapped[str | None] = mapped_column(String(64), index=True)
    created_by: Mapped[str] = mapped_column(String(64))
    assignee_id: Mapped[str | None] = mapped_column(String(64), index=True)
    assignment_pending: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    assignment_attempts: Mapped[int] = mapped_column(Integer, default=0)
    household_id: Mapped[str] = mapped_column(String(36), default="")
    building: Mapped[str] = mapped_column(String(100), default="")
    address: Mapped[str] = mapped_column(String(200), default="")
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    photo_urls: Mapped[list[str]] = mapped_column(JSON, default=list)
    public: Mapped[bool] = mapped_column(Boolean, default=True)
    reported_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    response_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolution_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    auto_escalated_round: Mapped[int | None] = mapped_column(Integer)
    duplicate_of_id: Mapped[str | None] = mapped_column(String(36))
    reject_reason: Mapped[str] = mapped_column(String(500), default="")
    dispatch_id: Mapped[str | None] = mapped_column(String(80))
    dispatch_level: Mapped[str | None] = mapped_column(String(16))
    state_before_dispatch: Mapped[str | None] = mapped_column(String(32))
    grid_service_code: Mapped[str] = mapped_column(String(32), default="")
    grid_last_update_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    grid_return_cause: Mapped[str | None] = mapped_column(String(16))
    resolved_level: Mapped[str | None] = mapped_column(String(16))
    feedback_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    rating: Mapped[int | None] = mapped_column(Integer)
    # Imported issues: the source system's key (unique).
    external_ref: Mapped[str | None] = mapped_column(String(100), nullable=True, unique=True)


class TimelineEntry(Base):
    """The full record: one row per fact, never updated or deleted."""

    __tablename__ = "issue_timeline"
    __table_args__ = (UniqueConstraint("issue_id", "seq", name="uq_issue_timeline_seq"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    issue_id: Mapped[str] = mapped_column(String(36))
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[str] = mapped_column(String(64), default="")
    actor_role: Mapped[str] = mapped_column(String(16))
    from_state: Mapped[str] = mapped_column(String(32), default="")
    to_state: Mapped[str] = mapped_column(String(32), default="")
    level: Mapped[str] = mapped_column(String(16), default="")
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    text: Mapped[str] = mapped_column(Text, default="")
    photo_urls: Mapped[list[str]] = mapped_column(JSON, default=list)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class SlaClock(Base):
    __tablename__ = "sla_clocks"
    __table_args__ = (
        Index("ix_sla_clocks_issue", "issue_id", "round"),
        Index(
            "ix_sla_clocks_running_due",
            "due_at",
            postgresql_where=text("stopped_at IS NULL AND breached_at IS NULL"),
            sqlite_where=text("stopped_at IS NULL AND breached_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    issue_id: Mapped[str] = mapped_column(String(36))
    round: Mapped[int] = mapped_column(Integer)
    clock: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    outcome: Mapped[str] = mapped_column(String(16), default="running")
    breached_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class SlaBreach(Base):
    """At most one per (issue, clock, level, round): the claim that makes the scheduler safe with replicas."""

    __tablename__ = "sla_breaches"
    __table_args__ = (UniqueConstraint("issue_id", "clock", "level", "round", name="uq_sla_breaches_claim"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    issue_id: Mapped[str] = mapped_column(String(36))
    round: Mapped[int] = mapped_column(Integer)
    clock: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))
    clock_id: Mapped[str] = mapped_column(String(36))
    neighbourhood_id: Mapped[str] = mapped_column(String(36), index=True)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    detected_at: Mapped[datetime] = mapped_column(UtcDateTime)
    auto_escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    notified_level: Mapped[str] = mapped_column(String(16))


class Dispatch(Base):
    """Each dispatch to the grid platform; its id is the grid gateway's idempotency key for the ticket."""

    __tablename__ = "issue_dispatches"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    issue_id: Mapped[str] = mapped_column(String(36), index=True)
    round: Mapped[int] = mapped_column(Integer)
    number: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(16))
    grid_service_code: Mapped[str] = mapped_column(String(32))
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ticket_id: Mapped[str | None] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(120))


class GridUpdate(Base):
    """Every status from the grid applied once (unique key: the grid's update id, or ticket id + kind)."""

    __tablename__ = "grid_updates"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    update_key: Mapped[str] = mapped_column(String(200), unique=True)
    issue_id: Mapped[str] = mapped_column(String(36), index=True)
    dispatch_id: Mapped[str] = mapped_column(String(80))
    state: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    moved_issue: Mapped[bool] = mapped_column(Boolean, default=False)


class Feedback(Base):
    __tablename__ = "issue_feedback"
    __table_args__ = (UniqueConstraint("issue_id", "round", name="uq_issue_feedback_round"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    issue_id: Mapped[str] = mapped_column(String(36))
    round: Mapped[int] = mapped_column(Integer)
    rating: Mapped[int] = mapped_column(Integer)
    fixed: Mapped[bool] = mapped_column(Boolean)
    comment: Mapped[str] = mapped_column(String(500), default="")
    # The level that resolved it: a reopening counts against it.
    level: Mapped[str] = mapped_column(String(16))
    reopened: Mapped[bool] = mapped_column(Boolean)
    rated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Category(Base):
    """Catalogue entries; district_id "" is the default catalogue used by districts without their own."""

    __tablename__ = "issue_categories"
    __table_args__ = (UniqueConstraint("district_id", "code", name="uq_issue_categories_district_code"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    district_id: Mapped[str] = mapped_column(String(36), default="")
    code: Mapped[str] = mapped_column(String(48))
    name: Mapped[str] = mapped_column(String(60))
    grid_service_code: Mapped[str] = mapped_column(String(32), default="")
    grid_service_name: Mapped[str] = mapped_column(String(60), default="")
    response_hours: Mapped[float] = mapped_column(Float)
    resolution_hours: Mapped[float] = mapped_column(Float)
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ResponseTarget(Base):
    """A neighbourhood's own response target; category_code "" applies to every category."""

    __tablename__ = "issue_response_targets"

    neighbourhood_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    category_code: Mapped[str] = mapped_column(String(48), primary_key=True)
    response_hours: Mapped[float] = mapped_column(Float)
    set_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
