"""projections (neighbourhoods, daily counters, activity, members, issues, topics, conventions),
work prompts, rebuild runs and the lock rows

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
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
        "ins_neighbourhoods",
        sa.Column("neighbourhood_id", sa.String(36), primary_key=True),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.Integer, nullable=False),
        sa.Column("subdistrict_id", sa.String(36), nullable=False, index=True),
        sa.Column("district_id", sa.String(36), nullable=False, index=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "ins_daily",
        sa.Column("neighbourhood_id", sa.String(36), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("metric", sa.String(48), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "ins_activity",
        sa.Column("neighbourhood_id", sa.String(36), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("person_id", sa.String(36), primary_key=True),
    )
    op.create_table(
        "ins_members",
        sa.Column("membership_id", sa.String(36), primary_key=True),
        sa.Column("neighbourhood_id", sa.String(36), nullable=False, index=True),
        sa.Column("person_id", sa.String(36), nullable=False),
        sa.Column("household_id", sa.String(36), nullable=False),
        sa.Column("joined_at", UtcDateTime),
        sa.Column("verified_at", UtcDateTime),
        sa.Column("left_at", UtcDateTime),
        sa.Column("rejected_at", UtcDateTime),
    )
    op.create_table(
        "ins_issues",
        sa.Column("issue_id", sa.String(36), primary_key=True),
        sa.Column("neighbourhood_id", sa.String(36), nullable=False),
        sa.Column("category_code", sa.String(64), nullable=False),
        sa.Column("category_at", UtcDateTime),
        sa.Column("building", sa.String(200), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("reported_at", UtcDateTime),
        sa.Column("response_due_at", UtcDateTime),
        sa.Column("first_response_at", UtcDateTime),
        sa.Column("first_resolved_at", UtcDateTime),
        sa.Column("last_resolved_at", UtcDateTime),
        sa.Column("resolved_level", sa.String(32), nullable=False),
        sa.Column("last_reopened_at", UtcDateTime),
        sa.Column("closed_at", UtcDateTime),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("state_at", UtcDateTime),
        sa.Column("first_escalated_at", UtcDateTime),
        sa.Column("first_dispatched_at", UtcDateTime),
        sa.Column("sla_breaches", sa.Integer, nullable=False),
        sa.Column("rating", sa.Integer, nullable=False),
        sa.Column("fixed", sa.Boolean, nullable=False),
        sa.Column("rated_at", UtcDateTime),
    )
    op.create_index("ix_ins_issues_reported", "ins_issues", ["neighbourhood_id", "reported_at"])
    op.create_index("ix_ins_issues_resolved", "ins_issues", ["neighbourhood_id", "last_resolved_at"])
    op.create_table(
        "ins_topics",
        sa.Column("topic_id", sa.String(36), primary_key=True),
        sa.Column("neighbourhood_id", sa.String(36), nullable=False, index=True),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("stage_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "ins_conventions",
        sa.Column("convention_id", sa.String(36), primary_key=True),
        sa.Column("neighbourhood_id", sa.String(36), nullable=False, index=True),
        sa.Column("first_adopted_at", UtcDateTime, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    locks = op.create_table("ins_locks", sa.Column("name", sa.String(32), primary_key=True))
    op.bulk_insert(locks, [{"name": "projection"}, {"name": "detector"}])
    op.create_table(
        "ins_rebuilds",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(80), nullable=False),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.Column("finished_at", UtcDateTime),
        sa.Column("rows_dropped", sa.BigInteger, nullable=False),
        sa.Column("targets", sa.JSON, nullable=False),
    )
    op.create_table(
        "ins_prompts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("place_id", sa.String(36), nullable=False),
        sa.Column("neighbourhood_id", sa.String(36), nullable=False, index=True),
        sa.Column("subdistrict_id", sa.String(36), nullable=False, index=True),
        sa.Column("district_id", sa.String(36), nullable=False, index=True),
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("window_start", UtcDateTime, nullable=False),
        sa.Column("window_end", UtcDateTime, nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("statement", sa.Text, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(80), nullable=False),
        sa.Column("decision_note", sa.String(500), nullable=False),
        sa.Column("decided_at", UtcDateTime),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("level", "place_id", "rule", "subject", "window_end", name="uq_ins_prompts_finding"),
    )
    op.create_index("ix_ins_prompts_place", "ins_prompts", ["level", "place_id", "rule", "subject"])


def downgrade() -> None:
    for table in (
        "ins_prompts",
        "ins_rebuilds",
        "ins_locks",
        "ins_conventions",
        "ins_topics",
        "ins_issues",
        "ins_members",
        "ins_activity",
        "ins_daily",
        "ins_neighbourhoods",
    ):
        op.drop_table(table)
