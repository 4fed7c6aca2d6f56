"""The relay when things break: expiry by a DBA, the listener killed, PostgreSQL restarted, clients
reconnecting with `after`, an instance stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.app.conftest import start_instances
from tests.app.harness import Api, Instance, Ws
from tests.pg import PgServer


async def _room(api: Api, *names: str) -> tuple[str, list[tuple[str, str]]]:
    """A room with one joined participant per name: (session_id, [(participant_id, session_token)])."""
    _, owner_token = await api.identity("owner")
    session = await api.session(owner_token)
    joined = []
    for name in names:
        _, token = await api.identity(name)
        joined.append(await api.join(session["session_id"], token))
    return session["session_id"], joined


async def _message_seqs(sql: asyncpg.Connection, session_id: str) -> list[int]:
    rows = await sql.fetch(
        "SELECT seq FROM hearth.events_since($1, 0, 10000) WHERE type = 'message'", session_id
    )
    return [r["seq"] for r in rows]


async def _post(sql: asyncpg.Connection, pid: str, n: int) -> None:
    await sql.fetchval("SELECT hearth.post_message($1, $2::jsonb)", pid, json.dumps({"n": n}))


async def _produce(url: str, pid: str, count: int, stop_on: asyncio.Event | None = None) -> int:
    """Post `count` messages, retrying through outages; returns how many attempts failed."""
    failures = 0
    conn: asyncpg.Connection | None = None
    n = 0
    while n < count:
        try:
            if conn is None or conn.is_closed():
                conn = await asyncpg.connect(url, timeout=2)
            await _post(conn, pid, n)
            n += 1
            await asyncio.sleep(0.005)
        except (
            OSError,
            TimeoutError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
        ):
            # The connection broke mid-call: the message may or may not have committed. The checks
            # compare clients with the table, not with this loop.
            failures += 1
            conn = None
            await asyncio.sleep(0.1)
    if conn is not None:
        await conn.close()
    return failures


async def _wait_for_messages(ws: Ws, count: int, timeout: float = 30.0) -> None:
    await ws.until(lambda f: len(ws.events("message")) >= count, timeout)


async def _until_listening(instance: Instance, reconnects: int, timeout: float = 30.0) -> None:
    """Wait until the instance's listener is up after exactly `reconnects` reconnections."""
    wanted = {"hearth_listener_up": 1.0, "hearth_listener_reconnects_total": float(reconnects)}
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient(base_url=instance.base_url, timeout=5) as http:
        while True:
            text = (await http.get("/metrics")).text
            seen = {name: _metric(text, name) for name in wanted}
            if seen == wanted:
                return
            assert asyncio.get_running_loop().time() < deadline, f"{instance.name}: {seen}, wanted {wanted}"
            await asyncio.sleep(0.02)


async def _reconnects(instance: Instance) -> int:
    """The instance's listener reconnections so far (the instances serve the whole module)."""
    async with httpx.AsyncClient(base_url=instance.base_url, timeout=5) as http:
        count = _metric((await http.get("/metrics")).text, "hearth_listener_reconnects_total")
    assert count is not None
    return int(count)


def _metric(text: str, name: str) -> float | None:
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


def _assert_exactly_once_in_order(ws: Ws, expected: list[int]) -> None:
    seqs = [e["seq"] for e in ws.events()]
    assert seqs == sorted(set(seqs)), "events repeated or out of order"
    assert [e["seq"] for e in ws.events("message")] == expected


async def test_dba_expiry_closes_sockets_on_both_instances(
    pair: list[Instance], api_a: Api, sql: asyncpg.Connection
) -> None:
    _, [(_, token_a), (_, token_b)] = await _room(api_a, "a", "b")
    ws_a = await Ws.open(pair[0], token_a)
    ws_b = await Ws.open(pair[1], token_b)
    await ws_a.until_type("welcome")
    await ws_b.until_type("welcome")

    assert await sql.fetchval("SELECT hearth.expire_sessions(now() + interval '2 hours')") >= 1

    for ws in (ws_a, ws_b):
        assert await ws.closed() == 4410
        kinds = [f["type"] for f in ws.frames]
        assert kinds[-1] == "session.expired", kinds
        assert ws.frames[-1]["reason"] == "idle"
    # The expired session cannot be re-entered.
    again = await Ws.open(pair[0], token_a)
    assert await again.closed() == 4410


async def test_listener_killed_while_messages_flow(
    pair: list[Instance], api_a: Api, sql: asyncpg.Connection, app_db: str
) -> None:
    session_id, [(pid_a, token_a), (_, token_b)] = await _room(api_a, "a", "b")
    ws_a = await Ws.open(pair[0], token_a)
    ws_b = await Ws.open(pair[1], token_b)
    await ws_a.until_type("welcome")
    await ws_b.until_type("welcome")

    before = [await _reconnects(instance) for instance in pair]
    producer = asyncio.create_task(_produce(app_db, pid_a, 300))
    for kills in range(3):
        # Both listeners are back (they reconnect with backoff) and listening: as the instances see it.
        for instance, base in zip(pair, before, strict=True):
            await _until_listening(instance, reconnects=base + kills)
        await asyncio.sleep(0.1)
        # pg_terminate_backend(pid) only signals: the backend stays in pg_stat_activity until it has
        # exited. With a timeout it waits for the exit, so the next round never counts a dying listener.
        killed = await sql.fetchval(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) FROM pg_stat_activity "
            "WHERE application_name LIKE 'hearth-listener%' AND datname = current_database()"
        )
        assert killed == 2
    await producer
    expected = await _message_seqs(sql, session_id)
    assert len(expected) == 300
    for ws in (ws_a, ws_b):
        await _wait_for_messages(ws, 300)
        _assert_exactly_once_in_order(ws, expected)
    for instance, base in zip(pair, before, strict=True):
        await _until_listening(instance, reconnects=base + 3)
        ready = await Api(instance).http.get("/readyz")
        assert ready.status_code == 200


