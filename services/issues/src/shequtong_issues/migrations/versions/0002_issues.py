"""issues, their append-only timeline, SLA clocks and breaches, dispatches, grid updates, feedback,
the category catalogue and neighbourhood response targets

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
        "issues",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("neighbourhood_id", sa.String(36), nullable=False),
        sa.Column("subdistrict_id", sa.String(36), nullable=False),
        sa.Column("district_id", sa.String(36), nullable=False),
        sa.Column("category_code", sa.String(48), nullable=False),
        sa.Column("title", sa.String(100), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("source_post_id", sa.String(64), nullable=True),
        sa.Column("reporter_id", sa.String(64), nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("assignee_id", sa.String(64), nullable=True),
        sa.Column("assignment_pending", sa.Boolean, nullable=False),
        sa.Column("assignment_attempts", sa.Integer, nullable=False),
        sa.Column("household_id", sa.String(36), nullable=False),
        sa.Column("building", sa.String(100), nullable=False),
        sa.Column("address", sa.String(200), nullable=False),
        sa.Column("lat", sa.Float, nullable=True),
        sa.Column("lon", sa.Float, nullable=True),
        sa.Column("photo_urls", sa.JSON, nullable=False),
        sa.Column("public", sa.Boolean, nullable=False),
        sa.Column("reported_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("resolved_at", UtcDateTime, nullable=True),
        sa.Column("closed_at", UtcDateTime, nullable=True),
        sa.Column("response_due_at", UtcDateTime, nullable=True),
        sa.Column("resolution_due_at", UtcDateTime, nullable=True),
        sa.Column("escalated", sa.Boolean, nullable=False),
        sa.Column("auto_escalated_round", sa.Integer, nullable=True),
        sa.Column("duplicate_of_id", sa.String(36), nullable=True),
        sa.Column("reject_reason", sa.String(500), nullable=False),
        sa.Column("dispatch_id", sa.String(80), nullable=True),
        sa.Column("dispatch_level", sa.String(16), nullable=True),
        sa.Column("state_before_dispatch", sa.String(32), nullable=True),
        sa.Column("grid_service_code", sa.String(32), nullable=False),
        sa.Column("grid_last_update_at", UtcDateTime, nullable=True),
        sa.Column("grid_return_cause", sa.String(16), nullable=True),
        sa.Column("resolved_level", sa.String(16), nullable=True),
        sa.Column("feedback_due_at", UtcDateTime, nullable=True),
        sa.Column("rating", sa.Integer, nullable=True),
        sa.UniqueConstraint("source_post_id", name="uq_issues_source_post_id"),
    )
    op.create_index("ix_issues_neighbourhood", "issues", ["neighbourhood_id", "id"])
    op.create_index("ix_issues_subdistrict_escalated", "issues", ["subdistrict_id", "escalated", "id"])
    op.create_index("ix_issues_district_id", "issues", ["district_id"])
    op.create_index("ix_issues_reporter_id", "issues", ["reporter_id"])
    op.create_index("ix_issues_assignee_id", "issues", ["assignee_id"])
    op.create_index("ix_issues_assignment_pending", "issues", ["assignment_pending"])
    op.create_index("ix_issues_feedback_due_at", "issues", ["feedback_due_at"])

    op.create_table(
        "issue_timeline",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("issue_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor_id", sa.String(64), nullable=False),
        sa.Column("actor_role", sa.String(16), nullable=False),
        sa.Column("from_state", sa.String(32), nullable=False),
        sa.Column("to_state", sa.String(32), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("internal", sa.Boolean, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("photo_urls", sa.JSON, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.UniqueConstraint("issue_id", "seq", name="uq_issue_timeline_seq"),
    )

    op.create_table(
        "sla_clocks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("issue_id", sa.String(36), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("clock", sa.String(16), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.Column("due_at", UtcDateTime, nullable=False),
        sa.Column("stopped_at", UtcDateTime, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("breached_at", UtcDateTime, nullable=True),
    )
    op.create_index("ix_sla_clocks_issue", "sla_clocks", ["issue_id", "round"])
    op.create_index(
        "ix_sla_clocks_running_due",
        "sla_clocks",
        ["due_at"],
        postgresql_where=sa.text("stopped_at IS NULL AND breached_at IS NULL"),
        sqlite_where=sa.text("stopped_at IS NULL AND breached_at IS NULL"),
    )

    op.create_table(
        "sla_breaches",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("issue_id", sa.String(36), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("clock", sa.String(16), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("clock_id", sa.String(36), nullable=False),
        sa.Column("neighbourhood_id", sa.String(36), nullable=False),
        sa.Column("due_at", UtcDateTime, nullable=False),
        sa.Column("detected_at", UtcDateTime, nullable=False),
        sa.Column("auto_escalated", sa.Boolean, nullable=False),
        sa.Column("notified_level", sa.String(16), nullable=False),
        sa.UniqueConstraint("issue_id", "clock", "level", "round", name="uq_sla_breaches_claim"),
    )
    op.create_index("ix_sla_breaches_neighbourhood_id", "sla_breaches", ["neighbourhood_id"])

    op.create_table(
        "issue_dispatches",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("issue_id", sa.String(36), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("grid_service_code", sa.String(32), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("requested_at", UtcDateTime, nullable=False),
        sa.Column("ticket_id", sa.String(64), nullable=True),
        sa.Column("external_id", sa.String(120), nullable=True),
    )
    op.create_index("ix_issue_dispatches_issue_id", "issue_dispatches", ["issue_id"])

    op.create_table(
        "grid_updates",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("update_key", sa.String(200), nullable=False),
        sa.Column("issue_id", sa.String(36), nullable=False),
        sa.Column("dispatch_id", sa.String(80), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("occurred_at", UtcDateTime, nullable=True),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.Column("moved_issue", sa.Boolean, nullable=False),
        sa.UniqueConstraint("update_key", name="uq_grid_updates_update_key"),
    )
    op.create_index("ix_grid_updates_issue_id", "grid_updates", ["issue_id"])

    op.create_table(
        "issue_feedback",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("issue_id", sa.String(36), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("rating", sa.Integer, nullable=False),
        sa.Column("fixed", sa.Boolean, nullable=False),
        sa.Column("comment", sa.String(500), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("reopened", sa.Boolean, nullable=False),
        sa.Column("rated_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("issue_id", "round", name="uq_issue_feedback_round"),
    )

    op.create_table(
        "issue_categories",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("district_id", sa.String(36), nullable=False),
        sa.Column("code", sa.String(48), nullable=False),
        sa.Column("name", sa.String(60), nullable=False),
        sa.Column("grid_service_code", sa.String(32), nullable=False),
        sa.Column("grid_service_name", sa.String(60), nullable=False),
        sa.Column("response_hours", sa.Float, nullable=False),
        sa.Column("resolution_hours", sa.Float, nullable=False),
        sa.Column("keywords", sa.JSON, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("sort_order", sa.Integer, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("district_id", "code", name="uq_issue_categories_district_code"),
    )

    op.create_table(
        "issue_response_targets",
        sa.Column("neighbourhood_id", sa.String(36), primary_key=True),
        sa.Column("category_code", sa.String(48), primary_key=True),
        sa.Column("response_hours", sa.Float, nullable=False),
        sa.Column("set_by", sa.String(64), nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "issue_response_targets",
        "issue_categories",
        "issue_feedback",
        "grid_updates",
        "issue_dispatches",
        "sla_breaches",
        "sla_clocks",
        "issue_timeline",
        "issues",
    ):
        op.drop_table(table)
