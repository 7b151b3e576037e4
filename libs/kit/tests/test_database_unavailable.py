"""A database that is down, starting up or shutting down is UNAVAILABLE (retryable), whatever shape the
driver's error reaches us in; a statement the database refuses is not."""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DataError, DBAPIError, OperationalError, ProgrammingError

from shequtong_kit.grpc_server import database_unavailable


def wrapped(cls: type[DBAPIError], orig: Exception, invalidated: bool = False) -> DBAPIError:
    return cls("SELECT 1", {}, orig, connection_invalidated=invalidated)


def test_down_starting_or_shutting_down_is_unavailable() -> None:
    # raised unwrapped by asyncpg while connecting (seen when PostgreSQL restarts under load)
    assert database_unavailable(asyncpg.exceptions.CannotConnectNowError("the database system is starting up"))
    assert database_unavailable(asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"))
    assert database_unavailable(ConnectionRefusedError(111, "Connection refused"))
    assert database_unavailable(wrapped(DBAPIError, asyncpg.exceptions.AdminShutdownError("terminating connection")))
    assert database_unavailable(wrapped(DBAPIError, asyncpg.exceptions.ConnectionDoesNotExistError("closed")))
    assert database_unavailable(wrapped(DBAPIError, ValueError("anything"), invalidated=True))
    assert database_unavailable(wrapped(OperationalError, ValueError("could not connect")))
    assert database_unavailable(wrapped(DBAPIError, asyncpg.exceptions.TooManyConnectionsError("too many clients")))


def test_a_refused_statement_is_not_unavailable() -> None:
    assert not database_unavailable(wrapped(DataError, asyncpg.exceptions.StringDataRightTruncationError("too long")))
    assert not database_unavailable(wrapped(ProgrammingError, asyncpg.exceptions.UndefinedTableError("no table")))
    assert not database_unavailable(ValueError("a bug"))
