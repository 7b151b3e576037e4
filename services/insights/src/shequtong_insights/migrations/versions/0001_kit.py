"""the kit's tables (outbox, inbox, idempotency keys, region directory)

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from alembic import op

from shequtong_kit.db import create_kit_tables, drop_kit_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_kit_tables(op.get_bind())


def downgrade() -> None:
    drop_kit_tables(op.get_bind())
