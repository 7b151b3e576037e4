"""The simulator's state: requests, updates, tokens, the de-duplication index and counters.

In memory, optionally mirrored to a JSON file (SIMULATOR_STATE_FILE) after each change so a
restart keeps the cases the receiver already knows about. Everything runs on one event loop
and no method awaits, so each call is atomic without locks.

Identifiers are chosen so they never repeat, even across /_sim/reset and restarts without a
state file, because a receiver under test keeps its own database and de-duplicates on them:
- service_request_id = "<instance>-<sequence>", the instance prefix being new on every fresh
  state (a reset or a start without a state file);
- update_id = a 16-digit decimal counter seeded from the boot time in microseconds, so it is
  strictly increasing, and its string order is its numeric order.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .workflow import Stage

log = logging.getLogger(__name__)

STAT_KEYS = (
    "posts_received",  # every POST requests.json that reached the simulator
    "posts_refused",  # answered 4xx (bad key, validation, unknown service)
    "posts_failed_injected",  # answered 500 on purpose (fail_next / error_rate)
    "answered_down",  # Open311 calls answered 503 while the "down" mode was on
    "requests_created",
    "duplicate_submissions",  # refused as a second request; the first id was returned
    "updates_created",
    "push_attempts",
    "push_attempts_failed",
    "updates_pushed",  # deliveries the receiver acknowledged with 2xx
    "pushes_abandoned",  # deliveries given up after the last attempt
)


class StateFileError(ValueError):
    """The state file exists but cannot be read back."""


@dataclass
class GridRequest:
    service_request_id: str
    service_code: str
    service_name: str
    description: str
    lat: float | None
    long: float | None
    address: str | None
    address_id: str | None
    media_url: str | None
    attributes: dict[str, str]
    stage: Stage
    requested_at: datetime
    updated_at: datetime
    # Full precision, for auto-advance timing; the emitted datetimes are whole seconds.
    stage_changed_at: datetime
    status_notes: str = ""
    agency_responsible: str | None = None
    expected_at: datetime | None = None
    token: str | None = None
    dispatch_count: int = 0
    duplicate: bool = False  # cancelled as a duplicate report

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["stage"] = self.stage.value
        for key in ("requested_at", "updated_at", "stage_changed_at", "expected_at"):
            d[key] = d[key].isoformat() if d[key] else None
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GridRequest:
        d = dict(d)
        d["stage"] = Stage(d["stage"])
        for key in ("requested_at", "updated_at", "stage_changed_at", "expected_at"):
            d[key] = datetime.fromisoformat(d[key]) if d.get(key) else None
        return cls(**d)


@dataclass(frozen=True)
class Update:
    update_id: str
    service_request_id: str
    status: str
    updated_at: datetime
    description: str
    media_url: str | None
    external_status_code: str | None
    stage: Stage

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["stage"] = self.stage.value
        d["updated_at"] = self.updated_at.isoformat()
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Update:
        d = dict(d)
        d["stage"] = Stage(d["stage"])
        d["updated_at"] = datetime.fromisoformat(d["updated_at"])
        return cls(**d)


def _new_instance() -> str:
    return "G" + secrets.token_hex(3).upper()


def _boot_counter() -> int:
    return int(time.time() * 1_000_000)


@dataclass
class Store:
    path: Path | None = None
    requests: dict[str, GridRequest] = field(default_factory=dict)
    updates: list[Update] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)
    # (issue_id, ticket_id) → service_request_id
    dedupe: dict[tuple[str, str], str] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAT_KEYS, 0))
    instance: str = field(default_factory=_new_instance)
    request_seq: int = 0
    update_seq: int = field(default_factory=_boot_counter)

    @classmethod
    def open(cls, path: str | Path | None) -> Store:
        store = cls(path=Path(path) if path else None)
        if store.path and store.path.exists():
            try:
                store._load()
            except (OSError, ValueError, KeyError, TypeError) as exc:
                # Refuse to start rather than silently forget cases the receiver knows about.
                raise StateFileError(f"cannot read state file {store.path}: {exc!r}") from exc
        return store

    # -- identifiers ---------------------------------------------------------------------
    def next_request_id(self) -> str:
        self.request_seq += 1
        return f"{self.instance}-{self.request_seq:06d}"

    def next_update_id(self) -> str:
        self.update_seq += 1
        return f"{self.update_seq:016d}"

    def new_token(self, service_request_id: str) -> str:
        token = "T" + secrets.token_hex(8)
        self.tokens[token] = service_request_id
        return token

    # -- data ----------------------------------------------------------------------------
    def add_request(self, request: GridRequest, dedupe_key: tuple[str, str] | None) -> None:
        self.requests[request.service_request_id] = request
        if dedupe_key:
            self.dedupe[dedupe_key] = request.service_request_id

    def find_duplicate(self, dedupe_key: tuple[str, str] | None) -> GridRequest | None:
        if not dedupe_key or dedupe_key not in self.dedupe:
            return None
        return self.requests.get(self.dedupe[dedupe_key])

    def add_update(self, update: Update) -> None:
        self.updates.append(update)
        self.bump("updates_created")

    def bump(self, stat: str, by: int = 1) -> None:
        self.stats[stat] = self.stats.get(stat, 0) + by

    def reset(self) -> None:
        """Forget every case; identifiers keep moving forward (see the module docstring)."""
        self.requests.clear()
        self.updates.clear()
        self.tokens.clear()
        self.dedupe.clear()
        self.stats = dict.fromkeys(STAT_KEYS, 0)
        self.instance = _new_instance()
        self.request_seq = 0
        self.update_seq = max(self.update_seq, _boot_counter())

    # -- persistence ---------------------------------------------------------------------
    def save(self) -> None:
        if not self.path:
            return
        data = {
            "version": 1,
            "instance": self.instance,
            "request_seq": self.request_seq,
            "update_seq": self.update_seq,
            "stats": self.stats,
            "requests": [r.to_json() for r in self.requests.values()],
            "updates": [u.to_json() for u in self.updates],
            "tokens": self.tokens,
            "dedupe": [[k[0], k[1], v] for k, v in self.dedupe.items()],
        }
        # Write then rename, so a crash mid-write never leaves a truncated state file.
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.path)

    def _load(self) -> None:
        assert self.path is not None
        data = json.loads(self.path.read_text(encoding="utf-8"))
        self.instance = data["instance"]
        self.request_seq = int(data["request_seq"])
        self.update_seq = max(int(data["update_seq"]), _boot_counter())
        self.stats = {**dict.fromkeys(STAT_KEYS, 0), **data.get("stats", {})}
        self.requests = {r["service_request_id"]: GridRequest.from_json(r) for r in data["requests"]}
        self.updates = [Update.from_json(u) for u in data["updates"]]
        self.tokens = dict(data.get("tokens", {}))
        self.dedupe = {(i, t): rid for i, t, rid in data.get("dedupe", [])}
        log.info(
            "state loaded",
            extra={"path": str(self.path), "requests": len(self.requests), "updates": len(self.updates)},
        )
