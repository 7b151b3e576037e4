"""Identity use cases: each state change and its event commit in one transaction.

Methods taking a `session` run inside the caller's transaction (the servicer wraps create-style calls
in `idempotency.run_once`); the others open their own. Every decision about who may do what is made
with the caller's roles as stored now (`actor`), not only as their token remembers them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from google.protobuf.message import Message
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shequtong.events.v1 import identity_events_pb2 as identity_ev
from shequtong_identity import events
from shequtong_identity.domain import (
    badges,
    imports,
    joincodes,
    logincodes,
    people,
    personal,
    resident_imports,
    sessions,
    throttle,
    tokens,
)
from shequtong_identity.domain import households as household_rules
from shequtong_identity.domain import memberships as membership_rules
from shequtong_identity.domain import regions as region_rules
from shequtong_identity.domain import roles as role_rules
from shequtong_identity.domain import roster as roster_rules
from shequtong_identity.domain.idnumber import normalize_id_number
from shequtong_identity.domain.ports import SmsSender
from shequtong_identity.models import (
    Household,
    IdNumberReveal,
    ImportRef,
    JoinCode,
    LoginCode,
    LoginThrottle,
    Membership,
    Person,
    RefreshToken,
    Region,
    RoleAudit,
    RoleGrant,
    Shift,
)
from shequtong_identity.repository import (
    CodeRepository,
    JoinCodeRepository,
    MembershipView,
    PeopleRepository,
    RateLimitRepository,
    RegionImportRepository,
    RegionRepository,
    ResidentImportRepository,
    RevealRepository,
    RoleRepository,
    SessionRepository,
    ShiftRepository,
    VolunteerRepository,
)
from shequtong_identity.settings import IdentitySettings
from shequtong_kit import auth, regions
from shequtong_kit.auth import Lineage, Principal
from shequtong_kit.clock import Clock
from shequtong_kit.consumer import PoisonMessage
from shequtong_kit.db import PlannerStatistics, reading_sessions
from shequtong_kit.errors import (
    AlreadyExists,
    Conflict,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from shequtong_kit.ids import new_id
from shequtong_kit.outbox import Outbox

log = logging.getLogger(__name__)

COMMITTEE = (auth.CADRE, auth.SECRETARY)
MAX_REASON = 500
ADDRESS_WINDOW = timedelta(minutes=15)
IMPORT_CHUNK = 500  # households per transaction
IMPORT_RESIDENT = "resident"  # ImportRef.kind
# The volunteers service, acting through its events (grants and revokes the volunteer badge).
VOLUNTEERS_ACTOR = Principal(subject="svc:volunteers", roles=frozenset({(auth.SERVICE, "*")}))


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    person_id: str


@dataclass(frozen=True)
class ImportedResident:
    external_ref: str
    person_id: str
    membership_id: str
    household_id: str
    created: bool


@dataclass(frozen=True)
class Me:
    person: Person
    memberships: list[MembershipView]
    roles: list[str]


def _reason(reason: str) -> str:
    cleaned = (reason or "").strip()
    if len(cleaned) > MAX_REASON:
        raise InvalidArgument(f"a reason has at most {MAX_REASON} characters", code="reason_too_long")
    return cleaned


class IdentityService:
    def __init__(
        self,
        settings: IdentitySettings,
        sessions: async_sessionmaker[AsyncSession],
        outbox: Outbox,
        clock: Clock,
        sms: SmsSender | None = None,
    ) -> None:
        self.settings = settings
        # None: sign-in by SMS code is not configured (no sender).
        self.sms = sms
        self.code_address_limit = throttle.Limit(settings.code_requests_per_address_per_hour, timedelta(hours=1))
        self.login_address_limit = throttle.Limit(
            settings.login_failures_per_address, ADDRESS_WINDOW, lock=ADDRESS_WINDOW
        )
        self.sessions = sessions
        self.reads = reading_sessions(sessions)  # the on-duty answer every report asks for
        self.import_statistics = PlannerStatistics()
        self.outbox = outbox
        self.clock = clock
        self.keys = tokens.load_signing_keys(settings.identity_signing_keys)
        self.accounts = tokens.load_service_accounts(settings.service_accounts)
        self.pii = people.PiiProtector(settings.pii_hmac_key, settings.pii_encryption_key)
        self.hasher = PasswordHasher(
            time_cost=settings.password_time_cost,
            memory_cost=settings.password_memory_kib,
            parallelism=settings.password_parallelism,
        )
        # Verified against when the phone is unknown, so timing does not tell which phones exist.
        self._dummy_hash = self.hasher.hash("not-a-real-password")

    # --- keys and machine clients -----------------------------------------------------------------
    def jwks(self) -> str:
        return tokens.jwks_json(self.keys)

    async def jwks_async(self) -> str:
        return self.jwks()

    def issue_service_token(self, client_id: str, secret: str) -> tuple[str, int]:
        account = self.accounts.get(client_id)
        if not tokens.check_client_secret(account, secret):
            raise Unauthenticated("unknown client or wrong secret", code="invalid_client")
        assert account is not None
        ttl = self.settings.service_token_ttl_seconds
        token = tokens.mint(
            self.keys[0], f"svc:{client_id}", "service", list(account.roles), self.clock.now(), timedelta(seconds=ttl)
        )
        return token, ttl

    # --- who is asking, now ---------------------------------------------------------------------------
    async def roles_of(self, session: AsyncSession, person_id: str) -> list[str]:
        grants = await RoleRepository(session).active_of(person_id)
        roles = {f"{g.role}@{g.scope}" for g in grants}
        roles.update(
            f"{auth.RESIDENT}@n:{n}" for n in await PeopleRepository(session).verified_neighbourhoods(person_id)
        )
        return sorted(roles)

    async def actor(self, session: AsyncSession, principal: Principal) -> Principal:
        """The caller with the roles they hold now; a person whose session was ended is refused."""
        if principal.is_service:
            return principal
        if principal.session_id and await SessionRepository(session).family_revoked(principal.session_id):
            raise Unauthenticated("this session was ended", code="session_revoked")
        roles = await self.roles_of(session, principal.subject)
        return Principal(
            subject=principal.subject,
            roles=auth.parse_roles(roles),
            session_id=principal.session_id,
            token_id=principal.token_id,
            expires_at=principal.expires_at,
        )

    async def neighbourhood(self, session: AsyncSession, neighbourhood_id: str) -> Lineage:
        """Its lineage, kept in the process's lineage cache once found (a neighbourhood never moves)."""
        cache = regions.lineage_cache(session)
        known = cache.get(neighbourhood_id) if cache else None
        if known is not None:
            return known
        region = await RegionRepository(session).get(neighbourhood_id) if neighbourhood_id else None
        if region is None or region.level != region_rules.NEIGHBOURHOOD:
            raise NotFound("no such neighbourhood", code="neighbourhood_not_found")
        lineage = Lineage(region.id, region.subdistrict_id or "", region.district_id or "")
        if cache is not None:
            cache.keep(lineage, region.kind)
        return lineage

    async def place(self, session: AsyncSession, role: str, scope: str) -> role_rules.ScopePlace:
        kind, ident = role_rules.parse_scope(role, scope)
        if kind in ("o", "*"):
            return role_rules.ScopePlace(kind, ident)
        region = await RegionRepository(session).get(ident)
        expected = {"n": region_rules.NEIGHBOURHOOD, "s": region_rules.SUBDISTRICT, "d": region_rules.DISTRICT}[kind]
        if region is None or region.level != expected:
            raise NotFound("the scope names no such region", code="scope_not_found")
        if kind == "n":
            return role_rules.ScopePlace("n", region.id, region.subdistrict_id or "", region.district_id or "")
        if kind == "s":
            return role_rules.ScopePlace("s", region.id, region.id, region.district_id or "")
        return role_rules.ScopePlace("d", region.id, "", region.id)

    @staticmethod
    def _require_committee(actor: Principal, neighbourhood_id: str) -> None:
        if not (actor.is_committee(neighbourhood_id) or actor.is_operator):
            raise PermissionDenied("only the neighbourhood's committee may do this", code="not_committee")

    @staticmethod
    def _require_oversight(actor: Principal, lineage: Lineage) -> None:
        if not actor.oversees(lineage):
            raise PermissionDenied("you do not look after this neighbourhood", code="not_staff")

    # --- region tree --------------------------------------------------------------------------------
    async def create_region(
        self,
        principal: Principal,
        level: int,
        code: str,
        name: str,
        parent_id: str,
        kind: int,
        session: AsyncSession | None = None,
    ) -> Region:
        """In `session` when given (the caller's idempotent transaction), else in a transaction of its own."""
        if session is None:
            async with self.sessions() as own, own.begin():
                return await self.create_region(principal, level, code, name, parent_id, kind, own)
        repo = RegionRepository(session)
        parent = await repo.get(parent_id) if parent_id else None
        if parent_id and parent is None:
            raise NotFound("parent region not found", code="region_parent_not_found")
        region_rules.validate_new_region(level, code, name, kind, parent.level if parent else None)
        district_id = None
        subdistrict_id = None
        if parent is not None:
            district_id = parent.id if parent.level == region_rules.DISTRICT else parent.district_id
            subdistrict_id = parent.id if parent.level == region_rules.SUBDISTRICT else None
        region_rules.ensure_may_create(principal, level, district_id)
        if await repo.by_code(code.strip()):
            raise AlreadyExists("a region with this code exists", code="region_code_taken")
        region = Region(
            id=new_id(),
            level=level,
            code=code.strip(),
            name=name.strip(),
            parent_id=parent.id if parent else None,
            kind=kind if level == region_rules.NEIGHBOURHOOD else 0,
            district_id=district_id,
            subdistrict_id=subdistrict_id,
            created_at=self.clock.now(),
        )
        await repo.add(region)
        if level == region_rules.NEIGHBOURHOOD:
            await events.neighbourhood_created(self.outbox, session, region)
        return region

    async def get_region(self, region_id: str) -> Region:
        async with self.sessions() as session:
            region = await RegionRepository(session).get(region_id)
        if region is None:
            raise NotFound("region not found", code="region_not_found")
        return region

    async def list_regions(self, parent_id: str, level: int, after: str, limit: int) -> list[Region]:
        async with self.sessions() as session:
            return await RegionRepository(session).children(parent_id or None, level or None, after or None, limit)

    # --- people ---------------------------------------------------------------------------------------
    async def _new_person(
        self, session: AsyncSession, real_name: str, phone: str, id_number: str, password: str
    ) -> Person:
        name = people.normalize_real_name(real_name)
        phone = people.normalize_phone(phone)
        id_number = normalize_id_number(id_number)
        people.validate_password(password)
        repo = PeopleRepository(session)
        id_hmac = self.pii.id_hmac(id_number)
        if await repo.id_number_taken(id_hmac):
            raise AlreadyExists("a person with this ID number is already registered", code="id_number_taken")
        if await repo.person_by_phone(phone):
            raise AlreadyExists("this mobile number is already registered", code="phone_taken")
        password_hash = await asyncio.to_thread(self.hasher.hash, password)
        person = Person(
            id=new_id(),
            real_name=name,
            display_name=people.display_name(name),
            phone=phone,
            id_number_hmac=id_hmac,
            id_number_enc=self.pii.encrypt(id_number),
            password_hash=password_hash,
            created_at=self.clock.now(),
        )
        await repo.add(person)
        return person

    async def create_person(
        self, session: AsyncSession, principal: Principal, real_name: str, phone: str, id_number: str, password: str
    ) -> Person:
        actor = await self.actor(session, principal)
        if not actor.is_operator:
            raise PermissionDenied("only operators create accounts directly", code="operator_only")
        return await self._new_person(session, real_name, phone, id_number, password)

    async def me(self, principal: Principal) -> Me:
        async with self.sessions() as session:
            actor = await self.actor(session, principal)
            person = await PeopleRepository(session).person(actor.person_id)
            if person is None:
                raise Unauthenticated("this account no longer exists", code="person_not_found")
            views = await PeopleRepository(session).views_of_person(person.id)
            return Me(person, views, auth.format_roles(actor.roles))

    # --- households -------------------------------------------------------------------------------------
    async def _household_at(
        self, session: AsyncSession, neighbourhood_id: str, address: household_rules.Address
    ) -> tuple[Household, bool]:
        repo = PeopleRepository(session)
        found = await repo.household_at(neighbourhood_id, address.key)
        if found is not None:
            return found, False
        household = Household(
            id=new_id(),
            neighbourhood_id=neighbourhood_id,
            address_key=address.key,
            building=address.building,
            unit=address.unit,
            room=address.room,
            village_group=address.village_group,
            house_number=address.house_number,
            created_at=self.clock.now(),
        )
        await repo.add(household)
        await events.household_created(self.outbox, session, household)
        return household, True

    async def create_household(
        self, session: AsyncSession, principal: Principal, neighbourhood_id: str, address: household_rules.Address
    ) -> tuple[Household, bool]:
        actor = await self.actor(session, principal)
        lineage = await self.neighbourhood(session, neighbourhood_id)
        if actor.is_service or actor.staff_scope_of(lineage) is None:
            raise PermissionDenied("only the neighbourhood's committee or staff add households", code="not_staff")
        return await self._household_at(session, neighbourhood_id, address)

    async def list_households(
        self, principal: Principal, neighbourhood_id: str, after: str, limit: int
    ) -> list[Household]:
        async with self.sessions() as session:
            actor = await self.actor(session, principal)
            self._require_oversight(actor, await self.neighbourhood(session, neighbourhood_id))
            return await PeopleRepository(session).households(neighbourhood_id, after or None, limit)

    # --- join codes ---------------------------------------------------------------------------------------
    async def create_join_code(
        self, session: AsyncSession, principal: Principal, neighbourhood_id: str, ttl_seconds: int, max_uses: int
    ) -> JoinCode:
        actor = await self.actor(session, principal)
        await self.neighbourhood(session, neighbourhood_id)
        self._require_committee(actor, neighbourhood_id)
        ttl, uses = joincodes.terms(ttl_seconds, max_uses)
        now = self.clock.now()
        code = JoinCode(
            code=joincodes.new_code(),
            neighbourhood_id=neighbourhood_id,
            created_by=actor.subject,
            created_at=now,
            expires_at=now + ttl,
            max_uses=uses,
            use_count=0,
            revoked_at=None,
            revoked_by="",
        )
        await JoinCodeRepository(session).add(code)
        return code

    async def list_join_codes(
        self, principal: Principal, neighbourhood_id: str, after: tuple[datetime, str] | None, limit: int
    ) -> list[JoinCode]:
        async with self.sessions() as session:
            actor = await self.actor(session, principal)
            await self.neighbourhood(session, neighbourhood_id)
            self._require_committee(actor, neighbourhood_id)
            return await JoinCodeRepository(session).of_neighbourhood(neighbourhood_id, after, limit)

    async def revoke_join_code(self, principal: Principal, code: str) -> JoinCode:
        async with self.sessions() as session, session.begin():
            actor = await self.actor(session, principal)
            found = await JoinCodeRepository(session).get(code.strip().upper())
            if found is None:
                raise NotFound("no such join code", code="join_code_not_found")
            self._require_committee(actor, found.neighbourhood_id)
            if found.revoked_at is None:
                found.revoked_at = self.clock.now()
                found.revoked_by = actor.subject
            return found

    # --- registration and review --------------------------------------------------------------------------
    async def register(
        self,
        session: AsyncSession,
        principal: Principal | None,
        code: str,
        real_name: str,
        phone: str,
        id_number: str,
        password: str,
        household_id: str,
        address: household_rules.Address | None,
        party_member: bool,
    ) -> MembershipView:
        """A newcomer (or a signed-in person joining another neighbourhood) registers with a join code.
        Nothing is written unless every check passes; the code's use is counted in the same transaction."""
        codes = JoinCodeRepository(session)
        join_code = await codes.get((code or "").strip().upper())
        if join_code is None:
            raise NotFound("this join code is not valid", code="join_code_invalid")
        now = self.clock.now()
        joincodes.ensure_usable(
            join_code.revoked_at is not None, join_code.expires_at, join_code.use_count, join_code.max_uses, now
        )
        neighbourhood_id = join_code.neighbourhood_id
        repo = PeopleRepository(session)
        household: Household | None = None
        if household_id:
            household = await repo.household(household_id)
            if household is None or household.neighbourhood_id != neighbourhood_id:
                raise NotFound("no such household in this neighbourhood", code="household_not_found")
        elif address is None:
            raise InvalidArgument("a household or an address is required", code="address_invalid")

        if principal is not None and not principal.is_service:
            await self.actor(session, principal)
            found = await repo.person(principal.subject)
            if found is None:
                raise Unauthenticated("this account no longer exists", code="person_not_found")
            person = found
            if await repo.active_membership(person.id, neighbourhood_id):
                raise AlreadyExists("you already belong to (or wait for) this neighbourhood", code="already_a_member")
        else:
            person = await self._new_person(session, real_name, phone, id_number, password)

        if household is None:
            assert address is not None
            household, _ = await self._household_at(session, neighbourhood_id, address)
        if not await codes.consume(join_code.code, now):
            raise AlreadyExists("this join code has just been used up", code="join_code_used_up")
        membership = Membership(
            id=new_id(),
            person_id=person.id,
            neighbourhood_id=neighbourhood_id,
            household_id=household.id,
            state=membership_rules.PENDING,
            party_member_claimed=party_member,
            join_code=join_code.code,
            reason="",
            reviewed_by="",
            reviewed_at=None,
            left_at=None,
            created_at=now,
        )
        await repo.add(membership)
        await events.member_joined(self.outbox, session, membership)
        return MembershipView(membership, person, household)

    async def list_registrations(
        self, principal: Principal, neighbourhood_id: str, state: int, after: str, limit: int
    ) -> list[MembershipView]:
        async with self.sessions() as session:
            actor = await self.actor(session, principal)
            lineage = await self.neighbourhood(session, neighbourhood_id)
            if actor.staff_scope_of(lineage) is None:
                raise PermissionDenied(
                    "only the neighbourhood's committee and staff see registrations", code="not_staff"
                )
            return await PeopleRepository(session).queue(neighbourhood_id, state or None, after or None, limit)

    async def _reviewable(
        self, session: AsyncSession, principal: Principal, membership_id: str
    ) -> tuple[Principal, MembershipView]:
        actor = await self.actor(session, principal)
        view = await PeopleRepository(session).view(membership_id)
        if view is None:
            raise NotFound("no such membership", code="membership_not_found")
        self._require_committee(actor, view.membership.neighbourhood_id)
        if actor.subject == view.membership.person_id:
            raise PermissionDenied("nobody reviews their own registration", code="self_review")
        membership_rules.ensure_reviewable(view.membership.state)
        return actor, view

    async def verify_membership(self, principal: Principal, membership_id: str, confirm_party: bool) -> MembershipView:
        async with self.sessions() as session, session.begin():
            actor, view = await self._reviewable(session, principal, membership_id)
            membership = view.membership
            membership.state = membership_rules.VERIFIED
            membership.reviewed_by = actor.subject
            membership.reviewed_at = self.clock.now()
            await events.member_verified(self.outbox, session, membership, view.person.display_name)
            if confirm_party and membership.party_member_claimed:
                scope = f"n:{membership.neighbourhood_id}"
                if await RoleRepository(session).active(membership.person_id, auth.PARTY_MEMBER, scope) is None:
                    await self._grant(
                        session, actor, view.person, auth.PARTY_MEMBER, scope, "confirmed at verification"
                    )
            return view

    async def reject_membership(self, principal: Principal, membership_id: str, reason: str) -> MembershipView:
        cleaned = membership_rules.rejection_reason(reason)
        async with self.sessions() as session, session.begin():
            actor, view = await self._reviewable(session, principal, membership_id)
            membership = view.membership
            membership.state = membership_rules.REJECTED
            membership.reason = cleaned
            membership.reviewed_by = actor.subject
            membership.reviewed_at = self.clock.now()
            await events.member_rejected(self.outbox, session, membership)
            return view

    async def leave(self, principal: Principal, membership_id: str) -> MembershipView:
        async with self.sessions() as session, session.begin():
            actor = await self.actor(session, principal)
            view = await PeopleRepository(session).view(membership_id)
            if view is None or view.membership.person_id != actor.person_id:
                raise NotFound("no such membership of yours", code="membership_not_found")
            membership = view.membership
            membership_rules.ensure_may_leave(membership.state)
            now = self.clock.now()
            membership.state = membership_rules.LEFT
            membership.left_at = now
            await events.member_left(self.outbox, session, membership)
            # A party-member badge belongs to the neighbourhood: it goes with the membership.
            scope = f"n:{membership.neighbourhood_id}"
            badge = await RoleRepository(session).active(membership.person_id, auth.PARTY_MEMBER, scope)
            if badge is not None:
                await self._revoke(session, actor.subject, badge, "left the neighbourhood")
            return view

    # --- roles ------------------------------------------------------------------------------------------------
    async def _grant(
        self, session: AsyncSession, actor: Principal, person: Person, role: str, scope: str, reason: str
    ) -> RoleGrant:
        now = self.clock.now()
        grant = RoleGrant(
            id=new_id(),
            person_id=person.id,
            role=role,
            scope=scope,
            granted_by=actor.subject,
            reason=reason,
            granted_at=now,
            revoked_at=None,
            revoked_by="",
        )
        audit = RoleAudit(
            id=new_id(),
            action="grant",
            grant_id=grant.id,
            person_id=person.id,
            role=role,
            scope=scope,
            actor=actor.subject,
            reason=reason,
            at=now,
        )
        await RoleRepository(session).add(grant, audit)
        await events.role_granted(self.outbox, session, grant, person.display_name)
        return grant

    async def _revoke(self, session: AsyncSession, actor_subject: str, grant: RoleGrant, reason: str) -> None:
        now = self.clock.now()
        grant.revoked_at = now
        grant.revoked_by = actor_subject
        audit = RoleAudit(
            id=new_id(),
            action="revoke",
            grant_id=grant.id,
            person_id=grant.person_id,
            role=grant.role,
            scope=grant.scope,
            actor=actor_subject,
            reason=reason,
            at=now,
        )
        await RoleRepository(session).add(audit)
        await events.role_revoked(self.outbox, session, grant)

    async def grant_role(
        self, session: AsyncSession, principal: Principal, person_id: str, role: str, scope: str, reason: str
    ) -> tuple[RoleGrant, Person]:
        reason = _reason(reason)
        actor = await self.actor(session, principal)
        place = await self.place(session, role, scope)
        person = await PeopleRepository(session).person(person_id) if person_id else None
        if person is None:
            raise NotFound("no such person", code="person_not_found")
        role_rules.ensure_may_grant(actor, person.id, role, place)
        if role == auth.PARTY_MEMBER and place.id not in await PeopleRepository(session).verified_neighbourhoods(
            person.id
        ):
            raise FailedPrecondition(
                "the party-member badge is for verified residents of the neighbourhood", code="not_a_resident"
            )
        if await RoleRepository(session).active(person.id, role, scope):
            raise AlreadyExists("this person already holds this role here", code="role_already_granted")
        return await self._grant(session, actor, person, role, scope, reason), person

    async def revoke_role(self, principal: Principal, grant_id: str, reason: str) -> tuple[RoleGrant, Person | None]:
        reason = _reason(reason)
        async with self.sessions() as session, session.begin():
            actor = await self.actor(session, principal)
            grant = await RoleRepository(session).get(grant_id)
            if grant is None:
                raise NotFound("no such role grant", code="grant_not_found")
            place = await self.place(session, grant.role, grant.scope)
            role_rules.ensure_may_grant(actor, grant.person_id, grant.role, place)
            if grant.revoked_at is None:
                await self._revoke(session, actor.subject, grant, reason)
            return grant, await PeopleRepository(session).person(grant.person_id)

    async def list_grants(
        self, principal: Principal, person_id: str, scope: str, include_revoked: bool, after: str, limit: int
    ) -> list[tuple[RoleGrant, Person | None]]:
        async with self.sessions() as session:
            actor = await self.actor(session, principal)
            allowed = actor.is_operator or actor.has(auth.SERVICE, "*") or (person_id and person_id == actor.subject)
            if not allowed and scope:
                kind, _, ident = scope.partition(":")
                region = await RegionRepository(session).get(ident) if ident else None
                if kind == "n" and region is not None:
                    allowed = actor.oversees(Lineage(region.id, region.subdistrict_id or "", region.district_id or ""))
                elif kind == "s" and region is not None:
                    allowed = actor.has(auth.SUBDISTRICT_STAFF, scope) or actor.has(
                        auth.DISTRICT_STAFF, f"d:{region.district_id}"
                    )
                elif kind == "d":
                    allowed = actor.has(auth.DISTRICT_STAFF, scope)
            if not allowed:
                raise PermissionDenied(
                    "you may list your own roles or those in places you look after", code="not_staff"
                )
            grants = await RoleRepository(session).grants(
                person_id or None, scope or None, include_revoked, after or None, limit
            )
            repo = PeopleRepository(session)
            return [(g, await repo.person(g.person_id)) for g in grants]

    # --- duty roster ---------------------------------------------------------------------------------------
    async def create_shift(
        self,
        session: AsyncSession,
        principal: Principal,
        neighbourhood_id: str,
        person_id: str,
        starts_at: datetime | None,
        ends_at: datetime | None,
    ) -> tuple[Shift, Person]:
        actor = await self.actor(session, principal)
        await self.neighbourhood(session, neighbourhood_id)
        self._require_committee(actor, neighbourhood_id)
        roster_rules.validate_shift(starts_at, ends_at)
        assert starts_at is not None and ends_at is not None
        person = await PeopleRepository(session).person(person_id) if person_id else None
        if person is None:
            raise NotFound("no such person", code="person_not_found")
        holders = await RoleRepository(session).holders(f"n:{neighbourhood_id}", COMMITTEE)
        if person.id not in {g.person_id for g in holders}:
            raise InvalidArgument(
                "shifts are for the neighbourhood's cadres and secretary", code="not_committee_member"
            )
        shift = Shift(
            id=new_id(),
            neighbourhood_id=neighbourhood_id,
            person_id=person.id,
            starts_at=starts_at,
            ends_at=ends_at,
            created_by=actor.subject,
            created_at=self.clock.now(),
        )
        await ShiftRepository(session).add(shift)
        return shift, person

    async def list_shifts(
        self,
        principal: Principal,
        neighbourhood_id: str,
        since: datetime | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[tuple[Shift, Person | None]]:
        async with self.sessions() as session:
            actor = await self.actor(session, principal)
            lineage = await self.neighbourhood(session, neighbourhood_id)
            if not (actor.is_member(neighbourhood_id) or actor.oversees(lineage)):
                raise PermissionDenied("not a member of this neighbourhood", code="not_a_member")
            shifts = await ShiftRepository(session).upcoming(neighbourhood_id, since or self.clock.now(), after, limit)
            repo = PeopleRepository(session)
            return [(s, await repo.person(s.person_id)) for s in shifts]

    async def on_duty(
        self, principal: Principal, neighbourhood_id: str, at: datetime | None
    ) -> tuple[roster_rules.OnDuty, Person | None]:
        async with self.reads() as session:
            actor = await self.actor(session, principal)
            lineage = await self.neighbourhood(session, neighbourhood_id)
            self._require_oversight(actor, lineage)
            when = at or self.clock.now()
            holders = await RoleRepository(session).holders(f"n:{neighbourhood_id}", COMMITTEE)
            shifts = await ShiftRepository(session).covering(neighbourhood_id, when)
            answer = roster_rules.resolve_on_duty(
                [roster_rules.ShiftSlot(s.id, s.person_id, s.starts_at, s.ends_at) for s in shifts],
                {g.person_id for g in holders},
                [g.person_id for g in holders if g.role == auth.SECRETARY],
                when,
            )
            return answer, await PeopleRepository(session).person(answer.person_id)

    # --- authentication --------------------------------------------------------------------------------------
    async def _issue(self, session: AsyncSession, person_id: str, family_id: str) -> IssuedTokens:
        now = self.clock.now()
        refresh = sessions.new_refresh_token()
        refresh_ttl = self.settings.refresh_token_ttl_seconds
        await SessionRepository(session).add(
            RefreshToken(
                id=new_id(),
                family_id=family_id,
                person_id=person_id,
                token_hash=sessions.hash_refresh_token(refresh),
                created_at=now,
                expires_at=now + timedelta(seconds=refresh_ttl),
                used_at=None,
                revoked_at=None,
            )
        )
        ttl = self.settings.access_token_ttl_seconds
        access = tokens.mint(
            self.keys[0],
            person_id,
            "access",
            await self.roles_of(session, person_id),
            now,
            timedelta(seconds=ttl),
            session_id=family_id,
        )
        return IssuedTokens(access, ttl, refresh, refresh_ttl, person_id)

    def _password_ok(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    # --- join code lookup, moving house, profile, party membership -----------------------------------------
    async def get_join_code(self, principal: Principal, code: str) -> JoinCode:
        async with self.sessions() as session:
            actor = await self.actor(session, principal)
            found = await JoinCodeRepository(session).get((code or "").strip().upper())
            if found is None:
                raise NotFound("no such join code", code="join_code_not_found")
            self._require_committee(actor, found.neighbourhood_id)
            return found

    async def move_household(
        self,
        session: AsyncSession,
        principal: Principal,
        membership_id: str,
        household_id: str,
        address: household_rules.Address | None,
    ) -> MembershipView:
        """The member (or the committee) moves the membership to another household of the same neighbourhood."""
        actor = await self.actor(session, principal)
        repo = PeopleRepository(session)
        view = await repo.view(membership_id) if membership_id else None
        if view is None:
            raise NotFound("no such membership of yours", code="membership_not_found")
        membership = view.membership
        personal.ensure_may_move(actor, membership.person_id, membership.neighbourhood_id, membership.state)
        if household_id:
            household = await repo.household(household_id)
            if household is None or household.neighbourhood_id != membership.neighbourhood_id:
                raise NotFound("no such household in this neighbourhood", code="household_not_found")
        elif address is not None:
            household, _ = await self._household_at(session, membership.neighbourhood_id, address)
        else:
            raise InvalidArgument("a household or an address is required", code="address_invalid")
        if household.id == membership.household_id:
            return view
        previous = membership.household_id
        membership.household_id = household.id
        await session.flush()
        await events.person_updated(
            self.outbox,
            session,
            view.person.id,
            view.person.display_name,
            ["household"],
            actor.subject,
            membership=membership,
            previous_household_id=previous,
        )
        return MembershipView(membership, view.person, household)

    async def update_profile(self, principal: Principal, person_id: str, real_name: str, reason: str) -> Person:
        """The committee of one of the person's neighbourhoods (or an operator) corrects the real name."""
        reason = personal.required_reason(reason)
        name = people.normalize_real_name(real_name)
        async with self.sessions() as session, session.begin():
            actor = await self.actor(session, principal)
            repo = PeopleRepository(session)
            person = await repo.person(person_id) if person_id else None
            if person is None:
                raise NotFound("no such person", code="person_not_found")
            active = {
                v.membership.neighbourhood_id
                for v in await repo.views_of_person(person.id)
                if v.membership.state in membership_rules.ACTIVE
            }
            personal.ensure_may_correct_name(actor, person.id, active)
            if name == person.real_name:
                return person
            changed = ["real_name"]
            display = people.display_name(name)
            if display != person.display_name:
                changed.append("display_name")
            person.real_name = name
            person.display_name = display
            await session.flush()
            await events.person_updated(
                self.outbox, session, person.id, person.display_name, changed, actor.subject, reason=reason
            )
            log.info("real name corrected", extra={"person_id": person.id, "by": actor.subject})
            return person

    async def confirm_party_member(
        self, session: AsyncSession, principal: Principal, membership_id: str, reason: str
    ) -> tuple[MembershipView, RoleGrant]:
        """A cadre or the secretary confirms a verified resident's party membership: the party-member badge."""
        reason = _reason(reason) or "party membership confirmed by the committee"
        actor = await self.actor(session, principal)
        view = await PeopleRepository(session).view(membership_id) if membership_id else None
        if view is None:
            raise NotFound("no such membership", code="membership_not_found")
        membership = view.membership
        self._require_committee(actor, membership.neighbourhood_id)
        if actor.subject == membership.person_id:
            raise PermissionDenied("nobody grants or revokes their own roles", code="self_grant")
        if membership.state != membership_rules.VERIFIED:
            raise FailedPrecondition(
                "only a verified resident's party membership is confirmed", code="membership_not_verified"
            )
        scope = f"n:{membership.neighbourhood_id}"
        if await RoleRepository(session).active(membership.person_id, auth.PARTY_MEMBER, scope):
            raise AlreadyExists("this party membership is already confirmed", code="role_already_granted")
        membership.party_member_claimed = True
        grant = await self._grant(session, actor, view.person, auth.PARTY_MEMBER, scope, reason)
        return view, grant

    # --- personal data ----------------------------------------------------------------------------------------
    async def reveal_id_number(
        self, principal: Principal, person_id: str, neighbourhood_id: str, reason: str
    ) -> tuple[str, str]:
        """(ID number, reveal id). The audit row commits in the same transaction as the reveal is decided."""
        reason = personal.required_reason(reason)
        async with self.sessions() as session, session.begin():
            actor = await self.actor(session, principal)
            lineage = await self.neighbourhood(session, neighbourhood_id)
            reveals = RevealRepository(session)
            registered = bool(person_id) and await reveals.registered_with(person_id, lineage.neighbourhood_id)
            personal.ensure_may_reveal(actor, lineage.neighbourhood_id, registered)
            person = await PeopleRepository(session).person(person_id)
            if person is None:
                raise NotFound("nobody with this id registered with this neighbourhood", code="person_not_found")
            reveal = IdNumberReveal(
                id=new_id(),
                person_id=person.id,
                revealed_by=actor.subject,
                neighbourhood_id=lineage.neighbourhood_id,
                subdistrict_id=lineage.subdistrict_id,
                district_id=lineage.district_id,
                reason=reason,
                revealed_at=self.clock.now(),
            )
            await reveals.add(reveal)
            id_number = self.pii.decrypt(person.id_number_enc)
        log.info("id number revealed", extra={"reveal_id": reveal.id, "person_id": person.id, "by": actor.subject})
        return id_number, reveal.id

    async def list_reveals(
        self, principal: Principal, region_id: str, person_id: str, before: str, limit: int
    ) -> list[tuple[IdNumberReveal, Person | None, Person | None]]:
        async with self.sessions() as session:
            actor = await self.actor(session, principal)
            place = None
            if region_id:
                region = await RegionRepository(session).get(region_id)
                if region is None:
                    raise NotFound("region not found", code="region_not_found")
                kind: dict[int, str] = {
                    region_rules.NEIGHBOURHOOD: "n",
                    region_rules.SUBDISTRICT: "s",
                    region_rules.DISTRICT: "d",
                }
                place = role_rules.ScopePlace(
                    kind[region.level],
                    region.id,
                    region.id if region.level == region_rules.SUBDISTRICT else region.subdistrict_id or "",
                    region.id if region.level == region_rules.DISTRICT else region.district_id or "",
                )
            personal.ensure_may_list_reveals(actor, place, person_id)
            found = await RevealRepository(session).listing(
                (place.kind, place.id) if place else None, person_id or None, before or None, limit
            )
            repo = PeopleRepository(session)
            return [(r, await repo.person(r.person_id), await repo.person(r.revealed_by)) for r in found]

    # --- volunteer badge (volunteers' events) -----------------------------------------------------------------
    async def volunteer_approved(
        self, session: AsyncSession, volunteer_id: str, person_id: str, neighbourhood_id: str, team_id: str
    ) -> None:
        await self.volunteer_events(session, [badges.approval(volunteer_id, person_id, neighbourhood_id, team_id)])

    async def volunteer_left(
        self, session: AsyncSession, volunteer_id: str, person_id: str, neighbourhood_id: str
    ) -> None:
        await self.volunteer_events(session, [badges.departure(volunteer_id, person_id, neighbourhood_id)])

    async def volunteer_events(self, session: AsyncSession, batch: Sequence[badges.VolunteerEvent]) -> None:
        """The volunteer badge after these approvals and departures, in order (a consumer batch's, an import's
        by the thousand, or one event's): decided as if handled one by one (`badges.plan`) over the rows read
        once, then written with one statement per table and 1,000 rows. Raises PoisonMessage if a badge is
        due for a person who is not known, or in a place that is not a known neighbourhood (nothing written:
        the consumer then handles the batch one event per transaction, and that event fails alone)."""
        if not batch:
            return
        repo = VolunteerRepository(session)
        people = {person_id for _, person_id, _, _, _ in batch}
        decided = badges.plan(
            batch,
            await repo.records(volunteer_id for volunteer_id, _, _, _, _ in batch),
            await repo.active_counts(people),
            await repo.badges_held(people),
            new_id,
        )
        granted = [(person_id, place) for action, _, person_id, place, _ in decided.changes if action == badges.GRANT]
        names = await repo.display_names(person_id for person_id, _ in granted)
        places = await repo.neighbourhoods({place for _, place in granted}, region_rules.NEIGHBOURHOOD)
        for person_id, place in granted:
            if person_id not in names:
                raise PoisonMessage("a volunteer who is not a known person")
            if place not in places:
                raise PoisonMessage("a volunteer of an unknown neighbourhood")
        now = self.clock.now()
        actor = VOLUNTEERS_ACTOR.subject
        new_grants: dict[str, dict[str, object]] = {}
        revoked: list[str] = []
        audits: list[dict[str, object]] = []
        outgoing: list[tuple[str, Message]] = []
        for action, grant_id, person_id, place, reason in decided.changes:
            scope = badges.scope_of(place)
            if action == badges.GRANT:
                new_grants[grant_id] = {
                    "id": grant_id,
                    "person_id": person_id,
                    "role": auth.VOLUNTEER,
                    "scope": scope,
                    "granted_by": actor,
                    "reason": reason,
                    "granted_at": now,
                    "revoked_at": None,
                    "revoked_by": "",
                }
                outgoing.append(events.granted(person_id, auth.VOLUNTEER, scope, actor, names[person_id]))
            else:
                made = new_grants.get(grant_id)
                if made is not None:  # granted earlier in this batch: written revoked
                    made["revoked_at"], made["revoked_by"] = now, actor
                else:
                    revoked.append(grant_id)
                outgoing.append(events.revoked(person_id, auth.VOLUNTEER, scope, actor))
            audits.append(
                {
                    "id": new_id(),
                    "action": action,
                    "grant_id": grant_id,
                    "person_id": person_id,
                    "role": auth.VOLUNTEER,
                    "scope": scope,
                    "actor": actor,
                    "reason": reason,
                    "at": now,
                }
            )
        await repo.end_records(decided.ended, now)
        await repo.add_records(
            [
                {
                    "volunteer_id": volunteer_id,
                    "person_id": person_id,
                    "neighbourhood_id": place,
                    "team_id": team_id,
                    "active": active,
                    "updated_at": now,
                }
                for volunteer_id, person_id, place, team_id, active in decided.added.values()
            ]
        )
        await repo.revoke(revoked, now, actor)
        await repo.add_grants(list(new_grants.values()), audits)
        await self.outbox.add_all(session, outgoing)
        # An import of volunteers grows these tables by the hundred thousand: their look-ups by person must
        # not keep the plans of an empty table.
        await self.import_statistics.wrote(session, len(decided.added), "volunteer_records")
        await self.import_statistics.wrote(session, len(new_grants), "role_grants", "role_audit")

    # --- bulk import (operators) ------------------------------------------------------------------------------
    async def import_regions(self, principal: Principal, data: bytes, dry_run: bool) -> imports.Outcome:
        """Validates every row first; writes nothing if any is invalid. The whole tree is written in ONE
        transaction (regions and their identity.neighbourhood.created events), so it lands completely or not."""
        async with self.sessions() as session, session.begin():
            actor = await self.actor(session, principal)
            if not actor.is_operator:
                raise PermissionDenied("bulk import is for operators", code="operator_only")
            repo = RegionImportRepository(session)
            rows, _ = imports.parse_regions(data)
            stored = await repo.by_codes(imports.codes_to_look_up(rows))
            parent_codes = await repo.codes_of(r.parent_id for r in stored.values() if r.parent_id)
            existing = {
                code: imports.ExistingRegion(r.id, r.level, parent_codes.get(r.parent_id or "", ""))
                for code, r in stored.items()
            }
            plan = imports.plan_regions(data, existing)
            if plan.errors or dry_run:
                return imports.Outcome(
                    plan.rows, 0 if plan.errors else len(plan.create), plan.skipped, plan.errors, False
                )
            now = self.clock.now()
            placed: dict[str, tuple[str, int, str | None, str | None]] = {
                code: (r.id, r.level, r.district_id, r.subdistrict_id) for code, r in stored.items()
            }
            new_rows: list[dict[str, object]] = []
            created: list[Region] = []
            for row in plan.create:
                district_id = subdistrict_id = None
                if row.parent_code:
                    parent_id, parent_level, parent_district, _ = placed[row.parent_code]
                    district_id = parent_id if parent_level == region_rules.DISTRICT else parent_district
                    subdistrict_id = parent_id if parent_level == region_rules.SUBDISTRICT else None
                region = Region(
                    id=new_id(),
                    level=row.level,
                    code=row.code,
                    name=row.name,
                    parent_id=placed[row.parent_code][0] if row.parent_code else None,
                    kind=row.kind,
                    district_id=district_id,
                    subdistrict_id=subdistrict_id,
                    created_at=now,
                )
                placed[row.code] = (region.id, region.level, district_id, subdistrict_id)
                created.append(region)
                new_rows.append({c.key: getattr(region, c.key) for c in Region.__table__.columns})
            await repo.insert_regions(new_rows)
            for region in created:
                if region.level == region_rules.NEIGHBOURHOOD:
                    await events.neighbourhood_created(self.outbox, session, region)
        log.info(
            "regions imported",
            extra={"regions_created": len(created), "rows_skipped": plan.skipped, "by": actor.subject},
        )
        return imports.Outcome(plan.rows, len(created), plan.skipped, plan.errors, True)

    async def import_households(self, principal: Principal, data: bytes, dry_run: bool) -> imports.Outcome:
        """Validates every row first; writes nothing if any is invalid. Writing then goes in transactions of
        IMPORT_CHUNK households (each with its identity.household.created events): a crash part-way leaves
        whole chunks written, and running the same file again completes it (existing addresses are skipped)."""
        async with self.sessions() as session:
            actor = await self.actor(session, principal)
            if not actor.is_operator:
                raise PermissionDenied("bulk import is for operators", code="operator_only")
            repo = RegionImportRepository(session)
            rows, _ = imports.parse_households(data)
            regions = await repo.by_codes({r.neighbourhood_code for r in rows})
            neighbourhoods = {code: r.id for code, r in regions.items() if r.level == region_rules.NEIGHBOURHOOD}
            existing = await repo.household_keys(neighbourhoods.values())
        plan = imports.plan_households(data, neighbourhoods, existing)
        if plan.errors or dry_run:
            return imports.Outcome(plan.rows, 0 if plan.errors else len(plan.create), plan.skipped, plan.errors, False)
        created = 0
        for start in range(0, len(plan.create), IMPORT_CHUNK):
            chunk = plan.create[start : start + IMPORT_CHUNK]
            now = self.clock.now()
            households = {new_id(): (row, neighbourhood_id) for row, neighbourhood_id in chunk}
            values = [
                {
                    "id": household_id,
                    "neighbourhood_id": neighbourhood_id,
                    "address_key": row.address.key,
                    "building": row.address.building,
                    "unit": row.address.unit,
                    "room": row.address.room,
                    "village_group": row.address.village_group,
                    "house_number": row.address.house_number,
                    "created_at": now,
                }
                for household_id, (row, neighbourhood_id) in households.items()
            ]
            async with self.sessions() as session, session.begin():
                inserted = await RegionImportRepository(session).insert_households(values)
                by_id = {v["id"]: v for v in values}
                for household_id in inserted:
                    await events.household_created(self.outbox, session, Household(**by_id[household_id]))
            created += len(inserted)
        skipped = plan.skipped + len(plan.create) - created  # added by someone else meanwhile
        log.info(
            "households imported", extra={"households_created": created, "rows_skipped": skipped, "by": actor.subject}
        )
        return imports.Outcome(plan.rows, created, skipped, plan.errors, True)

    async def import_residents(
        self, principal: Principal, records: list[resident_imports.RawResident], dry_run: bool
    ) -> tuple[imports.Outcome, list[ImportedResident]]:
        """A batch of verified residents (operators). Validated as a whole; then ONE transaction writes the
        people (no password: they sign in by SMS code), new households, verified memberships, party-member
        badges (granted and audited as at verification), the import references, and the events the
        per-person path publishes — as multi-row INSERTs."""
        async with self.sessions() as session, session.begin():
            actor = await self.actor(session, principal)
            if not actor.is_operator:
                raise PermissionDenied("bulk import is for operators", code="operator_only")
            resident_imports.ensure_batch_size(len(records))
            errors = imports.Errors()
            parsed = resident_imports.parse(records, errors)
            hmacs = {r.id_number: self.pii.id_hmac(r.id_number) for r in parsed}
            repo = ResidentImportRepository(session)
            imported = await repo.imported(IMPORT_RESIDENT, (r.external_ref for r in parsed))
            hood_ids, hood_codes = await repo.neighbourhoods(
                (r.neighbourhood_id for r in parsed if r.neighbourhood_id),
                (r.neighbourhood_code for r in parsed if not r.neighbourhood_id),
                region_rules.NEIGHBOURHOOD,
            )
            known = await repo.people_by_id_hmac(hmacs.values())
            found = resident_imports.Lookups(
                imported=set(imported),
                neighbourhood_ids=hood_ids,
                neighbourhood_codes=hood_codes,
                households=await repo.household_places(r.household_id for r in parsed if r.household_id),
                by_id_hmac={h: resident_imports.KnownPerson(pid, phone) for h, pid, phone in known},
                by_phone=await repo.people_by_phone(r.phone for r in parsed),
                memberships=await repo.active_memberships(pid for _, pid, _ in known),
            )
            plan = resident_imports.plan(parsed, hmacs, found, errors)
            if plan.errors or dry_run:
                outcome = imports.Outcome(
                    plan.rows, 0 if plan.errors else len(plan.create), len(plan.skipped), plan.errors, False
                )
                return outcome, []
            made = await self._write_residents(session, repo, actor, plan.create)
            earlier = await repo.memberships(imported[r.external_ref] for r in plan.skipped)
        results = {m.external_ref: m for m in made}
        for r in plan.skipped:
            membership_id = imported[r.external_ref]
            person_id, household_id = earlier.get(membership_id, ("", ""))
            results[r.external_ref] = ImportedResident(r.external_ref, person_id, membership_id, household_id, False)
        log.info(
            "residents imported",
            extra={"residents_created": len(made), "rows_skipped": len(plan.skipped), "by": actor.subject},
        )
        ordered = [results[r.external_ref] for r in records if r.external_ref.strip() in results]
        return imports.Outcome(plan.rows, len(made), len(plan.skipped), plan.errors, True), ordered

    async def _write_residents(
        self,
        session: AsyncSession,
        repo: ResidentImportRepository,
        actor: Principal,
        planned: list[resident_imports.Planned],
    ) -> list[ImportedResident]:
        now = self.clock.now()
        people_rows: list[dict[str, object]] = []
        person_of: dict[str, str] = {}  # id hmac -> person id (new people)
        for p in planned:
            if p.person_id or p.id_hmac in person_of:
                continue
            person_of[p.id_hmac] = new_id()
            people_rows.append(
                {
                    "id": person_of[p.id_hmac],
                    "real_name": p.resident.real_name,
                    "display_name": p.resident.display_name,
                    "phone": p.resident.phone,
                    "id_number_hmac": p.id_hmac,
                    "id_number_enc": self.pii.encrypt(p.resident.id_number),
                    "password_hash": "",  # no password: sign-in by SMS code until the person sets one
                    "created_at": now,
                }
            )
        # Households: the ones named by id, else found or created at the address.
        wanted = {(p.neighbourhood_id, p.resident.address.key) for p in planned if p.resident.address is not None}
        existing = await repo.households_at(wanted)
        new_households: dict[tuple[str, str], dict[str, object]] = {}
        for p in planned:
            address = p.resident.address
            if address is None or (p.neighbourhood_id, address.key) in existing:
                continue
            new_households.setdefault(
                (p.neighbourhood_id, address.key),
                {
                    "id": new_id(),
                    "neighbourhood_id": p.neighbourhood_id,
                    "address_key": address.key,
                    "building": address.building,
                    "unit": address.unit,
                    "room": address.room,
                    "village_group": address.village_group,
                    "house_number": address.house_number,
                    "created_at": now,
                },
            )
        inserted = set(await repo.insert_households(list(new_households.values())))
        missing = [key for key, row in new_households.items() if row["id"] not in inserted]
        if missing:  # another batch added these addresses meanwhile: use its households
            existing.update(await repo.households_at(missing))
        household_of = dict(existing)
        household_of.update({key: str(row["id"]) for key, row in new_households.items() if row["id"] in inserted})
        announced: set[str] = set()
        memberships: list[dict[str, object]] = []
        grants: list[dict[str, object]] = []
        audits: list[dict[str, object]] = []
        refs: list[dict[str, object]] = []
        outgoing: list[identity_ev.ImportedResident] = []
        made: list[ImportedResident] = []
        households_by_id = {str(row["id"]): row for row in new_households.values()}
        for p in planned:
            r = p.resident
            person_id = p.person_id or person_of[p.id_hmac]
            key = (p.neighbourhood_id, r.address.key) if r.address is not None else None
            household_id = household_of[key] if key is not None else r.household_id
            membership = {
                "id": new_id(),
                "person_id": person_id,
                "neighbourhood_id": p.neighbourhood_id,
                "household_id": household_id,
                "state": membership_rules.VERIFIED,
                "party_member_claimed": r.party_member,
                "join_code": "",
                "reason": "",
                "reviewed_by": actor.subject,
                "reviewed_at": now,
                "left_at": None,
                "created_at": now,
            }
            memberships.append(membership)
            grant = None
            if r.party_member:
                grant = {
                    "id": new_id(),
                    "person_id": person_id,
                    "role": auth.PARTY_MEMBER,
                    "scope": f"n:{p.neighbourhood_id}",
                    "granted_by": actor.subject,
                    "reason": "confirmed at import",
                    "granted_at": now,
                    "revoked_at": None,
                    "revoked_by": "",
                }
                grants.append(grant)
                audits.append(
                    {
                        "id": new_id(),
                        "action": "grant",
                        "grant_id": grant["id"],
                        "person_id": person_id,
                        "role": grant["role"],
                        "scope": grant["scope"],
                        "actor": actor.subject,
                        "reason": grant["reason"],
                        "at": now,
                    }
                )
            refs.append(
                {
                    "kind": IMPORT_RESIDENT,
                    "external_ref": r.external_ref,
                    "entity_id": membership["id"],
                    "created_by": actor.subject,
                    "created_at": now,
                }
            )
            new_household = households_by_id.get(household_id) if household_id not in announced else None
            if new_household is not None:
                announced.add(household_id)
            outgoing.append(events.imported_resident(membership, r.display_name, new_household, grant))
            made.append(ImportedResident(r.external_ref, person_id, str(membership["id"]), household_id, True))
        try:
            await repo.insert(Person, people_rows)
            await repo.insert(Membership, memberships)
            await repo.insert(RoleGrant, grants)
            await repo.insert(RoleAudit, audits)
            await repo.insert(ImportRef, refs)
        except IntegrityError:
            # Another batch took a phone, an ID number or an external_ref meanwhile: nothing of this batch stays.
            raise Conflict(
                "another import wrote some of these records meanwhile; send the batch again", code="import_conflict"
            ) from None
        await self.outbox.add_many(session, events.residents_imported_messages(outgoing))
        await self.import_statistics.wrote(
            session, len(made), "persons", "households", "memberships", "role_grants", "import_refs", "outbox"
        )
        return made

    async def lookup_residents(self, principal: Principal, person_ids: list[str]) -> list[tuple[str, str, str, str]]:
        """(person id, neighbourhood id, household id, display name) of each verified membership of these
        people: for our services (e.g. volunteers importing volunteers) and operators."""
        if len(person_ids) > resident_imports.MAX_BATCH:
            raise InvalidArgument(
                f"ask about at most {resident_imports.MAX_BATCH} people at once", code="batch_too_large"
            )
        if not (principal.has(auth.SERVICE, "*") or principal.is_operator):
            raise PermissionDenied("for our services and operators", code="service_only")
        async with self.sessions() as session:
            return await ResidentImportRepository(session).verified_of(p for p in person_ids if p)

    # --- throttling per client address ---------------------------------------------------------------------
    def _key(self, kind: str, value: str) -> str:
        """A throttling key that does not store the phone or address itself."""
        return f"{kind}:{self.pii.id_hmac(value or 'unknown')}"

    async def _ensure_address_open(self, client_ip: str) -> None:
        async with self.sessions() as session:
            counter = await RateLimitRepository(session).peek(self._key("login-addr", client_ip))
        until = throttle.blocked_until(counter, self.login_address_limit, self.clock.now())
        if until is not None:
            raise ResourceExhausted(
                "too many failed sign-ins from your network; try again later",
                code="address_throttled",
                retry_after=until,
            )

    async def _count_address_failure(self, session: AsyncSession, client_ip: str) -> None:
        repo = RateLimitRepository(session)
        key = self._key("login-addr", client_ip)
        row = (await repo.lock([key]))[key]
        repo.store(row, throttle.record(repo.counter(row), self.login_address_limit, self.clock.now()))

    async def purge_stale(self) -> None:
        """Forgets expired login codes and throttling counters older than a day (a background task)."""
        horizon = self.clock.now() - timedelta(days=1)
        async with self.sessions() as session, session.begin():
            await CodeRepository(session).purge_before(horizon)
            await RateLimitRepository(session).purge_before(horizon)

    # --- authentication --------------------------------------------------------------------------------------
    async def login(self, phone: str, password: str, client_ip: str = "") -> IssuedTokens:
        await self._ensure_address_open(client_ip)
        try:
            phone = people.normalize_phone(phone)
        except InvalidArgument:
            async with self.sessions() as session, session.begin():
                await self._count_address_failure(session, client_ip)
            raise Unauthenticated("wrong phone number or password", code="invalid_credentials") from None
        now = self.clock.now()
        async with self.sessions() as session:
            row = await SessionRepository(session).throttle(phone)
            state = sessions.Throttle(row.failures, row.window_started_at, row.locked_until) if row else None
            sessions.ensure_not_locked(state, now)
            person = await PeopleRepository(session).person_by_phone(phone)
        # Imported people have no password yet (they sign in by SMS code): checked against the dummy hash like
        # an unknown phone, so the answer and its timing are the same.
        has_password = person is not None and bool(person.password_hash)
        stored = person.password_hash if person is not None and has_password else self._dummy_hash
        ok = await asyncio.to_thread(self._password_ok, stored, password or "")
        if not ok or person is None or not has_password:
            async with self.sessions() as session, session.begin():
                repo = SessionRepository(session)
                row = await repo.throttle(phone)
                state = sessions.Throttle(row.failures, row.window_started_at, row.locked_until) if row else None
                updated = sessions.after_failure(state, now)
                if row is None:
                    session.add(
                        LoginThrottle(
                            phone=phone,
                            failures=updated.failures,
                            window_started_at=updated.window_started_at,
                            locked_until=updated.locked_until,
                        )
                    )
                else:
                    row.failures = updated.failures
                    row.window_started_at = updated.window_started_at
                    row.locked_until = updated.locked_until
                await self._count_address_failure(session, client_ip)
            raise Unauthenticated("wrong phone number or password", code="invalid_credentials")
        async with self.sessions() as session, session.begin():
            await SessionRepository(session).clear_throttle(phone)
            return await self._issue(session, person.id, new_id())

    async def request_login_code(self, phone: str, client_ip: str = "") -> tuple[int, int]:
        """Sends a one-time code to a registered phone. The answer (expires_in, resend_after) and the
        throttling are the same for unregistered phones, so the call does not tell which phones exist."""
        if self.sms is None:
            raise Unavailable("sign-in by SMS code is not configured here", code="sms_not_configured")
        phone = people.normalize_phone(phone)
        now = self.clock.now()
        phone_key = self.pii.id_hmac(phone)
        resend_key = self._key("code-resend", phone)
        hourly_key = self._key("code-phone", phone)
        address_key = self._key("code-addr", client_ip)
        code = logincodes.new_code()
        async with self.sessions() as session, session.begin():
            limits = RateLimitRepository(session)
            rows = await limits.lock([resend_key, hourly_key, address_key])
            checks = (
                (
                    address_key,
                    self.code_address_limit,
                    "address_throttled",
                    "too many codes requested from your network",
                ),
                (
                    resend_key,
                    logincodes.RESEND_INTERVAL,
                    "code_requested_too_soon",
                    "wait a minute before asking again",
                ),
                (hourly_key, logincodes.PER_PHONE_HOURLY, "too_many_code_requests", "too many codes for this phone"),
            )
            for key, limit, error_code, message in checks:
                until = throttle.blocked_until(limits.counter(rows[key]), limit, now)
                if until is not None:
                    raise ResourceExhausted(f"{message}; try again later", code=error_code, retry_after=until)
            for key, limit, _, _ in checks:
                limits.store(rows[key], throttle.record(limits.counter(rows[key]), limit, now))
            person = await PeopleRepository(session).person_by_phone(phone)
            code_id = ""
            if person is not None:
                codes = CodeRepository(session)
                await codes.retire_unused(phone_key, logincodes.LOGIN, now)
                code_id = new_id()
                await codes.add(
                    LoginCode(
                        id=code_id,
                        phone_key=phone_key,
                        purpose=logincodes.LOGIN,
                        code_hash=self.pii.id_hmac(f"login-code:{code_id}:{code}"),
                        created_at=now,
                        expires_at=now + logincodes.CODE_TTL,
                        attempts=0,
                        used_at=None,
                    )
                )
        if code_id:
            try:
                await self.sms.send(phone, logincodes.sms_text(code), purpose=logincodes.LOGIN, code=code)
            except DomainError:
                async with self.sessions() as session, session.begin():
                    await CodeRepository(session).retire_unused(phone_key, logincodes.LOGIN, self.clock.now())
                raise
        return int(logincodes.CODE_TTL.total_seconds()), int(logincodes.RESEND_INTERVAL.window.total_seconds())

    async def login_with_code(self, phone: str, code: str, client_ip: str = "") -> IssuedTokens:
        await self._ensure_address_open(client_ip)
        code = logincodes.normalize_code(code)
        failure: DomainError
        async with self.sessions() as session, session.begin():
            try:
                try:
                    phone = people.normalize_phone(phone)
                except InvalidArgument:
                    raise Unauthenticated("wrong or unknown code; request a new one", code="code_invalid") from None
                now = self.clock.now()
                phone_key = self.pii.id_hmac(phone)
                codes = CodeRepository(session)
                row = await codes.latest(phone_key, logincodes.LOGIN)
                state = logincodes.CodeState(row.used_at is not None, row.expires_at, row.attempts) if row else None
                logincodes.ensure_usable(state, now)
                assert row is not None
                if not logincodes.same_code(row.code_hash, self.pii.id_hmac(f"login-code:{row.id}:{code}")):
                    await codes.count_attempt(row.id)
                    raise Unauthenticated("wrong or unknown code; request a new one", code="code_invalid")
                person = await PeopleRepository(session).person_by_phone(phone)
                if person is None or not await codes.use(row.id, now, logincodes.MAX_TRIES):
                    raise Unauthenticated("wrong or unknown code; request a new one", code="code_invalid")
                return await self._issue(session, person.id, new_id())
            except (Unauthenticated, ResourceExhausted) as exc:
                failure = exc  # the attempt count commits with this transaction
        async with self.sessions() as session, session.begin():
            await self._count_address_failure(session, client_ip)
        raise failure

    async def refresh(self, refresh_token: str) -> IssuedTokens:
        reused = False
        async with self.sessions() as session, session.begin():
            repo = SessionRepository(session)
            row = await repo.by_hash(sessions.hash_refresh_token(refresh_token or ""))
            state = (
                sessions.RefreshState(row.used_at is not None, row.revoked_at is not None, row.expires_at)
                if row
                else None
            )
            decision = sessions.refresh_decision(state, self.clock.now())
            assert row is not None
            if decision == sessions.ROTATE and await repo.mark_used(row.id, self.clock.now()):
                return await self._issue(session, row.person_id, row.family_id)
            # An already-rotated token came back: someone holds a copy. End the whole family.
            await self._end_family(session, row.family_id, row.person_id, "refresh_token_reused")
            reused = True
        assert reused
        raise Unauthenticated("this refresh token was already used; the session is ended", code="refresh_token_reused")

    async def logout(self, refresh_token: str) -> None:
        async with self.sessions() as session, session.begin():
            repo = SessionRepository(session)
            row = await repo.by_hash(sessions.hash_refresh_token(refresh_token or ""))
            if row is None:
                raise Unauthenticated("refresh token not recognised", code="refresh_token_invalid")
            await self._end_family(session, row.family_id, row.person_id, "logout")

    async def _end_family(self, session: AsyncSession, family_id: str, person_id: str, reason: str) -> None:
        """Ends a refresh-token family; every service refuses its access tokens (identity.session.revoked)."""
        now = self.clock.now()
        if await SessionRepository(session).revoke_family(family_id, now):
            await events.session_revoked(self.outbox, session, family_id, person_id, now, reason)
