from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, String, and_, bindparam, delete, exists, func, insert, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from shequtong_identity.domain import badges
from shequtong_identity.domain.throttle import Counter
from shequtong_identity.models import (
    Household,
    IdNumberReveal,
    ImportRef,
    JoinCode,
    LoginCode,
    LoginThrottle,
    Membership,
    Person,
    RateLimit,
    RefreshToken,
    Region,
    RoleAudit,
    RoleGrant,
    Shift,
    VolunteerRecord,
)
from shequtong_kit import auth, prefetch
from shequtong_kit.consumer import flushes_each_event
from shequtong_kit.db import InsertMany, UtcDateTime, insert_many, matches_any

IN_BATCH = 500  # values per IN (...) list


def _chunks(values: Sequence[Any], size: int = IN_BATCH) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _insert_ignoring_conflicts(session: AsyncSession, model: Any) -> Any:
    """INSERT … ON CONFLICT DO NOTHING for PostgreSQL and SQLite."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(model)


class RegionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, region_id: str) -> Region | None:
        return await prefetch.get(self.session, Region, region_id)

    async def by_code(self, code: str) -> Region | None:
        return (await self.session.execute(select(Region).where(Region.code == code))).scalar_one_or_none()

    async def add(self, region: Region) -> None:
        self.session.add(region)
        await self.session.flush()

    async def children(self, parent_id: str | None, level: int | None, after: str | None, limit: int) -> list[Region]:
        query = select(Region).order_by(Region.id).limit(limit)
        if parent_id:
            query = query.where(Region.parent_id == parent_id)
        if level:
            query = query.where(Region.level == level)
        if after:
            query = query.where(Region.id > after)
        return list((await self.session.execute(query)).scalars())


@dataclass(frozen=True)
class MembershipView:
    membership: Membership
    person: Person
    household: Household


class PeopleRepository:
    """Persons, households and memberships."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, *rows: object) -> None:
        self.session.add_all(rows)
        await self.session.flush()

    async def person(self, person_id: str) -> Person | None:
        return await prefetch.get(self.session, Person, person_id)

    async def person_by_phone(self, phone: str) -> Person | None:
        return (await self.session.execute(select(Person).where(Person.phone == phone))).scalar_one_or_none()

    async def id_number_taken(self, id_hmac: str) -> bool:
        return bool(await self.session.scalar(select(exists().where(Person.id_number_hmac == id_hmac))))

    async def household(self, household_id: str) -> Household | None:
        return await self.session.get(Household, household_id)

    async def household_at(self, neighbourhood_id: str, address_key: str) -> Household | None:
        query = select(Household).where(
            Household.neighbourhood_id == neighbourhood_id, Household.address_key == address_key
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def households(self, neighbourhood_id: str, after: str | None, limit: int) -> list[Household]:
        query = select(Household).where(Household.neighbourhood_id == neighbourhood_id).order_by(Household.id)
        if after:
            query = query.where(Household.id > after)
        return list((await self.session.execute(query.limit(limit))).scalars())

    async def membership(self, membership_id: str) -> Membership | None:
        return await self.session.get(Membership, membership_id)

    async def active_membership(self, person_id: str, neighbourhood_id: str) -> Membership | None:
        query = select(Membership).where(
            Membership.person_id == person_id,
            Membership.neighbourhood_id == neighbourhood_id,
            Membership.state.in_((1, 2)),
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    def _views(self) -> Select[Membership, Person, Household]:
        return (
            select(Membership, Person, Household)
            .join(Person, Person.id == Membership.person_id)
            .join(Household, Household.id == Membership.household_id)
        )

    async def view(self, membership_id: str) -> MembershipView | None:
        row = (await self.session.execute(self._views().where(Membership.id == membership_id))).first()
        return MembershipView(row[0], row[1], row[2]) if row else None

    async def views_of_person(self, person_id: str) -> list[MembershipView]:
        query = self._views().where(Membership.person_id == person_id).order_by(Membership.id)
        return [MembershipView(row[0], row[1], row[2]) for row in (await self.session.execute(query)).all()]

    async def queue(
        self, neighbourhood_id: str, state: int | None, after: str | None, limit: int
    ) -> list[MembershipView]:
        query = self._views().where(Membership.neighbourhood_id == neighbourhood_id)
        if state:
            query = query.where(Membership.state == state)
        if after:
            query = query.where(Membership.id > after)
        query = query.order_by(Membership.id).limit(limit)
        return [MembershipView(row[0], row[1], row[2]) for row in (await self.session.execute(query)).all()]

    async def verified_neighbourhoods(self, person_id: str) -> list[str]:
        query = select(Membership.neighbourhood_id).where(Membership.person_id == person_id, Membership.state == 2)
        return list((await self.session.execute(query)).scalars())


class JoinCodeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, code: str) -> JoinCode | None:
        return await self.session.get(JoinCode, code)

    async def add(self, code: JoinCode) -> None:
        self.session.add(code)
        await self.session.flush()

    async def consume(self, code: str, now: datetime) -> bool:
        """Counts one use, atomically, only while the code is usable."""
        result = await self.session.execute(
            update(JoinCode)
            .where(
                JoinCode.code == code,
                JoinCode.revoked_at.is_(None),
                JoinCode.expires_at > now,
                JoinCode.use_count < JoinCode.max_uses,
            )
            .values(use_count=JoinCode.use_count + 1)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]

    async def of_neighbourhood(
        self, neighbourhood_id: str, after: tuple[datetime, str] | None, limit: int
    ) -> list[JoinCode]:
        query = select(JoinCode).where(JoinCode.neighbourhood_id == neighbourhood_id)
        if after:
            query = query.where(
                or_(
                    JoinCode.created_at < after[0],
                    and_(JoinCode.created_at == after[0], JoinCode.code < after[1]),
                )
            )
        query = query.order_by(JoinCode.created_at.desc(), JoinCode.code.desc()).limit(limit)
        return list((await self.session.execute(query)).scalars())


class RoleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, *rows: object) -> None:
        self.session.add_all(rows)
        if flushes_each_event(self.session):
            await self.session.flush()

    async def get(self, grant_id: str) -> RoleGrant | None:
        return await self.session.get(RoleGrant, grant_id)

    async def active_of(self, person_id: str) -> list[RoleGrant]:
        query = select(RoleGrant).where(RoleGrant.person_id == person_id, RoleGrant.revoked_at.is_(None))
        return list((await self.session.execute(query)).scalars())

    async def active(self, person_id: str, role: str, scope: str) -> RoleGrant | None:
        query = select(RoleGrant).where(
            RoleGrant.person_id == person_id,
            RoleGrant.role == role,
            RoleGrant.scope == scope,
            RoleGrant.revoked_at.is_(None),
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def holders(self, scope: str, roles: tuple[str, ...]) -> list[RoleGrant]:
        """Active grants of `roles` at `scope`, oldest first."""
        query = (
            select(RoleGrant)
            .where(RoleGrant.scope == scope, RoleGrant.role.in_(roles), RoleGrant.revoked_at.is_(None))
            .order_by(RoleGrant.granted_at, RoleGrant.id)
        )
        return list((await self.session.execute(query)).scalars())

    async def grants(
        self, person_id: str | None, scope: str | None, include_revoked: bool, after: str | None, limit: int
    ) -> list[RoleGrant]:
        query = select(RoleGrant)
        if person_id:
            query = query.where(RoleGrant.person_id == person_id)
        if scope:
            query = query.where(RoleGrant.scope == scope)
        if not include_revoked:
            query = query.where(RoleGrant.revoked_at.is_(None))
        if after:
            query = query.where(RoleGrant.id > after)
        return list((await self.session.execute(query.order_by(RoleGrant.id).limit(limit))).scalars())


class ShiftRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, shift: Shift) -> None:
        self.session.add(shift)
        await self.session.flush()

    async def covering(self, neighbourhood_id: str, at: datetime) -> list[Shift]:
        query = select(Shift).where(
            Shift.neighbourhood_id == neighbourhood_id, Shift.starts_at <= at, Shift.ends_at > at
        )
        return list((await self.session.execute(query)).scalars())

    async def upcoming(
        self, neighbourhood_id: str, since: datetime, after: tuple[datetime, str] | None, limit: int
    ) -> list[Shift]:
        query = select(Shift).where(Shift.neighbourhood_id == neighbourhood_id, Shift.ends_at > since)
        if after:
            query = query.where(or_(Shift.starts_at > after[0], and_(Shift.starts_at == after[0], Shift.id > after[1])))
        query = query.order_by(Shift.starts_at, Shift.id).limit(limit)
        return list((await self.session.execute(query)).scalars())


