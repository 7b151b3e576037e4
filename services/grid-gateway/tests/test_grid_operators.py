"""The operators' view through the service: who sees which tickets, pages, detail, retries,
circuits and the catalogue."""

from __future__ import annotations

from typing import Any

import pytest
from shequtong_grid_gateway.domain import tickets as rules
from shequtong_grid_gateway.domain.catalogue import CatalogueService, CatalogueSpec
from shequtong_grid_gateway.workers import DeliveryWorker

from shequtong_kit.auth import Principal, parse_roles
from shequtong_kit.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied

OPS = Principal("ops", parse_roles(["operator@*"]))
STAFF_D1 = Principal("p-d1", parse_roles(["district_staff@d:D1"]))
STAFF_D2 = Principal("p-d2", parse_roles(["district_staff@d:D2"]))
RESIDENT = Principal("p-r", parse_roles(["resident@n:N1", "cadre@n:N1"]))
ISSUES = Principal("svc:issues", parse_roles(["service@*"]))


async def send_all(h: Any) -> None:
    w = DeliveryWorker(h.service, h.platform, h.settings, monotonic=lambda: 0.0)
    while await w.pass_once():
        pass


async def test_lists_are_scoped_paged_and_filtered(harness: Any) -> None:
    await harness.neighbourhood("N2", "D2")
    mine = [await harness.dispatch() for _ in range(5)]
    theirs = await harness.dispatch(neighbourhood_id="N2")
    failed = await harness.dispatch(grid_service_code="C-01")
    await send_all(harness)

    async def page(principal: Principal, **filters: Any) -> list[str]:
        args = {"state": "", "district_id": "", "issue_id": "", "dispatch_id": "", "after": None, "limit": 100}
        args.update(filters)
        return [t.id for t in await harness.service.list_tickets(principal, **args)]

    everything = await page(OPS)
    assert everything == sorted([t.id for t in [*mine, theirs, failed]], reverse=True)  # newest first
    assert set(await page(STAFF_D1)) == {t.id for t in [*mine, failed]}
    assert await page(STAFF_D2) == [theirs.id]
    assert await page(OPS, state="failed") == [failed.id]
    assert await page(OPS, dispatch_id=mine[2].dispatch_id) == [mine[2].id]
    assert await page(OPS, issue_id=mine[3].issue_id) == [mine[3].id]
    assert await page(ISSUES, district_id="D2") == [theirs.id]
    # keyset pages: no overlap, no gap
    first = await page(STAFF_D1, limit=3)
    rest = await page(STAFF_D1, after=first[-1], limit=10)
    assert first + rest == await page(STAFF_D1)
    with pytest.raises(PermissionDenied) as denied:
        await page(STAFF_D1, district_id="D2")
    assert denied.value.code == "not_your_district"
    with pytest.raises(PermissionDenied) as denied:
        await page(RESIDENT)
    assert denied.value.code == "grid_staff_only"
    with pytest.raises(InvalidArgument):
        await page(OPS, state="lost")


async def test_detail_shows_attempts_and_updates_to_those_in_charge_only(harness: Any) -> None:
    await harness.mode(fail_next=1)
    ticket = await harness.dispatch()
    await send_all(harness)
    harness.clock.advance(seconds=10)
    await send_all(harness)
    sent = await harness.ticket(ticket.id)
    raw = await harness.advance(sent.external_id, "dispatched")
    from shequtong_grid_gateway.domain.webhook import parse_update

    for update in raw:
        await harness.service.apply_update("district", parse_update(update), "webhook")
    detail = await harness.service.get_ticket(STAFF_D1, ticket.id)
    assert detail.ticket.state == rules.DISPATCHED
    assert [(a.number, a.outcome, a.http_status) for a in detail.attempts] == [(1, "retry", 500), (2, "sent", 200)]
    assert detail.attempt_count == 2 and detail.attempts[1].external_id == sent.external_id
    assert [(u.state, u.outcome) for u in detail.updates] == [("accepted", "applied"), ("dispatched", "applied")]
    for outsider, error in [(STAFF_D2, NotFound), (RESIDENT, PermissionDenied)]:
        with pytest.raises(error):
            await harness.service.get_ticket(outsider, ticket.id)
    with pytest.raises(NotFound):
        await harness.service.get_ticket(OPS, "no-such-ticket")


