"""gRPC ⇄ domain translation for identity."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from shequtong.common.v1 import common_pb2
from shequtong.identity.v1 import identity_pb2, identity_pb2_grpc
from shequtong_identity.domain import households as household_rules
from shequtong_identity.domain import imports, resident_imports
from shequtong_identity.domain import joincodes as joincode_rules
from shequtong_identity.domain.people import mask_phone
from shequtong_identity.models import Household, IdNumberReveal, JoinCode, Person, Region, RoleGrant, Shift
from shequtong_identity.repository import MembershipView
from shequtong_identity.service import IdentityService, IssuedTokens
from shequtong_kit import auth
from shequtong_kit.errors import InvalidArgument
from shequtong_kit.grpc_server import metadata_value
from shequtong_kit.idempotency import IDEMPOTENCY_METADATA, run_once
from shequtong_kit.pagination import decode_cursor, encode_cursor, page_size
from shequtong_kit.proto import from_ts, ts

R = TypeVar("R", bound=Message)

CLIENT_IP_METADATA = "x-client-ip"


def client_ip(context: grpc.aio.ServicerContext) -> str:
    """The end client's address: the gateway's x-client-ip, else the gRPC peer (a direct caller)."""
    given = metadata_value(context, CLIENT_IP_METADATA)
    if given:
        try:
            return str(ipaddress.ip_address(given.strip()))
        except ValueError:
            pass
    peer = context.peer() or ""  # "ipv4:10.0.0.1:5000", "ipv6:[::1]:5000"
    kind, _, rest = peer.partition(":")
    if kind == "ipv6" and rest.startswith("["):
        return rest[1:].split("]", 1)[0]
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    return peer


def region_to_proto(region: Region) -> identity_pb2.Region:
    return identity_pb2.Region(
        id=region.id,
        level=region.level,  # type: ignore[arg-type]
        code=region.code,
        name=region.name,
        parent_id=region.parent_id or "",
        kind=region.kind,  # type: ignore[arg-type]
        district_id=region.district_id or "",
        subdistrict_id=region.subdistrict_id or "",
        created_at=ts(region.created_at),
    )


def person_to_proto(person: Person, show_real_name: bool, show_phone: bool) -> identity_pb2.Person:
    return identity_pb2.Person(
        id=person.id,
        display_name=person.display_name,
        real_name=person.real_name if show_real_name else "",
        phone=person.phone if show_phone else mask_phone(person.phone),
        created_at=ts(person.created_at),
    )


def address_to_proto(household: Household) -> identity_pb2.Address:
    return identity_pb2.Address(
        building=household.building,
        unit=household.unit,
        room=household.room,
        village_group=household.village_group,
        house_number=household.house_number,
    )


def household_to_proto(household: Household) -> identity_pb2.Household:
    return identity_pb2.Household(
        id=household.id,
        neighbourhood_id=household.neighbourhood_id,
        address=address_to_proto(household),
        created_at=ts(household.created_at),
    )


def membership_to_proto(view: MembershipView, viewer: auth.Principal | None) -> identity_pb2.Membership:
    """Full phone and real name to the neighbourhood's committee; the real name to the person; masked to all."""
    m = view.membership
    committee = viewer is not None and viewer.is_committee(m.neighbourhood_id)
    own = viewer is not None and viewer.subject == m.person_id
    return identity_pb2.Membership(
        id=m.id,
        person_id=m.person_id,
        neighbourhood_id=m.neighbourhood_id,
        household_id=m.household_id,
        state=m.state,  # type: ignore[arg-type]
        party_member_claimed=m.party_member_claimed,
        display_name=view.person.display_name,
        phone=view.person.phone if committee else mask_phone(view.person.phone),
        real_name=view.person.real_name if committee or own else "",
        reason=m.reason,
        reviewed_by=m.reviewed_by,
        reviewed_at=ts(m.reviewed_at),
        created_at=ts(m.created_at),
        address=address_to_proto(view.household),
    )


def join_code_to_proto(code: JoinCode, now: datetime) -> identity_pb2.JoinCode:
    return identity_pb2.JoinCode(
        code=code.code,
        neighbourhood_id=code.neighbourhood_id,
        expires_at=ts(code.expires_at),
        max_uses=code.max_uses,
        use_count=code.use_count,
        revoked=code.revoked_at is not None,
        created_by=code.created_by,
        created_at=ts(code.created_at),
        usable=joincode_rules.usable(code.revoked_at is not None, code.expires_at, code.use_count, code.max_uses, now),
    )


