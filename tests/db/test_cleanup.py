"""cleanup_inactive_sessions (and its pg_cron procedure) and prune_events."""

from __future__ import annotations

import uuid

import asyncpg

from tests.conftest import raises_sqlstate
from tests.db.helpers import (
    db_now,
    display,
    events,
    leave,
    member,
    minutes,
    notifications,
    post,
    session,
    touch,
)


async def _ended(db: asyncpg.Connection) -> uuid.UUID:
    s, pid, _ = await display(db)
    assert await leave(db, pid)
    return s


async def _remaining(admin: asyncpg.Connection, ids: list[uuid.UUID]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table, column in [
        ("sessions", "session_id"),
        ("participants", "session_id"),
        ("presence", "session_id"),
        ("events", "stream_id"),
    ]:
        counts[table] = await admin.fetchval(
            f"SELECT count(*) FROM hearth_data.{table} WHERE {column} = ANY ($1::uuid[])", ids
        )
    return counts


# --- cleanup_inactive_sessions -------------------------------------------------------------------


async def test_cleanup_deletes_ended_expired_and_inactive_sessions(
    db: asyncpg.Connection, admin: asyncpg.Connection, db_url: str
) -> None:
    t0 = await db_now(db)
    expired = await session(db, idle_timeout=minutes(1))
    await member(db, expired, now=t0)
    assert await db.fetchval("SELECT hearth.expire_sessions($1)", t0 + minutes(2)) == 1
    ended = await _ended(db)
    inactive = await session(db)  # open, idle since t0: due at t0 + 60 min
    pid = await member(db, inactive, now=t0)
    await post(db, pid, {"text": "hello"})
    live = await session(db)
    await member(db, live, now=t0 + minutes(50))
    fresh = await session(db, idle_timeout=minutes(120))  # nobody joined yet, but not idle for long
    doomed = [expired, ended, inactive]
    before = await _remaining(admin, doomed)
    assert before == {"sessions": 3, "participants": 3, "presence": 1, "events": 8}

    async with notifications(db_url, admin) as heard:
        assert (
            await db.fetchval("SELECT hearth.cleanup_inactive_sessions(NULL, 1000, $1)", t0 + minutes(61))
            == 3
        )
        frames = await heard.drain()

    # All gone but the session.expired just emitted: the relay reads it from the table after commit, and
    # prune_events removes it in time.
    assert await _remaining(admin, doomed) == {"sessions": 0, "participants": 0, "presence": 0, "events": 1}
    left = await admin.fetch("SELECT session_id FROM hearth_data.sessions")
    assert {r["session_id"] for r in left} == {live, fresh}
    # Only the session that was still open is told it expired (the others had closed already).
    assert [(f["type"], f["session_id"], f["reason"]) for f in frames] == [
        ("session.expired", str(inactive), "idle")
    ]
    assert frames[0]["seq"] == 3  # after its presence.join and message
    for s in doomed:
        async with raises_sqlstate("HT404"):
            await events(db, s)
    assert await db.fetchval("SELECT hearth.cleanup_inactive_sessions(NULL, 1000, $1)", t0 + minutes(61)) == 0


async def test_cleanup_in_batches_deletes_them_all(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    t0 = await db_now(db)
    ids = [await _ended(db) for _ in range(3)]
    for _ in range(2):
        s = await session(db)
        await member(db, s, now=t0)
        ids.append(s)
    assert await db.fetchval("SELECT hearth.cleanup_inactive_sessions(NULL, 2, $1)", t0 + minutes(61)) == 5
    assert (await _remaining(admin, ids))["sessions"] == 0


async def test_cleanup_batch_size_dividing_the_work_exactly(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    ids = [await _ended(db) for _ in range(4)]
    assert await db.fetchval("SELECT hearth.cleanup_inactive_sessions(p_batch => 2)") == 4
    assert await db.fetchval("SELECT hearth.cleanup_inactive_sessions(p_batch => 1)") == 0
    assert (await _remaining(admin, ids))["sessions"] == 0


async def test_cleanup_with_explicit_max_idle(db: asyncpg.Connection, db_url: str) -> None:
    t0 = await db_now(db)
    s = await session(db)
    await member(db, s, now=t0)
    cleanup = "SELECT hearth.cleanup_inactive_sessions($1, 1000, $2)"
    assert await db.fetchval(cleanup, minutes(30), t0 + minutes(20)) == 0
    assert await db.fetchval(cleanup, None, t0 + minutes(20)) == 0
    async with notifications(db_url, db) as heard:
        assert await db.fetchval(cleanup, minutes(10), t0 + minutes(20)) == 1
        frames = await heard.drain()
    assert [(f["type"], f["reason"]) for f in frames] == [("session.expired", "idle")]


async def test_cleanup_of_a_session_past_its_ttl(db: asyncpg.Connection, db_url: str) -> None:
    s = await session(db, ttl=minutes(5))
    t0 = await db_now(db)
    pid = await member(db, s, now=t0)
    await touch(db, [pid], t0 + minutes(4))
    async with notifications(db_url, db) as heard:
        assert (
            await db.fetchval("SELECT hearth.cleanup_inactive_sessions(NULL, 1000, $1)", t0 + minutes(6)) == 1
        )
        frames = await heard.drain()
    assert [(f["type"], f["session_id"], f["reason"]) for f in frames] == [("session.expired", str(s), "ttl")]


async def test_cleanup_skips_sessions_locked_by_others(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    s = await _ended(db)
    async with admin.transaction():
        await admin.execute("SELECT FROM hearth_data.sessions WHERE session_id = $1 FOR UPDATE", s)
        assert await db.fetchval("SELECT hearth.cleanup_inactive_sessions()") == 0
    assert await db.fetchval("SELECT hearth.cleanup_inactive_sessions()") == 1


async def test_pg_cron_procedure_cleans_up_the_same_way(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    ids = [await _ended(db) for _ in range(5)]
    live = await session(db)
    await member(db, live)
    # The job commits after each batch; it runs at the real time, so only closed sessions qualify.
    await admin.execute("CALL hearth_data.run_cleanup_inactive_sessions(2)")
    assert (await _remaining(admin, ids))["sessions"] == 0
    assert (await _remaining(admin, [live]))["sessions"] == 1


# --- prune_events --------------------------------------------------------------------------------


async def test_prune_events_by_keep(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    s = await session(db)
    t0 = await db_now(db)
    pid = await member(db, s, now=t0)
    # Its presence.join was written two hours ago (age is the time the event was written, not p_now).
    await admin.execute(
        "UPDATE hearth_data.events SET emitted_at = emitted_at - interval '2 hours' WHERE stream_id = $1", s
    )
    await post(db, pid, {"text": "recent"})
    assert await db.fetchval("SELECT hearth.prune_events($1, $2)", minutes(150), t0) == 0
    assert await db.fetchval("SELECT hearth.prune_events($1, $2)", minutes(60), t0) == 1
    found = await events(db, s)
    assert [(e["seq"], e["type"]) for e in found] == [(2, "message")]
    # Sequence numbers keep counting: a pruned number is never handed out again.
    assert await post(db, pid, {"text": "next"}) == 3
    assert await db.fetchval("SELECT hearth.prune_events($1, $2)", minutes(60), t0) == 0


async def test_prune_events_default_retention(db: asyncpg.Connection) -> None:
    s = await session(db)
    t0 = await db_now(db)
    pid = await member(db, s, now=t0)
    await post(db, pid, {"n": 1})
    assert await db.fetchval("SELECT hearth.prune_events()") == 0
    assert await db.fetchval("SELECT hearth.prune_events(NULL, $1)", t0 + minutes(59)) == 0
    assert await db.fetchval("SELECT hearth.prune_events(NULL, $1)", t0 + minutes(70)) == 2
    assert await events(db, s) == []


async def test_prune_events_more_than_one_round(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    s = await session(db)
    await admin.execute(
        """INSERT INTO hearth_data.events (stream_id, seq, scope, type, payload, created_at, emitted_at)
           SELECT $1, n, 'session', 'message', '{}', now() - interval '2 hours', now() - interval '2 hours'
             FROM generate_series(1, 10005) AS n""",
        s,
    )
    assert await db.fetchval("SELECT hearth.prune_events()") == 10005
    assert await admin.fetchval("SELECT count(*) FROM hearth_data.events") == 0


async def test_cleanup_says_pairing_timeout_for_a_waiting_display_as_expiry_does(
    db: asyncpg.Connection, db_url: str
) -> None:
    """The audit's cleanup_reason.py: cleanup said 'ttl' where expire_sessions says 'pairing_timeout'."""
    t0 = await db_now(db)
    reasons = {}
    for call in ("expire_sessions($1)", "cleanup_inactive_sessions(NULL, 1000, $1)"):
        display = await db.fetchrow(
            "SELECT * FROM hearth.register_display(hearth.create_identity(), interval '1 minute')"
        )
        async with notifications(db_url, db) as heard:
            await db.fetchval(f"SELECT hearth.{call}", t0 + minutes(2))
            frames = await heard.drain()
        reasons[call.split("(")[0]] = [
            f["reason"]
            for f in frames
            if f["type"] == "session.expired" and f["session_id"] == str(display["session_id"])
        ]
    assert reasons == {
        "expire_sessions": ["pairing_timeout"],
        "cleanup_inactive_sessions": ["pairing_timeout"],
    }
