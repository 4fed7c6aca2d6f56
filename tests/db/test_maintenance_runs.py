"""hearth.record_maintenance_run and hearth.maintenance_runs: the app's own maintenance, as `hearth jobs`
reads it."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from tests.db.helpers import db_now, seconds


async def _record(db: asyncpg.Connection, job: str, succeeded: bool, result: str, **at: object) -> None:
    await db.execute(
        "SELECT hearth.record_maintenance_run($1, '1 minute', 'i1', $2, $3, $4, $5)",
        job,
        at["started"],
        succeeded,
        result,
        at["now"],
    )


async def test_keeps_the_last_run_of_each_job_with_counts(db: asyncpg.Connection) -> None:
    now = await db_now(db)
    assert await db.fetch("SELECT * FROM hearth.maintenance_runs()") == []
    await _record(db, "sweep_presence", True, "3", started=now, now=now + seconds(0.5))
    await _record(
        db,
        "sweep_presence",
        False,
        "QueryCanceledError: boom",
        started=now + seconds(60),
        now=now + seconds(61),
    )
    await _record(db, "expire_sessions", True, "0", started=now, now=now + seconds(1))
    rows = await db.fetch("SELECT * FROM hearth.maintenance_runs()")
    assert [r["job"] for r in rows] == ["expire_sessions", "sweep_presence"]
    sweep = dict(rows[1])
    assert sweep["last_succeeded"] is False
    assert sweep["last_result"] == "QueryCanceledError: boom"
    assert (sweep["runs"], sweep["failures"]) == (2, 1)
    assert sweep["last_started_at"] == now + seconds(60)
    assert sweep["last_finished_at"] == now + seconds(61)
    assert sweep["every"] == timedelta(minutes=1)
    assert sweep["instance"] == "i1"


async def test_a_long_result_is_cut(db: asyncpg.Connection) -> None:
    now = await db_now(db)
    await _record(db, "prune_events", False, "x" * 5000, started=now, now=now)
    assert len(await db.fetchval("SELECT last_result FROM hearth.maintenance_runs()")) == 1000


async def test_admin_reads_the_runs_too(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    now = await db_now(db)
    await _record(db, "match_waiting", True, "0", started=now, now=now)
    await admin.execute("SET ROLE hearth_admin")
    assert await admin.fetchval("SELECT count(*) FROM hearth.maintenance_runs()") == 1
    assert await admin.fetchval("SELECT count(*) FROM hearth_data.maintenance_runs") == 1
