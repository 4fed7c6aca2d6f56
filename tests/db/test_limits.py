"""What limits an anonymous caller (revision 0008), with the default settings: identities per client key
per minute (create_anonymous_identity), open sessions and waiting displays per identity (create_session's
p_created_by, register_display). Both hold under concurrent calls from separate connections."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from tests.conftest import raises_sqlstate
from tests.db.helpers import app_connection, db_now, identity, seconds

IDENTITY_RATE_LIMIT = 30
MAX_OPEN_SESSIONS = 20


async def anonymous(db: asyncpg.Connection, key: str | None, now: object = None) -> uuid.UUID:
    if now is None:
        value = await db.fetchval("SELECT hearth.create_anonymous_identity($1)", key)
    else:
        value = await db.fetchval("SELECT hearth.create_anonymous_identity($1, NULL, $2)", key, now)
    assert isinstance(value, uuid.UUID)
    return value


async def room(db: asyncpg.Connection, created_by: uuid.UUID | None) -> uuid.UUID:
    value = await db.fetchval(
        "SELECT session_id FROM hearth.create_session('room', p_created_by => $1)", created_by
    )
    assert isinstance(value, uuid.UUID)
    return value


async def test_the_defaults_are_the_contracts(db: asyncpg.Connection) -> None:
    settings = {
        key: await db.fetchval("SELECT hearth.get_setting($1)", key)
        for key in ("identity_rate_limit", "max_open_sessions_per_identity", "max_sockets_per_identity")
    }
    assert settings == {
        "identity_rate_limit": "30",
        "max_open_sessions_per_identity": "20",
        "max_sockets_per_identity": "10",
    }


async def test_a_client_key_creates_30_identities_a_minute(db: asyncpg.Connection) -> None:
    start = await db_now(db)
    for n in range(IDENTITY_RATE_LIMIT):
        await anonymous(db, "203.0.113.7", start + seconds(n))
    async with raises_sqlstate("HT429") as info:
        await anonymous(db, "203.0.113.7", start + seconds(40))
    # Retry-After: until the first of the 30 is a minute old.
    assert info.value.detail == "20"
    # Other keys, and calls without a key, are not counted with it.
    await anonymous(db, "203.0.113.8", start + seconds(40))
    await anonymous(db, None, start + seconds(40))
    # A minute after the first, one more is allowed; then the second's minute is awaited.
    await anonymous(db, "203.0.113.7", start + seconds(60.5))
    async with raises_sqlstate("HT429"):
        await anonymous(db, "203.0.113.7", start + seconds(60.6))


async def test_the_identity_limit_holds_under_concurrent_calls(
    db_url: str, admin: asyncpg.Connection
) -> None:
    conns = [await app_connection(db_url) for _ in range(8)]
    try:

        async def create(conn: asyncpg.Connection) -> list[str]:
            outcomes = []
            for _ in range(6):
                try:
                    await anonymous(conn, "198.51.100.1")
                    outcomes.append("created")
                except asyncpg.PostgresError as exc:
                    outcomes.append(str(exc.sqlstate))
            return outcomes

        outcomes = [o for batch in await asyncio.gather(*(create(c) for c in conns)) for o in batch]
    finally:
        for conn in conns:
            await conn.close()
    assert outcomes.count("created") == IDENTITY_RATE_LIMIT
    assert outcomes.count("HT429") == 48 - IDENTITY_RATE_LIMIT
    assert await admin.fetchval("SELECT count(*) FROM hearth_data.identity_creations") == IDENTITY_RATE_LIMIT


async def test_old_creations_are_cleared_as_new_ones_come(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    start = await db_now(db)
    for n in range(5):
        await anonymous(db, f"192.0.2.{n}", start)
    await anonymous(db, "192.0.2.99", start + seconds(61))
    assert await admin.fetchval("SELECT count(*) FROM hearth_data.identity_creations") == 1


async def test_an_identity_holds_20_open_rooms_and_displays(db: asyncpg.Connection) -> None:
    me = await identity(db, "host")
    for _ in range(MAX_OPEN_SESSIONS - 1):
        await room(db, me)
    await db.fetchrow("SELECT * FROM hearth.register_display($1)", me)
    async with raises_sqlstate("HT429") as info:
        await room(db, me)
    assert info.value.detail is None  # a quota, not a rate: no Retry-After
    async with raises_sqlstate("HT429"):
        await db.fetchrow("SELECT * FROM hearth.register_display($1)", me)
    # Others, and sessions created without a creator (match sessions, a DBA's), are not counted.
    await room(db, await identity(db, "other"))
    await room(db, None)


async def test_a_closed_or_expired_session_frees_its_place(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    me = await identity(db, "host")
    rooms = [await room(db, me) for _ in range(MAX_OPEN_SESSIONS)]
    async with raises_sqlstate("HT429"):
        await room(db, me)
    await admin.execute(
        "UPDATE hearth_data.sessions SET status = 'ended', closed_at = now() WHERE session_id = $1", rooms[0]
    )
    await admin.execute("UPDATE hearth_data.sessions SET expires_at = now() WHERE session_id = $1", rooms[1])
    await room(db, me)
    await room(db, me)
    async with raises_sqlstate("HT429"):
        await room(db, me)


async def test_the_open_sessions_limit_holds_under_concurrent_calls(
    db_url: str, db: asyncpg.Connection
) -> None:
    me = await identity(db, "host")
    conns = [await app_connection(db_url) for _ in range(8)]
    try:

        async def create(conn: asyncpg.Connection, n: int) -> list[str]:
            outcomes = []
            for _ in range(5):
                try:
                    if n % 2:
                        await room(conn, me)
                    else:
                        await conn.fetchrow("SELECT * FROM hearth.register_display($1)", me)
                    outcomes.append("created")
                except asyncpg.PostgresError as exc:
                    outcomes.append(str(exc.sqlstate))
            return outcomes

        batches = await asyncio.gather(*(create(c, n) for n, c in enumerate(conns)))
        outcomes = [o for batch in batches for o in batch]
    finally:
        for conn in conns:
            await conn.close()
    assert outcomes.count("created") == MAX_OPEN_SESSIONS
    assert outcomes.count("HT429") == 40 - MAX_OPEN_SESSIONS
