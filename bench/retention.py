"""Event retention: DELETE vs dropping partitions, and events_since by table size (issue 16).

Run: `.venv/bin/python -m bench.retention [--events 10000000] [--streams 1000] [--json FILE]`.

One throwaway cluster (bench._db), two databases migrated to head, the same events in each: `--streams`
sessions with `--events / --streams` message events apiece, emitted over one hour that ended two hours
ago (so all of them are past the 1-hour event_retention), payloads like a chat message's.

  delete  no partition covers that hour: the events sit in the default partition, which prune_events
          empties the way every prune did before revision 0009 (DELETE, 10,000 rows at a time, by the
          emitted_at index), followed by the VACUUM that DELETE leaves to do
  drop    15-minute partitions cover that hour: prune_events counts and drops them

Both are `SELECT hearth.prune_events()`, as pg_cron runs it. For each: its time; the WAL it wrote
(pg_current_wal_lsn before and after, less the WAL of the concurrent posts at the rate measured just
before); its backend's CPU; the locks it held on the events table (sampled every 10 ms from pg_locks:
how long an ACCESS EXCLUSIVE lock was held, how many other backends waited at once); and the latency of
`post_message` from 4 connections posting in a closed loop to other sessions throughout (the 5 s before
the prune vs during it).

events_since: median latency of 300 calls on random streams, as a resuming client makes it (the 10
events before the head) and as a history page (100 events after a random seq), after the first tenth of
the events were written (1M at the default size) and after all of them (10M), in both databases: the
default partition is one plain table (the layout before 0009), the other is partitioned. 100M rows do
not fit this machine's time budget: BENCHMARKS.md says how the figure extrapolates.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import random
import statistics
import time
import uuid
from typing import Any

import asyncpg

from bench._db import bench_cluster, connect, create_database, machine_facts, server_facts
from bench.common import log, percentile
from bench.measure import cpu_seconds

SPAN_S = 3600.0  # the events were emitted over one hour...
AGO_S = 3 * 3600.0  # ...starting three hours ago


async def _fill(conn: asyncpg.Connection, streams: list[uuid.UUID], first: int, last: int, t0: float) -> None:
    """Events first..last of every stream; emitted_at rises with seq in each stream."""
    step = SPAN_S / PER_STREAM
    await conn.execute(
        """INSERT INTO hearth_data.events (stream_id, seq, scope, type, payload, created_at, emitted_at)
           SELECT s.id, g.seq, 'session', 'message',
                  jsonb_build_object('from', s.id, 'body', jsonb_build_object('text', 'message ' || g.seq)),
                  to_timestamp($4 + (g.seq - 1) * $5 + s.n * 0.0001),
                  to_timestamp($4 + (g.seq - 1) * $5 + s.n * 0.0001)
             FROM generate_series($2::bigint, $3::bigint) g(seq),
                  unnest($1::uuid[]) WITH ORDINALITY s(id, n)
            ORDER BY g.seq""",
        streams,
        first,
        last,
        t0,
        step,
    )


PER_STREAM = 10_000


async def _events_since(url: str, streams: list[uuid.UUID], head: int) -> dict[str, float]:
    rng = random.Random(7)
    out: dict[str, float] = {}
    async with connect(url, role="hearth_app") as conn:
        for name, after_of, limit in (
            ("resume (10 before head)", lambda: head - 10, 500),
            ("page of 100", lambda: rng.randrange(0, head - 100), 100),
        ):
            times = []
            for i in range(330):
                stream, after = rng.choice(streams), after_of()
                started = time.perf_counter()
                await conn.fetch("SELECT * FROM hearth.events_since($1, $2, $3)", stream, after, limit)
                if i >= 30:
                    times.append((time.perf_counter() - started) * 1000)
            out[name] = statistics.median(times)
    return out


class Poster:
    """4 connections posting in a closed loop; latencies kept with the time they ended."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[float, float]] = []
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        async with connect(self.url) as conn:
            pids = []
            for _ in range(4):
                s = await conn.fetchval(
                    "SELECT session_id FROM hearth.create_session('room', NULL, NULL, interval '1 day')"
                )
                ident = await conn.fetchval("SELECT hearth.create_identity('poster')")
                pids.append(await conn.fetchval("SELECT hearth.join_session($1, $2)", s, ident))
        self.tasks = [asyncio.create_task(self._run(pid)) for pid in pids]

    async def _run(self, pid: uuid.UUID) -> None:
        async with connect(self.url, role="hearth_app") as conn:
            while not self.stop.is_set():
                started = time.perf_counter()
                await conn.fetchval('SELECT hearth.post_message($1, \'{"text": "hello"}\'::jsonb)', pid)
                ended = time.perf_counter()
                self.samples.append((ended, (ended - started) * 1000))

    async def close(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)

    def window(self, start: float, end: float) -> dict[str, Any]:
        values = [ms for at, ms in self.samples if start <= at <= end]
        return {
            "posts": len(values),
            "per_s": len(values) / max(end - start, 1e-9),
            "p50_ms": percentile(values, 0.5),
            "p99_ms": percentile(values, 0.99),
            "max_ms": max(values) if values else None,
        }