async def test_retry_is_for_failed_tickets_the_platform_never_took(harness: Any) -> None:
    failed = await harness.dispatch(grid_service_code="C-01")
    fine = await harness.dispatch()
    await send_all(harness)

    async def retry(principal: Principal, ticket_id: str) -> Any:
        async with harness.sessions() as session, session.begin():
            return await harness.service.retry_ticket(session, principal, ticket_id)

    with pytest.raises(FailedPrecondition) as refused:
        await retry(OPS, fine.id)
    assert refused.value.code == "ticket_not_failed"
    for outsider, error in [(STAFF_D2, NotFound), (RESIDENT, PermissionDenied), (ISSUES, PermissionDenied)]:
        with pytest.raises(error):
            await retry(outsider, failed.id)
    assert (await harness.ticket(failed.id)).state == rules.FAILED  # nothing changed
    again = await retry(STAFF_D1, failed.id)
    assert again.state == rules.PENDING and again.failure_code == ""
    await send_all(harness)
    refused_twice = await harness.ticket(failed.id)
    assert (refused_twice.state, refused_twice.attempts) == (rules.FAILED, 2)


async def test_retry_checks_the_ticket_against_todays_catalogue(make_harness: Any) -> None:
    h = await make_harness(catalogue={"": CatalogueSpec(None)})
    await h.service.refresh_catalogue()
    ticket = await h.dispatch(grid_service_code="", category_code="potholes")
    assert ticket.failure_code == rules.SERVICE_CODE_UNKNOWN
    async with h.sessions() as session, session.begin():
        with pytest.raises(FailedPrecondition) as refused:
            await h.service.retry_ticket(session, OPS, ticket.id)
    assert refused.value.code == rules.SERVICE_CODE_UNKNOWN
    # the district maps the category now: the retry goes through with the mapped code
    h.service.catalogue_specs = {"": CatalogueSpec(None, {"potholes": "04-01"})}
    await h.service.refresh_catalogue()
    async with h.sessions() as session, session.begin():
        again = await h.service.retry_ticket(session, OPS, ticket.id)
    assert (again.state, again.service_code) == (rules.PENDING, "04-01")


async def test_circuits_show_state_and_backlog(harness: Any) -> None:
    await harness.mode(down=True)
    for _ in range(4):
        await harness.dispatch()
    await DeliveryWorker(harness.service, harness.platform, harness.settings, monotonic=lambda: 0.0).pass_once()
    [view] = await harness.service.circuits(STAFF_D1)
    assert (view.breaker.state, view.pending) == ("open", 4)
    assert view.breaker.consecutive_failures >= 3  # sends already in flight finish
    assert "503" in view.breaker.last_error and view.breaker.retry_at is not None
    with pytest.raises(PermissionDenied):
        await harness.service.circuits(RESIDENT)


async def test_catalogue_per_district_from_file_and_platform(make_harness: Any) -> None:
    h = await make_harness(
        catalogue={
            "": CatalogueSpec(None, {"rubbish": "01-02"}),
            "D1": CatalogueSpec((CatalogueService("SH-0101", "乱涂写", group="市容环境"),), {"graffiti": "SH-0101"}),
        }
    )
    assert sorted(await h.service.refresh_catalogue()) == ["", "D1"]
    default = await h.service.get_catalogue(OPS, "")
    assert default.source and default.source.source == "platform"
    assert "01-02" in {s.service_code for s in default.services}
    assert [(m.category_code, m.service_code) for m in default.categories] == [("rubbish", "01-02")]
    own = await h.service.get_catalogue(STAFF_D1, "D1")
    assert own.source and own.source.source == "file"
    assert [s.service_code for s in own.services] == ["SH-0101"]
    # D1 files under its own codes: the platform's default ones are unknown there
    graffiti = await h.dispatch(grid_service_code="", category_code="graffiti")
    assert (graffiti.state, graffiti.service_code) == (rules.PENDING, "SH-0101")
    assert (await h.dispatch(grid_service_code="01-02")).failure_code == rules.SERVICE_CODE_UNKNOWN
    # a district without its own entry gets the default
    assert (await h.service.get_catalogue(OPS, "D7")).source.source == "platform"  # type: ignore[union-attr]
    with pytest.raises(PermissionDenied):
        await h.service.get_catalogue(STAFF_D2, "D1")
    with pytest.raises(PermissionDenied):
        await h.service.reload_catalogue(STAFF_D1)
    reloaded = await h.service.reload_catalogue(OPS)
    assert [v.district_id for v in reloaded] == ["", "D1"]


async def test_a_catalogue_the_platform_cannot_serve_is_retried_and_nothing_is_invented(harness: Any) -> None:
    await harness.mode(down=True)
    assert await harness.service.refresh_catalogue() == []
    assert (await harness.service.get_catalogue(OPS, "")).source is None
    assert harness.service.catalogue_due() is False
    harness.clock.advance(seconds=harness.settings.grid_poll_interval_seconds)
    assert harness.service.catalogue_due() is True
    # without a catalogue, codes are not checked here: the platform judges them
    assert (await harness.dispatch(grid_service_code="99-99")).state == rules.PENDING
