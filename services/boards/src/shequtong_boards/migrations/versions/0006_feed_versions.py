"""feed versions: a number per place (a neighbourhood, a district's own boards, everyone's names) that moves
with every change to what a first feed page shows, so each process may keep first pages in memory and
check one row per place instead of building them again

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed_versions",
        sa.Column("place", sa.String(48), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("feed_versions")
