"""people, households, memberships, join codes, role grants and audit, shifts, refresh tokens, throttle

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from shequtong_kit.db import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ACTIVE_STATES = sa.text("state IN (1, 2)")
ACTIVE_GRANT = sa.text("revoked_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "persons",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("real_name", sa.String(50), nullable=False),
        sa.Column("display_name", sa.String(60), nullable=False),
        sa.Column("phone", sa.String(20), nullable=False, unique=True),
        sa.Column("id_number_hmac", sa.String(64), nullable=False, unique=True),
        sa.Column("id_number_enc", sa.LargeBinary, nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "households",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("neighbourhood_id", sa.String(36), nullable=False, index=True),
        sa.Column("address_key", sa.String(250), nullable=False),
        sa.Column("building", sa.String(40), nullable=False),
        sa.Column("unit", sa.String(40), nullable=False),
        sa.Column("room", sa.String(40), nullable=False),
        sa.Column("village_group", sa.String(40), nullable=False),
        sa.Column("house_number", sa.String(40), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("neighbourhood_id", "address_key", name="uq_households_address"),
    )
    op.create_table(
        "memberships",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("person_id", sa.String(36), nullable=False, index=True),
        sa.Column("neighbourhood_id", sa.String(36), nullable=False),
        sa.Column("household_id", sa.String(36), nullable=False),
        sa.Column("state", sa.Integer, nullable=False),
        sa.Column("party_member_claimed", sa.Boolean, nullable=False),
        sa.Column("join_code", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("reviewed_by", sa.String(64), nullable=False),
        sa.Column("reviewed_at", UtcDateTime, nullable=True),
        sa.Column("left_at", UtcDateTime, nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_memberships_queue", "memberships", ["neighbourhood_id", "state", "id"])
    op.create_index(
        "uq_memberships_active",
        "memberships",
        ["person_id", "neighbourhood_id"],
        unique=True,
        postgresql_where=ACTIVE_STATES,
        sqlite_where=ACTIVE_STATES,
    )
    op.create_table(
        "join_codes",
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("neighbourhood_id", sa.String(36), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("max_uses", sa.Integer, nullable=False),
        sa.Column("use_count", sa.Integer, nullable=False),
        sa.Column("revoked_at", UtcDateTime, nullable=True),
        sa.Column("revoked_by", sa.String(64), nullable=False),
    )
    op.create_index("ix_join_codes_neighbourhood", "join_codes", ["neighbourhood_id", "created_at", "code"])
    op.create_table(
        "role_grants",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("person_id", sa.String(36), nullable=False, index=True),
        sa.Column("role", sa.String(40), nullable=False),
        sa.Column("scope", sa.String(80), nullable=False),
        sa.Column("granted_by", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("granted_at", UtcDateTime, nullable=False),
        sa.Column("revoked_at", UtcDateTime, nullable=True),
        sa.Column("revoked_by", sa.String(64), nullable=False),
    )
    op.create_index("ix_role_grants_scope", "role_grants", ["scope", "role"])
    op.create_index(
        "uq_role_grants_active",
        "role_grants",
        ["person_id", "role", "scope"],
        unique=True,
        postgresql_where=ACTIVE_GRANT,
        sqlite_where=ACTIVE_GRANT,
    )
    op.create_table(
        "role_audit",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("action", sa.String(10), nullable=False),
        sa.Column("grant_id", sa.String(36), nullable=False, index=True),
        sa.Column("person_id", sa.String(36), nullable=False, index=True),
        sa.Column("role", sa.String(40), nullable=False),
        sa.Column("scope", sa.String(80), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "shifts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("neighbourhood_id", sa.String(36), nullable=False),
        sa.Column("person_id", sa.String(36), nullable=False, index=True),
        sa.Column("starts_at", UtcDateTime, nullable=False),
        sa.Column("ends_at", UtcDateTime, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_shifts_neighbourhood", "shifts", ["neighbourhood_id", "starts_at", "id"])
    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("family_id", sa.String(36), nullable=False, index=True),
        sa.Column("person_id", sa.String(36), nullable=False, index=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("used_at", UtcDateTime, nullable=True),
        sa.Column("revoked_at", UtcDateTime, nullable=True),
    )
    op.create_table(
        "login_throttle",
        sa.Column("phone", sa.String(20), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("window_started_at", UtcDateTime, nullable=True),
        sa.Column("locked_until", UtcDateTime, nullable=True),
    )


def downgrade() -> None:
    for table in (
        "login_throttle",
        "refresh_tokens",
        "shifts",
        "role_audit",
        "role_grants",
        "join_codes",
        "memberships",
        "households",
        "persons",
    ):
        op.drop_table(table)
