"""tickets, delivery attempts, grid updates, poll cursors, service catalogue

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


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("dispatch_id", sa.String(64), nullable=False),
        sa.Column("issue_id", sa.String(64), nullable=False),
        sa.Column("neighbourhood_id", sa.String(36), nullable=False),
        sa.Column("subdistrict_id", sa.String(36), nullable=True),
        sa.Column("district_id", sa.String(36), nullable=True),
        sa.Column("category_code", sa.String(64), nullable=False),
        sa.Column("service_code", sa.String(64), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("address", sa.String(500), nullable=False),
        sa.Column("lat", sa.Float, nullable=True),
        sa.Column("lon", sa.Float, nullable=True),
        sa.Column("media_urls", sa.JSON, nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("requested_at", UtcDateTime, nullable=True),
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("external_id", sa.String(200), nullable=True),
        sa.Column("token", sa.String(200), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime, nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_until", UtcDateTime, nullable=True),
        sa.Column("last_error", sa.String(500), nullable=False),
        sa.Column("failure_code", sa.String(64), nullable=False),
        sa.Column("sent_at", UtcDateTime, nullable=True),
        sa.Column("failed_at", UtcDateTime, nullable=True),
        sa.Column("last_update_id", sa.String(200), nullable=True),
        sa.Column("last_update_at", UtcDateTime, nullable=True),
        sa.Column("agency", sa.String(200), nullable=False),
        sa.Column("expected_at", UtcDateTime, nullable=True),
        sa.Column("last_checked_at", UtcDateTime, nullable=True),
        sa.Column("trace_context", sa.JSON, nullable=False),
        sa.Column("queued_at", UtcDateTime, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("dispatch_id", name="uq_tickets_dispatch_id"),
        sa.UniqueConstraint("platform", "external_id", name="uq_tickets_platform_external_id"),
    )
    op.create_index("ix_tickets_issue_id", "tickets", ["issue_id"])
    op.create_index("ix_tickets_neighbourhood_id", "tickets", ["neighbourhood_id"])
    op.create_index("ix_tickets_due", "tickets", ["state", "next_attempt_at"])
    op.create_index("ix_tickets_district_state", "tickets", ["district_id", "state"])

    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("ticket_id", sa.String(36), sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("http_status", sa.Integer, nullable=False),
        sa.Column("error", sa.String(500), nullable=False),
        sa.Column("external_id", sa.String(200), nullable=False),
        sa.Column("token", sa.String(200), nullable=False),
    )
    op.create_index("ix_delivery_attempts_ticket_id", "delivery_attempts", ["ticket_id"])

    op.create_table(
        "grid_updates",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("update_id", sa.String(200), nullable=False),
        sa.Column("service_request_id", sa.String(200), nullable=False),
        sa.Column("ticket_id", sa.String(36), nullable=True),
        sa.Column("status", sa.String(40), nullable=False),
        sa.Column("external_status_code", sa.String(80), nullable=False),
        sa.Column("state", sa.String(20), nullable=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("media_url", sa.String(1000), nullable=False),
        sa.Column("agency", sa.String(200), nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.UniqueConstraint("platform", "update_id", name="uq_grid_updates_platform_update_id"),
    )
    op.create_index("ix_grid_updates_service_request_id", "grid_updates", ["service_request_id"])
    op.create_index("ix_grid_updates_ticket_id", "grid_updates", ["ticket_id"])

    op.create_table(
        "poll_cursors",
        sa.Column("platform", sa.String(64), primary_key=True),
        sa.Column("cursor_at", UtcDateTime, nullable=True),
        sa.Column("leased_by", sa.String(64), nullable=True),
        sa.Column("lease_until", UtcDateTime, nullable=True),
        sa.Column("last_polled_at", UtcDateTime, nullable=True),
        sa.Column("last_error", sa.String(500), nullable=False),
    )
    op.create_table(
        "catalogue_sources",
        sa.Column("district_key", sa.String(36), primary_key=True),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("loaded_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "catalogue_services",
        sa.Column("district_key", sa.String(36), primary_key=True),
        sa.Column("service_code", sa.String(64), primary_key=True),
        sa.Column("service_name", sa.String(200), nullable=False),
        sa.Column("group_name", sa.String(200), nullable=False),
        sa.Column("description", sa.String(1000), nullable=False),
        sa.Column("keywords", sa.String(500), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
    )
    op.create_table(
        "category_mappings",
        sa.Column("district_key", sa.String(36), primary_key=True),
        sa.Column("category_code", sa.String(64), primary_key=True),
        sa.Column("service_code", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("category_mappings")
    op.drop_table("catalogue_services")
    op.drop_table("catalogue_sources")
    op.drop_table("poll_cursors")
    op.drop_index("ix_grid_updates_ticket_id", table_name="grid_updates")
    op.drop_index("ix_grid_updates_service_request_id", table_name="grid_updates")
    op.drop_table("grid_updates")
    op.drop_index("ix_delivery_attempts_ticket_id", table_name="delivery_attempts")
    op.drop_table("delivery_attempts")
    op.drop_index("ix_tickets_district_state", table_name="tickets")
    op.drop_index("ix_tickets_due", table_name="tickets")
    op.drop_index("ix_tickets_neighbourhood_id", table_name="tickets")
    op.drop_index("ix_tickets_issue_id", table_name="tickets")
    op.drop_table("tickets")