class SessionRepository:
    """Refresh-token families and the login throttle."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, token: RefreshToken) -> None:
        self.session.add(token)
        await self.session.flush()

    async def by_hash(self, token_hash: str) -> RefreshToken | None:
        query = select(RefreshToken).where(RefreshToken.token_hash == token_hash)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def family_revoked(self, family_id: str) -> bool:
        query = select(exists().where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_not(None)))
        return bool(await self.session.scalar(query))

    async def mark_used(self, token_id: str, now: datetime) -> bool:
        result = await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == token_id, RefreshToken.used_at.is_(None), RefreshToken.revoked_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]

    async def revoke_family(self, family_id: str, now: datetime) -> int:
        """Ends the family; the number of its tokens that were still live (0: it had already ended)."""
        result = await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def throttle(self, phone: str) -> LoginThrottle | None:
        return await self.session.get(LoginThrottle, phone)

    async def clear_throttle(self, phone: str) -> None:
        await self.session.execute(delete(LoginThrottle).where(LoginThrottle.phone == phone))


class RegionImportRepository:
    """Look-ups and batch inserts for CSV imports."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_codes(self, codes: Iterable[str]) -> dict[str, Region]:
        found: dict[str, Region] = {}
        for chunk in _chunks(sorted(set(codes))):
            for region in (await self.session.execute(select(Region).where(Region.code.in_(chunk)))).scalars():
                found[region.code] = region
        return found

    async def codes_of(self, ids: Iterable[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in _chunks(sorted(set(ids))):
            rows = await self.session.execute(select(Region.id, Region.code).where(Region.id.in_(chunk)))
            found.update({row[0]: row[1] for row in rows})
        return found

    async def insert_regions(self, rows: list[dict[str, Any]]) -> None:
        for chunk in _chunks(rows, 1000):
            await self.session.execute(insert(Region), list(chunk))

    async def household_keys(self, neighbourhood_ids: Iterable[str]) -> set[tuple[str, str]]:
        keys: set[tuple[str, str]] = set()
        for chunk in _chunks(sorted(set(neighbourhood_ids)), 100):
            rows = await self.session.execute(
                select(Household.neighbourhood_id, Household.address_key).where(Household.neighbourhood_id.in_(chunk))
            )
            keys.update((row[0], row[1]) for row in rows)
        return keys

    async def insert_households(self, rows: list[dict[str, Any]]) -> list[str]:
        """Inserts, skipping any a concurrent writer added meanwhile; the ids actually inserted."""
        if not rows:
            return []
        statement = (
            _insert_ignoring_conflicts(self.session, Household)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["neighbourhood_id", "address_key"])
            .returning(Household.id)
        )
        return [row[0] for row in await self.session.execute(statement)]


class ResidentImportRepository:
    """Look-ups and multi-row inserts for ImportResidents (every IN list chunked)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _pairs(self, query: Any, column: Any, values: Iterable[str]) -> list[Any]:
        wanted = sorted(set(values))
        statement = query.where(matches_any(column, "values", self.session.get_bind().dialect.name))
        found: list[Any] = []
        for start in range(0, len(wanted), 1000):
            found.extend((await self.session.execute(statement, {"values": wanted[start : start + 1000]})).all())
        return found

    async def imported(self, kind: str, refs: Iterable[str]) -> dict[str, str]:
        """external_ref -> entity id of the refs imported before."""
        query = select(ImportRef.external_ref, ImportRef.entity_id).where(ImportRef.kind == kind)
        return {r[0]: r[1] for r in await self._pairs(query, ImportRef.external_ref, refs)}

    async def neighbourhoods(
        self, ids: Iterable[str], codes: Iterable[str], level: int
    ) -> tuple[set[str], dict[str, str]]:
        by_id = await self._pairs(select(Region.id).where(Region.level == level), Region.id, ids)
        by_code = await self._pairs(select(Region.code, Region.id).where(Region.level == level), Region.code, codes)
        return {r[0] for r in by_id}, {r[0]: r[1] for r in by_code}

    async def household_places(self, ids: Iterable[str]) -> dict[str, str]:
        rows = await self._pairs(select(Household.id, Household.neighbourhood_id), Household.id, ids)
        return {r[0]: r[1] for r in rows}

    async def households_at(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """(neighbourhood id, address key) -> household id of those that exist."""
        found: dict[tuple[str, str], str] = {}
        query = select(Household.neighbourhood_id, Household.address_key, Household.id)
        for chunk in _chunks(sorted(set(keys))):
            rows = await self.session.execute(
                query.where(tuple_(Household.neighbourhood_id, Household.address_key).in_(list(chunk)))
            )
            found.update({(r[0], r[1]): r[2] for r in rows})
        return found

    async def people_by_id_hmac(self, hmacs: Iterable[str]) -> list[tuple[str, str, str]]:
        """(id_number_hmac, person id, phone)."""
        query = select(Person.id_number_hmac, Person.id, Person.phone)
        return [(r[0], r[1], r[2]) for r in await self._pairs(query, Person.id_number_hmac, hmacs)]

    async def people_by_phone(self, phones: Iterable[str]) -> dict[str, str]:
        rows = await self._pairs(select(Person.phone, Person.id), Person.phone, phones)
        return {r[0]: r[1] for r in rows}

    async def active_memberships(self, person_ids: Iterable[str]) -> set[tuple[str, str]]:
        query = select(Membership.person_id, Membership.neighbourhood_id).where(Membership.state.in_((1, 2)))
        return {(r[0], r[1]) for r in await self._pairs(query, Membership.person_id, person_ids)}

    async def memberships(self, ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        """membership id -> (person id, household id)."""
        query = select(Membership.id, Membership.person_id, Membership.household_id)
        return {r[0]: (r[1], r[2]) for r in await self._pairs(query, Membership.id, ids)}

    async def insert_households(self, rows: list[dict[str, Any]]) -> list[str]:
        """Inserts in address order (concurrent batches lock in the same order), skipping any another batch
        added meanwhile; the ids actually inserted."""
        if not rows:
            return []
        rows = sorted(rows, key=lambda r: (r["neighbourhood_id"], r["address_key"]))
        return list(await _NEW_HOUSEHOLDS.rows(self.session, rows))

    async def insert(self, model: Any, rows: list[dict[str, Any]]) -> None:
        """The rows (each with every column of the table) in one statement per 1,000 (`InsertMany`)."""
        if rows:
            await insert_many(model.__table__).rows(self.session, rows)

    async def verified_of(self, person_ids: Iterable[str]) -> list[tuple[str, str, str, str]]:
        """(person id, neighbourhood id, household id, display name) of every verified membership."""
        query = (
            select(Membership.person_id, Membership.neighbourhood_id, Membership.household_id, Person.display_name)
            .join(Person, Person.id == Membership.person_id)
            .where(Membership.state == 2)
        )
        return [(r[0], r[1], r[2], r[3]) for r in await self._pairs(query, Membership.person_id, person_ids)]


class CodeRepository:
    """One-time login codes and the throttling counters."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, code: LoginCode) -> None:
        self.session.add(code)
        await self.session.flush()

    async def latest(self, phone_key: str, purpose: str) -> LoginCode | None:
        query = (
            select(LoginCode)
            .where(LoginCode.phone_key == phone_key, LoginCode.purpose == purpose)
            .order_by(LoginCode.created_at.desc(), LoginCode.id.desc())
            .limit(1)
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def retire_unused(self, phone_key: str, purpose: str, now: datetime) -> None:
        """A new code replaces the ones sent before it."""
        await self.session.execute(
            update(LoginCode)
            .where(LoginCode.phone_key == phone_key, LoginCode.purpose == purpose, LoginCode.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )

    async def count_attempt(self, code_id: str) -> None:
        await self.session.execute(
            update(LoginCode)
            .where(LoginCode.id == code_id)
            .values(attempts=LoginCode.attempts + 1)
            .execution_options(synchronize_session=False)
        )

    async def use(self, code_id: str, now: datetime, max_tries: int) -> bool:
        """Marks the code used, atomically, only if it still was usable (a code signs in once)."""
        result = await self.session.execute(
            update(LoginCode)
            .where(LoginCode.id == code_id, LoginCode.used_at.is_(None), LoginCode.attempts < max_tries)
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]

    async def purge_before(self, when: datetime) -> None:
        await self.session.execute(delete(LoginCode).where(LoginCode.expires_at < when))


class RateLimitRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def peek(self, key: str) -> Counter | None:
        row = await self.session.get(RateLimit, key)
        return Counter(row.count, row.window_started_at, row.locked_until) if row else None

    async def lock(self, keys: Sequence[str]) -> dict[str, RateLimit]:
        """The counters, created when missing and locked (FOR UPDATE, in sorted order) for this transaction."""
        ordered = sorted(set(keys))
        for key in ordered:
            await self.session.execute(
                _insert_ignoring_conflicts(self.session, RateLimit)
                .values(key=key, count=0, window_started_at=None, locked_until=None)
                .on_conflict_do_nothing(index_elements=["key"])
            )
        query = select(RateLimit).where(RateLimit.key.in_(ordered)).order_by(RateLimit.key).with_for_update()
        rows = (await self.session.execute(query.execution_options(populate_existing=True))).scalars()
        return {row.key: row for row in rows}

    async def purge_before(self, when: datetime) -> int:
        """Forgets counters whose window started before `when` and that hold no lock any more."""
        result = await self.session.execute(
            delete(RateLimit).where(
                RateLimit.window_started_at < when,
                or_(RateLimit.locked_until.is_(None), RateLimit.locked_until < when),
            )
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    @staticmethod
    def counter(row: RateLimit) -> Counter:
        return Counter(row.count, row.window_started_at, row.locked_until)

    @staticmethod
    def store(row: RateLimit, counter: Counter) -> None:
        row.count = counter.count
        row.window_started_at = counter.window_started_at
        row.locked_until = counter.locked_until


class RevealRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, reveal: IdNumberReveal) -> None:
        self.session.add(reveal)
        await self.session.flush()

    async def registered_with(self, person_id: str, neighbourhood_id: str) -> bool:
        query = select(
            exists().where(Membership.person_id == person_id, Membership.neighbourhood_id == neighbourhood_id)
        )
        return bool(await self.session.scalar(query))

    async def listing(
        self, region: tuple[str, str] | None, person_id: str | None, before: str | None, limit: int
    ) -> list[IdNumberReveal]:
        """Newest first. `region`: ("n"|"s"|"d", id)."""
        query = select(IdNumberReveal)
        if region is not None:
            column = {
                "n": IdNumberReveal.neighbourhood_id,
                "s": IdNumberReveal.subdistrict_id,
                "d": IdNumberReveal.district_id,
            }[region[0]]
            query = query.where(column == region[1])
        if person_id:
            query = query.where(IdNumberReveal.person_id == person_id)
        if before:
            query = query.where(IdNumberReveal.id < before)
        return list((await self.session.execute(query.order_by(IdNumberReveal.id.desc()).limit(limit))).scalars())


class VolunteerRepository:
    """The volunteer badge's rows for a batch of the volunteers service's events (an import of volunteers sends
    them by the hundred thousand): read as plain values, 1,000 keys per statement (one array parameter on
    PostgreSQL), and written with one statement per table and 1,000 rows — no ORM objects."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    async def _among(self, query: Any, column: Any, values: Iterable[str]) -> list[Any]:
        wanted = sorted(set(values))
        statement = query.where(matches_any(column, "values", self._dialect))
        found: list[Any] = []
        for start in range(0, len(wanted), 1000):
            found.extend((await self.session.execute(statement, {"values": wanted[start : start + 1000]})).all())
        return found

    async def records(self, volunteer_ids: Iterable[str]) -> dict[str, badges.Record]:
        """The stored records of these volunteers, by volunteer id."""
        c = _RECORDS.c
        query = select(c.volunteer_id, c.person_id, c.neighbourhood_id, c.team_id, c.active)
        return {
            row[0]: (row[0], row[1], row[2], row[3], bool(row[4]))
            for row in await self._among(query, c.volunteer_id, volunteer_ids)
        }

    async def active_counts(self, person_ids: Iterable[str]) -> dict[tuple[str, str], int]:
        """Active records per (person, neighbourhood) of these people (absent: none)."""
        c = _RECORDS.c
        query = select(c.person_id, c.neighbourhood_id, func.count()).where(c.active.is_(True))
        statement_rows = await self._among(query.group_by(c.person_id, c.neighbourhood_id), c.person_id, person_ids)
        return {(row[0], row[1]): int(row[2]) for row in statement_rows}

    async def badges_held(self, person_ids: Iterable[str]) -> dict[tuple[str, str], str]:
        """The active volunteer grants of these people: grant id by (person, scope)."""
        c = _GRANTS.c
        query = select(c.person_id, c.scope, c.id).where(c.role == auth.VOLUNTEER, c.revoked_at.is_(None))
        return {(row[0], row[1]): row[2] for row in await self._among(query, c.person_id, person_ids)}

    async def display_names(self, person_ids: Iterable[str]) -> dict[str, str]:
        """Display name by person id, of those that exist."""
        c = Person.__table__.c
        return {row[0]: row[1] for row in await self._among(select(c.id, c.display_name), c.id, person_ids)}

    async def neighbourhoods(self, region_ids: Iterable[str], level: int) -> set[str]:
        """Those of the ids that are regions of `level` (neighbourhoods)."""
        c = Region.__table__.c
        return {row[0] for row in await self._among(select(c.id).where(c.level == level), c.id, region_ids)}

    async def _update(self, statement: Any, ids: Sequence[str], values: dict[str, Any]) -> None:
        for start in range(0, len(ids), 1000):
            await self.session.execute(statement, {"ids": list(ids[start : start + 1000]), **values})

    async def add_records(self, rows: Sequence[dict[str, Any]]) -> None:
        """New records, each row with every column."""
        if rows:
            await insert_many(_RECORDS).rows(self.session, rows)

    async def end_records(self, volunteer_ids: Sequence[str], at: datetime) -> None:
        """These records turn inactive."""
        if volunteer_ids:
            statement = (
                update(_RECORDS)
                .where(matches_any(_RECORDS.c.volunteer_id, "ids", self._dialect))
                .values(active=False, updated_at=bindparam("at", type_=UtcDateTime()))
            )
            await self._update(statement, volunteer_ids, {"at": at})

    async def revoke(self, grant_ids: Sequence[str], at: datetime, by: str) -> None:
        """These grants are revoked (before any new grant of the batch is added: one active badge per person
        and scope at every statement, as the unique active grant index wants)."""
        if grant_ids:
            statement = (
                update(_GRANTS)
                .where(matches_any(_GRANTS.c.id, "ids", self._dialect))
                .values(revoked_at=bindparam("at", type_=UtcDateTime()), revoked_by=bindparam("by", type_=String()))
            )
            await self._update(statement, grant_ids, {"at": at, "by": by})

    async def add_grants(self, grants: Sequence[dict[str, Any]], audits: Sequence[dict[str, Any]]) -> None:
        """New grants and audit rows, each row with every column."""
        if grants:
            await insert_many(_GRANTS).rows(self.session, grants)
        if audits:
            await insert_many(RoleAudit.__table__).rows(self.session, audits)


_RECORDS: Any = VolunteerRecord.__table__
_GRANTS: Any = RoleGrant.__table__


_NEW_HOUSEHOLDS = InsertMany(Household.__table__, ["neighbourhood_id", "address_key"], "id")
