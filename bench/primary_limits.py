"""The limits of one primary: durable events/s through 1, 2, 4 Hearth instances; commits/s of N writers
with and without NOTIFY; the cost of listening connections on notifying senders; and where the time goes.

    python -m bench.primary_limits [--quick] [--parts instances,writers,listeners] [--json FILE]

Every round is measured with the CPU of each process group (PostgreSQL, the app, the load generators,
the listeners) and the rest of the machine's work; pg_stat_activity is sampled for what active backends
wait on (the NOTIFY lock is `Lock:object`, WAL flushes `IO:WALSync` / `LWLock:WALWrite`). Kinds of round
are interleaved, so a burst of other work on the machine hits them all alike.

- instances: posters (bench/node/posters.js) send `message` frames with a ref over real websockets, each
  keeping a window awaiting its ack (sent once the event is committed), into many two-participant
  sessions spread over k `hearth serve` instances. Peer in the same run: the same number of pgbench
  writers calling hearth.post_message directly (the database without the app).
- writers: pgbench, N connections, each posting into its own session (`hearth.post_message`), in a stock
  database (`notify`) and in one whose emit_event sends no NOTIFY (`quiet`), each with
  synchronous_commit on and off (off: commits do not wait for the WAL flush, so the lock shows alone),
  and stock with 10 events per transaction (`notify x10`: one turn at the lock and one flush for ten).
- listeners: 8 pgbench writers (stock, notifying) while L connections LISTEN on hearth_events from
  bench/listeners.py (what each extra Hearth instance adds), synchronous_commit on and off.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import statistics
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg

from app.cluster import DEFAULT_PG_BIN, LocalCluster
from bench import _db
from bench.common import NODE_DIR, log, log_dir
from bench.load import Member, create_database, make_members
from bench.measure import CpuMeter
from bench.processes import PAD, Proc, check_prerequisites, cluster_pids, hearth_server, raise_nofile

BODY = json.dumps({"ts": 0, "pad": PAD})
EMIT_NOTIFY = "PERFORM pg_notify('hearth_events', p_stream_id::text || ' ' || v_seq);"


PG_GROUPS = ("postgres", "pg background")


class SchedCpuMeter(CpuMeter):
    """CpuMeter read from /proc/PID/schedstat (nanoseconds on a CPU) instead of clock ticks: backends
    that run in short bursts between waits were charged close to nothing by tick accounting (utime +
    stime) in trial runs here, while the machine was busy."""

    def cpu_seconds(self, pid: int) -> float:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9

    def stop(self) -> dict[str, float]:
        # Backends started during the window count too; PostgreSQL's own processes (autovacuum, WAL
        # writer, checkpointer, pg_cron's launcher) are apart, or their steady hum would be charged to
        # the work when the rate is low.
        # The sampler's own backend is a group of its own.
        if self.cluster is not None:
            apart = {p for name, pids in self.groups.items() for p in pids if name not in PG_GROUPS}
            pids = [p for p in cluster_pids(self.cluster) if p not in apart]
            self.groups["postgres"] = [p for p in pids if _is_client_backend(p)]
            self.groups["pg background"] = [p for p in pids if not _is_client_backend(p)]
        return super().stop()


def _is_client_backend(pid: int) -> bool:
    """A backend serving a client connection: its title names the client's address."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return "127.0.0.1(" in title or "[local]" in title


# --- what active backends wait on ----------------------------------------------------------------

class WaitSampler:
    """Samples pg_stat_activity every `interval` s: what each active client backend waits on (CPU when
    it waits on nothing: running or runnable)."""

    SQL = ("SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') AS w, count(*) AS n"
           " FROM pg_stat_activity WHERE state = 'active' AND backend_type = 'client backend'"
           " AND pid <> pg_backend_pid() GROUP BY 1")

    def __init__(self, url: str, interval: float = 0.05) -> None:
        self.url = url
        self.interval = interval
        self.counts: Counter[str] = Counter()
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self, conn: asyncpg.Connection) -> None:
        try:
            while True:
                for row in await conn.fetch(self.SQL):
                    self.counts[row["w"]] += row["n"]
                self.samples += 1
                await asyncio.sleep(self.interval)
        finally:
            await conn.close()

    async def start(self) -> int:
        """Connects and starts sampling; returns the sampling backend's pid (its CPU is not the work's)."""
        conn = await asyncpg.connect(self.url)
        self._task = asyncio.get_running_loop().create_task(self._run(conn))
        return conn.get_server_pid()

    async def stop(self) -> dict[str, float]:
        """Mean number of active backends in each wait state."""
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        return {w: n / max(self.samples, 1) for w, n in self.counts.most_common()}


