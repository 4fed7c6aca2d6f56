"""The per-socket frame limits are database settings: every instance reads them, and notices a change."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from websockets.exceptions import ConnectionClosed

from tests.app.conftest import start_instances
from tests.app.harness import Api, Instance, Ws


@pytest.fixture(scope="module")
def instance(app_db: str, log_dir: Path) -> Iterator[Instance]:
    [one] = start_instances(app_db, log_dir, 1, {"HEARTH_SETTINGS_REFRESH_S": "0.2"})
    yield one
    one.terminate()


async def _set(sql: asyncpg.Connection, instance: Instance, key: str, value: int) -> None:
    """set_setting, then wait until the instance has read it (it logs every change)."""
    await sql.fetchval("SELECT hearth.set_setting($1, $2)", key, str(value))
    frames, broadcasts = (
        (value, int(await sql.fetchval("SELECT hearth.get_setting('broadcast_rate_limit')")))
        if key == "frame_rate_limit"
        else (int(await sql.fetchval("SELECT hearth.get_setting('frame_rate_limit')")), value)
    )
    line = f"rate limits: {frames:g} frames/s, {broadcasts:g} broadcasts/s per socket"
    deadline = time.monotonic() + 10
    while line not in instance.log():
        assert time.monotonic() < deadline, f"the instance did not pick up {key}={value}"
        await asyncio.sleep(0.05)


async def _flood(instance: Instance, token: str, count: int) -> tuple[int, int | None]:
    """Send `count` pings at once; (pongs received, close code or None when still open)."""
    ws = await Ws.open(instance, token)
    assert (await ws.next())["type"] == "welcome"
    try:
        for _ in range(count):
            await ws.conn.send('{"type":"ping"}')
        await ws.send({"type": "message", "body": {"last": True}})
        await ws.until_type("message", 10)
        code = None
    except (ConnectionClosed, TimeoutError):
        code = await ws.closed()
    await ws.close()
    return len([f for f in ws.frames if f == {"type": "pong"}]), code


async def test_frame_rate_limit_is_read_from_the_database(
    instance: Instance, sql: asyncpg.Connection
) -> None:
    api = Api(instance)
    _, owner = await api.identity()
    session_id = (await api.session(owner))["session_id"]
    _, token = await api.identity()
    _, session_token = await api.join(session_id, token)
    try:
        await _set(sql, instance, "frame_rate_limit", 5)
        pongs, code = await _flood(instance, session_token, 100)
        assert code == 4429
        assert 20 <= pongs < 40  # a burst of 4 x 5, then a trickle
        await _set(sql, instance, "frame_rate_limit", 1000)
        pongs, code = await _flood(instance, session_token, 1000)  # the default (burst 200) would close it
        assert (pongs, code) == (1000, None)
    finally:
        await sql.fetchval("SELECT hearth.set_setting('frame_rate_limit', '50')")
        await api.close()
