"""cleanup_inactive_identities racing join_session: an identity that has just joined is never deleted,
and a join that lands after cleanup took the identity fails with HT404, not a raw foreign-key error."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from tests.db.helpers import app_connection, identity, session
from tests.db.test_event_order import _wait_until_blocked


async def _join(conn: asyncpg.Connection, s: uuid.UUID, who: uuid.UUID, delay: float = 0.0) -> object:
    await asyncio.sleep(delay)
    try:
        return await conn.fetchval("SELECT hearth.join_session($1, $2)", s, who)
    except asyncpg.PostgresError as exc:
        return exc.sqlstate


async def test_a_join_behind_cleanup_is_ht404(
    db: asyncpg.Connection, admin: asyncpg.Connection, db_url: str
) -> None:
    sleepy = await identity(db, "sleepy")
    s = await session(db)
    await admin.execute(
        "UPDATE hearth_data.identities SET last_active_at = now() - interval '31 minutes' "
        "WHERE identity_id = $1",
        sleepy,
    )
    cleaner, joiner = await app_connection(db_url), await app_connection(db_url)
    try:
        async with cleaner.transaction():
            assert await cleaner.fetchval("SELECT hearth.cleanup_inactive_identities()") == 1
            join = asyncio.create_task(_join(joiner, s, sleepy))
            await _wait_until_blocked(admin, joiner.get_server_pid())
        assert await join == "HT404"
    finally:
        await cleaner.close()
        await joiner.close()


async def test_an_identity_that_just_joined_is_never_deleted(
    db: asyncpg.Connection, admin: asyncpg.Connection, db_url: str
) -> None:
    """The audit's timing race: cleanup chose its candidates on one snapshot and locked them later; a join
    committed in between was not seen. Many idle identities make the candidate query take a while."""
    await admin.execute(
        "INSERT INTO hearth_data.identities (last_active_at) SELECT now() - interval '2 hours' "
        "FROM generate_series(1, 60000)"
    )
    await admin.execute("ANALYZE hearth_data.identities")
    outcomes = []
    for k in range(8):
        late = uuid.UUID(f"ffffffff-ffff-4fff-bfff-{k:012x}")  # sorts last: cleanup locks it last
        await admin.execute(
            "INSERT INTO hearth_data.identities (identity_id, last_active_at) "
            "VALUES ($1, now() - interval '2 hours')",
            late,
        )
        s = await session(db)
        cleaner, joiner = await app_connection(db_url), await app_connection(db_url)
        try:
            deleted, joined = await asyncio.gather(
                cleaner.fetchval("SELECT hearth.cleanup_inactive_identities()"),
                _join(joiner, s, late, delay=0.01 + 0.02 * k),
            )
        finally:
            await cleaner.close()
            await joiner.close()
        gone = not await admin.fetchval(
            "SELECT count(*) FROM hearth_data.identities WHERE identity_id = $1", late
        )
        outcomes.append((joined if isinstance(joined, str) else "joined", gone))
        assert isinstance(joined, uuid.UUID) or joined == "HT404", outcomes
        assert not (isinstance(joined, uuid.UUID) and gone), f"try {k}: joined, then deleted: {outcomes}"
        await admin.execute(
            "INSERT INTO hearth_data.identities (last_active_at) SELECT now() - interval '2 hours' "
            "FROM generate_series(1, $1)",
            deleted - (1 if gone else 0),
        )
