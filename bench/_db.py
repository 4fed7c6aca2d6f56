"""Shared helpers for the benchmarks: a throwaway cluster, migrated databases, timing, plans, machine facts.

Every benchmark starts its own LocalCluster in a temporary directory with the settings `hearth dev`
uses (durable: fsync and synchronous_commit on, shared_buffers 256MB) and destroys it at the end.
Benchmark databases are migrated with cron=False, so no pg_cron job runs during a measurement.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from app import migrate
from app.cluster import LocalCluster


@contextlib.contextmanager
def bench_cluster() -> Iterator[LocalCluster]:
    base = Path(tempfile.mkdtemp(prefix="hearth-bench-pg-"))
    cluster = LocalCluster(base, durable=True)
    try:
        cluster.init()
        cluster.start()
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.destroy()


async def create_database(cluster: LocalCluster, name: str) -> str:
    """A new database migrated to head without pg_cron jobs; returns its URL."""
    conn = await asyncpg.connect(cluster.url("postgres"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = cluster.url(name)
    migrate.upgrade(url, cron=False)
    await raise_limits(url)
    return url


# A benchmark is one client address creating thousands of identities, sessions and sockets: the limits
# that protect a real deployment from one address (SPEC section 2) are raised out of its way.
RAISED_LIMITS = {
    "identity_rate_limit": "1000000",
    "max_open_sessions_per_identity": "1000000",
    "max_sockets_per_identity": "1000000",
}


async def raise_limits(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for key, value in RAISED_LIMITS.items():
            await conn.execute("SELECT hearth.set_setting($1, $2)", key, value)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def connect(url: str, *, role: str | None = None) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(url)
    try:
        if role:
            await conn.execute(f"SET ROLE {role}")
        yield conn
    finally:
        await conn.close()


async def settle(conn: asyncpg.Connection, *tables: str) -> None:
    """VACUUM ANALYZE the tables, then CHECKPOINT, so a measurement starts from a quiet server."""
    await conn.execute("SET maintenance_work_mem = '256MB'")
    for table in tables:
        await conn.execute(f"VACUUM ANALYZE {table}")
    await conn.execute("CHECKPOINT")


@dataclass
class Timings:
    seconds: list[float]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000

    @property
    def min_ms(self) -> float:
        return min(self.seconds) * 1000

    @property
    def max_ms(self) -> float:
        return max(self.seconds) * 1000

    @property
    def total_s(self) -> float:
        return sum(self.seconds)

    def summary(self) -> str:
        return (
            f"median {self.median_ms:.2f} ms (min {self.min_ms:.2f}, max {self.max_ms:.2f},"
            f" n={len(self.seconds)})"
        )


async def time_calls(call: Callable[[], Awaitable[Any]], *, repeat: int, warmup: int = 1) -> Timings:
    for _ in range(warmup):
        await call()
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        await call()
        seconds.append(time.perf_counter() - start)
    return Timings(seconds)


async def nested_plans(conn: asyncpg.Connection, sql: str, *args: Any, analyze: bool = True) -> list[str]:
    """Run `sql` once with auto_explain on (nested statements, sent to this client as NOTICEs) and
    return the plans of the statements run inside the functions it calls. Needs a superuser session;
    set the role afterwards, as SET ROLE does not change what was loaded."""
    notices: list[str] = []

    def listener(_conn: Any, message: Any) -> None:
        notices.append(str(message.message))

    await conn.execute("LOAD 'auto_explain'")
    await conn.execute(
        "SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on; "
        f"SET auto_explain.log_analyze = {'on' if analyze else 'off'}; SET auto_explain.log_buffers = on; "
        "SET auto_explain.log_timing = on; SET auto_explain.log_level = 'notice'"
    )
    conn.add_log_listener(listener)
    try:
        await conn.execute(sql, *args)
    finally:
        conn.remove_log_listener(listener)
        await conn.execute("SET auto_explain.log_min_duration = -1")
    return notices


def machine_facts() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "asyncpg": asyncpg.__version__,
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


async def server_facts(conn: asyncpg.Connection) -> dict[str, str]:
    facts = {"postgres": await conn.fetchval("SHOW server_version")}
    for name in (
        "shared_buffers",
        "fsync",
        "synchronous_commit",
        "full_page_writes",
        "work_mem",
        "max_wal_size",
        "autovacuum",
    ):
        facts[name] = await conn.fetchval(f"SHOW {name}")
    return facts
