"""Request-scoped dependencies: who is calling (verified here AND again by every service), the gRPC
clients, and the metadata each downstream call carries (token, idempotency key, deadline)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shequtong_api_gateway.clients import Clients
from shequtong_api_gateway.problems import ApiProblem
from shequtong_kit import auth
from shequtong_kit.errors import Unauthenticated
from shequtong_kit.idempotency import IDEMPOTENCY_METADATA

bearer = HTTPBearer(auto_error=False, description="An access token from POST /v1/auth/login")

CLIENT_IP_METADATA = "x-client-ip"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(spec: str) -> tuple[Network, ...]:
    """`TRUSTED_PROXIES`: IPs or CIDRs, comma- or space-separated."""
    return tuple(ipaddress.ip_network(part, strict=False) for part in spec.replace(",", " ").split())


def client_address(peer: str, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The client's address: the connection's peer, unless the peer is a trusted proxy — then the right-most
    X-Forwarded-For entry that is not itself a trusted proxy (entries further left are the client's to forge)."""

    def is_trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in trusted)

    if not forwarded_for or not is_trusted(peer):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a malformed chain: believe only what we saw
        if not is_trusted(hop):
            return hop
    return hops[0] if hops else peer


def clients(request: Request) -> Clients:
    return request.app.state.clients  # type: ignore[no-any-return]


@dataclass
class Caller:
    """The caller of one request; `call` forwards their token so each service checks them itself."""

    principal: auth.Principal | None
    token: str | None
    idempotency_key: str | None
    clients: Clients
    client_ip: str = ""

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        pairs = list(auth.bearer_metadata(self.token))
        if self.idempotency_key:
            pairs.append((IDEMPOTENCY_METADATA, self.idempotency_key))
        if self.client_ip:
            pairs.append((CLIENT_IP_METADATA, self.client_ip))
        return tuple(pairs)

    async def call(self, method: Any, request: Any, deadline: float | None = None) -> Any:
        return await method(request, metadata=self.metadata, timeout=deadline or self.clients.deadline)

    def require(self) -> auth.Principal:
        if self.principal is None:
            raise ApiProblem(401, "unauthenticated", "sign in first")
        return self.principal


async def _caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=200,
            # gRPC metadata carries printable ASCII only; anything else would never reach a service
            pattern=r"^[\x20-\x7e]+$",
            description="Makes a POST safe to retry: the same key returns the first result "
            "(printable ASCII, at most 200 characters).",
        ),
    ] = None,
) -> Caller:
    principal = None
    token = None
    if credentials is not None:
        token = credentials.credentials
        try:
            principal = await request.app.state.verifier.verify(token)
        except Unauthenticated as exc:
            raise ApiProblem(401, exc.code, exc.message) from None
    peer = request.client.host if request.client else ""
    trusted = getattr(request.app.state, "trusted_proxies", ())
    ip = client_address(peer, request.headers.get("x-forwarded-for"), trusted)
    return Caller(principal, token, idempotency_key, clients(request), ip)


async def _signed_in(caller: Annotated[Caller, Depends(_caller)]) -> Caller:
    caller.require()
    return caller


OptionalCaller = Annotated[Caller, Depends(_caller)]
SignedIn = Annotated[Caller, Depends(_signed_in)]
