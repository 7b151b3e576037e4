"""gRPC ⇄ domain translation for identity."""

from __future__ import annotations

import grpc

from shequtong.common.v1 import common_pb2
from shequtong.identity.v1 import identity_pb2, identity_pb2_grpc
from shequtong_identity.models import Region
from shequtong_identity.service import IdentityService
from shequtong_kit import auth
from shequtong_kit.pagination import page_size
from shequtong_kit.proto import ts


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


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, service: IdentityService) -> None:
        self.service = service

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
        region = await self.service.create_region(
            auth.current(), request.level, request.code, request.name, request.parent_id, request.kind
        )
        return identity_pb2.CreateRegionResponse(region=region_to_proto(region))

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
