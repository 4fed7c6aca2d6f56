"""bench.primary_limits' one change to the schema: its `quiet` database is the stock one less the NOTIFY
(so the writers' comparison measures the NOTIFY and nothing else), and it stops when emit_event no longer
holds the line it removes."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from bench.load import make_members
from bench.primary_limits import BODY, add_writers, make_quiet, pgbench_script


async def _post_and_listen(url: str) -> tuple[int, int]:
    """(events written, hearth_events notifications received) for one post by bench writer 0."""
    [[member]] = await make_members(url, 1, 1)
    await add_writers(url, [[member]])
    listener = await asyncpg.connect(url)
    received: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("hearth_events", lambda *args: received.put_nowait(args[3]))
    try:
        writer = await asyncpg.connect(url)
        try:
            before = await writer.fetchval("SELECT count(*) FROM hearth_data.events")
            script = pgbench_script(batch=3).read_text().replace(":client_id", "0")
            assert await writer.fetchval(script) == 3
            written = await writer.fetchval("SELECT count(*) FROM hearth_data.events") - before
        finally:
            await writer.close()
        await asyncio.sleep(0.5)
        return written, received.qsize()
    finally:
        await listener.close()


async def test_the_stock_database_rings_for_every_event(db_url: str) -> None:
    written, rung = await _post_and_listen(db_url)
    assert (written, rung) == (3, 3)


async def test_quiet_writes_the_same_events_without_a_notify(db_url: str) -> None:
    await make_quiet(db_url)
    written, rung = await _post_and_listen(db_url)
    assert (written, rung) == (3, 0)
    conn = await asyncpg.connect(db_url)
    try:
        payload = await conn.fetchval(
            "SELECT payload FROM hearth_data.events WHERE type = 'message' LIMIT 1")
    finally:
        await conn.close()
    assert json.loads(payload)["body"] == json.loads(BODY)


async def test_quiet_stops_when_emit_event_has_changed(db_url: str) -> None:
    await make_quiet(db_url)
    with pytest.raises(SystemExit, match="no longer holds the NOTIFY line"):
        await make_quiet(db_url)
