"""SQLAlchemy queries of the volunteers service. Lists are keyset-paginated: each returns up to
`limit` rows after the cursor's key (callers ask for one more than they show to learn if more exist)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from shequtong_kit.auth import Lineage
from shequtong_kit.db import Upsert, flushes_each_event, insert_many, region_directory, write_later
from shequtong_kit.errors import InvalidArgument, NotFound
from shequtong_kit.pagination import decode_cursor
from shequtong_volunteers.domain import activities as activity_rules
from shequtong_volunteers.domain import bookings as booking_rules
from shequtong_volunteers.domain import ledger as ledger_rules
from shequtong_volunteers.domain import volunteers as volunteer_rules
from shequtong_volunteers.models import (
    Activity,
    ActivityAudience,
    Booking,
    HoursEntry,
    ImportRef,
    MutualAidLink,
    Offering,
    Organisation,
    OrganisationAdmin,
    Person,
    Signup,
    Slot,
    Storefront,
    StorefrontNeighbourhood,
    Team,
    Volunteer,
)

T = TypeVar("T")


def after_id(cursor: str) -> str | None:
    key = decode_cursor(cursor)
    if key is None:
        return None
    if len(key) != 1 or not isinstance(key[0], str):
        raise InvalidArgument("cursor is not one we issued", code="cursor_invalid")
    return key[0]


def after_time_id(cursor: str) -> tuple[datetime, str] | None:
    key = decode_cursor(cursor)
    if key is None:
        return None
    try:
        when, row_id = key
        return datetime.fromisoformat(str(when)), str(row_id)
    except (ValueError, TypeError):
        raise InvalidArgument("cursor is not one we issued", code="cursor_invalid") from None


def _by_id(query: Select[Any], column: Any, cursor: str, limit: int) -> Select[Any]:
    after = after_id(cursor)
    if after:
        query = query.where(column > after)
    return query.order_by(column).limit(limit)


def _by_time_id(query: Select[Any], time_col: Any, id_col: Any, cursor: str, limit: int) -> Select[Any]:
    after = after_time_id(cursor)
    if after:
        when, row_id = after
        query = query.where(or_(time_col > when, and_(time_col == when, id_col > row_id)))
    return query.order_by(time_col, id_col).limit(limit)


class Repository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, *rows: Any) -> None:
        self.session.add_all(rows)
        await self.session.flush()

    async def _get(self, model: type[T], row_id: str, code: str, what: str) -> T:
        row = await self.session.get(model, row_id) if row_id else None
        if row is None:
            raise NotFound(f"no such {what}", code=code)
        return row

    async def lock(self, model: type[T], row_id: str, code: str, what: str) -> T:
        """The row's lock for the rest of the transaction, then a fresh read of it.

        A no-op UPDATE is the lock on both databases: on PostgreSQL it holds the row until commit (a second
        transaction waits, then reads the first one's result); on SQLite it is the transaction's first
        write, which takes the database's single write lock before anything is decided.
        """
        table: Any = model.__table__  # type: ignore[attr-defined]
        result = await self.session.execute(update(table).where(table.c.id == row_id).values(id=table.c.id))
        if not row_id or result.rowcount == 0:  # type: ignore[attr-defined]
            raise NotFound(f"no such {what}", code=code)
        query = select(model).where(table.c.id == row_id).execution_options(populate_existing=True)
        return (await self.session.execute(query)).scalar_one()

    # --- people -------------------------------------------------------------------------------------------
    async def display_names(self, person_ids: Iterable[str]) -> dict[str, str]:
        wanted = sorted(set(person_ids))
        if not wanted:
            return {}
        await write_later(self.session)  # names a consumer batch kept for its commit (`record_people`)
        query = select(Person.person_id, Person.display_name).where(Person.person_id.in_(wanted))
        rows = await self.session.execute(query)
        return {row[0]: row[1] for row in rows}

    async def record_people(self, people: Sequence[tuple[str, str]], now: datetime) -> None:
        """The display-name projection: each (person id, name) upserted in turn, so a person's last name
        stands. In a consumer batch flushed at its commit the rows are kept and written with the batch's
        others in one statement (`Upsert.later`, the last per person); otherwise (an event alone, an import's
        pack alone in its batch) now, one statement per 1,000."""
        rows = [{"person_id": person_id, "display_name": name, "updated_at": now} for person_id, name in people]
        if flushes_each_event(self.session):
            await _PEOPLE.many(self.session, rows)
            return
        for row in rows:
            await _PEOPLE.later(self.session, row)

    # --- teams -------------------------------------------------------------------------------------------
    async def team(self, team_id: str) -> Team:
        return await self._get(Team, team_id, "team_not_found", "team")

    async def default_team(self, neighbourhood_id: str) -> Team | None:
        query = select(Team).where(Team.neighbourhood_id == neighbourhood_id, Team.is_default.is_(True))
        return (await self.session.execute(query)).scalar_one_or_none()

    async def team_by_name(self, neighbourhood_id: str, name: str) -> Team | None:
        query = select(Team).where(Team.neighbourhood_id == neighbourhood_id, Team.name == name)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def teams(self, neighbourhood_id: str, cursor: str, limit: int) -> list[Team]:
        query = select(Team).where(Team.neighbourhood_id == neighbourhood_id)
        return list((await self.session.execute(_by_id(query, Team.id, cursor, limit))).scalars())

    async def team_figures(self, team_ids: Sequence[str]) -> dict[str, tuple[int, list[str]]]:
        """Per team: approved member count and its leaders' person ids."""
        if not team_ids:
            return {}
        rows = await self.session.execute(
            select(Volunteer.team_id, Volunteer.person_id, Volunteer.is_leader).where(
                Volunteer.team_id.in_(team_ids), Volunteer.state == volunteer_rules.APPROVED
            )
        )
        figures: dict[str, tuple[int, list[str]]] = {team_id: (0, []) for team_id in team_ids}
        for team_id, person_id, leader in rows:
            count, leaders = figures[team_id]
            figures[team_id] = (count + 1, [*leaders, person_id] if leader else leaders)
        return {key: (count, sorted(leaders)) for key, (count, leaders) in figures.items()}

    # --- volunteers --------------------------------------------------------------------------------------
    async def volunteer(self, volunteer_id: str) -> Volunteer:
        return await self._get(Volunteer, volunteer_id, "volunteer_not_found", "volunteer")

    async def lock_volunteer(self, volunteer_id: str) -> Volunteer:
        return await self.lock(Volunteer, volunteer_id, "volunteer_not_found", "volunteer")

    async def active_volunteer(self, team_id: str, person_id: str) -> Volunteer | None:
        query = select(Volunteer).where(
            Volunteer.team_id == team_id,
            Volunteer.person_id == person_id,
            Volunteer.state.in_(volunteer_rules.ACTIVE),
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def leads_team(self, team_id: str | None, person_id: str) -> bool:
        if not team_id:
            return False
        query = select(Volunteer.id).where(
            Volunteer.team_id == team_id,
            Volunteer.person_id == person_id,
            Volunteer.state == volunteer_rules.APPROVED,
            Volunteer.is_leader.is_(True),
        )
        return (await self.session.execute(query)).first() is not None

    async def approved_teams_of(self, person_id: str, neighbourhood_id: str | None = None) -> list[Volunteer]:
        query = select(Volunteer).where(Volunteer.person_id == person_id, Volunteer.state == volunteer_rules.APPROVED)
        if neighbourhood_id:
            query = query.where(Volunteer.neighbourhood_id == neighbourhood_id)
        return list((await self.session.execute(query.order_by(Volunteer.id))).scalars())

    async def volunteers(
        self,
        *,
        team_id: str | None,
        neighbourhood_id: str | None,
        person_id: str | None,
        states: Sequence[str],
        cursor: str,
        limit: int,
    ) -> list[Volunteer]:
        query = select(Volunteer)
        if team_id:
            query = query.where(Volunteer.team_id == team_id)
        if neighbourhood_id:
            query = query.where(Volunteer.neighbourhood_id == neighbourhood_id)
        if person_id:
            query = query.where(Volunteer.person_id == person_id)
        if states:
            query = query.where(Volunteer.state.in_(states))
        return list((await self.session.execute(_by_id(query, Volunteer.id, cursor, limit))).scalars())

    async def active_in_neighbourhood(self, person_id: str, neighbourhood_id: str) -> list[Volunteer]:
        query = select(Volunteer).where(
            Volunteer.person_id == person_id,
            Volunteer.neighbourhood_id == neighbourhood_id,
            Volunteer.state.in_(volunteer_rules.ACTIVE),
        )
        return list((await self.session.execute(query)).scalars())

    # --- activities --------------------------------------------------------------------------------------
    async def activity(self, activity_id: str) -> Activity:
        return await self._get(Activity, activity_id, "activity_not_found", "activity")

    async def lock_activity(self, activity_id: str) -> Activity:
        """Every change to an activity's sign-ups runs under this lock, so its counts (and so the capacity)
        are never decided on a stale read, however many people sign up at once."""
        return await self.lock(Activity, activity_id, "activity_not_found", "activity")

    async def activities_for_neighbourhood(
        self, neighbourhood_id: str, ends_after: datetime | None, include_cancelled: bool, cursor: str, limit: int
    ) -> list[Activity]:
        query = (
            select(Activity)
            .join(ActivityAudience, ActivityAudience.activity_id == Activity.id)
            .where(ActivityAudience.neighbourhood_id == neighbourhood_id)
        )
        return await self._activity_page(query, ends_after, include_cancelled, cursor, limit)

    async def activities_of_organisation(
        self, organisation_id: str, ends_after: datetime | None, include_cancelled: bool, cursor: str, limit: int
    ) -> list[Activity]:
        query = select(Activity).where(Activity.organisation_id == organisation_id)
        return await self._activity_page(query, ends_after, include_cancelled, cursor, limit)

    async def _activity_page(
        self, query: Select[Any], ends_after: datetime | None, include_cancelled: bool, cursor: str, limit: int
    ) -> list[Activity]:
        if ends_after is not None:
            query = query.where(Activity.ends_at >= ends_after)
        if not include_cancelled:
            query = query.where(Activity.state != activity_rules.CANCELLED)
        paged = _by_time_id(query, Activity.starts_at, Activity.id, cursor, limit)
        return list((await self.session.execute(paged)).scalars())

    # --- sign-ups ----------------------------------------------------------------------------------------
    async def active_signup(self, activity_id: str, person_id: str) -> Signup | None:
        query = select(Signup).where(
            Signup.activity_id == activity_id,
            Signup.person_id == person_id,
            Signup.state.in_(activity_rules.ACTIVE_SIGNUP),
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def latest_signup(self, activity_id: str, person_id: str) -> Signup | None:
        query = (
            select(Signup)
            .where(Signup.activity_id == activity_id, Signup.person_id == person_id)
            .order_by(Signup.signed_up_at.desc(), Signup.id.desc())
            .limit(1)
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def first_waitlisted(self, activity_id: str) -> Signup | None:
        query = (
            select(Signup)
            .where(Signup.activity_id == activity_id, Signup.state == activity_rules.WAITLISTED)
            .order_by(Signup.signed_up_at, Signup.id)
            .limit(1)
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def active_signups(self, activity_id: str) -> list[Signup]:
        query = select(Signup).where(Signup.activity_id == activity_id, Signup.state.in_(activity_rules.ACTIVE_SIGNUP))
        return list((await self.session.execute(query.order_by(Signup.signed_up_at, Signup.id))).scalars())

    async def waitlist_positions(self, activity_id: str) -> dict[str, int]:
        query = (
            select(Signup.id)
            .where(Signup.activity_id == activity_id, Signup.state == activity_rules.WAITLISTED)
            .order_by(Signup.signed_up_at, Signup.id)
        )
        return {row[0]: index + 1 for index, row in enumerate(await self.session.execute(query))}

    async def signups(
        self, *, activity_id: str | None, person_id: str | None, state: str | None, cursor: str, limit: int
    ) -> list[Signup]:
        query = select(Signup)
        if activity_id:
            query = query.where(Signup.activity_id == activity_id)
        if person_id:
            query = query.where(Signup.person_id == person_id)
        if state:
            query = query.where(Signup.state == state)
        paged = _by_time_id(query, Signup.signed_up_at, Signup.id, cursor, limit)
        return list((await self.session.execute(paged)).scalars())

    # --- ledger ------------------------------------------------------------------------------------------
    async def hours_entry(self, entry_id: str) -> HoursEntry:
        return await self._get(HoursEntry, entry_id, "entry_not_found", "ledger entry")

    async def reversed_ids(self, entry_ids: Sequence[str]) -> set[str]:
        if not entry_ids:
            return set()
        query = select(HoursEntry.corrects_entry_id).where(
            HoursEntry.kind == ledger_rules.REVERSAL, HoursEntry.corrects_entry_id.in_(entry_ids)
        )
        return {row[0] for row in await self.session.execute(query)}

    async def hours_entries(self, person_id: str, cursor: str, limit: int) -> list[HoursEntry]:
        query = select(HoursEntry).where(HoursEntry.person_id == person_id)
        return list((await self.session.execute(_by_id(query, HoursEntry.id, cursor, limit))).scalars())

    def _period(self, query: Select[Any], start: datetime | None, end: datetime | None) -> Select[Any]:
        if start is not None:
            query = query.where(HoursEntry.served_at >= start)
        if end is not None:
            query = query.where(HoursEntry.served_at < end)
        return query

    async def hours_totals(
        self, column: Any, value: str, start: datetime | None, end: datetime | None
    ) -> tuple[int, int, int, int]:
        """(net minutes, entries, distinct volunteers with net time, distinct activities) for one scope."""
        per_person = self._period(
            select(HoursEntry.person_id, func.sum(HoursEntry.minutes))
            .where(column == value)
            .group_by(HoursEntry.person_id),
            start,
            end,
        )
        minutes_by_person = {row[0]: int(row[1] or 0) for row in await self.session.execute(per_person)}
        counts = self._period(
            select(func.count(HoursEntry.id), func.count(func.distinct(HoursEntry.activity_id))).where(column == value),
            start,
            end,
        )
        entries, activity_count = (await self.session.execute(counts)).one()
        total = sum(minutes_by_person.values())
        volunteers = sum(1 for minutes in minutes_by_person.values() if minutes > 0)
        return total, int(entries), volunteers, int(activity_count)

    async def entries_in_period(self, person_id: str, start: datetime | None, end: datetime | None) -> list[HoursEntry]:
        query = self._period(select(HoursEntry).where(HoursEntry.person_id == person_id), start, end)
        return list((await self.session.execute(query.order_by(HoursEntry.id))).scalars())

    # --- organisations -----------------------------------------------------------------------------------
    async def organisation(self, organisation_id: str) -> Organisation:
        return await self._get(Organisation, organisation_id, "organisation_not_found", "organisation")

    async def organisation_by_code(self, credit_code: str) -> Organisation | None:
        query = select(Organisation).where(Organisation.credit_code == credit_code)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def admin_ids(self, organisation_id: str) -> set[str]:
        query = select(OrganisationAdmin.person_id).where(OrganisationAdmin.organisation_id == organisation_id)
        return {row[0] for row in await self.session.execute(query)}

    async def admins_of(self, organisation_ids: Sequence[str]) -> dict[str, list[str]]:
        if not organisation_ids:
            return {}
        query = select(OrganisationAdmin.organisation_id, OrganisationAdmin.person_id).where(
            OrganisationAdmin.organisation_id.in_(organisation_ids)
        )
        admins: dict[str, list[str]] = {org_id: [] for org_id in organisation_ids}
        for org_id, person_id in await self.session.execute(query):
            admins[org_id].append(person_id)
        return {key: sorted(value) for key, value in admins.items()}

    async def organisations(
        self,
        *,
        district_id: str | None,
        states: Sequence[str],
        admin_person_id: str | None,
        cursor: str,
        limit: int,
    ) -> list[Organisation]:
        query = select(Organisation)
        if district_id:
            query = query.where(Organisation.district_id == district_id)
        if states:
            query = query.where(Organisation.state.in_(states))
        if admin_person_id:
            query = query.join(OrganisationAdmin, OrganisationAdmin.organisation_id == Organisation.id).where(
                OrganisationAdmin.person_id == admin_person_id
            )
        return list((await self.session.execute(_by_id(query, Organisation.id, cursor, limit))).scalars())

    # --- storefronts -------------------------------------------------------------------------------------
    async def storefront(self, storefront_id: str) -> Storefront:
        return await self._get(Storefront, storefront_id, "storefront_not_found", "storefront")

    async def served(self, storefront_ids: Sequence[str]) -> dict[str, list[str]]:
        if not storefront_ids:
            return {}
        query = select(StorefrontNeighbourhood.storefront_id, StorefrontNeighbourhood.neighbourhood_id).where(
            StorefrontNeighbourhood.storefront_id.in_(storefront_ids)
        )
        served: dict[str, list[str]] = {sid: [] for sid in storefront_ids}
        for storefront_id, neighbourhood_id in await self.session.execute(query):
            served[storefront_id].append(neighbourhood_id)
        return {key: sorted(value) for key, value in served.items()}

    async def storefronts(
        self, *, neighbourhood_id: str | None, organisation_id: str | None, open_only: bool, cursor: str, limit: int
    ) -> list[Storefront]:
        query = select(Storefront)
        if neighbourhood_id:
            query = query.join(StorefrontNeighbourhood, StorefrontNeighbourhood.storefront_id == Storefront.id).where(
                StorefrontNeighbourhood.neighbourhood_id == neighbourhood_id
            )
        if organisation_id:
            query = query.where(Storefront.organisation_id == organisation_id)
        if open_only:
            query = query.where(Storefront.state == "open")
        return list((await self.session.execute(_by_id(query, Storefront.id, cursor, limit))).scalars())

    async def booking_figures(self, storefront_ids: Sequence[str]) -> dict[str, tuple[dict[str, int], int, int]]:
        """Per storefront: bookings per state, sum of ratings, number of ratings."""
        if not storefront_ids:
            return {}
        figures: dict[str, tuple[dict[str, int], int, int]] = {sid: ({}, 0, 0) for sid in storefront_ids}
        by_state = (
            select(Booking.storefront_id, Booking.state, func.count())
            .where(Booking.storefront_id.in_(storefront_ids))
            .group_by(Booking.storefront_id, Booking.state)
        )
        for storefront_id, state, count in await self.session.execute(by_state):
            figures[storefront_id][0][state] = int(count)
        ratings = (
            select(Booking.storefront_id, func.sum(Booking.rating), func.count(Booking.rating))
            .where(Booking.storefront_id.in_(storefront_ids), Booking.rating.is_not(None))
            .group_by(Booking.storefront_id)
        )
        for storefront_id, total, count in await self.session.execute(ratings):
            figures[storefront_id] = (figures[storefront_id][0], int(total or 0), int(count))
        return figures

    async def offering(self, offering_id: str) -> Offering:
        return await self._get(Offering, offering_id, "offering_not_found", "offering")

    async def offerings(self, storefront_id: str, cursor: str, limit: int) -> list[Offering]:
        query = select(Offering).where(Offering.storefront_id == storefront_id)
        return list((await self.session.execute(_by_id(query, Offering.id, cursor, limit))).scalars())

    async def slot(self, slot_id: str) -> Slot:
        return await self._get(Slot, slot_id, "slot_not_found", "slot")

    async def lock_slot(self, slot_id: str) -> Slot:
        """Bookings of a slot run under this lock: two residents cannot take its last place at once."""
        return await self.lock(Slot, slot_id, "slot_not_found", "slot")

    async def slots(self, offering_id: str, starts_after: datetime | None, cursor: str, limit: int) -> list[Slot]:
        query = select(Slot).where(Slot.offering_id == offering_id)
        if starts_after is not None:
            query = query.where(Slot.starts_at >= starts_after)
        return list((await self.session.execute(_by_time_id(query, Slot.starts_at, Slot.id, cursor, limit))).scalars())

    # --- bookings ----------------------------------------------------------------------------------------
    async def booking(self, booking_id: str) -> Booking:
        return await self._get(Booking, booking_id, "booking_not_found", "booking")

    async def lock_booking(self, booking_id: str) -> Booking:
        return await self.lock(Booking, booking_id, "booking_not_found", "booking")

    async def active_booking(self, slot_id: str, person_id: str) -> Booking | None:
        query = select(Booking).where(
            Booking.slot_id == slot_id,
            Booking.person_id == person_id,
            Booking.state.in_(booking_rules.HOLDS_PLACE),
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def bookings(
        self, *, storefront_id: str | None, person_id: str | None, state: str | None, cursor: str, limit: int
    ) -> list[Booking]:
        query = select(Booking)
        if storefront_id:
            query = query.where(Booking.storefront_id == storefront_id)
        if person_id:
            query = query.where(Booking.person_id == person_id)
        if state:
            query = query.where(Booking.state == state)
        return list((await self.session.execute(_by_id(query, Booking.id, cursor, limit))).scalars())

    async def offerings_by_id(self, offering_ids: Iterable[str]) -> dict[str, Offering]:
        wanted = sorted(set(offering_ids))
        if not wanted:
            return {}
        rows = await self.session.execute(select(Offering).where(Offering.id.in_(wanted)))
        return {row.id: row for row in rows.scalars()}

    async def slots_by_id(self, slot_ids: Iterable[str]) -> dict[str, Slot]:
        wanted = sorted({s for s in slot_ids if s})
        if not wanted:
            return {}
        rows = await self.session.execute(select(Slot).where(Slot.id.in_(wanted)))
        return {row.id: row for row in rows.scalars()}

    # --- mutual aid --------------------------------------------------------------------------------------
    async def mutual_aid_link(self, issue_id: str, target: str, target_id: str) -> MutualAidLink | None:
        query = select(MutualAidLink).where(
            MutualAidLink.issue_id == issue_id, MutualAidLink.target == target, MutualAidLink.target_id == target_id
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def mutual_aid_links(
        self, *, issue_id: str | None, neighbourhood_id: str | None, cursor: str, limit: int
    ) -> list[MutualAidLink]:
        query = select(MutualAidLink)
        if issue_id:
            query = query.where(MutualAidLink.issue_id == issue_id)
        if neighbourhood_id:
            query = query.where(MutualAidLink.neighbourhood_id == neighbourhood_id)
        return list((await self.session.execute(_by_id(query, MutualAidLink.id, cursor, limit))).scalars())


def _chunks(values: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


class ImportRepository:
    """Look-ups and multi-row inserts of the bulk imports (IN lists chunked)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _rows(self, query: Any, column: Any, values: Iterable[str]) -> list[Any]:
        found: list[Any] = []
        for chunk in _chunks(sorted(set(values))):
            found.extend((await self.session.execute(query.where(column.in_(chunk)))).all())
        return found

    async def imported(self, kind: str, refs: Iterable[str]) -> dict[str, tuple[str, str]]:
        """external_ref -> (entity id, organisation id) of the refs imported before."""
        query = select(ImportRef.external_ref, ImportRef.entity_id, ImportRef.organisation_id).where(
            ImportRef.kind == kind
        )
        return {r[0]: (r[1], r[2]) for r in await self._rows(query, ImportRef.external_ref, refs)}

    async def lineages(self, neighbourhood_ids: Iterable[str]) -> dict[str, Lineage]:
        query = select(
            region_directory.c.neighbourhood_id, region_directory.c.subdistrict_id, region_directory.c.district_id
        )
        rows = await self._rows(query, region_directory.c.neighbourhood_id, neighbourhood_ids)
        return {r[0]: Lineage(r[0], r[1], r[2]) for r in rows}

    async def districts(self, district_ids: Iterable[str]) -> set[str]:
        query = select(region_directory.c.district_id).distinct()
        return {r[0] for r in await self._rows(query, region_directory.c.district_id, district_ids)}

    async def teams(self, neighbourhood_ids: Iterable[str], team_ids: Iterable[str]) -> list[tuple[str, str, bool]]:
        """(team id, neighbourhood id, is default) of the neighbourhoods' teams and of the teams named."""
        query = select(Team.id, Team.neighbourhood_id, Team.is_default)
        rows = await self._rows(query, Team.neighbourhood_id, neighbourhood_ids)
        rows += await self._rows(query, Team.id, team_ids)
        return [(r[0], r[1], bool(r[2])) for r in rows]

    async def active_volunteers(self, person_ids: Iterable[str]) -> dict[tuple[str, str], str]:
        query = select(Volunteer.team_id, Volunteer.person_id, Volunteer.state).where(
            Volunteer.state.in_(sorted(volunteer_rules.ACTIVE))
        )
        return {(r[0], r[1]): r[2] for r in await self._rows(query, Volunteer.person_id, person_ids)}

    async def organisations(self, credit_codes: Iterable[str]) -> list[Organisation]:
        found: list[Organisation] = []
        for chunk in _chunks(sorted(set(credit_codes))):
            query = select(Organisation).where(Organisation.credit_code.in_(chunk))
            found.extend((await self.session.execute(query)).scalars())
        return found

    async def insert(self, model: Any, rows: list[dict[str, Any]]) -> None:
        if rows:
            await insert_many(model.__table__).rows(self.session, rows)

    async def upsert_people(self, names: dict[str, str], now: datetime) -> None:
        """The display-name projection (as identity.membership.verified would write it), in one statement per chunk."""
        rows = [{"person_id": p, "display_name": n, "updated_at": now} for p, n in sorted(names.items()) if n]
        await _PEOPLE.many(self.session, rows)


_PEOPLE = Upsert(
    Person.__table__, ["person_id", "display_name", "updated_at"], ["person_id"], ["display_name", "updated_at"]
)
