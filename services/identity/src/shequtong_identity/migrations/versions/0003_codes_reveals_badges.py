"""login codes, rate limits, the ID-number reveal audit, volunteer records

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

from shequtong_kit.db import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_codes",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("phone_key", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(20), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("used_at", UtcDateTime, nullable=True),
    )
    op.create_index("ix_login_codes_phone", "login_codes", ["phone_key", "purpose", "created_at"])
    op.create_index("ix_login_codes_expires", "login_codes", ["expires_at"])
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.String(120), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("window_started_at", UtcDateTime, nullable=True),
        sa.Column("locked_until", UtcDateTime, nullable=True),
    )
    op.create_index("ix_rate_limits_window", "rate_limits", ["window_started_at"])
    op.create_table(
        "id_number_reveals",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("person_id", sa.String(36), nullable=False),
        sa.Column("revealed_by", sa.String(64), nullable=False),
        sa.Column("neighbourhood_id", sa.String(36), nullable=False),
        sa.Column("subdistrict_id", sa.String(36), nullable=False),
        sa.Column("district_id", sa.String(36), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("revealed_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_reveals_district", "id_number_reveals", ["district_id", "id"])
    op.create_index("ix_reveals_subdistrict", "id_number_reveals", ["subdistrict_id", "id"])
    op.create_index("ix_reveals_neighbourhood", "id_number_reveals", ["neighbourhood_id", "id"])
    op.create_index("ix_reveals_person", "id_number_reveals", ["person_id", "id"])
    op.create_table(
        "volunteer_records",
        sa.Column("volunteer_id", sa.String(64), primary_key=True),
        sa.Column("person_id", sa.String(64), nullable=False),
        sa.Column("neighbourhood_id", sa.String(36), nullable=False),
        sa.Column("team_id", sa.String(36), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_volunteer_records_person", "volunteer_records", ["person_id", "neighbourhood_id"])


def downgrade() -> None:
    for table in ("volunteer_records", "id_number_reveals", "rate_limits", "login_codes"):
        op.drop_table(table)
