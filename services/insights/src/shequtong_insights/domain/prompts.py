"""A work prompt's life: open → acknowledged (the committee takes it up) or dismissed (no action
needed, with a reason); an acknowledged prompt may still be dismissed. Pure."""

from __future__ import annotations

from shequtong_kit.errors import FailedPrecondition, InvalidArgument

OPEN = "open"
ACKNOWLEDGED = "acknowledged"
DISMISSED = "dismissed"
STATUSES = (OPEN, ACKNOWLEDGED, DISMISSED)
MAX_NOTE = 500

_ALLOWED = {ACKNOWLEDGED: frozenset({OPEN}), DISMISSED: frozenset({OPEN, ACKNOWLEDGED})}


def clean_note(text: str, *, required: bool) -> str:
    note = " ".join(text.split())
    if required and not note:
        raise InvalidArgument("say why the prompt needs no action", code="reason_required")
    if len(note) > MAX_NOTE:
        raise InvalidArgument(f"at most {MAX_NOTE} characters", code="note_too_long")
    return note


def decide(current: str, target: str) -> bool:
    """True when the prompt moves to `target`; False when it is already there (a retry changes nothing)."""
    if current == target:
        return False
    if current not in _ALLOWED[target]:
        raise FailedPrecondition(f"a prompt that is {current} cannot be {target}", code="prompt_already_decided")
    return True
