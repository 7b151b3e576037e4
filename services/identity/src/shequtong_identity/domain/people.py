"""People: names, phones, passwords and the personal-data protection of ID numbers. Pure."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import unicodedata

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shequtong_kit.errors import InvalidArgument

PHONE = re.compile(r"^1[3-9]\d{9}$")
COMPOUND_SURNAMES = frozenset(
    {
        "欧阳",
        "司马",
        "上官",
        "诸葛",
        "东方",
        "皇甫",
        "尉迟",
        "公孙",
        "慕容",
        "长孙",
        "夏侯",
        "轩辕",
        "令狐",
        "司徒",
        "端木",
    }
)
MIN_PASSWORD = 8
MAX_PASSWORD = 128


def normalize_phone(raw: str) -> str:
    value = re.sub(r"[\s-]", "", raw or "")
    if value.startswith("+86"):
        value = value[3:]
    if not PHONE.match(value):
        raise InvalidArgument("a mainland mobile number has 11 digits and starts with 1", code="phone_invalid")
    return value


def mask_phone(phone: str) -> str:
    """138****5678: the first three and last four digits."""
    if len(phone) < 8:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def normalize_real_name(raw: str) -> str:
    value = unicodedata.normalize("NFC", (raw or "").strip())
    value = re.sub(r"\s+", " ", value)
    if not value or len(value) > 50 or not all(ch.isalpha() or ch in " ·.-'" for ch in value):
        raise InvalidArgument("a real name of 1 to 50 letters is required", code="real_name_invalid")
    return value


def display_name(real_name: str) -> str:
    """What neighbours see: the surname and the given name masked (张** / 欧阳* / J***)."""
    name = real_name.strip()
    if not name:
        return ""
    surname_length = 2 if name[:2] in COMPOUND_SURNAMES and len(name) > 2 else 1
    if " " in name:  # a name in Latin letters: "Zhang San" → "Zhang S."? keep it simple: first word + mask
        first, rest = name.split(" ", 1)
        return first + " " + "*" * max(1, len(rest.replace(" ", "")))
    return name[:surname_length] + "*" * max(1, len(name) - surname_length)


def validate_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD:
        raise InvalidArgument(f"a password has at least {MIN_PASSWORD} characters", code="password_too_short")
    if len(password) > MAX_PASSWORD:
        raise InvalidArgument(f"a password has at most {MAX_PASSWORD} characters", code="password_too_long")


class PiiProtector:
    """ID numbers: an HMAC-SHA256 for uniqueness and look-up, and an AES-GCM copy for the few who may see it."""

    AAD = b"shequtong:id_number:v1"

    def __init__(self, hmac_key: str, encryption_key: str) -> None:
        if len(hmac_key) < 16:
            raise ValueError("PII_HMAC_KEY must have at least 16 characters")
        self._hmac_key = hmac_key.encode()
        try:
            key = base64.urlsafe_b64decode(encryption_key + "=" * (-len(encryption_key) % 4))
        except ValueError:
            raise ValueError("PII_ENCRYPTION_KEY must be urlsafe base64") from None
        if len(key) != 32:
            raise ValueError("PII_ENCRYPTION_KEY must decode to 32 bytes")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:  # never show key material
        return "PiiProtector(<keys hidden>)"

    def id_hmac(self, id_number: str) -> str:
        return hmac.new(self._hmac_key, id_number.encode(), hashlib.sha256).hexdigest()

    def encrypt(self, value: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, value.encode(), self.AAD)

    def decrypt(self, blob: bytes) -> str:
        return self._aead.decrypt(blob[:12], blob[12:], self.AAD).decode()
