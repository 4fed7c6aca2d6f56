"""One lock order everywhere (db/schema.sql's header): the periodic jobs, the matchmaking calls and the
heartbeat never deadlock, whatever the interleaving."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import datetime

import asyncpg

from tests.db.helpers import app_connection, db_now, identity, join, minutes, session
from tests.db.test_event_order import _wait_until_blocked
from tests.db.test_matchmaking import Match, livekit_event, new_match, queue


async def _run(conn: asyncpg.Connection, sql: str, *args: object) -> object:
    """The call's result, or its SQLSTATE when it fails."""
    try:
        return await conn.fetchval(sql, *args)
    except asyncpg.PostgresError as exc:
        return exc.sqlstate


async def test_end_match_and_cleanup_of_its_session_do_not_deadlock(
    db: asyncpg.Connection, admin: asyncpg.Connection, db_url: str
) -> None:
    """The audit's interleaving: cleanup holds the (due) match session and waits for a row a helper
    holds; end_match arrives. It used to lock the match and then wait for the session, while cleanup,
    let go, wanted the match: deadlock. Now both take the session first."""
    m = await new_match(db, admin)
    t0 = await db_now(db)
    [pid_a, _] = [await join(db, m.session_id, who, now=t0) for who in (m.a, m.b)]
    helper = await asyncpg.connect(db_url)  # a superuser: it locks a row of hearth_data directly
    cleaner, ender = await app_connection(db_url), await app_connection(db_url)
    try:
        await helper.execute("BEGIN")
        await helper.execute("SELECT FROM hearth_data.presence WHERE participant_id = $1 FOR UPDATE", pid_a)
        cleanup = asyncio.create_task(
            _run(cleaner, "SELECT hearth.cleanup_inactive_sessions(NULL, 1000, $1)", t0 + minutes(420))
        )
        await _wait_until_blocked(admin, cleaner.get_server_pid())
        end_match = "SELECT hearth.end_match($1, $2, 'skip')::text"
        end = asyncio.create_task(_run(ender, end_match, m.session_id, m.a))
        await _wait_until_blocked(admin, ender.get_server_pid())
        await helper.execute("ROLLBACK")
        results = await asyncio.gather(cleanup, end)
    finally:
        for conn in (helper, cleaner, ender):
            await conn.close()
    assert "40P01" not in results, results
    assert results[0] == 1  # cleanup ended the match with its session; end_match then finds no match
    assert results[1] == "HT404"


async def _abandoned_due_matches(db: asyncpg.Connection, admin: asyncpg.Connection, n: int) -> datetime:
    """n matches whose side a left the LiveKit room long ago, in sessions that are due: both the reaper
    and cleanup want each of them."""
    t0 = await db_now(db)
    for _ in range(n):
        a, b = await queue(db, admin, 2)
        assert await db.fetchval("SELECT hearth.match_waiting(1)") == 1
        sid = await admin.fetchval(
            "SELECT match_session_id FROM hearth_data.identities WHERE identity_id = $1", a
        )
        m = Match(sid, a, b)
        for who in (a, b):
            await join(db, sid, who, now=t0)
        await livekit_event(db, "participant_joined", m.room, a, t0 - minutes(10))
        await livekit_event(db, "participant_left", m.room, a, t0 - minutes(5))
    return t0


async def test_the_reaper_and_cleanup_run_together_without_deadlock(
    db: asyncpg.Connection, admin: asyncpg.Connection, db_url: str
) -> None:
    """The two pg_cron jobs at once on many matches both want (the audit: 3 deadlocks in 3 runs)."""
    reaper, cleaner = await app_connection(db_url), await app_connection(db_url)
    try:
        for _ in range(3):
            t0 = await _abandoned_due_matches(db, admin, 40)
            later = t0 + minutes(420)
            results = await asyncio.gather(
                _run(cleaner, "SELECT hearth.cleanup_inactive_sessions(NULL, 5, $1)", later),
                _run(reaper, "SELECT hearth.end_abandoned_matches('20 seconds', $1)", later),
            )
            assert "40P01" not in results, results
            open_matches = "SELECT count(*) FROM hearth_data.matches WHERE ended_at IS NULL"
            assert await admin.fetchval(open_matches) == 0
            assert await admin.fetchval(
                "SELECT count(*) FROM hearth_data.identities WHERE match_state IN ('connecting', 'in_call')"
            ) == 0
            await db.fetchval("SELECT hearth.cleanup_inactive_sessions(NULL, 1000, $1)", later)
    finally:
        await reaper.close()
        await cleaner.close()


