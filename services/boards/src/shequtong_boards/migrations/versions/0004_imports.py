"""imports: the source system's key on imported posts, comments and topics (unique: a re-sent batch
creates nothing twice)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("posts", "comments", "topics")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("external_ref", sa.String(100), nullable=True))
        op.create_index(f"uq_{table}_external_ref", table, ["external_ref"], unique=True)


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"uq_{table}_external_ref", table_name=table)
        op.drop_column(table, "external_ref")