def waits_text(waits: dict[str, float], top: int = 4) -> str:
    return ", ".join(f"{w} {n:.1f}" for w, n in list(waits.items())[:top]) or "none active"


async def wal_stats(url: str) -> dict[str, float]:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow("SELECT wal_records, wal_bytes, wal_write, wal_sync, wal_sync_time,"
                                  " pg_current_wal_lsn() - '0/0'::pg_lsn AS lsn FROM pg_stat_wal")
    finally:
        await conn.close()
    assert row is not None
    return {k: float(v) for k, v in row.items()}


# --- pgbench ---------------------------------------------------------------------------------------

def pgbench_script(batch: int = 1) -> Path:
    """Each transaction: `batch` hearth.post_message calls of pgbench client n's participant."""
    path = log_dir() / f"post_message_{batch}.sql"
    path.write_text(f"SELECT count(hearth.post_message(participant_id, '{BODY}'::jsonb))"
                    f" FROM bench_writers, generate_series(1, {batch}) WHERE n = :client_id;\n")
    return path


async def add_writers(url: str, members: list[list[Member]]) -> None:
    """bench_writers: pgbench client n posts as the first participant of session n."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_writers"
                           " (n int PRIMARY KEY, participant_id uuid)")
        await conn.executemany("INSERT INTO bench_writers VALUES ($1, $2) ON CONFLICT (n) DO NOTHING",
                               [(n, session[0].participant_id) for n, session in enumerate(members)])
    finally:
        await conn.close()


async def make_quiet(url: str) -> None:
    """This database's emit_event sends no NOTIFY (a bench-only change: everything else is stock)."""
    conn = await asyncpg.connect(url)
    try:
        source = await conn.fetchval(
            "SELECT pg_get_functiondef('hearth_data.emit_event(text,uuid,text,jsonb,timestamptz,boolean)'"
            "::regprocedure)")
        quiet = source.replace(EMIT_NOTIFY, "NULL;")
        if quiet == source:
            raise SystemExit("emit_event no longer holds the NOTIFY line this benchmark removes")
        await conn.execute(quiet)
    finally:
        await conn.close()


async def run_pgbench(cluster: LocalCluster, url: str, writers: int, seconds: float, *, sync_commit: bool,
                      batch: int = 1,
                      groups: dict[str, list[int]] | None = None, warmup: float = 1.0) -> dict[str, Any]:
    """pgbench for `seconds`; CPU and waits over its middle; its TPS (without connection time)."""
    env = {**os.environ, "PGOPTIONS": f"-c synchronous_commit={'on' if sync_commit else 'off'}"}
    wal0 = await wal_stats(cluster.url())
    proc = await asyncio.create_subprocess_exec(
        str(DEFAULT_PG_BIN / "pgbench"), "-n", "-M", "prepared",
        "-c", str(writers), "-j", str(min(writers, 2)),
        "-T", str(math.ceil(seconds + warmup) + 2), "-f", str(pgbench_script(batch)), url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env)
    await asyncio.sleep(warmup)
    sampler = WaitSampler(cluster.url())
    meter = SchedCpuMeter({"postgres": [], "pgbench": [proc.pid], "sampler": [await sampler.start()],
                           **(groups or {})}, cluster)
    meter.start()
    await asyncio.sleep(seconds)
    cpu = meter.stop()
    waits = await sampler.stop()
    if proc.returncode is not None:  # its backends would be gone from the CPU figures
        raise RuntimeError("pgbench ended inside the measuring window")
    out, _ = await proc.communicate()
    text = out.decode()
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", text)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"pgbench failed ({proc.returncode}): {text[-2000:]}")
    wal1 = await wal_stats(cluster.url())
    commits = float(re.search(r"number of transactions actually processed: (\d+)", text).group(1))  # type: ignore[union-attr]
    return {"tps": float(match.group(1)), "cpu": cpu, "waits": waits,
            "wal_syncs_per_commit": (wal1["wal_sync"] - wal0["wal_sync"]) / max(commits, 1),
            "wal_bytes_per_commit": (wal1["lsn"] - wal0["lsn"]) / max(commits, 1)}