def grant_to_proto(grant: RoleGrant, person: Person | None) -> identity_pb2.RoleGrant:
    return identity_pb2.RoleGrant(
        id=grant.id,
        person_id=grant.person_id,
        role=grant.role,
        scope=grant.scope,
        granted_by=grant.granted_by,
        reason=grant.reason,
        granted_at=ts(grant.granted_at),
        revoked=grant.revoked_at is not None,
        revoked_by=grant.revoked_by,
        revoked_at=ts(grant.revoked_at),
        display_name=person.display_name if person else "",
    )


def shift_to_proto(shift: Shift, person: Person | None) -> identity_pb2.Shift:
    return identity_pb2.Shift(
        id=shift.id,
        neighbourhood_id=shift.neighbourhood_id,
        person_id=shift.person_id,
        starts_at=ts(shift.starts_at),
        ends_at=ts(shift.ends_at),
        created_by=shift.created_by,
        created_at=ts(shift.created_at),
        display_name=person.display_name if person else "",
    )


def reveal_to_proto(reveal: IdNumberReveal, person: Person | None, actor: Person | None) -> identity_pb2.IdNumberReveal:
    return identity_pb2.IdNumberReveal(
        id=reveal.id,
        person_id=reveal.person_id,
        person_display_name=person.display_name if person else "",
        revealed_by=reveal.revealed_by,
        revealed_by_display_name=actor.display_name if actor else "",
        neighbourhood_id=reveal.neighbourhood_id,
        reason=reveal.reason,
        revealed_at=ts(reveal.revealed_at),
    )


def report_to_proto(outcome: imports.Outcome) -> identity_pb2.ImportReport:
    return identity_pb2.ImportReport(
        rows=outcome.rows,
        created=outcome.created,
        skipped=outcome.skipped,
        errors=[
            identity_pb2.ImportRowError(row=e.row, column=e.column, code=e.code, message=e.message)
            for e in outcome.errors.items
        ],
        error_count=outcome.errors.count,
        applied=outcome.applied,
    )


def address_parts(address: identity_pb2.Address) -> tuple[str, str, str, str, str]:
    return (address.building, address.unit, address.room, address.village_group, address.house_number)


def tokens_to_proto(issued: IssuedTokens) -> identity_pb2.TokenPair:
    return identity_pb2.TokenPair(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        refresh_token=issued.refresh_token,
        refresh_expires_in=issued.refresh_expires_in,
        person_id=issued.person_id,
    )


def address_from_proto(request: identity_pb2.Address) -> household_rules.Address:
    return household_rules.normalize_address(
        request.building, request.unit, request.room, request.village_group, request.house_number
    )


def page_info(more: bool, cursor: str) -> common_pb2.PageInfo:
    return common_pb2.PageInfo(next_cursor=cursor if more else "", has_more=more)


def time_cursor(cursor: str) -> tuple[datetime, str] | None:
    key = decode_cursor(cursor)
    if key is None:
        return None
    try:
        return datetime.fromisoformat(str(key[0])), str(key[1])
    except (ValueError, IndexError):
        raise InvalidArgument("cursor is not one we issued", code="cursor_invalid") from None


