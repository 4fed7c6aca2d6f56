"""livekit_rooms: every match room with what LiveKit's webhooks said of it, and a problem for each unhealthy
one, driven through the SQL the room worker and the webhook route call (the app-level tests drive the same
problems through the LiveKit double)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import pytest

from tests.conftest import raises_sqlstate
from tests.db.helpers import db_now, minutes, seconds
from tests.db.test_matchmaking import Match, claim, end_match, finish_job, livekit_event, new_match


async def rooms(db: asyncpg.Connection, now: datetime) -> dict[str, dict[str, Any]]:
    rows = await db.fetch("SELECT * FROM hearth.livekit_rooms($1)", now)
    return {r["room"]: dict(r) for r in rows}


async def room(db: asyncpg.Connection, m: Match, now: datetime) -> dict[str, Any] | None:
    return (await rooms(db, now)).get(m.room)


async def problem(db: asyncpg.Connection, m: Match, now: datetime) -> str | None:
    found = await room(db, m, now)
    assert found is not None, f"{m.room} not listed"
    value: str | None = found["problem"]
    return value


async def created(db: asyncpg.Connection, admin: asyncpg.Connection, m: Match, at: datetime) -> None:
    """The room worker created the room (and LiveKit said so: room_started)."""
    job_id = await admin.fetchval(
        "SELECT job_id FROM hearth_data.livekit_jobs WHERE session_id = $1 AND kind = 'create_room'",
        m.session_id,
    )
    assert await finish_job(db, job_id, None, at) == "done"
    assert await livekit_event(db, "room_started", m.room, None, at)


async def test_a_healthy_call(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    m = await new_match(db, admin)
    t0 = await db_now(db)
    listed = await room(db, m, t0)
    assert listed is not None
    assert listed == {
        "room": m.room,
        "session_id": m.session_id,
        "match_status": "connecting",
        "created_at": None,  # not created by LiveKit yet
        "expected_participants": 2,
        "participants_in_room": 0,
        "last_webhook_at": None,
        "problem": None,
    }
    await created(db, admin, m, t0 + seconds(1))
    await livekit_event(db, "participant_joined", m.room, m.a, t0 + seconds(2))
    await livekit_event(db, "participant_joined", m.room, m.b, t0 + seconds(3))
    listed = await room(db, m, t0 + seconds(4))
    assert listed is not None
    webhook_at = await admin.fetchval("SELECT max(received_at) FROM hearth_data.livekit_events")
    assert listed | {"last_webhook_at": None} == {
        "room": m.room,
        "session_id": m.session_id,
        "match_status": "in_call",
        "created_at": t0 + seconds(1),
        "expected_participants": 2,
        "participants_in_room": 2,
        "last_webhook_at": None,
        "problem": None,
    }
    assert listed["last_webhook_at"] == webhook_at
    # Both in the room: a long quiet call is no problem.
    assert await problem(db, m, t0 + minutes(60)) is None


async def test_room_not_created_yet(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    m = await new_match(db, admin)
    made = await admin.fetchval(
        "SELECT created_at FROM hearth_data.matches WHERE session_id = $1", m.session_id
    )
    # Asked for a moment ago: not a problem yet; 30 seconds on (no worker took the job), it is.
    assert await problem(db, m, made + seconds(29)) is None
    assert await problem(db, m, made + seconds(31)) == "room not created yet"
    # A first failure says so at once.
    (job,) = await claim(db, made)
    assert await finish_job(db, job["job_id"], "503 unavailable", made) == "retry"
    assert await problem(db, m, made + seconds(1)) == "room not created yet"
    # Given up: the match is rolled back and the room that never was is not listed.
    (job,) = await claim(db, made + minutes(1))
    assert (
        await finish_job(db, job["job_id"], "503 unavailable", made + minutes(1), max_attempts=2) == "failed"
    )
    assert await room(db, m, made + minutes(1)) is None


@pytest.mark.parametrize(("gone", "expected"), [(1, "one side gone"), (2, "both sides gone")])
async def test_a_side_gone(
    db: asyncpg.Connection, admin: asyncpg.Connection, gone: int, expected: str
) -> None:
    m = await new_match(db, admin)
    t0 = await db_now(db)
    await created(db, admin, m, t0)
    await livekit_event(db, "participant_joined", m.room, m.a, t0 + seconds(1))
    await livekit_event(db, "participant_joined", m.room, m.b, t0 + seconds(1))
    for who in [m.a, m.b][:gone]:
        await livekit_event(db, "participant_left", m.room, who, t0 + seconds(5))
    listed = await room(db, m, t0 + seconds(6))
    assert listed is not None
    assert (listed["match_status"], listed["participants_in_room"], listed["problem"]) == (
        "connecting",
        2 - gone,
        expected,
    )


async def test_no_webhook_for_10_minutes(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    # Created, but LiveKit's webhooks never arrive (a wrong URL or key, say).
    silent = await new_match(db, admin)
    t0 = await db_now(db)
    (job,) = await claim(db, t0)
    assert await finish_job(db, job["job_id"], None, t0) == "done"
    assert await problem(db, silent, t0 + minutes(9)) is None
    assert await problem(db, silent, t0 + minutes(11)) == "no webhook for 10 minutes"
    listed = await room(db, silent, t0 + minutes(11))
    assert listed is not None and listed["last_webhook_at"] is None

    # One side came, then nothing more for 10 minutes.
    half = await new_match(db, admin)
    t1 = await db_now(db)
    await created(db, admin, half, t1)
    await livekit_event(db, "participant_joined", half.room, half.a, t1 + seconds(1))
    last = await admin.fetchval(
        "SELECT max(received_at) FROM hearth_data.livekit_events WHERE room = $1", half.room
    )
    assert await problem(db, half, last + minutes(9)) is None
    assert await problem(db, half, last + minutes(10)) == "no webhook for 10 minutes"


async def test_match_over_but_room_still_open(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    m = await new_match(db, admin)
    t0 = await db_now(db)
    await created(db, admin, m, t0)
    await end_match(db, m.session_id, m.a, "end")
    ended = await admin.fetchval(
        "SELECT ended_at FROM hearth_data.matches WHERE session_id = $1", m.session_id
    )
    listed = await room(db, m, ended)
    assert listed is not None
    assert (listed["match_status"], listed["expected_participants"], listed["problem"]) == ("ended", 0, None)
    assert await problem(db, m, ended + seconds(31)) == "match over but room still open"
    (delete,) = await claim(db, ended)
    assert await finish_job(db, delete["job_id"], "500", ended, max_attempts=2) == "retry"
    assert await problem(db, m, ended + seconds(1)) == "match over but room still open"
    (delete,) = await claim(db, ended + minutes(1))
    assert await finish_job(db, delete["job_id"], "500", ended + minutes(1), max_attempts=2) == "failed"
    # Given up (left to the reconciler): still open as far as Hearth knows.
    assert await problem(db, m, ended + minutes(1)) == "match over but room still open"
    # LiveKit closes it after all (the reconciler's delete, or its departure timeout): healthy again.
    await livekit_event(db, "room_finished", m.room, None, ended + minutes(2))
    assert await room(db, m, ended + minutes(2)) is None


async def test_a_deleted_room_is_not_listed(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    m = await new_match(db, admin)
    t0 = await db_now(db)
    await created(db, admin, m, t0)
    await end_match(db, m.session_id, m.a, "skip")
    (delete,) = await claim(db, t0 + seconds(1))
    assert await finish_job(db, delete["job_id"], None, t0 + seconds(1)) == "done"
    assert await room(db, m, t0 + minutes(5)) is None


async def test_open_matches_first_oldest_first(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    first = await new_match(db, admin)
    second = await new_match(db, admin)
    t0 = await db_now(db)
    for m in (first, second):
        await created(db, admin, m, t0)
    await end_match(db, first.session_id, first.a, "end")
    third = await new_match(db, admin)
    assert list(await rooms(db, await db_now(db))) == [second.room, third.room, first.room]


async def test_livekit_rooms_bad_input(db: asyncpg.Connection) -> None:
    for when in ("infinity", "-infinity"):
        async with raises_sqlstate("HT400"):
            await db.fetch("SELECT * FROM hearth.livekit_rooms($1::text::timestamptz)", when)
    async with raises_sqlstate("HT400"):
        await db.fetch("SELECT * FROM hearth.livekit_rooms(NULL)")