async def fdatasync_rate(cluster: LocalCluster) -> float:
    """pg_test_fsync's fdatasync ops/s for one 8 kB write (the WAL's default sync method), on the
    cluster's file system: the ceiling of commits that each wait for their own WAL flush."""
    path = cluster.base_dir / "fsync.test"
    proc = await asyncio.create_subprocess_exec(
        str(DEFAULT_PG_BIN / "pg_test_fsync"), "-s", "1", "-f", str(path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    path.unlink(missing_ok=True)
    match = re.search(r"^\s+fdatasync\s+([\d.]+) ops/sec", out.decode(), re.M)
    if match is None:
        raise RuntimeError(f"pg_test_fsync: {out.decode()[-1000:]}")
    return float(match.group(1))


def cpu_us(cpu: dict[str, float], group: str, rate: float) -> float:
    """CPU-µs of a group per unit of work at `rate` units/s."""
    return cpu.get(group, 0.0) / max(rate, 1e-9) * 1e6


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:,.0f}"
    return f"{statistics.median(values):,.0f} (min {min(values):,.0f}, max {max(values):,.0f})"


# --- part 1: durable events/s through k instances ----------------------------------------------------

class Posters:
    def __init__(self, urls: list[str], window: int) -> None:
        config = log_dir() / f"posters-{uuid.uuid4().hex[:6]}.json"
        config.write_text(json.dumps({"urls": urls, "window": window, "report_ms": 100, "pad": PAD}))
        self.proc = Proc(f"posters-{config.stem}", ["node", str(NODE_DIR / "posters.js"), str(config)],
                         json_stdout=True, stdin=True, cwd=NODE_DIR)

    async def ready(self) -> None:
        item = await self.proc.expect("ready", 120)
        if item["failed"]:
            raise RuntimeError(f"{item['failed']} posters could not connect: {self.proc.tail()}")

    async def stats(self) -> dict[str, Any]:
        return await self.proc.next_stats()

    async def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.send("quit")
        await self.proc.stop()


async def instances_round(cluster: LocalCluster, url: str, members: list[list[Member]], k: int,
                          seconds: float, window: int) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        servers = []
        for i in range(k):
            server = hearth_server(url, f"limits-{k}x-{i}-{uuid.uuid4().hex[:4]}")
            stack.push_async_callback(server.stop)
            servers.append(server)
        await asyncio.gather(*(s.ready(timeout=120) for s in servers))  # 4 imports on 2 busy cores
        flat = [m for session in members for m in session]
        urls = [f"{servers[i % k].ws_url}?token={m.token()}" for i, m in enumerate(flat)]
        posters = Posters(urls, window)
        stack.push_async_callback(posters.stop)
        await posters.ready()
        posters.proc.send("go")
        await asyncio.sleep(1.5)  # warm-up: pools grow to their size, caches fill
        sampler = WaitSampler(cluster.url())
        meter = SchedCpuMeter({"postgres": [], "app": [s.pid for s in servers], "clients": [posters.proc.pid],
                               "sampler": [await sampler.start()]}, cluster)
        s0 = await posters.stats()
        t0 = time.monotonic()
        meter.start()
        await asyncio.sleep(seconds)
        s1 = await posters.stats()
        t1 = time.monotonic()
        cpu = meter.stop()
        waits = await sampler.stop()
        posters.proc.send("stop")
        if s1["closed"] or s1["errors"]:
            raise RuntimeError(f"posters: {s1['closed']} closed, {s1['errors']} errors: {s1['codes']}")
        rate = (s1["acks"] - s0["acks"]) / (t1 - t0)
        return {"events_per_s": rate, "delivered_per_s": (s1["delivered"] - s0["delivered"]) / (t1 - t0),
                "cpu": cpu, "waits": waits}


async def bench_instances(cluster: LocalCluster, args: argparse.Namespace) -> dict[str, Any]:
    log(f"== 1. durable events/s: {args.sessions * 2} websocket posters in {args.sessions} sessions"
        f" (window {args.window} each), over {'/'.join(map(str, args.instances))} instances;"
        f" peer: {args.sessions} pgbench writers calling hearth.post_message")
    url = await create_database(cluster, f"limits_{uuid.uuid4().hex[:8]}")
    async with _db.connect(url) as conn:
        await conn.execute("SELECT hearth.set_setting('frame_rate_limit', '1000000')")
    members = await make_members(url, args.sessions, 2)
    await add_writers(url, members)
    kinds = [*(f"{k} instance{'s' if k > 1 else ''}" for k in args.instances), "sql"]
    rounds: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for r in range(args.rounds):
        for kind in kinds:
            if kind == "sql":
                res = await run_pgbench(cluster, url, args.sessions, args.seconds, sync_commit=True)
                res["events_per_s"] = res["tps"]
                app = ""
            else:
                res = await instances_round(cluster, url, members, int(kind.split()[0]), args.seconds,
                                            args.window)
                app = (f", app {cpu_us(res['cpu'], 'app', res['events_per_s']):.0f}"
                       f", posters {cpu_us(res['cpu'], 'clients', res['events_per_s']):.0f}")
            rounds[kind].append(res)
            c = res["cpu"]
            log(f"  round {r + 1} {kind:12} {res['events_per_s']:8,.0f} events/s;"
                f" CPU-µs per event: postgres {cpu_us(c, 'postgres', res['events_per_s']):.0f}{app};"
                f" cores: postgres {c['postgres']:.2f} (+{c['pg background']:.2f} background),"
                f" machine {c['machine']:.2f}, others {c['others']:.2f};"
                f" waits: {waits_text(res['waits'])}")
    return rounds


# --- part 2: N writers with and without NOTIFY --------------------------------------------------------

# variant: (NOTIFY in emit_event, synchronous_commit, events per transaction)
VARIANTS = {"notify": (True, True, 1), "quiet": (False, True, 1), "notify async": (True, False, 1),
            "quiet async": (False, False, 1), "notify x10": (True, True, 10)}


async def bench_writers(cluster: LocalCluster, args: argparse.Namespace) -> dict[str, Any]:
    log(f"== 2. commits/s of N pgbench writers (hearth.post_message, one session each), N ="
        f" {','.join(map(str, args.writers))}: stock (notify) vs emit_event without NOTIFY (quiet);"
        " synchronous_commit on, and off (async); notify x10: 10 post_message calls per transaction")
    variants = {v: VARIANTS[v] for v in args.variants}
    urls = {}
    most = max(args.writers)
    for notify in (True, False):
        url = await create_database(cluster, f"writers_{'notify' if notify else 'quiet'}")
        await add_writers(url, await make_members(url, most, 1))
        if not notify:
            await make_quiet(url)
        urls[notify] = url
    rounds: dict[str, dict[int, list[dict[str, Any]]]] = {v: {n: [] for n in args.writers} for v in variants}
    fsyncs = []
    for r in range(args.rounds):
        fsyncs.append(await fdatasync_rate(cluster))
        log(f"  round {r + 1} pg_test_fsync: fdatasync of one 8 kB write {fsyncs[-1]:,.0f}/s")
        for n in args.writers:
            for variant, (notify, sync, batch) in variants.items():
                res = await run_pgbench(cluster, urls[notify], n, args.seconds, sync_commit=sync, batch=batch)
                rounds[variant][n].append(res)
                res["events_per_s"] = res["tps"] * batch
                events = f" = {res['events_per_s']:,.0f} events/s" if batch > 1 else ""
                log(f"  round {r + 1} N={n:<3} {variant:13} {res['tps']:8,.0f} commits/s{events};"
                    f" CPU-µs/commit postgres {cpu_us(res['cpu'], 'postgres', res['tps']):4.0f},"
                    f" pgbench {cpu_us(res['cpu'], 'pgbench', res['tps']):4.0f};"
                    f" {res['wal_syncs_per_commit']:.2f} WAL syncs/commit; pg background"
                    f" {res['cpu']['pg background']:.2f} cores, others {res['cpu']['others']:.2f};"
                    f" waits: {waits_text(res['waits'])}")
    return {"fdatasync_per_s": fsyncs, **rounds}


# --- part 3: listeners ---------------------------------------------------------------------------------

async def listeners_round(cluster: LocalCluster, url: str, listeners: int, writers: int, seconds: float,
                          sync: bool) -> dict[str, Any]:
    proc = None
    if listeners:
        proc = Proc(f"listeners-{listeners}", [sys.executable, "-m", "bench.listeners", url, "hearth_events",
                                               str(listeners)], json_stdout=True, stdin=True)
        await proc.expect("ready", 60)
    try:
        res = await run_pgbench(cluster, url, writers, seconds, sync_commit=sync,
                                groups={"listeners": [proc.pid] if proc else []})
        if proc:
            proc.send("count")
            await asyncio.sleep(0.5)
            proc.send("count")
            res["received"] = (await proc.expect("count", 10))["received"]
    finally:
        if proc:
            with contextlib.suppress(OSError):
                proc.send("quit")
            await proc.stop()
    return res


async def bench_listeners(cluster: LocalCluster, args: argparse.Namespace) -> dict[str, Any]:
    log(f"== 3. {args.listen_writers} notifying pgbench writers while L connections LISTEN on hearth_events,"
        f" L = {','.join(map(str, args.listeners))}; synchronous_commit on and off (async)")
    url = await create_database(cluster, "listeners")
    await add_writers(url, await make_members(url, args.listen_writers, 1))
    rounds: dict[str, dict[int, list[dict[str, Any]]]] = {v: {n: [] for n in args.listeners}
                                                          for v in ("notify", "notify async")}
    for r in range(args.rounds):
        for n in args.listeners:
            for variant in rounds:
                res = await listeners_round(cluster, url, n, args.listen_writers, args.seconds,
                                            variant == "notify")
                rounds[variant][n].append(res)
                log(f"  round {r + 1} L={n:<3} {variant:13} {res['tps']:8,.0f} commits/s;"
                    f" postgres {cpu_us(res['cpu'], 'postgres', res['tps']):4.0f} CPU-µs/commit,"
                    f" listener process {res['cpu'].get('listeners', 0.0):.2f} cores;"
                    f" others {res['cpu']['others']:.2f}; waits: {waits_text(res['waits'])}")
    return rounds


# --- summary ---------------------------------------------------------------------------------------------

def med(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def med_cpu(rows: list[dict[str, Any]], group: str, rate_key: str) -> float:
    return statistics.median(cpu_us(r["cpu"], group, r[rate_key]) for r in rows)


def tps_ratio(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> float:
    return med(a, "tps") / med(b, "tps")


def summary(results: dict[str, Any]) -> None:
    log("== summary (medians over rounds; min and max in brackets)")
    if "instances" in results:
        rounds = results["instances"]
        sql = med(rounds["sql"], "events_per_s")
        for kind, rows in rounds.items():
            rate = med(rows, "events_per_s")
            pg_us = med_cpu(rows, "postgres", "events_per_s")
            app = ""
            if kind != "sql":
                app_us = med_cpu(rows, "app", "events_per_s")
                app = (f", app {app_us:.0f}, posters {med_cpu(rows, 'clients', 'events_per_s'):.0f};"
                       f" per core: postgres {1e6 / pg_us:,.0f} events/s, app {1e6 / app_us:,.0f} events/s")
            log(f"  {kind:12} {spread([r['events_per_s'] for r in rows])} events/s, x{rate / sql:.2f} of"
                f" pgbench direct; CPU-µs per event: postgres {pg_us:.0f}{app}")
    if "writers" in results:
        part = dict(results["writers"])
        log(f"  pg_test_fsync fdatasync/s: {spread(part.pop('fdatasync_per_s'))}")
        for n in part["notify"]:
            cells = [f"{variant} {spread([r['tps'] for r in by_n[n]])}"
                     f" ({med_cpu(by_n[n], 'postgres', 'tps'):.0f} µs,"
                     f" {med(by_n[n], 'wal_syncs_per_commit'):.2f})"
                     for variant, by_n in part.items()]
            log(f"  writers N={n:<3} commits/s (postgres CPU-µs/commit, WAL syncs/commit):"
                f" {'; '.join(cells)}")
            if {"notify", "quiet", "notify async", "quiet async"} <= part.keys():
                log(f"    notify/quiet x{tps_ratio(part['notify'][n], part['quiet'][n]):.2f},"
                    f" async x{tps_ratio(part['notify async'][n], part['quiet async'][n]):.2f}")
            if {"notify", "notify x10"} <= part.keys():
                batched = med(part["notify x10"][n], "events_per_s")
                log(f"    notify x10: {batched:,.0f} events/s, x{batched / med(part['notify'][n], 'tps'):.2f}"
                    " of one event per transaction")
    if "listeners" in results:
        part = results["listeners"]
        zero = next(iter(part["notify"]))
        for n in part["notify"]:
            cells = []
            for variant, by_n in part.items():
                rows, base = by_n[n], by_n[zero]
                extra = med_cpu(rows, "postgres", "tps") - med_cpu(base, "postgres", "tps")
                extra = extra / n if n else 0.0
                cells.append(f"{variant} {spread([r['tps'] for r in rows])} x{tps_ratio(rows, base):.2f}"
                             f" ({med_cpu(rows, 'postgres', 'tps'):.0f} µs; +{extra:.0f} per listener)")
            log(f"  listeners L={n:<3} commits/s vs L={zero} (postgres CPU-µs/commit): {'; '.join(cells)}")
    others = [r["cpu"]["others"] for part in ("instances", "writers", "listeners") if part in results
              for rows in _all_rounds(results[part]) for r in rows]
    if others:
        log(f"  other work on the machine during the windows: median {statistics.median(others):.2f} cores"
            f" (min {min(others):.2f}, max {max(others):.2f})")


def _all_rounds(part: dict[str, Any]) -> list[list[dict[str, Any]]]:
    out = []
    for value in part.values():
        if isinstance(value, dict):
            out.extend(value.values())
        elif value and isinstance(value[0], dict):
            out.append(value)
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    missing = check_prerequisites(peers=False)
    if missing:
        raise SystemExit("missing: " + "; ".join(missing))
    raise_nofile()
    started = time.perf_counter()
    results: dict[str, Any] = {"machine": _db.machine_facts(), "command": " ".join(sys.argv)}
    with _db.bench_cluster() as cluster:
        async with _db.connect(cluster.url()) as conn:
            await conn.execute("ALTER SYSTEM SET track_wal_io_timing = on")
            await conn.execute("SELECT pg_reload_conf()")
            results["server"] = await _db.server_facts(conn)
        log("machine: " + ", ".join(f"{k} {v}" for k, v in results["machine"].items()))
        log("server:  " + ", ".join(f"{k} {v}" for k, v in results["server"].items()))
        if "instances" in args.parts:
            results["instances"] = await bench_instances(cluster, args)
        if "writers" in args.parts:
            results["writers"] = await bench_writers(cluster, args)
        if "listeners" in args.parts:
            results["listeners"] = await bench_listeners(cluster, args)
    summary(results)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    log(f"total run time {time.perf_counter() - started:.0f} s; load average at the end {load};"
        f" logs {log_dir()}")
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    def ints(text: str) -> list[int]:
        return [int(x) for x in text.split(",")]

    parser = argparse.ArgumentParser(prog="python -m bench.primary_limits",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one round of 3 s, fewer sizes (about two minutes)")
    parser.add_argument("--parts", type=lambda s: s.split(","), default=["instances", "writers", "listeners"])
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every kind, interleaved (2)")
    parser.add_argument("--seconds", type=float, default=4.0, help="measuring window of each round (4)")
    parser.add_argument("--instances", type=ints, default=[1, 2, 4], help="Hearth instances (1,2,4)")
    parser.add_argument("--sessions", type=int, default=32, help="sessions of 2 posters each (32)")
    parser.add_argument("--window", type=int, default=4, help="frames awaiting their ack per poster (4)")
    parser.add_argument("--writers", type=ints, default=[1, 2, 4, 8, 16, 32], help="pgbench writers")
    parser.add_argument("--variants", type=lambda s: s.split(","), default=list(VARIANTS),
                        help=f"writers' variants ({','.join(VARIANTS)})")
    parser.add_argument("--listeners", type=ints, default=[0, 1, 2, 4, 8, 16, 32],
                        help="listening connections")
    parser.add_argument("--listen-writers", type=int, default=8, help="writers in the listeners part (8)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 1, 3.0
        args.instances, args.sessions = [1, 2], 16
        args.writers, args.listeners = [1, 4, 16], [0, 4, 32]
    return args


if __name__ == "__main__":
    arguments = parse_args()
    figures = asyncio.run(main(arguments))
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(figures, indent=1))
