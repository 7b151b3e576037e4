"""Two retries of one request with one Idempotency-Key race: the loser may fail on the effect the winner
just made (a unique phone number, say) before it reaches the key's row. It must answer what the winner
answered, not the conflict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.protobuf.wrappers_pb2 import StringValue
from sqlalchemy import Column, MetaData, String, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from shequtong_kit import idempotency
from shequtong_kit.db import create_engine, kit_metadata, session_factory
from shequtong_kit.errors import AlreadyExists

people_metadata = MetaData()
people = Table("people", people_metadata, Column("phone", String(20), primary_key=True))


async def test_a_retry_that_loses_the_race_replays_the_winners_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'idem.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(kit_metadata.create_all)
        await conn.run_sync(people_metadata.create_all)
    sessions = session_factory(engine)

    async def register(session: AsyncSession) -> StringValue:
        taken = (await session.execute(select(people.c.phone).where(people.c.phone == "139"))).first()
        if taken:
            raise AlreadyExists("this mobile number is already registered", code="phone_taken")
        await session.execute(insert(people).values(phone="139"))
        return StringValue(value="person-1")

    request = StringValue(value="register 139")
    first = await idempotency.run_once(sessions, "k1", "Register:anon", request, StringValue, register)

    # The loser looked for the key before the winner committed: it saw nothing and went on to the work.
    real_stored = idempotency._stored
    calls = {"n": 0}

    async def stored_late(session: AsyncSession, scope: str, key: str) -> Any:
        calls["n"] += 1
        return None if calls["n"] == 1 else await real_stored(session, scope, key)

    monkeypatch.setattr(idempotency, "_stored", stored_late)
    again = await idempotency.run_once(sessions, "k1", "Register:anon", request, StringValue, register)
    assert again == first and calls["n"] == 2

    # Without a stored answer for the key, the conflict is the caller's to see.
    with pytest.raises(AlreadyExists):
        await idempotency.run_once(sessions, "k2", "Register:anon", request, StringValue, register)
    await engine.dispose()
