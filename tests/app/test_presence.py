"""Heartbeats through the relay: coalesced per instance, kept across a reconnect, flushed on shutdown,
and a participant that stays away is swept by the database."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.app.conftest import start_instances
from tests.app.harness import Api, Instance, Ws


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def _last_seen(sql: asyncpg.Connection, pids: list[str]) -> list[object]:
    rows = await sql.fetch(
        "SELECT last_seen_at FROM hearth_data.presence WHERE participant_id = ANY($1::uuid[]) "
        "ORDER BY participant_id",
        pids,
    )
    return [r["last_seen_at"] for r in rows]


async def test_heartbeats_are_coalesced_into_one_touch_per_flush(pair: list[Instance], api_a: Api) -> None:
    _, owner = await api_a.identity("owner")
    session = await api_a.session(owner)
    sockets = []
    for n in range(20):
        _, token = await api_a.identity(f"p{n}")
        _, session_token = await api_a.join(session["session_id"], token)
        sockets.append(await Ws.open(pair[0], session_token))
    for ws in sockets:
        await ws.until_type("welcome")

    before = (await api_a.http.get("/metrics")).text
    for _ in range(5):  # 20 clients x 5 pings in about 2 s
        for ws in sockets:
            await ws.send({"type": "ping"})
        for ws in sockets:
            await ws.until_type("pong")
        await asyncio.sleep(0.4)
    await asyncio.sleep(1.2)
    after = (await api_a.http.get("/metrics")).text

    calls = _metric(after, 'hearth_db_call_seconds_count{function="touch"}') - _metric(
        before, 'hearth_db_call_seconds_count{function="touch"}'
    )
    touched = _metric(after, "hearth_heartbeat_batch_size_sum") - _metric(
        before, "hearth_heartbeat_batch_size_sum"
    )
    assert 1 <= calls <= 5, f"{calls} touch calls for 100 pings over ~3 s"
    assert touched >= 20, "every pinging participant was touched"
    for ws in sockets:
        await ws.close()


async def test_reconnect_keeps_presence_and_staying_away_is_swept(
    pair: list[Instance], api_a: Api, sql: asyncpg.Connection
) -> None:
    _, owner = await api_a.identity("owner")
    session = await api_a.session(owner)
    _, token = await api_a.identity("wanderer")
    pid, session_token = await api_a.join(session["session_id"], token)
    ws = await Ws.open(pair[0], session_token)
    await ws.until_type("welcome")
    await ws.close()

    again = await Ws.open(pair[1], session_token)
    welcome = await again.until_type("welcome")
    assert pid in [p["participant_id"] for p in welcome["presence"]]
    await again.close()
    await asyncio.sleep(1.5)  # the closing heartbeat lands

    # Nobody heartbeats for this participant any more: 91 s later the database sweeps it.
    # (The module's database is shared: other tests' leftovers may be swept too.)
    assert await sql.fetchval("SELECT hearth.sweep_presence(NULL, now() + interval '91 seconds')") >= 1
    rows = await sql.fetch("SELECT type, payload FROM hearth.events_since($1, 0)", session["session_id"])
    assert [r["type"] for r in rows] == ["presence.join", "presence.leave"]
    assert '"reason": "timeout"' in rows[1]["payload"]


@pytest.fixture
def lone(app_db: str, log_dir: Path) -> Iterator[Instance]:
    [instance] = start_instances(app_db, log_dir, 1)
    yield instance
    instance.terminate()


async def test_shutdown_flushes_heartbeats_of_its_clients(lone: Instance, sql: asyncpg.Connection) -> None:
    api = Api(lone)
    _, owner = await api.identity("owner")
    session = await api.session(owner)
    pids, sockets = [], []
    for name in ("a", "b"):
        _, token = await api.identity(name)
        pid, session_token = await api.join(session["session_id"], token)
        pids.append(pid)
        sockets.append(await Ws.open(lone, session_token))
    for ws in sockets:
        await ws.until_type("welcome")
    await asyncio.sleep(1.5)  # the connect heartbeat has landed; no frames after it
    before = await _last_seen(sql, pids)
    await asyncio.sleep(0.2)
    await api.close()

    lone.terminate()
    for ws in sockets:
        assert await ws.closed() == 1012
    after = await _last_seen(sql, pids)
    assert all(b > a for a, b in zip(before, after, strict=True)), "shutdown did not touch its participants"


async def test_an_identity_socket_keeps_its_identity_from_cleanup(
    pair: list[Instance], api_a: Api, sql: asyncpg.Connection
) -> None:
    """An anonymous identity waiting in the match queue holds only an identity-token socket."""
    identity_id, token = await api_a.identity("queued")
    await sql.execute(
        "UPDATE hearth_data.identities SET last_active_at = now() - interval '2 hours'"
        " WHERE identity_id = $1",
        identity_id,
    )
    ws = await Ws.open(pair[0], token)
    await ws.until_type("welcome")
    for _ in range(100):  # the next heartbeat flush (every second) marks it active
        if await sql.fetchval(
            "SELECT last_active_at > now() - interval '1 minute' FROM hearth_data.identities"
            " WHERE identity_id = $1",
            identity_id,
        ):
            break
        await asyncio.sleep(0.05)
    await sql.fetchval("SELECT hearth.cleanup_inactive_identities()")
    assert await sql.fetchval("SELECT hearth.identity_state($1)", identity_id) == "idle"
    await ws.close()
