"""The periodic SQL functions, run by the app where pg_cron does not run them.

One instance per database leads: it holds a session-level advisory lock on a connection of its own
and runs the same schedule as the pg_cron jobs. If that connection dies the lock goes with it and
another instance takes over. Running them next to pg_cron would be harmless (the functions take their
rows with SKIP LOCKED), only wasteful, so `auto` leads only when pg_cron is not loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg

log = logging.getLogger("hearth.maintenance")

# pg_advisory_lock key: "hearth maintenance" as a stable 63-bit number.
LOCK_KEY = 0x6865617274686D61
# function call, period in seconds: the pg_cron schedule of revisions 0001 and 0003.
SCHEDULE: list[tuple[str, float]] = [
    ("SELECT hearth.expire_sessions()", 60),
    ("SELECT hearth.sweep_presence()", 60),
    ("SELECT hearth.cleanup_inactive_sessions()", 900),
    ("SELECT hearth.cleanup_inactive_identities()", 900),
    ("SELECT hearth.prune_events()", 900),
    ("SELECT hearth.match_waiting(1000)", 60),
    ("SELECT hearth.end_abandoned_matches()", 60),
]


class Maintenance:
    def __init__(self, url: str, mode: str = "auto", *, scale: float = 1.0) -> None:
        self._url = url
        self._mode = mode
        self._scale = scale  # tests shrink the schedule
        self.leading = False

    async def _wanted(self, conn: asyncpg.Connection) -> bool:
        if self._mode == "off":
            return False
        if self._mode == "on":
            return True
        return await conn.fetchval("SELECT current_setting('cron.database_name', true)") is None

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
        due = {sql: 0.0 for sql, _ in SCHEDULE}
        while True:
            now = time.monotonic()
            for sql, period in SCHEDULE:
                if due[sql] <= now:
                    try:
                        await conn.fetchval(sql)
                    except asyncpg.PostgresError as exc:  # one job failing does not stop the others
                        log.warning("%s failed: %s", sql, exc)
                    due[sql] = now + period * self._scale
            await asyncio.sleep(max(0.05, min(due.values()) - time.monotonic()))
