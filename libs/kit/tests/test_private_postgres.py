"""The fault suite's private PostgreSQL: initdb, start, databases on it, a fast stop and a restart."""

from __future__ import annotations

import psycopg
import pytest

from shequtong_kit.testing import Databases, PostgresServer, temp_workdir

pytestmark = pytest.mark.skipif(not PostgresServer.available(), reason="no initdb/postgres binaries")


def test_a_private_server_serves_databases_and_survives_a_restart() -> None:
    server = PostgresServer().init().start()
    try:
        with temp_workdir("kit-pg-") as path:
            dbs = Databases(path, admin_url=server.admin_url)
            assert dbs.use_postgres
            url = dbs.create("probe").replace("postgresql+asyncpg://", "postgresql://")
            assert f":{server.port}/" in url
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE TABLE t (x int)")
                conn.execute("INSERT INTO t VALUES (1)")
            server.stop("fast")
            assert not server.answers()
            server.start()
            with psycopg.connect(url) as conn:
                assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
            dbs.drop_all()
    finally:
        server.cleanup()
    assert not server.base.exists()


def test_a_required_server_that_does_not_answer_is_an_error() -> None:
    with temp_workdir("kit-pg-") as path, pytest.raises(RuntimeError, match="not reachable"):
        Databases(path, admin_url="postgresql://postgres@127.0.0.1:9/postgres")
