"""touch (batched heartbeats, HOT updates) and sweep_presence."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from tests.db.helpers import (
    db_now,
    events,
    join,
    last_seq,
    leave,
    member,
    minutes,
    paired,
    seconds,
    session,
    session_for_two,
    session_row,
    touch,
)

# --- touch ---------------------------------------------------------------------------------------


async def test_touch_counts_present_participants(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    s, other = await session(db), await session(db)
    t0 = await db_now(db)
    p1, p2, gone = await member(db, s, now=t0), await member(db, other, now=t0), await member(db, s, now=t0)
    assert await leave(db, gone)
    # Two present (in two sessions), one left, one unknown, a duplicate and a NULL.
    ids = [p1, p2, gone, uuid.uuid4(), p1]
    assert await touch(db, ids, t0 + seconds(30)) == 2
    with_null = await db.fetchval("SELECT hearth.touch(ARRAY[$1::uuid, NULL], $2)", p1, t0 + seconds(40))
    assert with_null == 1
    assert await touch(db, [], t0) == 0
    seen = dict(await admin.fetch("SELECT participant_id, last_seen_at FROM hearth_data.presence"))
    assert seen == {p1: t0 + seconds(40), p2: t0 + seconds(30)}
    # The default p_now is the current time.
    assert await db.fetchval("SELECT hearth.touch($1::uuid[])", [p2]) == 1


async def test_touch_emits_no_event(db: asyncpg.Connection) -> None:
    s = await session(db)
    t0 = await db_now(db)
    pids = [await member(db, s, now=t0) for _ in range(3)]
    before = await last_seq(db, s)
    for i in range(1, 6):
        assert await touch(db, pids, t0 + seconds(30 * i)) == 3
    assert await last_seq(db, s) == before
    assert await events(db, s, after=before) == []


async def test_touch_refreshes_session_activity_about_once_a_minute(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    s = await session(db)
    t0 = await db_now(db)  # after create_session: the join below sets last_activity_at to exactly t0
    pid = await member(db, s, now=t0)

    async def activity() -> object:
        stored = await session_row(admin, s)
        assert stored is not None
        return stored["last_activity_at"]

    assert await activity() == t0
    expected = [(30, 0), (59, 0), (61, 61), (90, 61), (120, 61), (122, 122), (150, 122), (183, 183)]
    for at, written in expected:
        assert await touch(db, [pid], t0 + seconds(at)) == 1
        assert await activity() == t0 + seconds(written), f"touch at +{at}s"
    stored = await session_row(admin, s)
    assert stored is not None and stored["idle_deadline"] == t0 + seconds(183) + minutes(60)


async def test_touch_refreshes_sooner_for_short_idle_timeouts(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    s = await session(db, idle_timeout=minutes(1))
    t0 = await db_now(db)
    pid = await member(db, s, now=t0)
    await touch(db, [pid], t0 + seconds(10))  # within a quarter of the 1-minute timeout: not written
    stored = await session_row(admin, s)
    assert stored is not None and stored["last_activity_at"] == t0
    await touch(db, [pid], t0 + seconds(16))
    stored = await session_row(admin, s)
    assert stored is not None and stored["last_activity_at"] == t0 + seconds(16)
    assert stored["idle_deadline"] == t0 + seconds(76)


async def test_a_late_heartbeat_does_not_revive_a_due_session(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    s = await session(db, idle_timeout=minutes(1))
    t0 = await db_now(db)
    pid = await member(db, s, now=t0)
    assert await db.fetchval("SELECT hearth.check_session_expiry($1, $2)", s, t0 + seconds(61)) is True
    await touch(db, [pid], t0 + seconds(61))
    stored = await session_row(admin, s)
    assert stored is not None and stored["last_activity_at"] == t0
    assert await db.fetchval("SELECT hearth.expire_sessions($1)", t0 + seconds(61)) == 1


async def test_heartbeats_keep_a_session_alive(db: asyncpg.Connection) -> None:
    s = await session(db)
    t0 = await db_now(db)
    pid = await member(db, s, now=t0)
    last = t0
    for i in range(1, 241):  # two hours of heartbeats every 30 s
        last = t0 + seconds(30 * i)
        assert await touch(db, [pid], last) == 1
    assert await db.fetchval("SELECT hearth.expire_sessions($1)", last) == 0
    assert await db.fetchval("SELECT hearth.sweep_presence(NULL, $1)", last) == 0
    assert await db.fetchval("SELECT hearth.check_session_expiry($1, $2)", s, last + minutes(59)) is False
    assert await db.fetchval("SELECT hearth.expire_sessions($1)", last + minutes(61)) == 1


async def test_touch_does_not_wait_for_a_locked_session(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    s = await session(db)
    t0 = await db_now(db)
    pid = await member(db, s, now=t0)
    async with admin.transaction():
        await admin.execute("SELECT FROM hearth_data.sessions WHERE session_id = $1 FOR UPDATE", s)
        # The session row is busy: the heartbeat lands, the activity write is skipped (no waiting).
        assert await touch(db, [pid], t0 + minutes(2)) == 1
    stored = await session_row(admin, s)
    assert stored is not None and stored["last_activity_at"] == t0
    seen = await admin.fetchval(
        "SELECT last_seen_at FROM hearth_data.presence WHERE participant_id = $1", pid
    )
    assert seen == t0 + minutes(2)
    assert await touch(db, [pid], t0 + minutes(3)) == 1
    stored = await session_row(admin, s)
    assert stored is not None and stored["last_activity_at"] == t0 + minutes(3)


async def test_touch_is_a_hot_update(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    sessions = [await session(db) for _ in range(4)]
    t0 = await db_now(db)
    pids = [await member(db, s, now=t0) for s in sessions for _ in range(50)]
    rounds = 40
    for i in range(1, rounds + 1):
        assert await touch(db, pids, t0 + seconds(i)) == len(pids)
    # Statistics reach the shared counters when the backend goes idle; make this one not wait for
    # the usual one-second interval, then read with a fresh snapshot.
    await db.execute("SELECT pg_stat_force_next_flush()")
    await admin.execute("SELECT pg_stat_clear_snapshot()")
    row = await admin.fetchrow(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
        " WHERE schemaname = 'hearth_data' AND relname = 'presence'"
    )
    assert row is not None
    assert row["n_tup_upd"] >= rounds * len(pids)
    assert row["n_tup_hot_upd"] / row["n_tup_upd"] >= 0.9, dict(row)


async def test_presence_has_no_index_on_last_seen_at(admin: asyncpg.Connection) -> None:
    indexed = await admin.fetch(
        """SELECT a.attname FROM pg_index i
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
            WHERE i.indrelid = 'hearth_data.presence'::regclass"""
    )
    assert "last_seen_at" not in {r["attname"] for r in indexed}
    expressions = await admin.fetch(
        "SELECT pg_get_indexdef(indexrelid) AS def FROM pg_index"
        " WHERE indrelid = 'hearth_data.presence'::regclass"
    )
    assert not any("last_seen_at" in r["def"] for r in expressions)


# --- sweep_presence ------------------------------------------------------------------------------


async def test_sweep_presence_times_out_silent_participants(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    s = await session(db)
    t0 = await db_now(db)
    silent = await member(db, s, now=t0)
    heard = await member(db, s, now=t0)
    assert await touch(db, [heard], t0 + seconds(2)) == 1
    before = await last_seq(db, s)
    sweep = "SELECT hearth.sweep_presence(NULL, $1)"

    assert await db.fetchval(sweep, t0 + seconds(89)) == 0
    # At t0 + 91 s: `silent` was last heard 91 s ago, `heard` 89 s ago.
    assert await db.fetchval(sweep, t0 + seconds(91)) == 1
    found = await events(db, s, after=before)
    assert [(e["type"], e["payload"]) for e in found] == [
        ("presence.leave", {"participant_id": str(silent), "reason": "timeout"})
    ]
    participant = await admin.fetchrow(
        "SELECT * FROM hearth_data.participants WHERE participant_id = $1", silent
    )
    assert participant is not None
    assert (participant["left_at"], participant["leave_reason"]) == (t0 + seconds(91), "timeout")
    present = await admin.fetch("SELECT participant_id FROM hearth_data.presence")
    assert [r["participant_id"] for r in present] == [heard]
    assert await db.fetchval(sweep, t0 + seconds(91)) == 0
    # The room stays open, and a timeout is not participant activity.
    stored = await session_row(admin, s)
    assert stored is not None and stored["status"] == "active"
    assert stored["last_activity_at"] == t0
    assert await db.fetchval(sweep, t0 + seconds(93)) == 1


async def test_sweep_presence_with_explicit_timeout(db: asyncpg.Connection) -> None:
    s = await session(db)
    t0 = await db_now(db)
    await member(db, s, now=t0)
    assert await db.fetchval("SELECT hearth.sweep_presence('10 seconds', $1)", t0 + seconds(9)) == 0
    assert await db.fetchval("SELECT hearth.sweep_presence('10 seconds', $1)", t0 + seconds(11)) == 1


async def test_sweep_presence_across_sessions(db: asyncpg.Connection) -> None:
    t0 = await db_now(db)
    rooms = [await session(db) for _ in range(3)]
    for r in rooms:
        for _ in range(2):
            await member(db, r, now=t0)
    assert await db.fetchval("SELECT hearth.sweep_presence(NULL, $1)", t0 + minutes(2)) == 6
    for r in rooms:
        assert [e["type"] for e in await events(db, r)] == ["presence.join"] * 2 + ["presence.leave"] * 2


@pytest.mark.parametrize("kind", ["pairing", "match"])
async def test_sweep_presence_ends_an_emptied_pairing_or_match_session(
    db: asyncpg.Connection, admin: asyncpg.Connection, kind: str
) -> None:
    t0 = await db_now(db)
    if kind == "pairing":
        s, _ = await paired(db)
    else:
        s, (i1, i2) = await session_for_two(db, kind)
        await join(db, s, i1, now=t0)
        await join(db, s, i2, now=t0)
    assert await db.fetchval("SELECT hearth.sweep_presence(NULL, $1)", t0 + minutes(2)) == 2
    found = await events(db, s)
    assert [e["type"] for e in found][-3:] == ["presence.leave", "presence.leave", "session.ended"]
    stored = await session_row(admin, s)
    assert stored is not None and stored["status"] == "ended"
