"""Tables of the volunteers service (states are stored as readable strings; see domain/)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shequtong_kit.db import UtcDateTime


class Base(DeclarativeBase):
    pass


# --- people (a projection of identity's display names) -------------------------------------------------


class Person(Base):
    __tablename__ = "people"

    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


# --- teams and volunteers ----------------------------------------------------------------------------


class Team(Base):
    __tablename__ = "teams"
    __table_args__ = (
        UniqueConstraint("neighbourhood_id", "name", name="uq_teams_neighbourhood_name"),
        Index(
            "uq_teams_default",
            "neighbourhood_id",
            unique=True,
            postgresql_where=text("is_default"),
            sqlite_where=text("is_default"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    neighbourhood_id: Mapped[str] = mapped_column(String(36), index=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(1000), default="")
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


ACTIVE_VOLUNTEER = "state IN ('pending', 'approved')"


class Volunteer(Base):
    __tablename__ = "volunteers"
    __table_args__ = (
        Index(
            "uq_volunteers_active",
            "team_id",
            "person_id",
            unique=True,
            postgresql_where=text(ACTIVE_VOLUNTEER),
            sqlite_where=text(ACTIVE_VOLUNTEER),
        ),
        Index("ix_volunteers_person", "person_id"),
        Index("ix_volunteers_team_state", "team_id", "state"),
        Index("ix_volunteers_neighbourhood_state", "neighbourhood_id", "state"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(64))
    neighbourhood_id: Mapped[str] = mapped_column(String(36))
    team_id: Mapped[str] = mapped_column(String(36), ForeignKey("teams.id"))
    state: Mapped[str] = mapped_column(String(16))
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    availability: Mapped[str] = mapped_column(String(200), default="")
    motivation: Mapped[str] = mapped_column(String(1000), default="")
    is_leader: Mapped[bool] = mapped_column(Boolean, default=False)
    applied_at: Mapped[datetime] = mapped_column(UtcDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500), default="")
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


# --- activities ---------------------------------------------------------------------------------------


class Activity(Base):
    __tablename__ = "activities"
    __table_args__ = (
        CheckConstraint("capacity > 0", name="ck_activities_capacity"),
        CheckConstraint("confirmed_count >= 0 AND confirmed_count <= capacity", name="ck_activities_confirmed"),
        CheckConstraint("waitlist_count >= 0", name="ck_activities_waitlist"),
        Index("ix_activities_organisation", "organisation_id", "starts_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organiser_kind: Mapped[str] = mapped_column(String(16))
    neighbourhood_id: Mapped[str | None] = mapped_column(String(36))
    organisation_id: Mapped[str | None] = mapped_column(String(36))
    team_id: Mapped[str | None] = mapped_column(String(36))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    place: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)
    capacity: Mapped[int] = mapped_column(Integer)
    required_skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    audience: Mapped[list[str]] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(16))
    confirmed_count: Mapped[int] = mapped_column(Integer, default=0)
    waitlist_count: Mapped[int] = mapped_column(Integer, default=0)
    checkin_code: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    cancel_reason: Mapped[str] = mapped_column(String(500), default="")
    cancelled_by: Mapped[str | None] = mapped_column(String(64))
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ActivityAudience(Base):
    """Which neighbourhoods' residents may sign up (one row each, for listing by neighbourhood)."""

    __tablename__ = "activity_audiences"
    __table_args__ = (Index("ix_activity_audiences_neighbourhood", "neighbourhood_id", "starts_at", "activity_id"),)

    activity_id: Mapped[str] = mapped_column(String(36), ForeignKey("activities.id"), primary_key=True)
    neighbourhood_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)


ACTIVE_SIGNUP = "state IN ('confirmed', 'waitlisted')"


