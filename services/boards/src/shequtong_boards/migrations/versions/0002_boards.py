"""boards

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
        "boards",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("neighbourhood_id", sa.String(36), nullable=False, index=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("neighbourhood_id", "kind", name="uq_boards_neighbourhood_kind"),
    )


def downgrade() -> None:
    op.drop_table("boards")
