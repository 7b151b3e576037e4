from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, LargeBinary, String, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shequtong_kit.db import UtcDateTime


class Base(DeclarativeBase):
    pass


class Region(Base):
    __tablename__ = "regions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    level: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[str | None] = mapped_column(String(36), index=True)
    kind: Mapped[int] = mapped_column(Integer, default=0)
    district_id: Mapped[str | None] = mapped_column(String(36), index=True)
    subdistrict_id: Mapped[str | None] = mapped_column(String(36), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Person(Base):
    """A real-name person. The ID number exists only as an HMAC (look-up) and an AES-GCM ciphertext."""

    __tablename__ = "persons"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    real_name: Mapped[str] = mapped_column(String(50))
    display_name: Mapped[str] = mapped_column(String(60))
    phone: Mapped[str] = mapped_column(String(20), unique=True)
    id_number_hmac: Mapped[str] = mapped_column(String(64), unique=True)
    id_number_enc: Mapped[bytes] = mapped_column(LargeBinary)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    def __repr__(self) -> str:  # never print personal data
        return f"Person(id={self.id!r})"


class Household(Base):
    __tablename__ = "households"
    __table_args__ = (UniqueConstraint("neighbourhood_id", "address_key", name="uq_households_address"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    neighbourhood_id: Mapped[str] = mapped_column(String(36), index=True)
    address_key: Mapped[str] = mapped_column(String(250))
    building: Mapped[str] = mapped_column(String(40), default="")
    unit: Mapped[str] = mapped_column(String(40), default="")
    room: Mapped[str] = mapped_column(String(40), default="")
    village_group: Mapped[str] = mapped_column(String(40), default="")
    house_number: Mapped[str] = mapped_column(String(40), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


ACTIVE_STATES = "state IN (1, 2)"


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (
        Index("ix_memberships_queue", "neighbourhood_id", "state", "id"),
        Index(
            "uq_memberships_active",
            "person_id",
            "neighbourhood_id",
            unique=True,
            postgresql_where=text(ACTIVE_STATES),
            sqlite_where=text(ACTIVE_STATES),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(36), index=True)
    neighbourhood_id: Mapped[str] = mapped_column(String(36))
    household_id: Mapped[str] = mapped_column(String(36))
    state: Mapped[int] = mapped_column(Integer)
    party_member_claimed: Mapped[bool] = mapped_column(Boolean, default=False)
    join_code: Mapped[str] = mapped_column(String(32), default="")
    reason: Mapped[str] = mapped_column(String(500), default="")
    reviewed_by: Mapped[str] = mapped_column(String(64), default="")
    reviewed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    left_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class JoinCode(Base):
    __tablename__ = "join_codes"
    __table_args__ = (Index("ix_join_codes_neighbourhood", "neighbourhood_id", "created_at", "code"),)

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    neighbourhood_id: Mapped[str] = mapped_column(String(36))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    max_uses: Mapped[int] = mapped_column(Integer)
    use_count: Mapped[int] = mapped_column(Integer, default=0)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked_by: Mapped[str] = mapped_column(String(64), default="")


ACTIVE_GRANT = "revoked_at IS NULL"


class RoleGrant(Base):
    __tablename__ = "role_grants"
    __table_args__ = (
        Index("ix_role_grants_scope", "scope", "role"),
        Index(
            "uq_role_grants_active",
            "person_id",
            "role",
            "scope",
            unique=True,
            postgresql_where=text(ACTIVE_GRANT),
            sqlite_where=text(ACTIVE_GRANT),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(36), index=True)
    role: Mapped[str] = mapped_column(String(40))
    scope: Mapped[str] = mapped_column(String(80))
    granted_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500), default="")
    granted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked_by: Mapped[str] = mapped_column(String(64), default="")


class RoleAudit(Base):
    """Every grant and revocation: who, to whom, what, when, why."""

    __tablename__ = "role_audit"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    action: Mapped[str] = mapped_column(String(10))
    grant_id: Mapped[str] = mapped_column(String(36), index=True)
    person_id: Mapped[str] = mapped_column(String(36), index=True)
    role: Mapped[str] = mapped_column(String(40))
    scope: Mapped[str] = mapped_column(String(80))
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500), default="")
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class Shift(Base):
    __tablename__ = "shifts"
    __table_args__ = (Index("ix_shifts_neighbourhood", "neighbourhood_id", "starts_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    neighbourhood_id: Mapped[str] = mapped_column(String(36))
    person_id: Mapped[str] = mapped_column(String(36), index=True)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RefreshToken(Base):
    """Opaque refresh tokens, stored hashed; one family (sid) per login, rotated on every refresh."""

    __tablename__ = "refresh_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(36), index=True)
    person_id: Mapped[str] = mapped_column(String(36), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class LoginThrottle(Base):
    __tablename__ = "login_throttle"

    phone: Mapped[str] = mapped_column(String(20), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class LoginCode(Base):
    """A one-time code sent by SMS, stored as an HMAC only; the phone only as its HMAC too."""

    __tablename__ = "login_codes"
    __table_args__ = (
        Index("ix_login_codes_phone", "phone_key", "purpose", "created_at"),
        Index("ix_login_codes_expires", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    phone_key: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(20))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class RateLimit(Base):
    """Counters for throttling, keyed by "<what>:<HMAC of phone or client address>"."""

    __tablename__ = "rate_limits"
    __table_args__ = (Index("ix_rate_limits_window", "window_started_at"),)

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class IdNumberReveal(Base):
    """The audit of every full ID number shown: who saw whose, where, when and why."""

    __tablename__ = "id_number_reveals"
    __table_args__ = (
        Index("ix_reveals_district", "district_id", "id"),
        Index("ix_reveals_subdistrict", "subdistrict_id", "id"),
        Index("ix_reveals_neighbourhood", "neighbourhood_id", "id"),
        Index("ix_reveals_person", "person_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(36))
    revealed_by: Mapped[str] = mapped_column(String(64))
    neighbourhood_id: Mapped[str] = mapped_column(String(36))
    subdistrict_id: Mapped[str] = mapped_column(String(36))
    district_id: Mapped[str] = mapped_column(String(36))
    reason: Mapped[str] = mapped_column(String(500))
    revealed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class VolunteerRecord(Base):
    """The volunteers service's approved volunteers (one per person and team), from its events; the
    volunteer badge is held while one is active in the neighbourhood."""

    __tablename__ = "volunteer_records"
    __table_args__ = (Index("ix_volunteer_records_person", "person_id", "neighbourhood_id"),)

    volunteer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(64))
    neighbourhood_id: Mapped[str] = mapped_column(String(36))
    team_id: Mapped[str] = mapped_column(String(36), default="")
    active: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ImportRef(Base):
    """What a bulk import made for each external_ref (re-sending a batch creates nothing twice)."""

    __tablename__ = "import_refs"

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    external_ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    entity_id: Mapped[str] = mapped_column(String(36))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