class Signup(Base):
    __tablename__ = "signups"
    __table_args__ = (
        Index(
            "uq_signups_active",
            "activity_id",
            "person_id",
            unique=True,
            postgresql_where=text(ACTIVE_SIGNUP),
            sqlite_where=text(ACTIVE_SIGNUP),
        ),
        Index("ix_signups_activity_state", "activity_id", "state", "signed_up_at"),
        Index("ix_signups_person", "person_id", "signed_up_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    activity_id: Mapped[str] = mapped_column(String(36), ForeignKey("activities.id"))
    person_id: Mapped[str] = mapped_column(String(64))
    neighbourhood_id: Mapped[str] = mapped_column(String(36))
    state: Mapped[str] = mapped_column(String(20))
    signed_up_at: Mapped[datetime] = mapped_column(UtcDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    promoted: Mapped[bool] = mapped_column(Boolean, default=False)
    checked_in_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    checked_in_by: Mapped[str | None] = mapped_column(String(64))
    check_in_method: Mapped[str | None] = mapped_column(String(16))
    checked_out_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    checked_out_by: Mapped[str | None] = mapped_column(String(64))
    check_out_method: Mapped[str | None] = mapped_column(String(16))
    credited_minutes: Mapped[int] = mapped_column(Integer, default=0)


# --- the service-hours ledger (append-only: rows are inserted, never updated or deleted) -------------


class HoursEntry(Base):
    __tablename__ = "hours_entries"
    __table_args__ = (
        # One credit per attendance; one reversal per entry.
        Index(
            "uq_hours_credit_per_signup",
            "signup_id",
            unique=True,
            postgresql_where=text("kind = 'credit'"),
            sqlite_where=text("kind = 'credit'"),
        ),
        Index(
            "uq_hours_reversal_per_entry",
            "corrects_entry_id",
            unique=True,
            postgresql_where=text("kind = 'reversal'"),
            sqlite_where=text("kind = 'reversal'"),
        ),
        Index("ix_hours_person", "person_id", "served_at"),
        Index("ix_hours_team", "team_id", "served_at"),
        Index("ix_hours_neighbourhood", "neighbourhood_id", "served_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(64))
    neighbourhood_id: Mapped[str] = mapped_column(String(36))
    team_id: Mapped[str | None] = mapped_column(String(36))
    activity_id: Mapped[str | None] = mapped_column(String(36))
    activity_title: Mapped[str] = mapped_column(String(200), default="")
    signup_id: Mapped[str | None] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(16))
    minutes: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(500), default="")
    corrects_entry_id: Mapped[str | None] = mapped_column(String(36))
    recorded_by: Mapped[str] = mapped_column(String(64))
    served_at: Mapped[datetime] = mapped_column(UtcDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


# --- social organisations and storefronts --------------------------------------------------------------


class Organisation(Base):
    __tablename__ = "organisations"
    __table_args__ = (Index("ix_organisations_district_state", "district_id", "state"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    credit_code: Mapped[str] = mapped_column(String(18), unique=True)
    district_id: Mapped[str] = mapped_column(String(36))
    description: Mapped[str] = mapped_column(String(2000), default="")
    state: Mapped[str] = mapped_column(String(16))
    registered_by: Mapped[str] = mapped_column(String(64))
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    reason: Mapped[str] = mapped_column(String(500), default="")


class OrganisationAdmin(Base):
    __tablename__ = "organisation_admins"
    __table_args__ = (Index("ix_organisation_admins_person", "person_id"),)

    organisation_id: Mapped[str] = mapped_column(String(36), ForeignKey("organisations.id"), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Storefront(Base):
    __tablename__ = "storefronts"
    __table_args__ = (Index("ix_storefronts_organisation", "organisation_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(String(36), ForeignKey("organisations.id"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(2000), default="")
    address: Mapped[str] = mapped_column(String(300), default="")
    state: Mapped[str] = mapped_column(String(16))
    opened_by: Mapped[str] = mapped_column(String(64))
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class StorefrontNeighbourhood(Base):
    __tablename__ = "storefront_neighbourhoods"
    __table_args__ = (Index("ix_storefront_neighbourhoods_neighbourhood", "neighbourhood_id", "storefront_id"),)

    storefront_id: Mapped[str] = mapped_column(String(36), ForeignKey("storefronts.id"), primary_key=True)
    neighbourhood_id: Mapped[str] = mapped_column(String(36), primary_key=True)


class Offering(Base):
    __tablename__ = "offerings"
    __table_args__ = (
        CheckConstraint("price_cents >= 0", name="ck_offerings_price"),
        Index("ix_offerings_storefront", "storefront_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    storefront_id: Mapped[str] = mapped_column(String(36), ForeignKey("storefronts.id"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(2000), default="")
    category: Mapped[str] = mapped_column(String(64), default="")
    price_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    neighbourhood_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    eligibility_note: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Slot(Base):
    __tablename__ = "slots"
    __table_args__ = (
        CheckConstraint("capacity > 0", name="ck_slots_capacity"),
        CheckConstraint("booked_count >= 0 AND booked_count <= capacity", name="ck_slots_booked"),
        Index("ix_slots_offering", "offering_id", "starts_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    offering_id: Mapped[str] = mapped_column(String(36), ForeignKey("offerings.id"))
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)
    capacity: Mapped[int] = mapped_column(Integer)
    booked_count: Mapped[int] = mapped_column(Integer, default=0)


ACTIVE_BOOKING = "state IN ('requested', 'accepted')"


class Booking(Base):
    __tablename__ = "bookings"
    __table_args__ = (
        Index(
            "uq_bookings_active_slot",
            "slot_id",
            "person_id",
            unique=True,
            postgresql_where=text(f"slot_id IS NOT NULL AND {ACTIVE_BOOKING}"),
            sqlite_where=text(f"slot_id IS NOT NULL AND {ACTIVE_BOOKING}"),
        ),
        CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="ck_bookings_rating"),
        Index("ix_bookings_storefront", "storefront_id", "requested_at"),
        Index("ix_bookings_person", "person_id", "requested_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    storefront_id: Mapped[str] = mapped_column(String(36), ForeignKey("storefronts.id"))
    offering_id: Mapped[str] = mapped_column(String(36), ForeignKey("offerings.id"))
    slot_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("slots.id"))
    organisation_id: Mapped[str] = mapped_column(String(36))
    person_id: Mapped[str] = mapped_column(String(64))
    neighbourhood_id: Mapped[str] = mapped_column(String(36))
    state: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(String(500), default="")
    reason: Mapped[str] = mapped_column(String(500), default="")
    rating: Mapped[int | None] = mapped_column(Integer)
    rating_comment: Mapped[str] = mapped_column(String(500), default="")
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    fulfilled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    rated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


# --- mutual aid -----------------------------------------------------------------------------------------


class MutualAidLink(Base):
    __tablename__ = "mutual_aid_links"
    __table_args__ = (
        UniqueConstraint("issue_id", "target", "target_id", name="uq_mutual_aid_links"),
        Index("ix_mutual_aid_neighbourhood", "neighbourhood_id", "linked_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    issue_id: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(36))
    neighbourhood_id: Mapped[str] = mapped_column(String(36))
    organisation_id: Mapped[str | None] = mapped_column(String(36))
    note: Mapped[str] = mapped_column(String(500), default="")
    linked_by: Mapped[str] = mapped_column(String(64))
    linked_at: Mapped[datetime] = mapped_column(UtcDateTime)


# --- bulk imports -----------------------------------------------------------------------------------------


class ImportRef(Base):
    """What a bulk import made for each external_ref (re-sending a batch creates nothing twice)."""

    __tablename__ = "import_refs"

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    external_ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    entity_id: Mapped[str] = mapped_column(String(36))
    organisation_id: Mapped[str] = mapped_column(String(36), default="")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
