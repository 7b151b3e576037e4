"""The simulator's use cases: create requests, move cases through the workflow, record and
push updates, and the misbehaviour modes that the control API switches on."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from . import workflow
from .catalogue import Catalogue
from .open311 import NewRequest, format_datetime, update_json
from .push import WebhookPusher, arrange
from .settings import ResponseMode, Settings
from .store import GridRequest, Store, Update
from .workflow import STAGE_INFO, Action, Stage

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Mode:
    down: bool = False
    slow_seconds: float = 0.0
    error_rate: float = 0.0
    fail_next: int = 0
    # Fail *after* storing the request: the caller sees a 500 for a case that exists, and
    # must find it again by retrying with the same issue id (de-duplication) — the hard case.
    fail_after_create: bool = False
    response_mode: ResponseMode = "id"
    duplicate_updates: bool = False
    out_of_order: bool = False
    webhook_url: str = ""

    def patch(self, changes: dict[str, Any]) -> None:
        names = {f.name for f in fields(self)}
        for key, value in changes.items():
            if key in names and value is not None:
                setattr(self, key, value)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class CaseNotFound(LookupError):
    pass


@dataclass(frozen=True)
class SubmitResult:
    request: GridRequest
    duplicate: bool
    token: str | None


class Engine:
    def __init__(
        self,
        settings: Settings,
        catalogue: Catalogue,
        store: Store,
        *,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.catalogue = catalogue
        self.store = store
        self.clock = clock
        self.rng = rng or random.Random()
        self.mode = self.default_mode()
        self.pusher = WebhookPusher(
            secret=settings.webhook_secret,
            api_key=settings.webhook_api_key,
            max_attempts=settings.webhook_max_attempts,
            backoff_seconds=settings.webhook_backoff_seconds,
            timeout_seconds=settings.webhook_timeout_seconds,
            record=self.store.bump,
        )

    def default_mode(self) -> Mode:
        return Mode(response_mode=self.settings.response_mode, webhook_url=self.settings.webhook_url)

    def _now(self) -> datetime:
        return self.clock().astimezone(UTC)

    # -- Open311 side --------------------------------------------------------------------
    def take_injected_failure(self) -> bool:
        if self.mode.fail_next > 0:
            self.mode.fail_next -= 1
            return True
        return self.mode.error_rate > 0 and self.rng.random() < self.mode.error_rate

    def submit(self, new: NewRequest) -> SubmitResult:
        token_mode = self.mode.response_mode == "token"
        existing = self.store.find_duplicate(new.dedupe_key)
        if existing is not None:
            self.store.bump("duplicate_submissions")
            token = None
            if token_mode:
                token = existing.token or self.store.new_token(existing.service_request_id)
            self.store.save()
            log.info(
                "duplicate submission",
                extra={"service_request_id": existing.service_request_id, "issue_id": new.dedupe_key},
            )
            return SubmitResult(existing, True, token)

        now = self.clock()
        request = GridRequest(
            service_request_id=self.store.next_request_id(),
            service_code=new.service.service_code,
            service_name=new.service.service_name,
            description=new.description,
            lat=new.lat,
            long=new.long,
            address=new.address,
            address_id=new.address_id,
            media_url=new.media_url,
            attributes=new.attributes,
            stage=Stage.RECEIVED,
            requested_at=_whole_seconds(now),
            updated_at=_whole_seconds(now),
            stage_changed_at=now,
            status_notes="已受理",
        )
        if token_mode:
            request.token = self.store.new_token(request.service_request_id)
        self.store.add_request(request, new.dedupe_key)
        self.store.bump("requests_created")
        self.store.save()
        log.info(
            "request created",
            extra={"service_request_id": request.service_request_id, "service_code": request.service_code},
        )
        return SubmitResult(request, False, request.token)

    def get(self, service_request_id: str) -> GridRequest:
        request = self.store.requests.get(service_request_id)
        if request is None:
            raise CaseNotFound(service_request_id)
        return request

    def service_notice(self, request: GridRequest) -> str:
        service = self.catalogue.get(request.service_code)
        return service.service_notice if service else ""

    # -- workflow ------------------------------------------------------------------------
    def command(
        self,
        service_request_id: str,
        action: Action,
        *,
        to: Stage | None = None,
        note: str = "",
        media_url: str | None = None,
        duplicate: bool = False,
    ) -> list[Update]:
        """Apply one control command; returns the updates it produced (already queued)."""
        request = self.get(service_request_id)
        if action is Action.ADVANCE and to is not None:
            stages = workflow.path_to(request.stage, to)
        else:
            stages = [workflow.apply(request.stage, action)]
        updates = [self._enter(request, stage, note=note, media_url=media_url, duplicate=duplicate) for stage in stages]
        self._publish(updates)
        return updates

    def advance_all(self) -> list[Update]:
        updates = [
            self._enter(r, workflow.apply(r.stage, Action.ADVANCE))
            for r in list(self.store.requests.values())
            if not workflow.is_terminal(r.stage)
        ]
        self._publish(updates)
        return updates

    def auto_advance_due(self) -> list[Update]:
        """Advance, by one stage, every open case whose stage is older than the interval."""
        interval = timedelta(seconds=self.settings.auto_advance_seconds)
        now = self.clock()
        updates = [
            self._enter(r, workflow.apply(r.stage, Action.ADVANCE))
            for r in list(self.store.requests.values())
            if not workflow.is_terminal(r.stage) and now - r.stage_changed_at >= interval
        ]
        self._publish(updates)
        return updates

    async def run_auto_advance(self) -> None:
        seconds = self.settings.auto_advance_seconds
        tick = max(min(seconds / 4, 1.0), 0.01)
        while True:
            await asyncio.sleep(tick)
            try:
                self.auto_advance_due()
            except Exception:
                log.exception("auto-advance failed")

    def _enter(
        self,
        request: GridRequest,
        stage: Stage,
        *,
        note: str = "",
        media_url: str | None = None,
        duplicate: bool = False,
    ) -> Update:
        now = self.clock()
        service = self.catalogue.get(request.service_code)
        if stage is Stage.FILED and service is not None:
            request.expected_at = _whole_seconds(now + timedelta(hours=service.time_limit_hours))
        if stage is Stage.DISPATCHED:
            departments = service.departments if service else ("区城管执法局",)
            # A re-dispatch after 退回 goes to the next department in the catalogue's list.
            request.agency_responsible = departments[request.dispatch_count % len(departments)]
            request.dispatch_count += 1
        if stage is Stage.CANCELLED:
            request.duplicate = duplicate
        description = self._describe(request, stage, duplicate=duplicate)
        if note:
            description = f"{description}。{note}"
        request.stage = stage
        request.stage_changed_at = now
        request.updated_at = _whole_seconds(now)
        request.status_notes = description
        update = Update(
            update_id=self.store.next_update_id(),
            service_request_id=request.service_request_id,
            status=STAGE_INFO[stage].status,
            updated_at=_whole_seconds(now),
            description=description,
            media_url=media_url,
            external_status_code=workflow.external_status_code(stage, duplicate=duplicate),
            stage=stage,
        )
        self.store.add_update(update)
        log.info(
            "stage changed",
            extra={
                "service_request_id": request.service_request_id,
                "stage": stage.value,
                "update_id": update.update_id,
            },
        )
        return update

    def _describe(self, request: GridRequest, stage: Stage, *, duplicate: bool) -> str:
        dept = request.agency_responsible or "责任部门"
        offset = self.settings.utc_offset
        match stage:
            case Stage.FILED:
                return f"已立案（{request.service_code} {request.service_name}），处置时限至 " + (
                    format_datetime(request.expected_at, offset) or "—"
                )
            case Stage.DISPATCHED:
                return f"已派遣至{dept}"
            case Stage.HANDLED:
                return f"{dept}已处置并反馈"
            case Stage.CLOSED:
                return "核查通过，已结案"
            case Stage.CANCELLED:
                return "重复上报，已注销" if duplicate else "不予立案（注销）：不属于网格受理范围，退回社区"
            case Stage.RETURNED:
                return f"{dept}退回：非本部门职责，待重新派遣"
            case Stage.DEFERRED:
                return "延期（挂账）：需协调相关部门，暂缓处置"
            case Stage.REOPENED:
                return "核查未通过，返工"
            case _:
                return STAGE_INFO[stage].label

    def _publish(self, updates: list[Update]) -> None:
        if not updates:
            return
        self.store.save()
        if not self.mode.webhook_url:
            return
        offset = self.settings.utc_offset
        batch = arrange(
            [update_json(u, offset) for u in updates],
            duplicate=self.mode.duplicate_updates,
            reverse=self.mode.out_of_order,
        )
        self.pusher.submit(self.mode.webhook_url, batch)

    # -- queries -------------------------------------------------------------------------
    def list_requests(
        self,
        *,
        ids: list[str] | None,
        service_codes: list[str] | None,
        start: datetime | None,
        end: datetime | None,
        statuses: list[str] | None,
    ) -> list[GridRequest]:
        if ids:
            # GeoReport v2: with service_request_id every other filter is ignored.
            return [self.store.requests[i] for i in ids if i in self.store.requests]
        if start is None and end is None:
            start = self._now() - timedelta(days=90)  # the spec's default window
        found = [
            r
            for r in self.store.requests.values()
            if (start is None or r.requested_at >= start)
            and (end is None or r.requested_at <= end)
            and (not statuses or STAGE_INFO[r.stage].status in statuses)
            and (not service_codes or r.service_code in service_codes)
        ]
        found.sort(key=lambda r: (r.requested_at, r.service_request_id))
        return found[:1000]  # the spec's default cap

    def list_updates(self, *, start: datetime | None, end: datetime | None, ids: list[str] | None) -> list[Update]:
        # Both bounds inclusive: a poller that overlaps windows gets repeats (de-duplicated by
        # update_id), never gaps.
        return [
            u
            for u in self.store.updates
            if (start is None or u.updated_at >= start)
            and (end is None or u.updated_at <= end)
            and (not ids or u.service_request_id in ids)
        ]

    def stats(self) -> dict[str, Any]:
        return {
            **self.store.stats,
            "push_pending": self.pusher.pending,
            "requests_open": sum(1 for r in self.store.requests.values() if STAGE_INFO[r.stage].status == "open"),
            "requests_total": len(self.store.requests),
        }

    def reset(self) -> None:
        dropped = self.pusher.clear()
        self.store.reset()
        self.mode = self.default_mode()
        self.store.save()
        log.info("simulator reset", extra={"pushes_dropped": dropped})


def _whole_seconds(value: datetime) -> datetime:
    # Emitted datetimes have whole seconds; storing them the same way keeps date filters
    # consistent with what clients saw.
    return value.astimezone(UTC).replace(microsecond=0)