async def test_touch_locks_in_participant_order_whatever_its_plan(
    db: asyncpg.Connection, admin: asyncpg.Connection, db_url: str
) -> None:
    """The audit's deadlock_touch_det.py. Rows X < W < Y by participant_id, Y stored before X. A helper
    holds W; sweep_presence locks X and waits for W; touch([X, Y] and 5,000 unknown ids) ran a hash join
    over presence in heap order: it locked Y, then waited for X; the helper let go, sweep wanted Y."""
    s = await session(db)
    t0 = await db_now(db)
    for _ in range(12):
        await join(db, s, await identity(db), now=t0 - minutes(10))
    rows = await admin.fetch("SELECT participant_id, ctid FROM hearth_data.presence WHERE session_id = $1", s)
    heap = {r["participant_id"]: r["ctid"] for r in rows}
    order = sorted(heap)
    x, w, y = next(
        (x, w, y) for x in order for w in order for y in order if x < w < y and heap[y] < heap[x]
    )
    helper = await asyncpg.connect(db_url)
    sweeper, toucher = await app_connection(db_url), await app_connection(db_url)
    try:
        await helper.execute("BEGIN")
        await helper.execute("SELECT FROM hearth_data.presence WHERE participant_id = $1 FOR UPDATE", w)
        sweep = asyncio.create_task(_run(sweeper, "SELECT hearth.sweep_presence()"))
        await _wait_until_blocked(admin, sweeper.get_server_pid())
        batch = [x, y, *(uuid.uuid4() for _ in range(5000))]
        touch = asyncio.create_task(_run(toucher, "SELECT hearth.touch($1::uuid[])", batch))
        await _wait_until_blocked(admin, toucher.get_server_pid())
        await helper.execute("ROLLBACK")
        results = await asyncio.gather(sweep, touch)
    finally:
        for conn in (helper, sweeper, toucher):
            await conn.close()
    assert "40P01" not in results, results


async def test_touch_sweep_and_expiry_run_together_without_deadlock(
    db: asyncpg.Connection, admin: asyncpg.Connection, db_url: str
) -> None:
    """The audit's deadlock_touch_small.py, shortened: fresh connections (custom plans) touching random
    batches while sweep and expiry run (and roll back) over and over."""
    t0 = await db_now(db)
    pids = []
    for _ in range(10):
        s = await session(db)
        pids += [await join(db, s, await identity(db), now=t0) for _ in range(20)]
    deadlocks: list[str] = []
    stop = asyncio.Event()

    async def toucher() -> None:
        while not stop.is_set():
            conn = await app_connection(db_url)
            try:
                await conn.fetchval("SELECT hearth.touch($1::uuid[])", random.sample(pids, len(pids)))
            except asyncpg.DeadlockDetectedError:
                deadlocks.append("touch")
            finally:
                await conn.close()

    async def periodic(sql: str) -> None:
        conn = await app_connection(db_url)
        try:
            while not stop.is_set():
                try:
                    async with conn.transaction():
                        await conn.fetchval(sql)
                        raise asyncpg.DataError("roll back on purpose: keep the data")
                except asyncpg.DeadlockDetectedError:
                    deadlocks.append(sql)
                except asyncpg.DataError:
                    pass
        finally:
            await conn.close()

    tasks = [asyncio.create_task(toucher()) for _ in range(2)] + [
        asyncio.create_task(periodic("SELECT hearth.sweep_presence(NULL, now() + interval '2 minutes')")),
        asyncio.create_task(periodic("SELECT hearth.expire_sessions(now() + interval '2 hours')")),
    ]
    await asyncio.sleep(4)
    stop.set()
    await asyncio.gather(*tasks)
    assert deadlocks == []
