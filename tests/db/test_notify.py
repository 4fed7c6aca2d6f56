"""LISTEN hearth_events: every event rings a doorbell that resolves to its client frame."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from tests.db.helpers import (
    db_now,
    display,
    events,
    identity,
    join,
    leave,
    member,
    minutes,
    notifications,
    post,
    seconds,
    session,
    signal,
    touch,
)

FRAME_FIELDS = {"type", "seq", "session_id", "at"}
PAYLOAD_FIELDS = {
    "presence.join": {"participant_id", "identity_id", "role", "display_name"},
    "presence.leave": {"participant_id", "reason"},
    "message": {"participant_id", "body"},
    "signal": {"from", "to", "kind", "data"},
    "session.expired": {"reason"},
    "session.ended": {"reason"},
}


def _expected_frames(session_id: uuid.UUID, stored: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "type": e["type"],
            "seq": e["seq"],
            "session_id": str(session_id),
            "at": e["created_at"],
            **e["payload"],
        }
        for e in stored
    ]


def _parse_at(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**f, "at": datetime.fromisoformat(f["at"])} for f in frames]


async def test_listener_receives_every_event_type(db: asyncpg.Connection, db_url: str) -> None:
    async with notifications(db_url, db) as heard:
        room = await session(db)
        t0 = await db_now(db)
        alice = await join(db, room, await identity(db, "alice"), "host", t0)
        bob = await join(db, room, await identity(db, "bob"), now=t0)
        await post(db, alice, {"text": "hi"})
        await signal(db, alice, bob, "offer", {"type": "offer", "sdp": "v=0"})
        assert await leave(db, bob, now=t0 + seconds(1))
        pairing, display_pid, _ = await display(db)
        assert await leave(db, display_pid)
        assert await db.fetchval("SELECT hearth.expire_sessions($1)", t0 + minutes(61)) == 1
        frames = _parse_at(await heard.drain())

    assert {f["type"] for f in frames} == set(PAYLOAD_FIELDS)
    for frame in frames:
        assert set(frame) == FRAME_FIELDS | PAYLOAD_FIELDS[frame["type"]], frame
    # Each frame is its stored event, in commit order, with the stream's sequence number.
    room_frames = [f for f in frames if f["session_id"] == str(room)]
    pairing_frames = [f for f in frames if f["session_id"] == str(pairing)]
    assert len(room_frames) + len(pairing_frames) == len(frames)
    assert room_frames == _expected_frames(room, await events(db, room))
    assert pairing_frames == _expected_frames(pairing, await events(db, pairing))
    assert [(f["type"], f["seq"]) for f in room_frames] == [
        ("presence.join", 1),
        ("presence.join", 2),
        ("message", 3),
        ("signal", 4),
        ("presence.leave", 5),
        ("presence.leave", 6),
        ("session.expired", 7),
    ]
    assert room_frames[-1]["reason"] == "idle"
    assert room_frames[-2]["reason"] == "expired"
    assert [f["type"] for f in pairing_frames] == ["presence.join", "presence.leave", "session.ended"]


async def test_a_notification_is_a_doorbell_whatever_the_event_size(
    db: asyncpg.Connection, db_url: str
) -> None:
    s = await session(db)
    a, b = await member(db, s), await member(db, s)
    data = {"type": "offer", "sdp": "v=0\r\n" + "a=candidate:x\r\n" * 1500}  # about 22 KB
    async with notifications(db_url, db) as heard:
        seq = await signal(db, a, b, "offer", data)
        small = await post(db, a, {"text": "é" * 1000})
        big = await post(db, a, {"text": "€" * 3000})  # 9,000 bytes
        frames = await heard.drain()
    # The channel carries no frame: only '<stream id> <seq>', which the relay resolves in the table.
    assert heard.doorbells == [f"{s} {seq}", f"{s} {small}", f"{s} {big}"]
    assert frames[0] == {
        "type": "signal",
        "seq": seq,
        "session_id": str(s),
        "at": frames[0]["at"],
        "from": str(a),
        "to": str(b),
        "kind": "offer",
        "data": data,
    }
    assert frames[2]["body"] == {"text": "€" * 3000}


async def test_event_frames_reads_many_streams_in_one_call(db: asyncpg.Connection) -> None:
    rooms = [await session(db) for _ in range(3)]
    pids = [await member(db, room) for room in rooms]
    for pid in pids:
        for n in range(3):
            await post(db, pid, {"n": n})  # seqs 2, 3, 4 after the join
    me = await identity(db)
    rows = await db.fetch(
        "SELECT * FROM hearth.event_frames($1::uuid[], $2::bigint[], 2)",
        [rooms[2], rooms[0], uuid.uuid4(), me],
        [3, 0, 0, 0],
    )
    # In the order asked, at most p_limit per stream; unknown or empty streams yield nothing.
    assert [(r["stream_id"], r["seq"]) for r in rows] == [(rooms[2], 4), (rooms[0], 1), (rooms[0], 2)]
    assert [json.loads(r["frame"])["seq"] for r in rows] == [4, 1, 2]
    assert {r["identity"] for r in rows} == {False}
    # A doorbell beyond the head (forged, say) names no row.
    beyond = "SELECT * FROM hearth.event_frames(ARRAY[$1::uuid], ARRAY[4::bigint])"
    assert await db.fetch(beyond, rooms[1]) == []


async def test_heartbeats_never_notify(db: asyncpg.Connection, db_url: str) -> None:
    s = await session(db)
    t0 = await db_now(db)
    pids = [await member(db, s, now=t0) for _ in range(3)]
    async with notifications(db_url, db) as heard:
        for i in range(1, 10):
            # Every 30 s, so the session's activity time is written too (about once a minute).
            assert await touch(db, pids, t0 + seconds(30 * i)) == 3
        assert await heard.drain() == []
