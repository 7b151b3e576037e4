"""region tree and the kit's tables

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

from shequtong_kit.db import UtcDateTime, create_kit_tables, drop_kit_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_kit_tables(op.get_bind())
    op.create_table(
        "regions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("code", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("parent_id", sa.String(36), index=True),
        sa.Column("kind", sa.Integer, nullable=False),
        sa.Column("district_id", sa.String(36), index=True),
        sa.Column("subdistrict_id", sa.String(36), index=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("regions")
    drop_kit_tables(op.get_bind())