async def _lock_sampler(url: str, pid: int, stop: asyncio.Event) -> dict[str, float]:
    exclusive_first = exclusive_last = None
    waiting_max = 0
    async with connect(url) as conn:
        events_oid = await conn.fetchval("SELECT 'hearth_data.events'::regclass::oid")
        while not stop.is_set():
            row = await conn.fetchrow(
                """SELECT bool_or(l.pid = $1 AND l.granted AND l.mode = 'AccessExclusiveLock'
                                  AND l.relation = $2) AS exclusive,
                          count(DISTINCT l.pid) FILTER (WHERE NOT l.granted AND l.pid <> $1) AS waiting
                     FROM pg_locks l WHERE l.locktype IN ('relation', 'transactionid', 'tuple')""",
                pid,
                events_oid,
            )
            now = time.perf_counter()
            if row["exclusive"]:
                exclusive_first = exclusive_first or now
                exclusive_last = now
            waiting_max = max(waiting_max, row["waiting"])
            await asyncio.sleep(0.01)
    held = (exclusive_last - exclusive_first) * 1000 if exclusive_first and exclusive_last else 0.0
    return {"exclusive_seen_ms": held, "others_waiting_max": waiting_max}


async def _wal(conn: asyncpg.Connection) -> int:
    value: int = await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
    return value


async def _prune(url: str, variant: str) -> dict[str, Any]:
    poster = Poster(url)
    await poster.start()
    result: dict[str, Any] = {"variant": variant}
    async with connect(url) as conn, connect(url) as meter:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        await asyncio.sleep(1)
        wal0, t0 = await _wal(meter), time.perf_counter()
        await asyncio.sleep(5)
        wal1, t1 = await _wal(meter), time.perf_counter()
        posts_before = poster.window(t0, t1)
        wal_per_post = (wal1 - wal0) / max(posts_before["posts"], 1)
        stop = asyncio.Event()
        sampler = asyncio.create_task(_lock_sampler(url, pid, stop))
        cpu0, started = cpu_seconds(pid), time.perf_counter()
        removed = await conn.fetchval("SELECT hearth.prune_events()")
        ended = time.perf_counter()
        cpu1, wal2 = cpu_seconds(pid), await _wal(meter)
        stop.set()
        locks = await sampler
        during = poster.window(started, ended)
        result.update(
            removed=removed,
            seconds=ended - started,
            backend_cpu_s=cpu1 - cpu0,
            wal_bytes=wal2 - wal1 - during["posts"] * wal_per_post,
            wal_per_post=wal_per_post,
            posts_before=posts_before,
            posts_during=during,
            **locks,
        )
        if variant == "delete":
            # What DELETE leaves behind: the dead rows, for (auto)vacuum to reclaim.
            await conn.execute("SET maintenance_work_mem = '256MB'")
            cpu0, started, wal3 = cpu_seconds(pid), time.perf_counter(), await _wal(meter)
            await conn.execute("VACUUM hearth_data.events_default")
            ended = time.perf_counter()
            cpu1, wal4 = cpu_seconds(pid), await _wal(meter)
            result.update(
                vacuum_seconds=ended - started,
                vacuum_cpu_s=cpu1 - cpu0,
                vacuum_wal_bytes=wal4 - wal3 - poster.window(started, ended)["posts"] * wal_per_post,
            )
        await poster.close()
    return result


