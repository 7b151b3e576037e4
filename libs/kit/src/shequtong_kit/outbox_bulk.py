"""Many outbox rows in one statement, for imports that create thousands of items in one transaction.

The rows are the ones `Outbox.add` writes (same id scheme, CloudEvents headers and trace context), one
per event, so the relay and every consumer treat them exactly like events written one at a time; only
the INSERT is batched (executemany). Kept beside `outbox.py` rather than in it so the relay can change
independently.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.message import Message
from opentelemetry import propagate
from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncSession

from shequtong_kit.db import outbox as outbox_table
from shequtong_kit.ids import new_id
from shequtong_kit.outbox import Outbox, _wake_relays


async def add_many(outbox: Outbox, session: AsyncSession, events: Sequence[tuple[str, Message]]) -> list[str]:
    """Writes one outbox row per (subject, message) into the caller's transaction; returns the event ids."""
    if not events:
        return []
    now = outbox.clock.now()
    trace: dict[str, str] = {}
    propagate.inject(trace)
    rows = []
    for subject, message in events:
        event_id = new_id()
        headers = {
            "ce-id": event_id,
            "ce-type": message.DESCRIPTOR.full_name,
            "ce-source": f"/shequtong/{outbox.source}",
            "ce-specversion": "1.0",
            "ce-time": now.isoformat(),
            "ce-subject": subject,
            "content-type": "application/protobuf",
            **trace,
        }
        rows.append(
            {
                "id": event_id,
                "subject": subject,
                "type": message.DESCRIPTOR.full_name,
                "payload": message.SerializeToString(),
                "headers": headers,
                "created_at": now,
                "sent_at": None,
                "attempts": 0,
            }
        )
    await session.execute(insert(outbox_table), rows)
    if not event.contains(session.sync_session, "after_commit", _wake_relays):
        event.listen(session.sync_session, "after_commit", _wake_relays)
    return [row["id"] for row in rows]
