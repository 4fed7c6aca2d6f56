"""hearth.broadcast: NOTIFYs its payloads on hearth_broadcast in order, writes no row, and lets its
transaction commit without waiting for the WAL flush."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.conftest import raises_sqlstate


async def test_payloads_go_out_in_order_at_commit_with_synchronous_commit_off(
    db: asyncpg.Connection, admin: asyncpg.Connection, db_url: str
) -> None:
    listener = await asyncpg.connect(db_url)
    received: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("hearth_broadcast", lambda *args: received.put_nowait(args[3]))
    try:
        rows_before = await admin.fetchval("SELECT count(*) FROM hearth_data.events")
        await db.execute("SET synchronous_commit = on")  # the test cluster runs with it off
        async with db.transaction():
            assert await db.fetchval("SELECT hearth.broadcast($1)", ["one", "two", "x" * 7999]) == 3
            assert await db.fetchval("SHOW synchronous_commit") == "off"  # for this transaction only
            assert received.empty()  # nothing before the commit
        assert await db.fetchval("SHOW synchronous_commit") == "on"
        got = [await asyncio.wait_for(received.get(), 5) for _ in range(3)]
        assert got == ["one", "two", "x" * 7999]
        assert await admin.fetchval("SELECT count(*) FROM hearth_data.events") == rows_before
    finally:
        await listener.close()


async def test_bad_batches_are_ht400(db: asyncpg.Connection) -> None:
    for payloads in ([], ["ok", None], ["ok", ""], ["x" * 8000], ["p"] * 1001, ["é" * 4000]):
        async with raises_sqlstate("HT400"):
            await db.fetchval("SELECT hearth.broadcast($1::text[])", payloads)
    async with raises_sqlstate("HT400"):
        await db.fetchval("SELECT hearth.broadcast(NULL)")