async def test_reconnect_with_after_gets_exactly_what_was_missed(
    pair: list[Instance], api_a: Api, sql: asyncpg.Connection
) -> None:
    session_id, [(pid_a, _), (pid_b, token_b)] = await _room(api_a, "a", "b")
    ws = await Ws.open(pair[0], token_b)
    welcome = await ws.until_type("welcome")
    for n in range(5):
        await _post(sql, pid_a, n)
    await _wait_for_messages(ws, 5)
    last = ws.events()[-1]["seq"]
    await ws.close()

    for n in range(5, 12):
        await _post(sql, pid_a, n)
    again = await Ws.open(pair[1], token_b, after=last)
    welcome = await again.next()
    assert welcome["type"] == "welcome" and welcome["participant_id"] == pid_b
    await _wait_for_messages(again, 7)
    await _post(sql, pid_a, 12)
    await _wait_for_messages(again, 8)
    expected = await _message_seqs(sql, session_id)
    _assert_exactly_once_in_order(again, [s for s in expected if s > last])
    assert [e["body"]["n"] for e in again.events("message")] == list(range(5, 13))
    # Same participant, present all along: no leave/join pair for the reconnect.
    rows = await sql.fetch("SELECT type, payload FROM hearth.events_since($1, 0)", session_id)
    assert [r["type"] for r in rows if r["type"].startswith("presence.")] == [
        "presence.join",
        "presence.join",
    ]
    assert pid_b in {json.loads(r["payload"])["participant_id"] for r in rows if r["type"] == "presence.join"}
    await again.close()


@pytest.fixture
def own_pair(app_db: str, log_dir: Path) -> Iterator[list[Instance]]:
    instances = start_instances(app_db, log_dir, 2)
    yield instances
    for instance in instances:
        instance.terminate()


async def test_sigterm_closes_with_1012_and_clients_move_without_loss(
    own_pair: list[Instance], sql: asyncpg.Connection
) -> None:
    doomed, survivor = own_pair
    api = Api(survivor)
    session_id, joined = await _room(api, "a", "b", "c")
    sockets = [await Ws.open(doomed, token) for _, token in joined]
    for ws in sockets:
        await ws.until_type("welcome")
    for n in range(3):
        await _post(sql, joined[0][0], n)
    for ws in sockets:
        await _wait_for_messages(ws, 3)

    # uvicorn re-raises SIGTERM after a graceful shutdown, so the exit status is -15.
    assert doomed.terminate() in (0, -15)
    assert "Application shutdown complete" in doomed.log()
    last_seen = []
    for ws in sockets:
        assert await ws.closed() == 1012
        last_seen.append(ws.events()[-1]["seq"])

    for n in range(3, 6):  # posted while nobody is connected
        await _post(sql, joined[0][0], n)
    moved = [
        await Ws.open(survivor, token, after=seq) for (_, token), seq in zip(joined, last_seen, strict=True)
    ]
    for ws in moved:
        await _wait_for_messages(ws, 3)
        assert [e["body"]["n"] for e in ws.events("message")] == [3, 4, 5]
    # Nobody left: the shutdown flushed their heartbeats and the sweeper finds them present.
    assert await sql.fetchval("SELECT hearth.sweep_presence()") == 0
    rows = await sql.fetch("SELECT type FROM hearth.events_since($1, 0)", session_id)
    assert "presence.leave" not in [r["type"] for r in rows]
    await api.close()


async def test_postgres_restart_while_messages_flow(
    pg: PgServer, pair: list[Instance], api_a: Api, app_db: str
) -> None:
    if pg.cluster is None:
        pytest.skip("restarting PostgreSQL needs the throwaway cluster (not TEST_DATABASE_URL)")
    session_id, [(pid_a, token_a), (_, token_b)] = await _room(api_a, "a", "b")
    ws_a = await Ws.open(pair[0], token_a)
    ws_b = await Ws.open(pair[1], token_b)
    await ws_a.until_type("welcome")
    await ws_b.until_type("welcome")

    producer = asyncio.create_task(_produce(app_db, pid_a, 200))
    await asyncio.sleep(0.3)
    await asyncio.to_thread(pg.cluster.stop)
    for instance in pair:  # /readyz tells the outage while it lasts
        status = 200
        for _ in range(100):
            status = (await Api(instance).http.get("/readyz")).status_code
            if status == 503:
                break
            await asyncio.sleep(0.05)
        assert status == 503
    await asyncio.to_thread(pg.cluster.start)
    failures = await producer
    assert failures > 0, "the restart happened after the producer finished: nothing was tested"

    sql = await asyncpg.connect(app_db)
    expected = await _message_seqs(sql, session_id)
    await sql.close()
    assert len(expected) >= 200
    for ws in (ws_a, ws_b):
        await _wait_for_messages(ws, len(expected), timeout=40)
        _assert_exactly_once_in_order(ws, expected)
    for instance in pair:
        for _ in range(50):
            if (await Api(instance).http.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.2)
        assert (await Api(instance).http.get("/readyz")).status_code == 200
