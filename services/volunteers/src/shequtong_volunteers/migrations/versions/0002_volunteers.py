"""teams, volunteers, activities, sign-ups, the hours ledger, organisations, storefronts, bookings,
mutual-aid links and the people projection

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

from shequtong_kit.db import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ACTIVE_VOLUNTEER = "state IN ('pending', 'approved')"
ACTIVE_SIGNUP = "state IN ('confirmed', 'waitlisted')"
ACTIVE_BOOKING = "slot_id IS NOT NULL AND state IN ('requested', 'accepted')"


def _partial_unique(name: str, table: str, columns: list[str], where: str) -> None:
    op.create_index(
        name,
        table,
        columns,
        unique=True,
        postgresql_where=sa.text(where),
        sqlite_where=sa.text(where),
    )


def upgrade() -> None:
    op.create_table(
        "people",
        sa.Column("person_id", sa.String(64), primary_key=True),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )

    op.create_table(
        "teams",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("neighbourhood_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.String(1000), nullable=False),
        sa.Column("is_default", sa.Boolean, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("neighbourhood_id", "name", name="uq_teams_neighbourhood_name"),
    )
    op.create_index("ix_teams_neighbourhood_id", "teams", ["neighbourhood_id"])
    _partial_unique("uq_teams_default", "teams", ["neighbourhood_id"], "is_default")

    op.create_table(
        "volunteers",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("person_id", sa.String(64), nullable=False),
        sa.Column("neighbourhood_id", sa.String(36), nullable=False),
        sa.Column("team_id", sa.String(36), sa.ForeignKey("teams.id"), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("skills", sa.JSON, nullable=False),
        sa.Column("availability", sa.String(200), nullable=False),
        sa.Column("motivation", sa.String(1000), nullable=False),
        sa.Column("is_leader", sa.Boolean, nullable=False),
        sa.Column("applied_at", UtcDateTime, nullable=False),
        sa.Column("decided_at", UtcDateTime, nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("ended_at", UtcDateTime, nullable=True),
    )
    _partial_unique("uq_volunteers_active", "volunteers", ["team_id", "person_id"], ACTIVE_VOLUNTEER)
    op.create_index("ix_volunteers_person", "volunteers", ["person_id"])
    op.create_index("ix_volunteers_team_state", "volunteers", ["team_id", "state"])
    op.create_index("ix_volunteers_neighbourhood_state", "volunteers", ["neighbourhood_id", "state"])

    op.create_table(
        "activities",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("organiser_kind", sa.String(16), nullable=False),
        sa.Column("neighbourhood_id", sa.String(36), nullable=True),
        sa.Column("organisation_id", sa.String(36), nullable=True),
        sa.Column("team_id", sa.String(36), nullable=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("place", sa.String(200), nullable=False),
        sa.Column("starts_at", UtcDateTime, nullable=False),
        sa.Column("ends_at", UtcDateTime, nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("required_skills", sa.JSON, nullable=False),
        sa.Column("audience", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("confirmed_count", sa.Integer, nullable=False),
        sa.Column("waitlist_count", sa.Integer, nullable=False),
        sa.Column("checkin_code", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("cancel_reason", sa.String(500), nullable=False),
        sa.Column("cancelled_by", sa.String(64), nullable=True),
        sa.Column("cancelled_at", UtcDateTime, nullable=True),
        sa.CheckConstraint("capacity > 0", name="ck_activities_capacity"),
        # The last wall: whatever the code does, confirmed places never exceed the capacity.
        sa.CheckConstraint("confirmed_count >= 0 AND confirmed_count <= capacity", name="ck_activities_confirmed"),
        sa.CheckConstraint("waitlist_count >= 0", name="ck_activities_waitlist"),
    )
    op.create_index("ix_activities_organisation", "activities", ["organisation_id", "starts_at"])

    op.create_table(
        "activity_audiences",
        sa.Column("activity_id", sa.String(36), sa.ForeignKey("activities.id"), primary_key=True),
        sa.Column("neighbourhood_id", sa.String(36), primary_key=True),
        sa.Column("starts_at", UtcDateTime, nullable=False),
    )
    op.create_index(
        "ix_activity_audiences_neighbourhood", "activity_audiences", ["neighbourhood_id", "starts_at", "activity_id"]
    )

    op.create_table(
        "signups",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("activity_id", sa.String(36), sa.ForeignKey("activities.id"), nullable=False),
        sa.Column("person_id", sa.String(64), nullable=False),
        sa.Column("neighbourhood_id", sa.String(36), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("signed_up_at", UtcDateTime, nullable=False),
        sa.Column("confirmed_at", UtcDateTime, nullable=True),
        sa.Column("cancelled_at", UtcDateTime, nullable=True),
        sa.Column("promoted", sa.Boolean, nullable=False),
        sa.Column("checked_in_at", UtcDateTime, nullable=True),
        sa.Column("checked_in_by", sa.String(64), nullable=True),
        sa.Column("check_in_method", sa.String(16), nullable=True),
        sa.Column("checked_out_at", UtcDateTime, nullable=True),
        sa.Column("checked_out_by", sa.String(64), nullable=True),
        sa.Column("check_out_method", sa.String(16), nullable=True),
        sa.Column("credited_minutes", sa.Integer, nullable=False),
    )
    _partial_unique("uq_signups_active", "signups", ["activity_id", "person_id"], ACTIVE_SIGNUP)
    op.create_index("ix_signups_activity_state", "signups", ["activity_id", "state", "signed_up_at"])
    op.create_index("ix_signups_person", "signups", ["person_id", "signed_up_at"])

    op.create_table(
        "hours_entries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("person_id", sa.String(64), nullable=False),
        sa.Column("neighbourhood_id", sa.String(36), nullable=False),
        sa.Column("team_id", sa.String(36), nullable=True),
        sa.Column("activity_id", sa.String(36), nullable=True),
        sa.Column("activity_title", sa.String(200), nullable=False),
        sa.Column("signup_id", sa.String(36), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("minutes", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("corrects_entry_id", sa.String(36), nullable=True),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        sa.Column("served_at", UtcDateTime, nullable=False),
        sa.Column("recorded_at", UtcDateTime, nullable=False),
    )
    _partial_unique("uq_hours_credit_per_signup", "hours_entries", ["signup_id"], "kind = 'credit'")
    _partial_unique("uq_hours_reversal_per_entry", "hours_entries", ["corrects_entry_id"], "kind = 'reversal'")
    op.create_index("ix_hours_person", "hours_entries", ["person_id", "served_at"])
    op.create_index("ix_hours_team", "hours_entries", ["team_id", "served_at"])
    op.create_index("ix_hours_neighbourhood", "hours_entries", ["neighbourhood_id", "served_at"])

    op.create_table(
        "organisations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("credit_code", sa.String(18), nullable=False, unique=True),
        sa.Column("district_id", sa.String(36), nullable=False),
        sa.Column("description", sa.String(2000), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("registered_by", sa.String(64), nullable=False),
        sa.Column("registered_at", UtcDateTime, nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", UtcDateTime, nullable=True),
        sa.Column("reason", sa.String(500), nullable=False),
    )
    op.create_index("ix_organisations_district_state", "organisations", ["district_id", "state"])

    op.create_table(
        "organisation_admins",
        sa.Column("organisation_id", sa.String(36), sa.ForeignKey("organisations.id"), primary_key=True),
        sa.Column("person_id", sa.String(64), primary_key=True),
        sa.Column("added_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_organisation_admins_person", "organisation_admins", ["person_id"])

    op.create_table(
        "storefronts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("organisation_id", sa.String(36), sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.String(2000), nullable=False),
        sa.Column("address", sa.String(300), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("opened_by", sa.String(64), nullable=False),
        sa.Column("opened_at", UtcDateTime, nullable=False),
        sa.Column("closed_at", UtcDateTime, nullable=True),
    )
    op.create_index("ix_storefronts_organisation", "storefronts", ["organisation_id"])

    op.create_table(
        "storefront_neighbourhoods",
        sa.Column("storefront_id", sa.String(36), sa.ForeignKey("storefronts.id"), primary_key=True),
        sa.Column("neighbourhood_id", sa.String(36), primary_key=True),
    )
    op.create_index(
        "ix_storefront_neighbourhoods_neighbourhood",
        "storefront_neighbourhoods",
        ["neighbourhood_id", "storefront_id"],
    )

    op.create_table(
        "offerings",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("storefront_id", sa.String(36), sa.ForeignKey("storefronts.id"), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.String(2000), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("price_cents", sa.BigInteger, nullable=False),
        sa.Column("neighbourhood_ids", sa.JSON, nullable=False),
        sa.Column("eligibility_note", sa.String(500), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.CheckConstraint("price_cents >= 0", name="ck_offerings_price"),
    )
    op.create_index("ix_offerings_storefront", "offerings", ["storefront_id"])

    op.create_table(
        "slots",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("offering_id", sa.String(36), sa.ForeignKey("offerings.id"), nullable=False),
        sa.Column("starts_at", UtcDateTime, nullable=False),
        sa.Column("ends_at", UtcDateTime, nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("booked_count", sa.Integer, nullable=False),
        sa.CheckConstraint("capacity > 0", name="ck_slots_capacity"),
        # No double booking, whatever the code does.
        sa.CheckConstraint("booked_count >= 0 AND booked_count <= capacity", name="ck_slots_booked"),
    )
    op.create_index("ix_slots_offering", "slots", ["offering_id", "starts_at"])

    op.create_table(
        "bookings",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("storefront_id", sa.String(36), sa.ForeignKey("storefronts.id"), nullable=False),
        sa.Column("offering_id", sa.String(36), sa.ForeignKey("offerings.id"), nullable=False),
        sa.Column("slot_id", sa.String(36), sa.ForeignKey("slots.id"), nullable=True),
        sa.Column("organisation_id", sa.String(36), nullable=False),
        sa.Column("person_id", sa.String(64), nullable=False),
        sa.Column("neighbourhood_id", sa.String(36), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("note", sa.String(500), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("rating", sa.Integer, nullable=True),
        sa.Column("rating_comment", sa.String(500), nullable=False),
        sa.Column("requested_at", UtcDateTime, nullable=False),
        sa.Column("decided_at", UtcDateTime, nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("fulfilled_at", UtcDateTime, nullable=True),
        sa.Column("cancelled_at", UtcDateTime, nullable=True),
        sa.Column("rated_at", UtcDateTime, nullable=True),
        sa.CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="ck_bookings_rating"),
    )
    _partial_unique("uq_bookings_active_slot", "bookings", ["slot_id", "person_id"], ACTIVE_BOOKING)
    op.create_index("ix_bookings_storefront", "bookings", ["storefront_id", "requested_at"])
    op.create_index("ix_bookings_person", "bookings", ["person_id", "requested_at"])

    op.create_table(
        "mutual_aid_links",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("issue_id", sa.String(64), nullable=False),
        sa.Column("target", sa.String(16), nullable=False),
        sa.Column("target_id", sa.String(36), nullable=False),
        sa.Column("neighbourhood_id", sa.String(36), nullable=False),
        sa.Column("organisation_id", sa.String(36), nullable=True),
        sa.Column("note", sa.String(500), nullable=False),
        sa.Column("linked_by", sa.String(64), nullable=False),
        sa.Column("linked_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("issue_id", "target", "target_id", name="uq_mutual_aid_links"),
    )
    op.create_index("ix_mutual_aid_links_issue_id", "mutual_aid_links", ["issue_id"])
    op.create_index("ix_mutual_aid_neighbourhood", "mutual_aid_links", ["neighbourhood_id", "linked_at"])


def downgrade() -> None:
    for table in (
        "mutual_aid_links",
        "bookings",
        "slots",
        "offerings",
        "storefront_neighbourhoods",
        "storefronts",
        "organisation_admins",
        "organisations",
        "hours_entries",
        "signups",
        "activity_audiences",
        "activities",
        "volunteers",
        "teams",
        "people",
    ):
        op.drop_table(table)