async def _database(
    cluster: Any, name: str, streams_n: int, partitioned: bool, t0: float
) -> tuple[str, list[uuid.UUID]]:
    url = await create_database(cluster, name)
    async with connect(url) as conn:
        await conn.execute("SELECT hearth.set_setting('session_idle_timeout', '1 day')")
        streams = [
            r["session_id"]
            for r in await conn.fetch(
                "SELECT c.session_id FROM generate_series(1, $1),"
                " LATERAL hearth.create_session('room', NULL, NULL, interval '1 day') c",
                streams_n,
            )
        ]
        if partitioned:
            # As create_event_partitions would have made them: hearth_owner's, in 15-minute steps.
            await conn.execute("SET ROLE hearth_owner")
            lower = await conn.fetchval("SELECT date_bin('15 minutes', to_timestamp($1), 'epoch')", t0)
            while lower.timestamp() < t0 + SPAN_S + 1:
                name = "events_p" + lower.astimezone(datetime.UTC).strftime("%Y%m%d_%H%M%S")
                upper = lower + datetime.timedelta(minutes=15)
                await conn.execute(
                    f"CREATE TABLE hearth_data.{name} PARTITION OF hearth_data.events"
                    f" FOR VALUES FROM ('{lower.isoformat()}') TO ('{upper.isoformat()}')"
                )
                lower = upper
            await conn.execute("RESET ROLE")
        await conn.fetchval("SELECT hearth.create_event_partitions()")
    return url, streams


async def main(args: argparse.Namespace) -> dict[str, Any]:
    global PER_STREAM
    PER_STREAM = args.events // args.streams
    report: dict[str, Any] = {"machine": machine_facts(), "events": args.events, "streams": args.streams}
    with bench_cluster() as cluster:
        urls: dict[str, tuple[str, list[uuid.UUID]]] = {}
        t0 = time.time() - AGO_S
        for variant in ("delete", "drop"):
            urls[variant] = await _database(
                cluster, f"retention_{variant}", args.streams, variant == "drop", t0
            )
        async with connect(urls["drop"][0]) as conn:
            report["server"] = await server_facts(conn)
        tenth = PER_STREAM // 10
        since: dict[str, Any] = {}
        for upto in (tenth, PER_STREAM):
            for variant in ("delete", "drop"):
                url, streams = urls[variant]
                first = 1 if upto == tenth else tenth + 1
                started = time.perf_counter()
                async with connect(url) as conn:
                    await conn.execute("SET maintenance_work_mem = '256MB'")
                    for lo in range(first, upto + 1, 200):
                        await _fill(conn, streams, lo, min(lo + 199, upto), t0)
                    await conn.execute("UPDATE hearth_data.sessions SET event_seq = $1", upto)
                    await conn.execute("VACUUM ANALYZE hearth_data.events")
                    await conn.execute("CHECKPOINT")
                took = time.perf_counter() - started
                log(f"{variant}: {upto * len(streams):,} events written in {took:.0f} s")
                figures = await _events_since(url, streams, upto)
                since[f"{variant} {upto * len(streams):,}"] = figures
                log(f"  events_since at {upto * len(streams):,} events ({variant}): {figures}")
        report["events_since_ms"] = since
        report["prune"] = []
        for variant in ("delete", "drop"):
            result = await _prune(urls[variant][0], variant)
            report["prune"].append(result)
            log(f"prune ({variant}): {json.dumps(result, default=str)}")
    return report


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args()
    report = asyncio.run(main(args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2, default=str)


if __name__ == "__main__":
    cli()
