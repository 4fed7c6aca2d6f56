"""app.rooms in-process, with a fake database and events table: a room is read once for all its holders,
its presence list encoded once per state and rebuilt when the stream changes it, a due check is shared
by the connects of a period, and the room goes when its last holder does."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from app.events import Event
from app.hub import Hub
from app.metrics import Metrics
from app.rooms import Rooms
from tests.app.harness import Api, Instance, Ws

S = uuid.UUID("aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa")
ANN = "11111111-1111-4111-8111-111111111111"
BOB = "22222222-2222-4222-8222-222222222222"
EVE = "33333333-3333-4333-8333-333333333333"


def _participant(pid: str, joined_at: str) -> dict[str, Any]:
    return {
        "participant_id": pid,
        "identity_id": pid,
        "role": "member",
        "display_name": None,
        "joined_at": joined_at,
    }


class FakeDb:
    """session_state and check_session_expiry as the database answers them; counts the calls."""

    def __init__(self) -> None:
        self.participants = [_participant(ANN, "2026-12-01T10:00:00+00:00")]
        self.seq = 1
        self.due = False
        self.calls: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def session_state(self, session_id: uuid.UUID) -> dict[str, Any]:
        self.calls.append("session_state")
        await self.gate.wait()
        return {"expired": False, "seq": self.seq, "participants": list(self.participants)}

    async def check_session_expiry(self, session_id: uuid.UUID, at: dt.datetime) -> bool:
        self.calls.append("check_session_expiry")
        await self.gate.wait()
        return self.due


class Table:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def append(self, kind: str, frame: dict[str, Any]) -> Event:
        event = Event(str(S), len(self.events) + 2, kind, None, json.dumps({"type": kind, **frame}))
        self.events.append(event)
        return event

    async def fetch(self, streams: list[str], after: list[int]) -> list[Event]:
        await asyncio.sleep(0)
        return [
            e
            for s, a in zip(streams, after, strict=True)
            for e in self.events
            if e.stream_id == s and e.seq > a
        ]


@pytest.fixture
async def rooms() -> AsyncIterator[tuple[Rooms, FakeDb, Table, Hub]]:
    table, db = Table(), FakeDb()
    hub = Hub(table.fetch, Metrics())
    task = asyncio.create_task(hub.run())
    yield Rooms(hub, db), db, table, hub  # type: ignore[arg-type]
    task.cancel()
    await hub.stop()


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_room_is_read_once_and_its_list_encoded_once(rooms: tuple[Rooms, FakeDb, Table, Hub]) -> None:
    cache, db, _, _ = rooms
    db.gate.clear()
    first, second = cache.hold(S), cache.hold(S)
    entering = [asyncio.ensure_future(first.__aenter__()), asyncio.ensure_future(second.__aenter__())]
    await _settle()
    db.gate.set()
    a, b = await asyncio.gather(*entering)
    assert a is b and db.calls == ["session_state"]  # both connects waited for one read
    assert a.seq == 1 and a.present(ANN) and not a.present(BOB)
    assert a.presence() is a.presence()  # built once per state, shared by every welcome
    assert json.loads(a.presence()) == db.participants
    await first.__aexit__(None, None, None)
    await second.__aexit__(None, None, None)


async def test_presence_follows_the_stream_in_order(rooms: tuple[Rooms, FakeDb, Table, Hub]) -> None:
    cache, _, table, hub = rooms
    async with cache.hold(S) as room:
        before = room.presence()
        table.append("message", {"body": {}})
        join = {"participant_id": BOB, "identity_id": BOB, "role": "member", "display_name": "Bob"}
        table.append("presence.join", {**join, "at": "2026-12-01T10:00:01.5+00:00"})
        hub.notify(f"{S} 3")
        await _settle()
        assert room.seq == 3 and room.present(BOB)
        after_join = room.presence()
        assert after_join is not before  # rebuilt for the new state
        assert [p["participant_id"] for p in json.loads(after_join)] == [ANN, BOB]
        assert json.loads(after_join)[1]["joined_at"] == "2026-12-01T10:00:01.5+00:00"
        # A join stamped earlier than the last one (clock skew between instances) keeps the order.
        table.append("presence.join", {**join, "participant_id": EVE, "at": "2026-12-01T09:00:00+00:00"})
        table.append("presence.leave", {"participant_id": ANN, "reason": "left"})
        hub.notify(f"{S} 5")
        await _settle()
        assert [p["participant_id"] for p in json.loads(room.presence())] == [EVE, BOB]
        assert await cache.not_due(room)
        table.append("session.ended", {})
        hub.notify(f"{S} 6")
        await _settle()
        assert room.expired and not await cache.not_due(room)


async def test_a_due_check_is_shared_and_kept_for_a_period(rooms: tuple[Rooms, FakeDb, Table, Hub]) -> None:
    cache, db, _, _ = rooms
    async with cache.hold(S) as room:
        db.gate.clear()
        checks = [asyncio.ensure_future(cache.not_due(room)) for _ in range(10)]
        await _settle()
        db.gate.set()
        assert await asyncio.gather(*checks) == [True] * 10
        assert await cache.not_due(room)
        assert db.calls.count("check_session_expiry") == 1
        room.not_due_until = 0.0  # the period ran out; the session became due meanwhile
        db.due = True
        assert not await cache.not_due(room)
        assert not await cache.not_due(room)  # still in doubt: asked again
        assert db.calls.count("check_session_expiry") == 3


async def test_the_room_goes_with_its_last_holder(rooms: tuple[Rooms, FakeDb, Table, Hub]) -> None:
    cache, db, _, hub = rooms
    async with cache.hold(S):
        async with cache.hold(S):
            pass
        assert len(hub.subscribers(str(S))) == 1
    assert hub.subscribers(str(S)) == set()
    async with cache.hold(S):
        assert db.calls == ["session_state", "session_state"]  # read again for the next socket


async def test_a_room_that_gave_up_is_replaced_for_the_next_sockets(
    rooms: tuple[Rooms, FakeDb, Table, Hub],
) -> None:
    cache, db, _, hub = rooms
    async with cache.hold(S) as old:
        assert old.sub is not None
        old.sub.close(1011, "could not catch up")  # what a failed catch-up does
        assert not old.live
        async with cache.hold(S) as new:
            assert new is not old and new.live and db.calls == ["session_state", "session_state"]
        async with cache.hold(S) as again:
            assert again is not new  # the new one went with its last holder
    assert hub.subscribers(str(S)) == set()


async def test_a_failed_read_reaches_every_waiting_holder_and_is_not_kept(
    rooms: tuple[Rooms, FakeDb, Table, Hub],
) -> None:
    cache, db, _, _ = rooms
    db.gate.clear()
    entering = [asyncio.ensure_future(cache.hold(S).__aenter__()) for _ in range(2)]
    await _settle()
    db.participants = None  # type: ignore[assignment]
    db.gate.set()
    results = await asyncio.gather(*entering, return_exceptions=True)
    assert all(isinstance(r, TypeError) for r in results)
    db.participants = [_participant(ANN, "2026-12-01T10:00:00+00:00")]
    async with cache.hold(S) as room:
        assert room.present(ANN)


@pytest.mark.usefixtures("no_server_tracebacks")
async def test_a_welcome_from_the_room_is_the_databases_snapshot(
    pair: list[Instance], api_a: Api, sql: asyncpg.Connection
) -> None:
    """Joins relayed into an instance's room give the welcome the database would: same entries, same
    order, same text of every field."""
    _, owner = await api_a.identity("owner")
    session_id = (await api_a.session(owner))["session_id"]
    _, ann_identity = await api_a.identity("ann")
    _, ann = await api_a.join(session_id, ann_identity)
    first = await Ws.open(pair[1], ann)  # loads the room on instance B
    assert (await first.next())["type"] == "welcome"
    tokens = []
    for name in ("bob", None, "cy"):
        _, identity = await api_a.identity(name)
        tokens.append((await api_a.join(session_id, identity))[1])  # joined on A, relayed to B's room
    await first.until(lambda f: f.get("type") == "presence.join" and f["seq"] == 4)
    last = await Ws.open(pair[1], tokens[-1])
    welcome = await last.next()
    state = json.loads(await sql.fetchval("SELECT hearth.session_state($1)::text", uuid.UUID(session_id)))
    assert welcome["seq"] == state["seq"] == 4
    keys = ("participant_id", "identity_id", "role", "display_name", "joined_at")
    assert welcome["presence"] == [{k: p[k] for k in keys} for p in state["participants"]]
    assert len(welcome["presence"]) == 4
    await first.close()
    await last.close()
