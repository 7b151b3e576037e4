"""imports: the source system's key on imported issues (unique: a re-sent batch creates nothing twice)

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


def upgrade() -> None:
    op.add_column("issues", sa.Column("external_ref", sa.String(100), nullable=True))
    op.create_index("uq_issues_external_ref", "issues", ["external_ref"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_issues_external_ref", table_name="issues")
    op.drop_column("issues", "external_ref")
