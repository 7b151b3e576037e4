"""issues' resolution deadline (for the overdue rule)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from shequtong_kit.db import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ins_issues") as batch:
        batch.add_column(sa.Column("resolution_due_at", UtcDateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ins_issues") as batch:
        batch.drop_column("resolution_due_at")
