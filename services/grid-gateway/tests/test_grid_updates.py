"""Status back: every grid update recorded once, applied only when newer than the ticket's
latest, in the grid's order, whether pushed or polled; one event per applied update."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shequtong_grid_gateway.domain import tickets as rules
from shequtong_grid_gateway.domain.webhook import IncomingUpdate, parse_update
from shequtong_grid_gateway.platforms import Accepted
from shequtong_grid_gateway.service import APPLIED, DUPLICATE, NOTED, ORPHAN, STALE
from shequtong_grid_gateway.workers import DeliveryWorker, Poller


async def sent_ticket(h: Any, **changes: Any) -> Any:
    ticket = await h.dispatch(**changes)
    await DeliveryWorker(h.service, h.platform, h.settings, monotonic=lambda: 0.0).pass_once()
    sent = await h.ticket(ticket.id)
    assert sent.external_id, sent.last_error
    await h.clear_events()
    return sent


def updates_of(raw: list[dict[str, Any]]) -> list[IncomingUpdate]:
    return [parse_update(u) for u in raw]


async def changes(h: Any, ticket_id: str) -> list[tuple[str, str, str]]:
    return [
        (m.previous_state, m.state, m.grid_update_id)
        for s, m in await h.events(ticket_id)
        if s == "grid.ticket.status_changed"
    ]


async def test_updates_in_order_move_the_ticket_through_every_stage(harness: Any) -> None:
    ticket = await sent_ticket(harness)
    raw = await harness.advance(ticket.external_id, "closed")
    outcomes = [await harness.service.apply_update("district", u, "webhook") for u in updates_of(raw)]
    assert outcomes == [APPLIED] * 4
    after = await harness.ticket(ticket.id)
    assert after.state == rules.CLOSED and after.last_update_id == raw[-1]["update_id"]
    assert await changes(harness, ticket.id) == [
        ("sent", "accepted", raw[0]["update_id"]),
        ("accepted", "dispatched", raw[1]["update_id"]),
        ("dispatched", "handled", raw[2]["update_id"]),
        ("handled", "closed", raw[3]["update_id"]),
    ]
    [(_, dispatched)] = [(s, m) for s, m in await harness.events(ticket.id) if m.state == "dispatched"]
    assert dispatched.external_status_code == "ACTION_SCHEDULED" and dispatched.grid_status == "open"
    assert dispatched.external_id == ticket.external_id and dispatched.occurred_at.seconds > 0


async def test_duplicates_and_older_updates_are_recorded_but_change_nothing(harness: Any) -> None:
    ticket = await sent_ticket(harness)
    raw = await harness.advance(ticket.external_id, "closed")
    ups = updates_of(raw)
    # the grid's batch arrives reversed and twice
    outcomes = [await harness.service.apply_update("district", u, "webhook") for u in [*reversed(ups), *ups]]
    assert outcomes == [APPLIED, STALE, STALE, STALE] + [DUPLICATE] * 4
    after = await harness.ticket(ticket.id)
    assert after.state == rules.CLOSED
    assert await changes(harness, ticket.id) == [("sent", "closed", raw[3]["update_id"])]
    detail = await harness.service.get_ticket(_ops(), ticket.id)
    assert [u.update_id for u in detail.updates] == [u["update_id"] for u in raw]  # grid order
    assert [u.outcome for u in detail.updates] == [STALE, STALE, STALE, APPLIED]
    # a later reopening still applies
    reopen = await harness.sim.post(f"/_sim/reopen/{ticket.external_id}")
    [later] = updates_of(reopen.json()["updates"])
    assert await harness.service.apply_update("district", later, "poll") == APPLIED
    assert (await harness.ticket(ticket.id)).state == rules.REOPENED


async def test_updates_sharing_a_second_are_ordered_by_update_id(harness: Any) -> None:
    ticket = await sent_ticket(harness)
    at = datetime.fromisoformat("2026-03-01T10:00:00+08:00")

    def update(update_id: str, code: str) -> IncomingUpdate:
        return IncomingUpdate(update_id, ticket.external_id, "open", at, "", "", code)

    apply = harness.service.apply_update
    assert await apply("district", update("1000000000000002", "ACTION_SCHEDULED"), "poll") == APPLIED
    assert await apply("district", update("1000000000000001", "INVESTIGATING"), "poll") == STALE
    assert await apply("district", update("1000000000000003", "IN_PROGRESS"), "poll") == APPLIED
    assert (await harness.ticket(ticket.id)).state == rules.HANDLED


async def test_a_note_without_a_state_is_recorded_and_moves_nothing(harness: Any) -> None:
    ticket = await sent_ticket(harness)
    note = IncomingUpdate("2000000000000001", ticket.external_id, "open", harness.clock.now(), "已联系居委", "", "")
    assert await harness.service.apply_update("district", note, "webhook") == NOTED
    after = await harness.ticket(ticket.id)
    assert after.state == rules.SENT and after.last_update_id == "2000000000000001"
    assert await changes(harness, ticket.id) == []


async def test_updates_that_arrive_before_the_ticket_knows_its_id_wait_for_it(harness: Any) -> None:
    ticket = await harness.dispatch()
    at = harness.clock.now()
    early = [
        IncomingUpdate("3000000000000002", "G-EARLY-1", "open", at, "已派遣", "", "ACTION_SCHEDULED", "区城管"),
        IncomingUpdate("3000000000000001", "G-EARLY-1", "open", at, "已立案", "", "INVESTIGATING"),
    ]
    assert [await harness.service.apply_update("district", u, "webhook") for u in early] == [ORPHAN, ORPHAN]
    claimed = await harness.service.claim_due("district", 1)
    assert [t.id for t in claimed] == [ticket.id]
    await harness.service.record_sent(ticket.id, Accepted("G-EARLY-1", None, 200), at, 12)
    adopted = await harness.ticket(ticket.id)
    assert (adopted.state, adopted.agency) == (rules.DISPATCHED, "区城管")
    moves = [(p, s) for p, s, _ in await changes(harness, ticket.id)]
    assert moves == [("sent", "accepted"), ("accepted", "dispatched")]


async def test_polling_alone_brings_every_status_back(harness: Any) -> None:
    # the harness's simulator pushes nothing: no webhook is configured
    tickets = [await sent_ticket(harness) for _ in range(3)]
    await harness.advance(tickets[0].external_id, "closed")
    await harness.advance(tickets[1].external_id, "dispatched")
    rejected = await harness.sim.post(f"/_sim/reject/{tickets[2].external_id}", params={"reason": "duplicate"})
    assert rejected.status_code == 200
    poller = Poller(harness.service, harness.platform, harness.settings)
    assert await poller.poll_once() == "ok"
    states = [(await harness.ticket(t.id)).state for t in tickets]
    assert states == [rules.CLOSED, rules.DISPATCHED, rules.REJECTED]
    detail = await harness.service.get_ticket(_ops(), tickets[0].id)
    assert {u.source for u in detail.updates} == {"poll"} and len(detail.updates) == 4
    # polling again (overlapping windows) records nothing twice
    assert await poller.poll_once() == "ok"
    assert len((await harness.service.get_ticket(_ops(), tickets[0].id)).updates) == 4
    assert len(await changes(harness, tickets[0].id)) == 4


async def test_one_replica_polls_at_a_time(make_harness: Any) -> None:
    a = await make_harness()
    b = await make_harness()
    assert await a.service.lease_poll("district", 60) is not None
    assert await b.service.lease_poll("district", 60) is None
    assert await Poller(b.service, b.platform, b.settings).poll_once() == "skipped"
    await a.service.finish_poll("district", None, "")
    assert await b.service.lease_poll("district", 60) is not None


async def test_a_platform_down_for_polling_keeps_the_cursor(harness: Any) -> None:
    ticket = await sent_ticket(harness)
    poller = Poller(harness.service, harness.platform, harness.settings)
    assert await poller.poll_once() == "ok"
    await harness.mode(down=True)
    await harness.advance(ticket.external_id, "dispatched")
    assert await poller.poll_once() == "error"
    await harness.mode(down=False)
    harness.clock.advance(seconds=30)
    assert await poller.poll_once() == "ok"
    assert (await harness.ticket(ticket.id)).state == rules.DISPATCHED


async def test_the_requests_backstop_finds_what_the_update_feed_missed(harness: Any) -> None:
    ticket = await sent_ticket(harness)
    await harness.advance(ticket.external_id, "handled")
    poller = Poller(harness.service, harness.platform, harness.settings)
    await poller._backstop()
    after = await harness.ticket(ticket.id)
    assert after.state == rules.HANDLED
    assert after.agency and after.expected_at is not None and after.last_checked_at is not None
    assert len(await changes(harness, ticket.id)) == 3


def _ops() -> Any:
    from shequtong_kit.auth import Principal, parse_roles

    return Principal("ops", parse_roles(["operator@*"]))
