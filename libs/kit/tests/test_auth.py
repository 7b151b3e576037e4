"""Token verification refuses everything but a well-formed EdDSA token from a published key."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from shequtong_kit.auth import AUDIENCE, ISSUER, Lineage, Principal, TokenVerifier, parse_roles
from shequtong_kit.errors import Unauthenticated

KEY = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()


def jwks(*pairs: tuple[str, Ed25519PrivateKey]) -> str:
    keys = []
    for kid, key in pairs:
        jwk = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
        jwk.update({"kid": kid, "alg": "EdDSA", "use": "sig"})
        keys.append(jwk)
    return json.dumps({"keys": keys})


def verifier(*pairs: tuple[str, Ed25519PrivateKey]) -> TokenVerifier:
    async def load() -> str:
        return jwks(*pairs)

    return TokenVerifier(load, refresh_floor_seconds=0)


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "p1",
        "typ": "access",
        "iat": now,
        "exp": now + 60,
        "roles": ["resident@n:N1", "cadre@n:N2"],
        "sid": "fam1",
    }
    base.update(over)
    return base


def sign(payload: dict[str, Any], key: Ed25519PrivateKey = KEY, kid: str = "k1") -> str:
    return jwt.encode(payload, key, algorithm="EdDSA", headers={"kid": kid})


async def test_valid_token_gives_principal_with_roles() -> None:
    principal = await verifier(("k1", KEY)).verify(sign(claims()))
    assert principal.subject == "p1"
    assert principal.is_resident("N1") and principal.is_committee("N2")
    assert not principal.is_member("N3")


@pytest.mark.parametrize(
    ("token_factory", "code"),
    [
        (lambda: sign(claims(exp=int(time.time()) - 120)), "token_expired"),
        (lambda: sign(claims(), key=OTHER), "token_invalid"),
        (lambda: sign(claims(), kid="unknown"), "token_invalid"),
        (lambda: sign(claims(aud="someone-else")), "token_invalid"),
        (lambda: sign(claims(iss="evil")), "token_invalid"),
        (lambda: sign(claims(typ="refresh")), "token_invalid"),
        (lambda: jwt.encode(claims(), key=None, algorithm="none", headers={"kid": "k1"}), "token_invalid"),
        (lambda: jwt.encode(claims(), "s" * 32, algorithm="HS256", headers={"kid": "k1"}), "token_invalid"),
        (lambda: "not.a.token", "token_invalid"),
    ],
    ids=["expired", "wrong-key", "unknown-kid", "audience", "issuer", "type", "alg-none", "hs256", "garbage"],
)
async def test_bad_tokens_are_refused(token_factory: Any, code: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        await verifier(("k1", KEY)).verify(token_factory())
    assert caught.value.code == code


async def test_tampered_claims_fail_signature() -> None:
    token = sign(claims())
    header, _payload, signature = token.split(".")
    forged = jwt.utils.base64url_encode(json.dumps(claims(roles=["operator@*"])).encode()).decode()
    with pytest.raises(Unauthenticated):
        await verifier(("k1", KEY)).verify(f"{header}.{forged}.{signature}")


async def test_rotated_key_is_fetched_on_unknown_kid() -> None:
    published = [("k1", KEY)]

    async def load() -> str:
        return jwks(*published)

    v = TokenVerifier(load, refresh_floor_seconds=0)
    await v.verify(sign(claims()))
    published.insert(0, ("k2", OTHER))
    principal = await v.verify(sign(claims(), key=OTHER, kid="k2"))
    assert principal.subject == "p1"


async def test_revoked_session_is_refused() -> None:
    v = verifier(("k1", KEY))
    v.revoked_sessions.add("fam1")
    with pytest.raises(Unauthenticated) as caught:
        await v.verify(sign(claims()))
    assert caught.value.code == "session_revoked"


def test_oversight_follows_the_region_tree() -> None:
    lineage = Lineage("N1", "S1", "D1")
    assert Principal("a", parse_roles(["cadre@n:N1"])).oversees(lineage)
    assert Principal("b", parse_roles(["subdistrict_staff@s:S1"])).oversees(lineage)
    assert Principal("c", parse_roles(["district_staff@d:D1"])).oversees(lineage)
    assert not Principal("d", parse_roles(["subdistrict_staff@s:S2"])).oversees(lineage)
    assert not Principal("e", parse_roles(["resident@n:N1"])).oversees(lineage)
    assert not Principal("f", parse_roles(["cadre@n:N2"])).oversees(lineage)


async def test_a_verified_token_is_not_checked_again_but_still_expires_and_is_still_revocable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    v = verifier(("k1", KEY))
    v._leeway = 0
    token = sign(claims(exp=int(time.time()) + 1))
    decoded: list[str] = []
    real_decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: decoded.append("x") or real_decode(*a, **k))
    first = await v.verify(token)
    assert await v.verify(token) == first and len(decoded) == 1, "the second use is not verified again"
    with pytest.raises(Unauthenticated) as caught:
        await v.verify(token, expected_type="service")
    assert caught.value.code == "token_invalid"

    v.revoked_sessions.add("fam1")
    with pytest.raises(Unauthenticated) as caught:
        await v.verify(token)
    assert caught.value.code == "session_revoked"
    v.revoked_sessions.clear()

    await asyncio.sleep(max(0.0, first.expires_at - time.time()) + 0.05)
    with pytest.raises(Unauthenticated) as caught:
        await v.verify(token)
    assert caught.value.code == "token_expired"


async def test_a_key_withdrawn_from_the_set_takes_its_verified_tokens_with_it() -> None:
    published = [("k1", KEY)]

    async def load() -> str:
        return jwks(*published)

    v = TokenVerifier(load, refresh_floor_seconds=0)
    token = sign(claims())
    await v.verify(token)
    published[:] = [("k2", OTHER)]
    await v.refresh(force=True)
    with pytest.raises(Unauthenticated) as caught:
        await v.verify(token)
    assert caught.value.code == "token_invalid"
