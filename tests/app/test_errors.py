"""app.errors: one table from the HT SQLSTATEs to HTTP statuses and websocket close codes (SPEC section 2),
and the mapping of real PostgreSQL errors raised with those SQLSTATEs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from app import errors
from app.errors import HearthError
from tests.pg import PgServer

# SPEC section 2, copied by hand: code -> (HTTP status, websocket close code).
SPEC_TABLE = {
    "HT400": (400, 4400),
    "HT401": (401, 4401),
    "HT403": (403, 4403),
    "HT404": (404, 4404),
    "HT409": (409, 4409),
    "HT410": (410, 4410),
    "HT429": (429, 4429),
}


def test_the_table_is_the_spec() -> None:
    assert errors.STATUS == SPEC_TABLE


@pytest.mark.parametrize("code", sorted(SPEC_TABLE))
def test_each_code(code: str) -> None:
    error = HearthError(code, "what went wrong")
    assert error.code == code
    assert error.message == "what went wrong"
    assert str(error) == "what went wrong"
    assert (error.http_status, error.close_code) == SPEC_TABLE[code]
    assert error.body() == {"error": {"code": code, "message": "what went wrong"}}


def test_http_status_override_keeps_code_and_close_code() -> None:
    error = HearthError("HT400", "too big", http_status=413)
    assert error.http_status == 413
    assert error.close_code == 4400
    assert error.body() == {"error": {"code": "HT400", "message": "too big"}}


@pytest.mark.parametrize("code", ["HT500", "HT999", "XX000", "", "ht404"])
def test_unknown_codes_are_internal_errors(code: str) -> None:
    error = HearthError(code, "?")
    assert error.http_status == 500
    assert error.close_code == 1011


def test_is_an_exception() -> None:
    with pytest.raises(HearthError) as info:
        raise HearthError("HT404", "no such session")
    assert isinstance(info.value, Exception)


# from_postgres with errors raised by a real server ------------------------------------------------


@pytest.fixture(scope="module")
async def conn(pg: PgServer) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(pg.url("postgres"))
    yield connection
    await connection.close()


async def raised(conn: asyncpg.Connection, sqlstate: str, message: str) -> asyncpg.PostgresError:
    with pytest.raises(asyncpg.PostgresError) as info:
        await conn.execute(f"DO $$ BEGIN RAISE EXCEPTION '{message}' USING ERRCODE = '{sqlstate}'; END $$")
    assert info.value.sqlstate == sqlstate
    return info.value


@pytest.mark.parametrize("code", sorted(SPEC_TABLE))
async def test_from_postgres_maps_ht_codes(conn: asyncpg.Connection, code: str) -> None:
    error = errors.from_postgres(await raised(conn, code, f"session is {code}"))
    assert error is not None
    assert error.code == code
    assert error.message == f"session is {code}"
    assert (error.http_status, error.close_code) == SPEC_TABLE[code]


@pytest.mark.parametrize("sqlstate", ["P0001", "23505", "22P02", "HT500", "HT418", "42501"])
async def test_from_postgres_leaves_other_errors_alone(conn: asyncpg.Connection, sqlstate: str) -> None:
    assert errors.from_postgres(await raised(conn, sqlstate, "not for clients")) is None


async def test_from_postgres_with_a_server_error(conn: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.PostgresError) as info:
        await conn.execute("SELECT 1 / 0")
    assert errors.from_postgres(info.value) is None
