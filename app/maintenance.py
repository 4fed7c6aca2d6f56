"""The periodic SQL functions, run by the app where pg_cron does not run them.

One instance per database leads: it holds a session-level advisory lock on a connection of its own
and runs the same schedule as the pg_cron jobs. If that connection dies the lock goes with it and
another instance takes over. Running them next to pg_cron would be harmless (the functions take their
rows with SKIP LOCKED), only wasteful, so `auto` leads only when pg_cron is not loaded.

Each run is recorded in the database (`hearth.record_maintenance_run`: the last run of each job, its result
or error), where `hearth jobs` reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta

import asyncpg

from app import cron, db

log = logging.getLogger("hearth.maintenance")

# pg_advisory_lock key: "hearth maintenance" as a stable 63-bit number.
LOCK_KEY = 0x6865617274686D61
# (name, command, period in seconds): pg_cron's jobs, as the app runs them (app.cron says where and why
# a command differs).
SCHEDULE = cron.app_schedule()


class Maintenance:
    def __init__(self, url: str, mode: str = "auto", *, scale: float = 1.0, instance: str = "") -> None:
        self._url = url
        self._mode = mode
        self._scale = scale  # tests shrink the schedule
        self._instance = instance or "hearth"
        self.leading = False

    async def _wanted(self, conn: asyncpg.Connection) -> bool:
        if self._mode == "off":
            return False
        if self._mode == "on":
            return True
        return await conn.fetchval(cron.DATABASE_SQL) is None

    async def run(self) -> None:
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self._url, server_settings={"application_name": "hearth-maintenance"}
                )
                if not await self._wanted(conn):
                    log.info("pg_cron runs Hearth's jobs here: the app does not")
                    return
                if await conn.fetchval(
                    "SELECT pg_has_role('hearth_app', 'MEMBER') AND current_user <> 'hearth_app'"
                ):
                    await conn.execute("SET ROLE hearth_app")
                while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):  # noqa: ASYNC110
                    await asyncio.sleep(10 * self._scale)  # another instance leads; poll for its place
                self.leading = True
                log.info("leading maintenance (pg_cron's schedule, run by the app)")
                await self._lead(conn)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("maintenance connection lost: %s", exc)
            finally:
                self.leading = False
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
            await asyncio.sleep(5 * self._scale)

    async def _lead(self, conn: asyncpg.Connection) -> None:
        due = {job: 0.0 for job, _, _ in SCHEDULE}
        while True:
            now = time.monotonic()
            for job, command, period in SCHEDULE:
                if due[job] <= now:
                    await self._run(conn, job, command, period * self._scale)
                    due[job] = now + period * self._scale
            await asyncio.sleep(max(0.05, min(due.values()) - time.monotonic()))

    async def _run(self, conn: asyncpg.Connection, job: str, sql: str, every_s: float) -> None:
        """One run of a job, recorded; a job failing does not stop the others (a lost connection does)."""
        start = time.monotonic()
        try:
            result = await conn.fetchval(sql)
            succeeded, text = True, "" if result is None else str(result)
        except asyncpg.PostgresError as exc:
            log.warning("%s failed: %s", job, exc)
            succeeded, text = False, f"{type(exc).__name__}: {exc}"
        try:
            await conn.execute(
                db.RECORD_MAINTENANCE_RUN,
                job,
                timedelta(seconds=every_s),
                self._instance,
                timedelta(seconds=time.monotonic() - start),
                succeeded,
                text,
            )
        except asyncpg.PostgresError as exc:
            log.warning("recording the run of %s failed: %s", job, exc)