def id_cursor(cursor: str) -> str:
    key = decode_cursor(cursor)
    if key is None:
        return ""
    if len(key) != 1 or not isinstance(key[0], str):
        raise InvalidArgument("cursor is not one we issued", code="cursor_invalid")
    return key[0]


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, service: IdentityService) -> None:
        self.service = service

    async def _once(
        self,
        context: grpc.aio.ServicerContext,
        method: str,
        request: Message,
        response_type: type[R],
        work: Callable[[AsyncSession], Awaitable[R]],
    ) -> R:
        principal = auth.current_or_none()
        scope = f"{method}:{principal.subject if principal else 'anonymous'}"
        key = metadata_value(context, IDEMPOTENCY_METADATA)
        result: R = await run_once(self.service.sessions, key, scope, request, response_type, work, self.service.clock)
        return result

    # --- keys, machine clients, regions ---------------------------------------------------------------
    async def GetJwks(
        self, request: identity_pb2.GetJwksRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.GetJwksResponse:
        return identity_pb2.GetJwksResponse(jwks_json=self.service.jwks())

    async def IssueServiceToken(
        self, request: identity_pb2.IssueServiceTokenRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.IssueServiceTokenResponse:
        token, ttl = self.service.issue_service_token(request.client_id, request.client_secret)
        return identity_pb2.IssueServiceTokenResponse(access_token=token, expires_in=ttl)

    async def CreateRegion(
        self, request: identity_pb2.CreateRegionRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.CreateRegionResponse:
        principal = auth.current()

        async def work(session: AsyncSession) -> identity_pb2.CreateRegionResponse:
            region = await self.service.create_region(
                principal, request.level, request.code, request.name, request.parent_id, request.kind, session
            )
            return identity_pb2.CreateRegionResponse(region=region_to_proto(region))

        return await self._once(context, "CreateRegion", request, identity_pb2.CreateRegionResponse, work)

    async def GetRegion(
        self, request: identity_pb2.GetRegionRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.GetRegionResponse:
        auth.current()
        return identity_pb2.GetRegionResponse(region=region_to_proto(await self.service.get_region(request.id)))

    async def ListRegions(
        self, request: identity_pb2.ListRegionsRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ListRegionsResponse:
        auth.current()
        limit = page_size(request.page.page_size)
        regions = await self.service.list_regions(request.parent_id, request.level, request.page.cursor, limit + 1)
        more = len(regions) > limit
        regions = regions[:limit]
        return identity_pb2.ListRegionsResponse(
            regions=[region_to_proto(r) for r in regions],
            page=common_pb2.PageInfo(next_cursor=regions[-1].id if more else "", has_more=more),
        )

    # --- authentication ------------------------------------------------------------------------------
    async def Login(
        self, request: identity_pb2.LoginRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.LoginResponse:
        issued = await self.service.login(request.phone, request.password, client_ip(context))
        return identity_pb2.LoginResponse(tokens=tokens_to_proto(issued))

    async def Refresh(
        self, request: identity_pb2.RefreshRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.RefreshResponse:
        issued = await self.service.refresh(request.refresh_token)
        return identity_pb2.RefreshResponse(tokens=tokens_to_proto(issued))

    async def Logout(
        self, request: identity_pb2.LogoutRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.LogoutResponse:
        await self.service.logout(request.refresh_token)
        return identity_pb2.LogoutResponse()

    async def GetMe(
        self, request: identity_pb2.GetMeRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.GetMeResponse:
        principal = auth.current()
        me = await self.service.me(principal)
        return identity_pb2.GetMeResponse(
            person=person_to_proto(me.person, show_real_name=True, show_phone=False),
            memberships=[membership_to_proto(v, principal) for v in me.memberships],
            roles=me.roles,
        )

    async def CreatePerson(
        self, request: identity_pb2.CreatePersonRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.CreatePersonResponse:
        principal = auth.current()

        async def work(session: AsyncSession) -> identity_pb2.CreatePersonResponse:
            person = await self.service.create_person(
                session, principal, request.real_name, request.phone, request.id_number, request.password
            )
            return identity_pb2.CreatePersonResponse(person=person_to_proto(person, True, False))

        return await self._once(context, "CreatePerson", request, identity_pb2.CreatePersonResponse, work)

    # --- households ----------------------------------------------------------------------------------
    async def CreateHousehold(
        self, request: identity_pb2.CreateHouseholdRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.CreateHouseholdResponse:
        principal = auth.current()
        address = address_from_proto(request.address)

        async def work(session: AsyncSession) -> identity_pb2.CreateHouseholdResponse:
            household, created = await self.service.create_household(
                session, principal, request.neighbourhood_id, address
            )
            return identity_pb2.CreateHouseholdResponse(household=household_to_proto(household), created=created)

        return await self._once(context, "CreateHousehold", request, identity_pb2.CreateHouseholdResponse, work)

    async def ListHouseholds(
        self, request: identity_pb2.ListHouseholdsRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ListHouseholdsResponse:
        limit = page_size(request.page.page_size)
        found = await self.service.list_households(
            auth.current(), request.neighbourhood_id, id_cursor(request.page.cursor), limit + 1
        )
        more = len(found) > limit
        found = found[:limit]
        return identity_pb2.ListHouseholdsResponse(
            households=[household_to_proto(h) for h in found],
            page=page_info(more, encode_cursor(found[-1].id) if found else ""),
        )

    # --- join codes and registrations ------------------------------------------------------------------
    async def CreateJoinCode(
        self, request: identity_pb2.CreateJoinCodeRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.CreateJoinCodeResponse:
        principal = auth.current()

        async def work(session: AsyncSession) -> identity_pb2.CreateJoinCodeResponse:
            code = await self.service.create_join_code(
                session, principal, request.neighbourhood_id, request.ttl_seconds, request.max_uses
            )
            return identity_pb2.CreateJoinCodeResponse(join_code=join_code_to_proto(code, self.service.clock.now()))

        return await self._once(context, "CreateJoinCode", request, identity_pb2.CreateJoinCodeResponse, work)

    async def ListJoinCodes(
        self, request: identity_pb2.ListJoinCodesRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ListJoinCodesResponse:
        limit = page_size(request.page.page_size)
        found = await self.service.list_join_codes(
            auth.current(), request.neighbourhood_id, time_cursor(request.page.cursor), limit + 1
        )
        more = len(found) > limit
        found = found[:limit]
        last = found[-1] if found else None
        return identity_pb2.ListJoinCodesResponse(
            join_codes=[join_code_to_proto(c, self.service.clock.now()) for c in found],
            page=page_info(more, encode_cursor(last.created_at.isoformat(), last.code) if last else ""),
        )

    async def RevokeJoinCode(
        self, request: identity_pb2.RevokeJoinCodeRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.RevokeJoinCodeResponse:
        code = await self.service.revoke_join_code(auth.current(), request.code)
        return identity_pb2.RevokeJoinCodeResponse(join_code=join_code_to_proto(code, self.service.clock.now()))

    async def Register(
        self, request: identity_pb2.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.RegisterResponse:
        principal = auth.current_or_none()
        address = None if request.household_id else address_from_proto(request.address)

        async def work(session: AsyncSession) -> identity_pb2.RegisterResponse:
            view = await self.service.register(
                session,
                principal,
                request.join_code,
                request.real_name,
                request.phone,
                request.id_number,
                request.password,
                request.household_id,
                address,
                request.party_member,
            )
            viewer = principal or auth.Principal(subject=view.person.id)
            return identity_pb2.RegisterResponse(membership=membership_to_proto(view, viewer))

        return await self._once(context, "Register", request, identity_pb2.RegisterResponse, work)

    async def ListRegistrations(
        self, request: identity_pb2.ListRegistrationsRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ListRegistrationsResponse:
        principal = auth.current()
        limit = page_size(request.page.page_size)
        found = await self.service.list_registrations(
            principal, request.neighbourhood_id, request.state, id_cursor(request.page.cursor), limit + 1
        )
        more = len(found) > limit
        found = found[:limit]
        return identity_pb2.ListRegistrationsResponse(
            memberships=[membership_to_proto(v, principal) for v in found],
            page=page_info(more, encode_cursor(found[-1].membership.id) if found else ""),
        )

    async def VerifyMembership(
        self, request: identity_pb2.VerifyMembershipRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.VerifyMembershipResponse:
        principal = auth.current()
        view = await self.service.verify_membership(principal, request.membership_id, request.confirm_party_member)
        return identity_pb2.VerifyMembershipResponse(membership=membership_to_proto(view, principal))

    async def RejectMembership(
        self, request: identity_pb2.RejectMembershipRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.RejectMembershipResponse:
        principal = auth.current()
        view = await self.service.reject_membership(principal, request.membership_id, request.reason)
        return identity_pb2.RejectMembershipResponse(membership=membership_to_proto(view, principal))

    async def LeaveNeighbourhood(
        self, request: identity_pb2.LeaveNeighbourhoodRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.LeaveNeighbourhoodResponse:
        principal = auth.current()
        view = await self.service.leave(principal, request.membership_id)
        return identity_pb2.LeaveNeighbourhoodResponse(membership=membership_to_proto(view, principal))

    # --- roles --------------------------------------------------------------------------------------------
    async def GrantRole(
        self, request: identity_pb2.GrantRoleRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.GrantRoleResponse:
        principal = auth.current()

        async def work(session: AsyncSession) -> identity_pb2.GrantRoleResponse:
            grant, person = await self.service.grant_role(
                session, principal, request.person_id, request.role, request.scope, request.reason
            )
            return identity_pb2.GrantRoleResponse(grant=grant_to_proto(grant, person))

        return await self._once(context, "GrantRole", request, identity_pb2.GrantRoleResponse, work)

    async def RevokeRole(
        self, request: identity_pb2.RevokeRoleRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.RevokeRoleResponse:
        grant, person = await self.service.revoke_role(auth.current(), request.grant_id, request.reason)
        return identity_pb2.RevokeRoleResponse(grant=grant_to_proto(grant, person))

    async def ListRoleGrants(
        self, request: identity_pb2.ListRoleGrantsRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ListRoleGrantsResponse:
        limit = page_size(request.page.page_size)
        found = await self.service.list_grants(
            auth.current(),
            request.person_id,
            request.scope,
            request.include_revoked,
            id_cursor(request.page.cursor),
            limit + 1,
        )
        more = len(found) > limit
        found = found[:limit]
        return identity_pb2.ListRoleGrantsResponse(
            grants=[grant_to_proto(g, p) for g, p in found],
            page=page_info(more, encode_cursor(found[-1][0].id) if found else ""),
        )

    # --- duty roster ------------------------------------------------------------------------------------
    async def CreateShift(
        self, request: identity_pb2.CreateShiftRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.CreateShiftResponse:
        principal = auth.current()
        starts_at = from_ts(request.starts_at) if request.HasField("starts_at") else None
        ends_at = from_ts(request.ends_at) if request.HasField("ends_at") else None

        async def work(session: AsyncSession) -> identity_pb2.CreateShiftResponse:
            shift, person = await self.service.create_shift(
                session, principal, request.neighbourhood_id, request.person_id, starts_at, ends_at
            )
            return identity_pb2.CreateShiftResponse(shift=shift_to_proto(shift, person))

        return await self._once(context, "CreateShift", request, identity_pb2.CreateShiftResponse, work)

    async def ListShifts(
        self, request: identity_pb2.ListShiftsRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ListShiftsResponse:
        limit = page_size(request.page.page_size)
        since = from_ts(request.since) if request.HasField("since") else None
        found = await self.service.list_shifts(
            auth.current(), request.neighbourhood_id, since, time_cursor(request.page.cursor), limit + 1
        )
        more = len(found) > limit
        found = found[:limit]
        last = found[-1][0] if found else None
        return identity_pb2.ListShiftsResponse(
            shifts=[shift_to_proto(s, p) for s, p in found],
            page=page_info(more, encode_cursor(last.starts_at.isoformat(), last.id) if last else ""),
        )

    async def GetOnDuty(
        self, request: identity_pb2.GetOnDutyRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.GetOnDutyResponse:
        at = from_ts(request.at) if request.HasField("at") else None
        answer, person = await self.service.on_duty(auth.current(), request.neighbourhood_id, at)
        return identity_pb2.GetOnDutyResponse(
            person_id=answer.person_id,
            fallback_to_secretary=answer.fallback_to_secretary,
            display_name=person.display_name if person else "",
            shift_id=answer.shift_id,
        )

    # --- phone + one-time code ----------------------------------------------------------------------------
    async def RequestLoginCode(
        self, request: identity_pb2.RequestLoginCodeRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.RequestLoginCodeResponse:
        expires_in, resend_after = await self.service.request_login_code(request.phone, client_ip(context))
        return identity_pb2.RequestLoginCodeResponse(expires_in=expires_in, resend_after=resend_after)

    async def LoginWithCode(
        self, request: identity_pb2.LoginWithCodeRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.LoginWithCodeResponse:
        issued = await self.service.login_with_code(request.phone, request.code, client_ip(context))
        return identity_pb2.LoginWithCodeResponse(tokens=tokens_to_proto(issued))

    # --- join code, moving house, profile, party membership ---------------------------------------------
    async def GetJoinCode(
        self, request: identity_pb2.GetJoinCodeRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.GetJoinCodeResponse:
        code = await self.service.get_join_code(auth.current(), request.code)
        return identity_pb2.GetJoinCodeResponse(join_code=join_code_to_proto(code, self.service.clock.now()))

    async def MoveHousehold(
        self, request: identity_pb2.MoveHouseholdRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.MoveHouseholdResponse:
        principal = auth.current()
        address = (
            None if request.household_id or not request.HasField("address") else address_from_proto(request.address)
        )

        async def work(session: AsyncSession) -> identity_pb2.MoveHouseholdResponse:
            view = await self.service.move_household(
                session, principal, request.membership_id, request.household_id, address
            )
            return identity_pb2.MoveHouseholdResponse(membership=membership_to_proto(view, principal))

        return await self._once(context, "MoveHousehold", request, identity_pb2.MoveHouseholdResponse, work)

    async def UpdateProfile(
        self, request: identity_pb2.UpdateProfileRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.UpdateProfileResponse:
        person = await self.service.update_profile(auth.current(), request.person_id, request.real_name, request.reason)
        return identity_pb2.UpdateProfileResponse(person=person_to_proto(person, show_real_name=True, show_phone=False))

    async def ConfirmPartyMember(
        self, request: identity_pb2.ConfirmPartyMemberRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ConfirmPartyMemberResponse:
        principal = auth.current()

        async def work(session: AsyncSession) -> identity_pb2.ConfirmPartyMemberResponse:
            view, grant = await self.service.confirm_party_member(
                session, principal, request.membership_id, request.reason
            )
            return identity_pb2.ConfirmPartyMemberResponse(
                membership=membership_to_proto(view, principal), grant=grant_to_proto(grant, view.person)
            )

        return await self._once(context, "ConfirmPartyMember", request, identity_pb2.ConfirmPartyMemberResponse, work)

    # --- personal data -------------------------------------------------------------------------------------
    async def RevealIdNumber(
        self, request: identity_pb2.RevealIdNumberRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.RevealIdNumberResponse:
        # Deliberately not idempotency-keyed: a stored reply would keep the ID number in clear at rest.
        id_number, reveal_id = await self.service.reveal_id_number(
            auth.current(), request.person_id, request.neighbourhood_id, request.reason
        )
        return identity_pb2.RevealIdNumberResponse(id_number=id_number, reveal_id=reveal_id)

    async def ListIdNumberReveals(
        self, request: identity_pb2.ListIdNumberRevealsRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ListIdNumberRevealsResponse:
        limit = page_size(request.page.page_size)
        found = await self.service.list_reveals(
            auth.current(), request.region_id, request.person_id, id_cursor(request.page.cursor), limit + 1
        )
        more = len(found) > limit
        found = found[:limit]
        return identity_pb2.ListIdNumberRevealsResponse(
            reveals=[reveal_to_proto(r, p, a) for r, p, a in found],
            page=page_info(more, encode_cursor(found[-1][0].id) if found else ""),
        )

    # --- bulk import -----------------------------------------------------------------------------------------
    async def ImportRegions(
        self, request: identity_pb2.ImportRegionsRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ImportRegionsResponse:
        outcome = await self.service.import_regions(auth.current(), request.csv, request.dry_run)
        return identity_pb2.ImportRegionsResponse(report=report_to_proto(outcome))

    async def ImportHouseholds(
        self, request: identity_pb2.ImportHouseholdsRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ImportHouseholdsResponse:
        outcome = await self.service.import_households(auth.current(), request.csv, request.dry_run)
        return identity_pb2.ImportHouseholdsResponse(report=report_to_proto(outcome))

    async def ImportResidents(
        self, request: identity_pb2.ImportResidentsRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ImportResidentsResponse:
        records = [
            resident_imports.RawResident(
                external_ref=r.external_ref,
                neighbourhood_id=r.neighbourhood_id,
                neighbourhood_code=r.neighbourhood_code,
                household_id=r.household_id,
                address=address_parts(r.address) if r.HasField("address") else None,
                real_name=r.real_name,
                phone=r.phone,
                id_number=r.id_number,
                party_member=r.party_member,
            )
            for r in request.residents
        ]
        outcome, made = await self.service.import_residents(auth.current(), records, request.dry_run)
        return identity_pb2.ImportResidentsResponse(
            report=report_to_proto(outcome),
            residents=[
                identity_pb2.ImportedResident(
                    external_ref=m.external_ref,
                    person_id=m.person_id,
                    membership_id=m.membership_id,
                    household_id=m.household_id,
                    created=m.created,
                )
                for m in made
            ],
        )

    async def LookupResidents(
        self, request: identity_pb2.LookupResidentsRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.LookupResidentsResponse:
        found = await self.service.lookup_residents(auth.current(), list(request.person_ids))
        return identity_pb2.LookupResidentsResponse(
            residencies=[
                identity_pb2.Residency(person_id=p, neighbourhood_id=n, household_id=h, display_name=d)
                for p, n, h, d in found
            ]
        )
