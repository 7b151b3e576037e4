"""Signing keys and token minting (EdDSA / Ed25519). Pure: no I/O besides the key material given."""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from shequtong_kit.auth import AUDIENCE, ISSUER
from shequtong_kit.ids import new_id


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey


def load_signing_keys(raw: str) -> list[SigningKey]:
    entries = json.loads(raw)
    if not isinstance(entries, list) or not entries:
        raise ValueError("IDENTITY_SIGNING_KEYS must be a non-empty JSON list")
    keys = []
    kids = [str(entry.get("kid", "")) for entry in entries]
    if len(set(kids)) != len(kids) or not all(kids):
        raise ValueError("every signing key needs its own kid")
    for entry in entries:
        key = serialization.load_pem_private_key(entry["pem"].encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"key {entry.get('kid')} is not an Ed25519 key")
        keys.append(SigningKey(str(entry["kid"]), key))
    return keys


def new_key_entry(kid: str) -> dict[str, str]:
    """A fresh Ed25519 key as an IDENTITY_SIGNING_KEYS entry ({"kid", "pem"}).

    Rotation: prepend the entry (the first key signs, every listed key is published in the JWKS), restart
    identity, and drop the old entry once the tokens it signed have expired (access tokens: minutes).
    """
    if not kid or len(kid) > 64 or not kid.isprintable():
        raise ValueError("a key id is 1 to 64 printable characters")
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {"kid": kid, "pem": pem.decode()}


def jwks_json(keys: list[SigningKey]) -> str:
    """Every configured key is published, so tokens signed before a rotation still verify."""
    published = []
    for key in keys:
        jwk = json.loads(OKPAlgorithm.to_jwk(key.private_key.public_key()))
        jwk.update({"kid": key.kid, "use": "sig", "alg": "EdDSA"})
        published.append(jwk)
    return json.dumps({"keys": published})


def mint(
    key: SigningKey,
    subject: str,
    token_type: str,
    roles: list[str],
    now: datetime,
    ttl: timedelta,
    session_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "typ": token_type,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "jti": new_id(),
        "roles": sorted(roles),
    }
    if session_id:
        claims["sid"] = session_id
    if extra:
        claims.update(extra)
    return jwt.encode(claims, key.private_key, algorithm="EdDSA", headers={"kid": key.kid})


@dataclass(frozen=True)
class ServiceAccount:
    client_id: str
    secret: str
    roles: tuple[str, ...]


def load_service_accounts(raw: str) -> dict[str, ServiceAccount]:
    accounts = {}
    for client_id, value in json.loads(raw or "{}").items():
        if isinstance(value, str):
            accounts[client_id] = ServiceAccount(client_id, value, ("service@*",))
        else:
            accounts[client_id] = ServiceAccount(client_id, value["secret"], tuple(value.get("roles", ["service@*"])))
    return accounts


def check_client_secret(account: ServiceAccount | None, secret: str) -> bool:
    # Compare even when the account is unknown so timing does not reveal which client ids exist.
    expected = account.secret if account else "x" * 32
    return hmac.compare_digest(expected.encode(), secret.encode()) and account is not None
