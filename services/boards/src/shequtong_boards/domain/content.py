"""Posts and comments: what a valid one looks like, role handles in text, feed cursors."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from shequtong_kit import auth
from shequtong_kit.errors import InvalidArgument

TITLE_MAX = 80
POST_BODY_MAX = 5000
COMMENT_BODY_MAX = 2000
IMAGES_MAX = 9
IMAGE_REF_MAX = 500
TAGS_MAX = 5
TAG_MAX = 20
MENTIONS_MAX = 20
REASON_MAX = 500

VISIBLE = "visible"
HIDDEN = "hidden"
DELETED = "deleted"

POST = "post"
COMMENT = "comment"

MEMBER_COMMENT = "member"
OFFICIAL_COMMENT = "official"
SYSTEM_COMMENT = "system"

# Role handles: how residents @ an office, and who holds it in the neighbourhood.
COMMITTEE_HANDLE = "committee"
HANDLE_ROLES: dict[str, tuple[str, ...]] = {
    COMMITTEE_HANDLE: (auth.CADRE, auth.SECRETARY),
    "secretary": (auth.SECRETARY,),
    "property": (auth.PROPERTY_MANAGER,),
    "police": (auth.POLICE,),
    "doctor": (auth.DOCTOR,),
    "lawyer": (auth.LAWYER,),
    "owners_committee": (auth.OWNERS_COMMITTEE,),
}
HANDLE_ALIASES: dict[str, str] = {
    "居委会": COMMITTEE_HANDLE,
    "村委会": COMMITTEE_HANDLE,
    "居委": COMMITTEE_HANDLE,
    "两委": COMMITTEE_HANDLE,
    "committee": COMMITTEE_HANDLE,
    "书记": "secretary",
    "物业": "property",
    "民警": "police",
    "社区民警": "police",
    "警察": "police",
    "police": "police",
    "家庭医生": "doctor",
    "医生": "doctor",
    "doctor": "doctor",
    "律师": "lawyer",
    "lawyer": "lawyer",
    "业委会": "owners_committee",
}
# Longest alias first, so "@居委会" is not read as "@居委" + "会"; ASCII handles end at a word boundary.
_HANDLE_PATTERN = re.compile(
    "@("
    + "|".join(
        re.escape(alias) + (r"(?![A-Za-z0-9_])" if alias.isascii() else "")
        for alias in sorted(HANDLE_ALIASES, key=len, reverse=True)
    )
    + ")",
    re.IGNORECASE,
)


def handles_in(text: str) -> list[str]:
    """Role handles @-mentioned in the text, in first-mention order, each once."""
    found: list[str] = []
    for match in _HANDLE_PATTERN.finditer(text):
        handle = HANDLE_ALIASES[match.group(1).lower() if match.group(1).isascii() else match.group(1)]
        if handle not in found:
            found.append(handle)
    return found


def roles_for_handles(handles: Iterable[str]) -> set[str]:
    return {role for handle in handles for role in HANDLE_ROLES.get(handle, ())}


@dataclass(frozen=True)
class PostDraft:
    title: str
    body: str
    image_refs: tuple[str, ...]
    tags: tuple[str, ...]
    mention_person_ids: tuple[str, ...]


def _text(value: str, name: str, maximum: int, code: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidArgument(f"{name} must not be empty", code=f"{code}_required")
    if len(value) > maximum:
        raise InvalidArgument(f"{name} must be at most {maximum} characters", code=f"{code}_too_long")
    return value


def mention_ids(values: Sequence[str]) -> tuple[str, ...]:
    ids = tuple(dict.fromkeys(v.strip() for v in values if v.strip()))
    if len(ids) > MENTIONS_MAX:
        raise InvalidArgument(f"at most {MENTIONS_MAX} people may be mentioned", code="mentions_too_many")
    if any(len(v) > 64 for v in ids):
        raise InvalidArgument("a mentioned person id is not valid", code="mention_invalid")
    return ids


def validate_post(
    title: str, body: str, image_refs: Sequence[str], tags: Sequence[str], mentions: Sequence[str]
) -> PostDraft:
    refs = tuple(ref.strip() for ref in image_refs)
    if len(refs) > IMAGES_MAX:
        raise InvalidArgument(f"at most {IMAGES_MAX} images per post", code="images_too_many")
    for ref in refs:
        if not ref or len(ref) > IMAGE_REF_MAX or any(ch.isspace() for ch in ref):
            raise InvalidArgument("an image reference is not valid", code="image_ref_invalid")
    cleaned_tags: list[str] = []
    for tag in tags:
        value = tag.strip().lstrip("#").strip()
        if not value or len(value) > TAG_MAX:
            raise InvalidArgument(f"tags must be 1-{TAG_MAX} characters", code="tag_invalid")
        if value not in cleaned_tags:
            cleaned_tags.append(value)
    if len(cleaned_tags) > TAGS_MAX:
        raise InvalidArgument(f"at most {TAGS_MAX} tags per post", code="tags_too_many")
    return PostDraft(
        title=_text(title, "title", TITLE_MAX, "title"),
        body=_text(body, "body", POST_BODY_MAX, "body"),
        image_refs=refs,
        tags=tuple(cleaned_tags),
        mention_person_ids=mention_ids(mentions),
    )


def validate_comment_body(body: str) -> str:
    return _text(body, "comment", COMMENT_BODY_MAX, "body")


def validate_reason(reason: str, required: bool = True) -> str:
    reason = reason.strip()
    if required and not reason:
        raise InvalidArgument("give a reason; the author sees it", code="reason_required")
    if "\x00" in reason:
        raise InvalidArgument("the reason must not contain NUL characters", code="reason_invalid")
    if len(reason) > REASON_MAX:
        raise InvalidArgument(f"the reason must be at most {REASON_MAX} characters", code="reason_too_long")
    return reason


def excerpt(text: str, length: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= length else text[: length - 1] + "…"


# --- feed cursors: (pinned, created_at, id), newest first -------------------------------------------


@dataclass(frozen=True)
class FeedKey:
    pinned: bool
    created_at: datetime
    id: str

    def encode(self) -> list[object]:
        return [1 if self.pinned else 0, self.created_at.isoformat(), self.id]


def feed_key(raw: list[object] | None) -> FeedKey | None:
    """A decoded cursor back into a key; anything we did not issue is refused."""
    if raw is None:
        return None
    try:
        pinned, created, ident = raw
        when = datetime.fromisoformat(str(created))
    except (TypeError, ValueError):
        raise InvalidArgument("cursor is not one we issued", code="cursor_invalid") from None
    if pinned not in (0, 1) or not isinstance(ident, str) or when.tzinfo is None:
        raise InvalidArgument("cursor is not one we issued", code="cursor_invalid")
    return FeedKey(bool(pinned), when, ident)


# --- feed places: whose change moves which cached first pages ----------------------------------------

# Everyone's names: a name may show on any page (as an author or a mention).
PEOPLE_PLACE = "people"


def feed_place(neighbourhood_id: str | None, district_id: str) -> str:
    """The place a post shows under: its neighbourhood, or its district for a district's own boards —
    written as role scopes are, so a badge granted at a scope moves that place."""
    return f"n:{neighbourhood_id}" if neighbourhood_id else f"d:{district_id}"


# --- list cursors: (created_at, id) -------------------------------------------------------------


def time_key(raw: list[object] | None) -> tuple[datetime, str] | None:
    if raw is None:
        return None
    try:
        created, ident = raw
        when = datetime.fromisoformat(str(created))
    except (TypeError, ValueError):
        raise InvalidArgument("cursor is not one we issued", code="cursor_invalid") from None
    if not isinstance(ident, str) or when.tzinfo is None:
        raise InvalidArgument("cursor is not one we issued", code="cursor_invalid")
    return when, ident
