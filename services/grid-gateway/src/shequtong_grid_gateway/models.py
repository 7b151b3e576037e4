"""grid-gateway's tables: tickets, their delivery attempts, the grid's updates, the polling
cursor and the service catalogue per district."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shequtong_kit.db import UtcDateTime


class Base(DeclarativeBase):
    pass


class Ticket(Base):
    """One per issue and escalation (dispatch_id). Holds what to send, how sending went, and
    where the grid has the case now."""

    __tablename__ = "tickets"
    __table_args__ = (
        UniqueConstraint("dispatch_id", name="uq_tickets_dispatch_id"),
        UniqueConstraint("platform", "external_id", name="uq_tickets_platform_external_id"),
        Index("ix_tickets_due", "state", "next_attempt_at"),
        Index("ix_tickets_district_state", "district_id", "state"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    dispatch_id: Mapped[str] = mapped_column(String(64))
    issue_id: Mapped[str] = mapped_column(String(64), index=True)
    neighbourhood_id: Mapped[str] = mapped_column(String(36), index=True)
    subdistrict_id: Mapped[str | None] = mapped_column(String(36))
    district_id: Mapped[str | None] = mapped_column(String(36))
    category_code: Mapped[str] = mapped_column(String(64), default="")
    service_code: Mapped[str] = mapped_column(String(64), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str] = mapped_column(String(500), default="")
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    media_urls: Mapped[list[Any]] = mapped_column(JSON, default=list)
    requested_by: Mapped[str] = mapped_column(String(64), default="")
    requested_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    platform: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str | None] = mapped_column(String(200))
    token: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str] = mapped_column(String(500), default="")
    failure_code: Mapped[str] = mapped_column(String(64), default="")
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_update_id: Mapped[str | None] = mapped_column(String(200))
    last_update_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    agency: Mapped[str] = mapped_column(String(200), default="")
    expected_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_checked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The trace of the dispatch request (W3C traceparent/tracestate): every send continues it.
    trace_context: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # When the ticket was (re)queued for delivery: the give-up window counts from here.
    queued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(String(36), ForeignKey("tickets.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str] = mapped_column(String(20))
    http_status: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(String(500), default="")
    external_id: Mapped[str] = mapped_column(String(200), default="")
    token: Mapped[str] = mapped_column(String(200), default="")


class GridUpdate(Base):
    """Every update the grid sent or we polled, once (unique per platform and update_id),
    whether or not it moved its ticket."""

    __tablename__ = "grid_updates"
    __table_args__ = (UniqueConstraint("platform", "update_id", name="uq_grid_updates_platform_update_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    platform: Mapped[str] = mapped_column(String(64))
    update_id: Mapped[str] = mapped_column(String(200))
    service_request_id: Mapped[str] = mapped_column(String(200), index=True)
    ticket_id: Mapped[str | None] = mapped_column(String(36), index=True)
    status: Mapped[str] = mapped_column(String(40), default="")
    external_status_code: Mapped[str] = mapped_column(String(80), default="")
    state: Mapped[str | None] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(Text, default="")
    media_url: Mapped[str] = mapped_column(String(1000), default="")
    agency: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    source: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(20))


class PollCursor(Base):
    """Where polling of a platform's updates stands; the lease lets one replica poll at a time."""

    __tablename__ = "poll_cursors"

    platform: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    leased_by: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_polled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str] = mapped_column(String(500), default="")


class CatalogueSource(Base):
    """Which catalogue is in force for a district ('' = the default) and where it came from."""

    __tablename__ = "catalogue_sources"

    district_key: Mapped[str] = mapped_column(String(36), primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    loaded_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CatalogueEntry(Base):
    __tablename__ = "catalogue_services"

    district_key: Mapped[str] = mapped_column(String(36), primary_key=True)
    service_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    service_name: Mapped[str] = mapped_column(String(200))
    group_name: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(String(1000), default="")
    keywords: Mapped[str] = mapped_column(String(500), default="")
    type: Mapped[str] = mapped_column(String(20), default="")


class CategoryMapping(Base):
    __tablename__ = "category_mappings"

    district_key: Mapped[str] = mapped_column(String(36), primary_key=True)
    category_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    service_code: Mapped[str] = mapped_column(String(64))
