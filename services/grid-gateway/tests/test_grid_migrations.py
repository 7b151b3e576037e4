"""The hand-written migrations go up, down and up again, on PostgreSQL and on SQLite (make test runs
both)."""

from __future__ import annotations

import os

import sqlalchemy as sa


def test_migrations_round_trip(database_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "shequtong_grid_gateway:migrations")
    os.environ["DATABASE_URL"] = database_url
    try:
        command.downgrade(config, "0001")
        command.upgrade(config, "head")
    finally:
        os.environ.pop("DATABASE_URL", None)
    sync_url = database_url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg")
    engine = sa.create_engine(sync_url)
    names = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    assert {"tickets", "delivery_attempts", "grid_updates", "poll_cursors", "catalogue_services"} <= names
    assert {"outbox", "inbox", "idempotency_keys", "region_directory"} <= names
