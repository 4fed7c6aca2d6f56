"""Broadcast frames across two instances (SPEC section 6): to the session's other participants, in
each sender's order, never stored; limited per socket; nothing but Hearth can put one on the channel."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import asyncpg
import httpx
import pytest

from tests.app.harness import Api, Instance, Ws
from tests.app.test_forged_events import _login

pytestmark = pytest.mark.usefixtures("no_server_tracebacks")

# Each instance listens twice: hearth_events (hearth-listener ...), hearth_broadcast (hearth-broadcast-...).
LISTENERS = (
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE application_name ~ '^hearth-(broadcast-)?listener ' AND datname = current_database()"
)


async def _room(api: Api, *names: str) -> tuple[str, list[tuple[str, str]]]:
    """A room with one joined member per name: (session_id, [(participant_id, session token)])."""
    _, owner_token = await api.identity("owner")
    session_id = (await api.session(owner_token))["session_id"]
    members = []
    for name in names:
        _, token = await api.identity(name)
        members.append(await api.join(session_id, token))
    return session_id, members


async def _open(instance: Instance, token: str) -> Ws:
    ws = await Ws.open(instance, token)
    assert (await ws.next())["type"] == "welcome"
    return ws


def _broadcasts(ws: Ws) -> list[dict[str, Any]]:
    return [f for f in ws.frames if f["type"] == "broadcast"]


async def _until_broadcasts(ws: Ws, count: int, timeout: float = 10) -> list[dict[str, Any]]:
    await ws.until(lambda _f: len(_broadcasts(ws)) >= count, timeout)
    return _broadcasts(ws)


async def _metric(instance: Instance, name: str) -> float:
    async with httpx.AsyncClient(base_url=instance.base_url, timeout=10) as http:
        text = (await http.get("/metrics")).text
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def test_delivered_to_the_others_on_both_instances_in_order_and_never_stored(
    pair: list[Instance], api_a: Api, sql: asyncpg.Connection
) -> None:
    session_id, [(ann_pid, ann), (bob_pid, bob), (_, cat)] = await _room(api_a, "ann", "bob", "cat")
    ws_ann, ws_bob, ws_cat = await _open(pair[0], ann), await _open(pair[1], bob), await _open(pair[0], cat)
    events_before = await sql.fetchval("SELECT count(*) FROM hearth_data.events")
    for n in range(60):
        await ws_ann.send({"type": "broadcast", "body": {"n": n, "who": "ann"}})
        await ws_bob.send({"type": "broadcast", "body": {"n": n, "who": "bob"}})

    got_cat = await _until_broadcasts(ws_cat, 120)  # same instance as ann, other instance from bob
    got_bob = await _until_broadcasts(ws_bob, 60)
    got_ann = await _until_broadcasts(ws_ann, 60)
    expected = ((got_cat, "ann", ann_pid), (got_cat, "bob", bob_pid), (got_bob, "ann", ann_pid))
    for frames, sender, pid in expected:
        mine = [f for f in frames if f["body"]["who"] == sender]
        assert [f["body"]["n"] for f in mine] == list(range(60)), f"{sender}'s order"
        assert all(f["from"] == pid and f["session_id"] == session_id for f in mine)
    assert {f["body"]["who"] for f in got_bob} == {"ann"}, "a sender gets none of its own"
    assert {f["body"]["who"] for f in got_ann} == {"bob"}
    frame = got_bob[0]
    assert set(frame) == {"type", "session_id", "from", "at", "body"}  # no seq
    assert frame["at"].endswith("+00:00")
    # Not a row, not a replayed event, and no durable event came of them.
    assert await sql.fetchval("SELECT count(*) FROM hearth_data.events") == events_before
    types = await sql.fetch("SELECT type FROM hearth.events_since($1, 0, 10000)", session_id)
    assert "broadcast" not in {r["type"] for r in types}
    again = await Ws.open(pair[1], bob, after=0)
    await again.next()
    await again.send({"type": "ping"})
    await again.until_type("pong")
    assert _broadcasts(again) == []
    for ws in (ws_ann, ws_bob, ws_cat, again):
        await ws.close()


async def test_an_oversize_body_is_refused_and_the_socket_stays(pair: list[Instance], api_a: Api) -> None:
    _, [(_, ann), (_, bob)] = await _room(api_a, "ann", "bob")
    ws_ann, ws_bob = await _open(pair[0], ann), await _open(pair[1], bob)
    fits = {"pad": "x" * (4096 - len('{"pad":""}'))}
    await ws_ann.send({"type": "broadcast", "body": {"pad": "x" * 4096}})
    error = await ws_ann.until_type("error")
    assert error["code"] == "HT400" and "4096" in error["message"]
    await ws_ann.send({"type": "broadcast", "body": fits})
    assert (await _until_broadcasts(ws_bob, 1))[0]["body"] == fits
    for bad in ({"type": "broadcast", "body": [1]}, {"type": "broadcast", "body": {}, "ref": "r"}):
        await ws_ann.send(bad)
        assert (await ws_ann.until_type("error"))["code"] == "HT400"
    await ws_ann.send({"type": "ping"})
    await ws_ann.until_type("pong")
    assert len(_broadcasts(ws_bob)) == 1
    await ws_ann.close()
    await ws_bob.close()


async def test_past_the_rate_limit_broadcasts_are_dropped_with_an_error(
    pair: list[Instance], api_a: Api
) -> None:
    _, [(_, ann), (_, bob)] = await _room(api_a, "ann", "bob")
    ws_ann, ws_bob = await _open(pair[0], ann), await _open(pair[1], bob)
    sent = 400  # the default broadcast_rate_limit is 120/s with bursts of 240
    for n in range(sent):
        await ws_ann.conn.send(json.dumps({"type": "broadcast", "body": {"n": n}}))
    await ws_ann.send({"type": "ping"})
    await ws_ann.until_type("pong", 10)  # still open
    errors = [f for f in ws_ann.frames if f["type"] == "error"]
    assert errors and all(e["code"] == "HT429" for e in errors)
    assert 240 <= sent - len(errors) <= 340  # the burst, and what refilled while the server read
    got = await _until_broadcasts(ws_bob, sent - len(errors))
    assert [f["body"]["n"] for f in got] == sorted(f["body"]["n"] for f in got)
    assert await _metric(pair[0], 'hearth_broadcasts_dropped_total{reason="rate"}') >= len(errors)
    await ws_ann.close()
    await ws_bob.close()


async def test_an_identity_token_cannot_broadcast(pair: list[Instance], api_a: Api) -> None:
    _, token = await api_a.identity("solo")
    ws = await _open(pair[0], token)
    await ws.send({"type": "broadcast", "body": {"x": 1}})
    assert (await ws.until_type("error"))["code"] == "HT403"
    await ws.close()


async def test_broadcasts_flow_again_after_the_listeners_reconnect(
    pair: list[Instance], api_a: Api, sql: asyncpg.Connection
) -> None:
    _, [(_, ann), (_, bob)] = await _room(api_a, "ann", "bob")
    ws_ann, ws_bob = await _open(pair[0], ann), await _open(pair[1], bob)
    await ws_ann.send({"type": "broadcast", "body": {"n": "before"}})
    await _until_broadcasts(ws_bob, 1)
    killed = await sql.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name ~ '^hearth-(broadcast-)?listener ' AND datname = current_database()"
    )
    assert killed == 4
    for _ in range(500):
        if await sql.fetchval(LISTENERS) == 4:
            break
        await asyncio.sleep(0.02)
    # Once both listen again, later broadcasts flow (those sent meanwhile may be lost).
    for n in range(100):
        await ws_ann.send({"type": "broadcast", "body": {"n": n}})
        try:
            await ws_bob.until(lambda _f: len(_broadcasts(ws_bob)) > 1, 0.1)
            break
        except TimeoutError:
            pass
    marks = [f["body"]["n"] for f in _broadcasts(ws_bob)]
    assert marks[0] == "before" and len(marks) > 1
    await ws_ann.send({"type": "broadcast", "body": {"n": "after"}})
    assert (await _until_broadcasts(ws_bob, len(marks) + 1))[-1]["body"]["n"] == "after"
    await ws_ann.close()
    await ws_bob.close()


async def test_a_forged_notify_on_the_broadcast_channel_reaches_no_client(
    pair: list[Instance], api_a: Api, sql: asyncpg.Connection, app_db: str
) -> None:
    session_id, [(ann_pid, ann), (_, bob)] = await _room(api_a, "ann", "bob")
    ws_ann, ws_bob = await _open(pair[0], ann), await _open(pair[1], bob)
    # A real payload, captured by a login that holds hearth_app's grants (LISTEN needs none), which then
    # forges: it may call hearth.broadcast, as the app does, but it has no MAC key.
    async with _login(sql, app_db, "hearth_app") as forger_url:
        await _forge(pair, session_id, ann_pid, ws_ann, ws_bob, forger_url)
    await ws_ann.close()
    await ws_bob.close()


async def _forge(
    pair: list[Instance], session_id: str, ann_pid: str, ws_ann: Ws, ws_bob: Ws, forger_url: str
) -> None:
    spy = await asyncpg.connect(forger_url)
    captured: asyncio.Queue[str] = asyncio.Queue()
    await spy.add_listener("hearth_broadcast", lambda *args: captured.put_nowait(args[3]))
    await ws_ann.send({"type": "broadcast", "body": {"n": "real"}})
    real = await asyncio.wait_for(captured.get(), 5)
    await _until_broadcasts(ws_bob, 1)
    before = {
        reason: await _metric(pair[1], f'hearth_broadcast_rejected_total{{reason="{reason}"}}')
        for reason in ("mac", "malformed", "replay")
    }

    line = f"{session_id} {ann_pid} " + json.dumps(
        {"type": "broadcast", "session_id": session_id, "from": ann_pid, "at": "x", "body": {"n": "forged"}}
    )
    header, _, _ = real.partition("\n")
    forged_mac = header[:3] + "A" * 22 + header[25:]  # the real header, another MAC
    tampered = real.replace('"real"', '"forged"')  # the real MAC, another body
    forgeries = ["forged", f"{forged_mac}\n{line}", tampered]
    for payload in forgeries:
        await spy.execute("SELECT pg_notify('hearth_broadcast', $1)", payload)
    await spy.fetchval("SELECT hearth.broadcast($1)", [f"{forged_mac}\n{line}"])
    await spy.execute("SELECT pg_notify('hearth_broadcast', $1)", real)  # a replay of the real one
    await spy.close()

    await asyncio.sleep(0.2)  # the forgeries reach the instances before the marker
    await ws_ann.send({"type": "broadcast", "body": {"n": "marker"}})
    await _until_broadcasts(ws_bob, 2)
    assert [f["body"]["n"] for f in _broadcasts(ws_bob)] == ["real", "marker"]
    after = {
        reason: await _metric(pair[1], f'hearth_broadcast_rejected_total{{reason="{reason}"}}')
        for reason in ("mac", "malformed", "replay")
    }
    assert after["malformed"] - before["malformed"] == 1
    assert after["mac"] - before["mac"] == 3
    assert after["replay"] - before["replay"] == 1
