"""`db.once_per_transaction`: a value computed once in a transaction and again in the next."""

from __future__ import annotations

from pathlib import Path

from shequtong_kit.db import create_engine, once_per_transaction, session_factory


async def test_once_per_transaction_computes_once_in_a_transaction_and_again_in_the_next(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'once.db'}")
    calls: list[int] = []

    async def compute() -> int:
        calls.append(1)
        return len(calls)

    async with session_factory(engine)() as session:
        async with session.begin():
            assert [await once_per_transaction(session, "k", compute) for _ in range(3)] == [1, 1, 1]
        async with session.begin():
            assert await once_per_transaction(session, "k", compute) == 2
    assert len(calls) == 2
    await engine.dispose()
