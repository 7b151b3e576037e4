"""Who is asking: verifying identity's EdDSA access tokens, and the principal every service checks.

Token claims (signed by identity):
  iss "shequtong-identity", aud "shequtong", sub (person id, or "svc:<name>" for machine clients),
  typ "access" | "service", sid (refresh-token family, persons only), exp/iat/jti,
  roles: ["<role>@<scope>", ...] with scope "n:<neighbourhood>", "s:<sub-district>", "d:<district>",
  "o:<organisation>" or "*". A verified membership is the role "resident@n:<id>".
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import jwt

from shequtong_kit.errors import PermissionDenied, Unauthenticated

log = logging.getLogger(__name__)

ISSUER = "shequtong-identity"
AUDIENCE = "shequtong"
ALGORITHMS = ["EdDSA"]

# Roles (the identity service decides who holds them; every service reads them from the token).
RESIDENT = "resident"
PARTY_MEMBER = "party_member"
VOLUNTEER = "volunteer"
CADRE = "cadre"
SECRETARY = "secretary"
SUBDISTRICT_STAFF = "subdistrict_staff"
DISTRICT_STAFF = "district_staff"
POLICE = "police"
DOCTOR = "doctor"
LAWYER = "lawyer"
PROPERTY_MANAGER = "property_manager"
OWNERS_COMMITTEE = "owners_committee"
ORG_ADMIN = "org_admin"
OPERATOR = "operator"
SERVICE = "service"

COMMITTEE_ROLES = frozenset({CADRE, SECRETARY})
RESPONDER_ROLES = frozenset({POLICE, DOCTOR, LAWYER, PROPERTY_MANAGER, OWNERS_COMMITTEE})


@dataclass(frozen=True)
class Lineage:
    """Where a neighbourhood sits in the region tree."""

    neighbourhood_id: str
    subdistrict_id: str
    district_id: str


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    session_id: str | None = None
    token_id: str | None = None
    expires_at: float = 0.0
    claims: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_service(self) -> bool:
        return self.subject.startswith("svc:")

    @property
    def service_name(self) -> str | None:
        return self.subject[4:] if self.is_service else None

    @property
    def person_id(self) -> str:
        if self.is_service:
            raise PermissionDenied("a person is required for this action", code="person_required")
        return self.subject

    def has(self, role: str, scope: str = "*") -> bool:
        return (role, scope) in self.roles

    def scopes_of(self, *roles: str) -> set[str]:
        return {scope for role, scope in self.roles if role in roles}

    def neighbourhoods(self, *roles: str) -> set[str]:
        """Neighbourhood ids where the principal holds any of `roles` (any role at all if none given)."""
        return {scope[2:] for role, scope in self.roles if scope.startswith("n:") and (not roles or role in roles)}

    def is_member(self, neighbourhood_id: str) -> bool:
        return neighbourhood_id in self.neighbourhoods()

    def is_resident(self, neighbourhood_id: str) -> bool:
        return self.has(RESIDENT, f"n:{neighbourhood_id}")

    def is_committee(self, neighbourhood_id: str) -> bool:
        return any(self.has(role, f"n:{neighbourhood_id}") for role in COMMITTEE_ROLES)

    @property
    def is_operator(self) -> bool:
        return self.has(OPERATOR, "*")

    def oversees(self, lineage: Lineage) -> bool:
        """Committee of the neighbourhood, staff above it, a platform operator, or one of our services."""
        return (
            self.is_committee(lineage.neighbourhood_id)
            or self.has(SUBDISTRICT_STAFF, f"s:{lineage.subdistrict_id}")
            or self.has(DISTRICT_STAFF, f"d:{lineage.district_id}")
            or self.is_operator
            or self.has(SERVICE, "*")
        )

    def staff_scope_of(self, lineage: Lineage) -> str | None:
        """The level at which the principal is staff over `lineage`: 'neighbourhood', 'subdistrict', 'district'."""
        if self.is_committee(lineage.neighbourhood_id):
            return "neighbourhood"
        if self.has(SUBDISTRICT_STAFF, f"s:{lineage.subdistrict_id}"):
            return "subdistrict"
        if self.has(DISTRICT_STAFF, f"d:{lineage.district_id}") or self.is_operator:
            return "district"
        return None


def parse_roles(values: Iterable[str]) -> frozenset[tuple[str, str]]:
    parsed = set()
    for value in values:
        role, _, scope = value.partition("@")
        parsed.add((role, scope or "*"))
    return frozenset(parsed)


def format_roles(roles: Iterable[tuple[str, str]]) -> list[str]:
    return sorted(f"{role}@{scope}" for role, scope in roles)


JwksLoader = Callable[[], Awaitable[str]]


class TokenVerifier:
    """Verifies access tokens against identity's published keys, refreshing them on an unknown `kid`."""

    def __init__(self, load_jwks: JwksLoader, refresh_floor_seconds: float = 10.0, leeway: float = 5.0) -> None:
        self._load = load_jwks
        self._keys: dict[str, Any] = {}
        self._loaded_at = 0.0
        self._floor = refresh_floor_seconds
        self._leeway = leeway
        self._lock = asyncio.Lock()
        # Session families revoked after the token was issued (fed by identity events when a service cares).
        self.revoked_sessions: set[str] = set()
        # Tokens whose signature and claims were checked under the current key set: the same token comes
        # with every request of a session, and its signature cannot change. Expiry, the token's kind and
        # revocation are checked on every use all the same; a new key set empties it.
        self._verified: dict[str, Principal] = {}
        self.verified_cache_size = 10_000

    async def refresh(self, force: bool = False) -> None:
        async with self._lock:
            if not force and time.monotonic() - self._loaded_at < self._floor and self._keys:
                return
            jwks = jwt.PyJWKSet.from_json(await self._load())
            self._keys = {key.key_id: key for key in jwks.keys if key.key_id}
            self._verified.clear()  # a key withdrawn from the set must not keep its tokens valid here
            self._loaded_at = time.monotonic()

    async def _key(self, kid: str) -> Any:
        if kid not in self._keys:
            await self.refresh(force=not self._keys or time.monotonic() - self._loaded_at >= self._floor)
        key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated("token signed by an unknown key", code="token_invalid")
        return key

    async def verify(self, token: str, expected_type: str | None = None) -> Principal:
        principal = self._verified.get(token)
        if principal is None or time.time() > principal.expires_at + self._leeway:
            principal = await self._verify_signed(token)
            if len(self._verified) >= self.verified_cache_size:
                self._verified.clear()
            self._verified[token] = principal
        if expected_type and principal.claims["typ"] != expected_type:
            raise Unauthenticated("wrong kind of token", code="token_invalid")
        if principal.session_id and principal.session_id in self.revoked_sessions:
            raise Unauthenticated("session revoked", code="session_revoked")
        return principal

    async def _verify_signed(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("malformed token", code="token_invalid") from None
        if header.get("alg") not in ALGORITHMS or not header.get("kid"):
            raise Unauthenticated("token algorithm or key id not accepted", code="token_invalid")
        key = await self._key(str(header["kid"]))
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=ALGORITHMS,
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "sub", "typ"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired", code="token_expired") from None
        except jwt.PyJWTError:
            raise Unauthenticated("token invalid", code="token_invalid") from None
        if claims["typ"] not in ("access", "service"):
            raise Unauthenticated("wrong kind of token", code="token_invalid")
        sid = claims.get("sid")
        return Principal(
            subject=str(claims["sub"]),
            roles=parse_roles(claims.get("roles", [])),
            session_id=sid,
            token_id=claims.get("jti"),
            expires_at=float(claims["exp"]),
            claims=claims,
        )


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("shequtong_principal", default=None)


def set_current(principal: Principal | None) -> contextvars.Token[Principal | None]:
    return _current.set(principal)


def reset_current(token: contextvars.Token[Principal | None]) -> None:
    _current.reset(token)


def current_or_none() -> Principal | None:
    return _current.get()


def current() -> Principal:
    principal = _current.get()
    if principal is None:
        raise Unauthenticated("sign in first", code="unauthenticated")
    return principal


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()
