"""The events table partitioned by emitted_at: partitions made ahead, retention by dropping them, the
default partition where the maker stopped, and every read across a partition boundary and a dropped one."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from datetime import datetime
from typing import Any

import asyncpg
import psycopg

from app import migrate
from tests.conftest import raises_sqlstate
from tests.db.helpers import app_connection, db_now, events, identity, join, leave, minutes, post, session
from tests.pg import PgServer

CLEANUP = "SELECT hearth.cleanup_inactive_sessions(NULL, 1000, $1)"


async def _set(admin: asyncpg.Connection, key: str, value: str) -> None:
    await admin.execute("SET ROLE hearth_admin")
    await admin.fetchval("SELECT hearth.set_setting($1, $2)", key, value)
    await admin.execute("RESET ROLE")


async def _partitions(admin: asyncpg.Connection) -> list[asyncpg.Record]:
    return await admin.fetch(
        "SELECT partition::text AS name, lower, upper FROM hearth_data.event_partitions()"
    )


async def _where(admin: asyncpg.Connection, s: uuid.UUID) -> list[tuple[int, str]]:
    """Each event of a stream with the partition holding it."""
    rows = await admin.fetch(
        "SELECT seq, tableoid::regclass::text AS part FROM hearth_data.events"
        " WHERE stream_id = $1 ORDER BY seq",
        s,
    )
    return [(r["seq"], r["part"]) for r in rows]


async def _points(db: asyncpg.Connection, s: uuid.UUID, afters: list[int]) -> list[tuple[int, int, bool]]:
    rows = await db.fetch("SELECT * FROM hearth.resume_streams($1, $2)", [s] * len(afters), afters)
    return [(r["head"], r["resume_after"], r["recovered"]) for r in rows]


async def _until(admin: asyncpg.Connection, moment: datetime) -> None:
    """Sleeps until the database's clock is past `moment` (the server's clock decides: emitted_at is)."""
    now = await admin.fetchval("SELECT clock_timestamp()")
    await asyncio.sleep(max(0.0, (moment - now).total_seconds()) + 0.05)
    assert await admin.fetchval("SELECT clock_timestamp()") > moment


async def _two_partitions(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> tuple[uuid.UUID, uuid.UUID, Any, int]:
    """A session of 7 events over partitions of one second: seqs 1..k in the first (the one holding seq 1;
    k is 4 unless the machine is slow), 5..7 in later ones. Returns the session, its participant, the
    first partition and k."""
    await _set(admin, "event_partition_interval", "1 second")
    assert await db.fetchval("SELECT hearth.create_event_partitions()") >= 4
    s = await session(db)
    pid = await join(db, s, await identity(db, "ann"))  # seq 1
    first_part = (await _where(admin, s))[0][1]
    first = next(p for p in await _partitions(admin) if p["name"] == first_part)
    await db.fetchval("SELECT hearth.create_event_partitions()")
    for n in range(3):
        await post(db, pid, {"n": n})
    await _until(admin, first["upper"])
    for n in range(3, 6):
        await post(db, pid, {"n": n})
    k = sum(part == first["name"] for _, part in await _where(admin, s))
    return s, pid, first, k


async def test_partitions_are_made_ahead_and_events_land_in_them(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    assert await _partitions(admin) == []  # the template's jobs never ran: everything is in the default
    s = await session(db)
    assert await _where(admin, s) == []
    assert await db.fetchval("SELECT hearth.create_event_partitions()") == 5  # the current 15 minutes + 4
    parts = await _partitions(admin)
    now = await db_now(db)
    assert parts[0]["lower"] <= now < parts[0]["upper"] and parts[-1]["upper"] >= now + minutes(60)
    assert all(p["upper"] - p["lower"] == minutes(15) and p["lower"].minute % 15 == 0 for p in parts)
    assert all(a["upper"] == b["lower"] for a, b in itertools.pairwise(parts))
    assert parts[0]["name"] == "hearth_data.events_p" + parts[0]["lower"].strftime("%Y%m%d_%H%M%S")
    assert await db.fetchval("SELECT hearth.create_event_partitions()") == 0  # nothing more to make
    await join(db, s, await identity(db))
    assert [part for _, part in await _where(admin, s)] == [parts[0]["name"]]
    # hearth_admin reads the new partitions too (through the table, as before).
    await admin.execute("SET ROLE hearth_admin")
    assert await admin.fetchval("SELECT count(*) FROM hearth_data.events WHERE stream_id = $1", s) == 1
    await admin.execute("RESET ROLE")


async def test_a_bad_partition_interval_is_refused(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    for value in ("1 month", "0.5 seconds", "8 days"):
        await _set(admin, "event_partition_interval", value)
        async with raises_sqlstate("HT400"):
            await db.fetchval("SELECT hearth.create_event_partitions()")
    assert await _partitions(admin) == []


async def test_reads_and_resume_across_a_boundary(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    s, _, first, k = await _two_partitions(db, admin)
    where = await _where(admin, s)
    assert [seq for seq, _ in where] == list(range(1, 8))
    assert {part for seq, part in where if seq <= k} == {first["name"]}
    assert first["name"] not in {part for seq, part in where if seq > k}
    assert [e["seq"] for e in await events(db, s)] == list(range(1, 8))
    assert [r["seq"] for r in await db.fetch("SELECT * FROM hearth.events_since($1, 3, 2)", s)] == [4, 5]
    frames = await db.fetch("SELECT * FROM hearth.event_frames($1, $2, 3)", [s], [2])
    assert [json.loads(f["frame"])["seq"] for f in frames] == [3, 4, 5]
    assert await _points(db, s, [0, 3, 4, 5]) == [(7, 0, True), (7, 3, True), (7, 4, True), (7, 5, True)]


async def test_a_dropped_partition_means_not_recovered(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    s, pid, first, k = await _two_partitions(db, admin)
    # p_now so that the line is exactly the first partition's upper bound: it goes, the next one stays.
    assert await db.fetchval("SELECT hearth.prune_events('1 hour', $1)", first["upper"] + minutes(60)) == k
    assert first["name"] not in [p["name"] for p in await _partitions(admin)]
    assert [e["seq"] for e in await events(db, s)] == list(range(k + 1, 8))
    assert await _points(db, s, [0, k - 1, k, 6]) == [
        (7, k, False),
        (7, k, False),
        (7, k, True),
        (7, 6, True),
    ]
    assert await post(db, pid, {"n": 6}) == 8  # the sequence goes on
    assert [e["seq"] for e in await events(db, s, after=k)] == list(range(k + 1, 9))


async def test_the_partition_being_written_is_never_dropped(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    """A DBA's prune_events(p_now) far in the future drops the past partitions only: the current one and
    those made ahead stay, and so do their events."""
    s, pid, _, _ = await _two_partitions(db, admin)
    ahead = [
        p["name"]
        for p in await _partitions(admin)
        if p["upper"] > await admin.fetchval("SELECT clock_timestamp()")
    ]
    assert await db.fetchval("SELECT hearth.prune_events('1 second', now() + interval '1 day')") >= 4
    assert set(ahead) <= {p["name"] for p in await _partitions(admin)}
    assert await post(db, pid, {"n": 6}) == 8
    assert (await _where(admin, s))[-1][1] != "hearth_data.events_default"


async def test_a_dropped_partition_keeps_what_the_archive_needs(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    await _set(admin, "archive_messages", "true")
    t0 = await db_now(db)
    s, pid, first, k = await _two_partitions(db, admin)
    assert await db.fetchval("SELECT hearth.prune_events('1 hour', $1)", first["upper"] + minutes(60)) == k
    assert [e["seq"] for e in await events(db, s)] == list(range(k + 1, 8))
    assert await admin.fetchval("SELECT count(*) FROM hearth_data.archive_pending_messages") == k - 1
    await leave(db, pid, now=t0 + minutes(1))
    assert await db.fetchval(CLEANUP, t0 + minutes(65)) == 1
    row = await db.fetchrow("SELECT * FROM hearth.session_history($1)", s)
    messages = json.loads(row["messages"])
    assert [m["seq"] for m in messages] == [2, 3, 4, 5, 6, 7]
    assert [m["body"]["n"] for m in messages] == [0, 1, 2, 3, 4, 5]
    assert row["message_count"] == 6


async def test_the_default_partition_while_the_maker_stops(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    """No partition covers now (the job never ran, or stopped): events go to the default partition, nothing
    is refused; the next partition starts after the newest of them, and pruning cuts the default only below
    the oldest partition kept, so a stream never has a hole."""
    await _set(admin, "event_partition_interval", "1 second")
    s = await session(db)
    pid = await join(db, s, await identity(db, "ann"))
    await post(db, pid, {"n": 0})
    assert {part for _, part in await _where(admin, s)} == {"hearth_data.events_default"}
    newest = await admin.fetchval("SELECT max(emitted_at) FROM hearth_data.events_default")
    assert await db.fetchval("SELECT hearth.create_event_partitions()") >= 4
    parts = await _partitions(admin)
    assert parts[0]["lower"] > newest
    await _until(admin, parts[0]["lower"])
    await post(db, pid, {"n": 1})
    where = await _where(admin, s)
    assert where[-1][1] != "hearth_data.events_default"
    # A line past everything written: the default's rows go, and the ranged partitions up to now.
    cut = await db.fetchval(
        "SELECT hearth.prune_events('1 second', clock_timestamp() + interval '2 seconds')"
    )
    assert cut >= 2
    left = [seq for seq, _ in await _where(admin, s)]
    assert left == list(range(4 - len(left), 4))  # whatever is left is the stream's newest events
    assert (await _points(db, s, [0]))[0][2] is False


async def test_a_line_inside_a_kept_partition_removes_nothing_newer(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    """A prune line inside a partition keeps that partition whole, and the default partition's rows newer
    than it (events written while no partition covered them)."""
    await _set(admin, "event_partition_interval", "1 second")
    assert await db.fetchval("SELECT hearth.create_event_partitions()") >= 4
    s = await session(db)
    pid = await join(db, s, await identity(db, "ann"))
    held = (await _where(admin, s))[0][1]
    oldest = next(p for p in await _partitions(admin) if p["name"] == held)
    # The maker stops and the partitions ahead are gone (a DBA dropped them): events go to the default.
    for p in await _partitions(admin):
        if p["lower"] < oldest["upper"]:
            continue
        await admin.execute(f"DROP TABLE {p['name']}")
    await _until(admin, oldest["upper"])
    await post(db, pid, {"n": 0})
    assert (await _where(admin, s))[-1][1] == "hearth_data.events_default"
    # A line inside the oldest partition: it stays, and so does the default's newer row.
    assert await db.fetchval("SELECT hearth.prune_events('1 hour', $1)", oldest["upper"] + minutes(59)) == 0
    assert [seq for seq, _ in await _where(admin, s)] == [1, 2]


async def test_a_reader_holding_the_table_fails_the_prune_fast_and_it_removes_nothing(
    db: asyncpg.Connection, admin: asyncpg.Connection, db_url: str
) -> None:
    """Dropping needs the table for a moment: behind a transaction that holds it (a long read), the prune
    waits lock_timeout (200 ms), fails with 55P03 and removes nothing; a post made meanwhile is not stuck
    behind it, and the next run drops the partition."""
    s, pid, first, k = await _two_partitions(db, admin)
    reader = await app_connection(db_url)
    try:
        tx = reader.transaction()
        await tx.start()
        await reader.fetch("SELECT * FROM hearth.events_since($1, 0)", s)
        started = time.monotonic()
        posting = asyncio.ensure_future(post(db, pid, {"n": 6}))
        async with raises_sqlstate("55P03"):
            await admin.fetchval("SELECT hearth.prune_events('1 hour', $1)", first["upper"] + minutes(60))
        assert time.monotonic() - started < 5
        assert await asyncio.wait_for(posting, 5) == 8
        assert [seq for seq, _ in await _where(admin, s)] == list(range(1, 9))
        await tx.rollback()
    finally:
        await reader.close()
    assert await db.fetchval("SELECT hearth.prune_events('1 hour', $1)", first["upper"] + minutes(60)) == k


def test_an_existing_events_table_moves_without_losing_an_event(pg: PgServer) -> None:
    """Events written at revision 0008, upgraded: the same events, in the default partition, and every
    stream's sequence goes on (into the default until the first partition begins, after the newest of
    them); downgraded again, they are all still there."""
    name = "hearth_partition_migration"
    with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    url = pg.url(name)
    try:
        migrate.upgrade(url, "0008", cron=False)
        query = (
            "SELECT stream_id, seq, scope, type, payload, created_at, emitted_at FROM hearth_data.events"
            " ORDER BY 1, 2"
        )
        with psycopg.connect(url, autocommit=True) as conn:
            s = conn.execute(
                "SELECT session_id FROM hearth.create_session('room', NULL, NULL, NULL, NULL, '{}')"
            ).fetchone()[0]
            ident = conn.execute("SELECT hearth.create_identity('ann', NULL)").fetchone()[0]
            pid = conn.execute("SELECT hearth.join_session(%s, %s, 'member')", (s, ident)).fetchone()[0]
            for n in range(50):
                conn.execute("SELECT hearth.post_message(%s, %s::jsonb)", (pid, json.dumps({"n": n})))
            before = conn.execute(query).fetchall()
        migrate.upgrade(url, cron=False)
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute(query).fetchall() == before
            assert conn.execute(
                "SELECT DISTINCT tableoid::regclass::text FROM hearth_data.events"
            ).fetchall() == [("hearth_data.events_default",)]
            newest = conn.execute("SELECT max(emitted_at) FROM hearth_data.events").fetchone()[0]
            assert conn.execute("SELECT hearth.create_event_partitions()").fetchone()[0] >= 4
            assert (
                conn.execute("SELECT min(lower) FROM hearth_data.event_partitions()").fetchone()[0] > newest
            )
            seq = conn.execute("SELECT hearth.post_message(%s, '{}'::jsonb)", (pid,)).fetchone()[0]
            assert seq == before[-1][1] + 1
            after = conn.execute(query).fetchall()
        migrate.downgrade(url, "0008", cron=False)
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute(query).fetchall() == after
    finally:
        with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
