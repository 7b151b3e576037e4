"""Identity use cases: each state change and its event commit in one transaction."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shequtong_identity import events
from shequtong_identity.domain import regions as region_rules
from shequtong_identity.domain import tokens
from shequtong_identity.models import Region
from shequtong_identity.repository import RegionRepository
from shequtong_identity.settings import IdentitySettings
from shequtong_kit.auth import Principal
from shequtong_kit.clock import Clock
from shequtong_kit.errors import AlreadyExists, NotFound, Unauthenticated
from shequtong_kit.ids import new_id
from shequtong_kit.outbox import Outbox


class IdentityService:
    def __init__(
        self,
        settings: IdentitySettings,
        sessions: async_sessionmaker[AsyncSession],
        outbox: Outbox,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.outbox = outbox
        self.clock = clock
        self.keys = tokens.load_signing_keys(settings.identity_signing_keys)
        self.accounts = tokens.load_service_accounts(settings.service_accounts)

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

    # --- region tree --------------------------------------------------------------------------------
    async def create_region(
        self, principal: Principal, level: int, code: str, name: str, parent_id: str, kind: int
    ) -> Region:
        async with self.sessions() as session, session.begin():
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
