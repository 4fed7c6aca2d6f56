"""Matchmaking benchmark (SQL). Run: `.venv/bin/python -m bench.matchmaking`.

match_waiting throughput: 40,000 identities waiting (bulk-inserted, queued a millisecond apart), 8
connections as hearth_app each looping `SELECT hearth.match_waiting(100)` (2 ms pause after a call
that found nothing, which happens at the end while the others hold the last candidates) until every
identity is matched; matches per second against the target of 2,000, then a check that no identity was matched
twice and that every identity is in the match it points at. Then, on a fresh queue, the same with one
caller (for scale), and the per-statement profile of the run from pg_stat_statements (enabled in this
cluster only, track = all, so the statements inside the functions show).

A throwaway cluster is started in a temporary directory (loopback only) and destroyed at the end; the
run takes about a minute and stops at `--deadline` seconds whatever happens. `--json FILE` also writes
the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

from app.cluster import LocalCluster
from bench._db import bench_cluster, connect, create_database, machine_facts, server_facts, settle
from bench.common import log

TARGET = 2_000  # matches per second
TABLES = ("hearth_data.identities", "hearth_data.sessions", "hearth_data.matches", "hearth_data.events",
          "hearth_data.livekit_jobs")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these (local) server processes: a cost that other load on the machine
    does not inflate the way it inflates wall time."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


async def fill_queue(conn: asyncpg.Connection, n: int) -> None:
    """n waiting identities straight into the table, queued 1 ms apart (oldest first)."""
    await conn.execute(
        """INSERT INTO hearth_data.identities
               (display_name, match_state, queued_at, created_at, last_active_at)
           SELECT 'bench ' || g, 'waiting', now() - interval '1 hour' + g * interval '1 millisecond',
                  now() - interval '1 hour', now()
             FROM generate_series(1, $1) g""",
        n,
    )
    await settle(conn, *TABLES)


async def run_matchers(url: str, callers: int, limit: int, expected: int, deadline: float) -> dict[str, Any]:
    """`callers` connections loop match_waiting(limit) until `expected` matches were made (or the
    deadline passes). A call that returns 0 while others still hold candidates is simply repeated."""
    conns = [await asyncpg.connect(url) for _ in range(callers)]
    pids = [await conn.fetchval("SELECT pg_backend_pid()") for conn in conns]
    for conn in conns:
        await conn.execute("SET ROLE hearth_app")
    total = 0
    calls: list[float] = []
    empty_calls = 0
    # Calls that found nothing although, when they started, more candidates were left than all the
    # other callers together could hold: there should be none.
    empty_with_plenty_left = 0

    async def loop(conn: asyncpg.Connection) -> None:
        nonlocal total, empty_calls, empty_with_plenty_left
        while total < expected and time.monotonic() < deadline:
            plenty = expected - total > callers * limit
            started = time.perf_counter()
            n = await conn.fetchval("SELECT hearth.match_waiting($1)", limit)
            calls.append(time.perf_counter() - started)
            total += n
            empty_calls += n == 0
            empty_with_plenty_left += n == 0 and plenty
            if n == 0:
                await asyncio.sleep(0.002)  # the others hold the rest: back off a little, as the app would

    try:
        cpu_before = cpu_seconds(pids)
        started = time.perf_counter()
        await asyncio.gather(*(loop(c) for c in conns))
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(pids) - cpu_before
    finally:
        for conn in conns:
            await conn.close()
    return {
        "callers": callers,
        "limit": limit,
        "matches": total,
        "seconds": elapsed,
        "matches_per_s": total / elapsed,
        "server_cpu_ms_per_match": cpu / max(total, 1) * 1000,
        "calls": len(calls),
        "empty_calls": empty_calls,
        "empty_with_plenty_left": empty_with_plenty_left,
        "call_ms_median": statistics.median(calls) * 1000,
        "call_ms_p95": (statistics.quantiles(calls, n=20)[-1] if len(calls) >= 20 else max(calls)) * 1000,
        "timed_out": total < expected,
    }


async def check(conn: asyncpg.Connection, identities: int) -> dict[str, int]:
    """Nobody matched twice; everyone matched, pointing at a match that contains them, told once."""
    row = await conn.fetchrow(
        """SELECT
             (SELECT count(*) FROM (SELECT who FROM (SELECT identity_a AS who FROM hearth_data.matches
                                                     UNION ALL
                                                     SELECT identity_b FROM hearth_data.matches) t
                                    GROUP BY who HAVING count(*) > 1) d) AS matched_twice,
             (SELECT count(*) FROM hearth_data.matches) AS matches,
             (SELECT count(*) FROM hearth_data.identities WHERE match_state = 'waiting') AS still_waiting,
             (SELECT count(*) FROM hearth_data.identities i
                JOIN hearth_data.matches m ON m.session_id = i.match_session_id
                                         AND i.identity_id IN (m.identity_a, m.identity_b)
               WHERE i.match_state = 'connecting') AS consistent,
             (SELECT count(*) FROM hearth_data.events WHERE type = 'match.found') AS match_found_events,
             (SELECT count(*) FROM hearth_data.livekit_jobs WHERE kind = 'create_room') AS room_jobs"""
    )
    assert row is not None
    result = dict(row)
    result["ok"] = int(
        result["matched_twice"] == 0
        and result["matches"] == identities // 2
        and result["still_waiting"] == 0
        and result["consistent"] == identities
        and result["match_found_events"] == identities
        and result["room_jobs"] == identities // 2
    )
    return result


async def statement_profile(conn: asyncpg.Connection, top: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT calls, round(total_exec_time::numeric, 1) AS total_ms,
                  round((total_exec_time / calls)::numeric, 4) AS mean_ms, rows,
                  regexp_replace(left(query, 110), '\\s+', ' ', 'g') AS query
             FROM pg_stat_statements
            WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
            ORDER BY total_exec_time DESC LIMIT $1""",
        top,
    )
    return [dict(r) for r in rows]


async def bench_run(url: str, name: str, identities: int, callers: int, limit: int, deadline: float,
                    profile: bool) -> dict[str, Any]:
    async with connect(url) as admin:
        await fill_queue(admin, identities)
        if profile:
            await admin.execute("SELECT pg_stat_statements_reset()")
    result = await run_matchers(url, callers, limit, identities // 2, deadline)
    async with connect(url) as admin:
        result["check"] = await check(admin, identities)
        if profile:
            result["profile"] = await statement_profile(admin, 14)
    result["ratio_to_target"] = result["matches_per_s"] / TARGET
    log(f"{name}: {result['matches']} matches in {result['seconds']:.2f} s = {result['matches_per_s']:.0f}/s"
        f" ({result['ratio_to_target']:.2f} x target {TARGET}/s), {callers} callers x match_waiting({limit}),"
        f" {result['calls']} calls ({result['empty_calls']} returned 0, {result['empty_with_plenty_left']}"
        f" of them with plenty left), call median"
        f" {result['call_ms_median']:.1f} ms, p95 {result['call_ms_p95']:.1f} ms"
        + (" TIMED OUT" if result["timed_out"] else ""))
    cores = len(os.sched_getaffinity(0))
    log(f"  server CPU {result['server_cpu_ms_per_match']:.3f} ms per match (the callers' backends): at most"
        f" ~{cores / result['server_cpu_ms_per_match'] * 1000:.0f} matches/s on {cores} otherwise idle cores")
    log(f"  check: {result['check']}")
    for line in result.get("profile", []):
        log(f"  {line['calls']:>7} calls {line['total_ms']:>9} ms {line['mean_ms']:>8} ms/call"
            f" {line['rows']:>7} rows  {line['query']}")
    return result


async def enable_pg_stat_statements(cluster: LocalCluster) -> None:
    async with connect(cluster.url()) as conn:
        libraries = await conn.fetchval("SHOW shared_preload_libraries")
    wanted = ",".join(x for x in [libraries, "pg_stat_statements"] if x)
    with (cluster.data_dir / "postgresql.conf").open("a") as conf:
        conf.write(f"shared_preload_libraries = '{wanted}'\npg_stat_statements.track = 'all'\n")
    cluster.restart()
    cluster.wait_ready()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    deadline = time.monotonic() + args.deadline
    results: dict[str, Any] = {"machine": machine_facts(), "command": " ".join(sys.argv)}
    log("machine: " + ", ".join(f"{k} {v}" for k, v in results["machine"].items()))
    with bench_cluster() as cluster:
        await enable_pg_stat_statements(cluster)
        async with connect(cluster.url()) as conn:
            results["server"] = await server_facts(conn)
        log("server:  " + ", ".join(f"{k} {v}" for k, v in results["server"].items()))
        url = await create_database(cluster, "bench_match")
        async with connect(url) as conn:
            await conn.execute("CREATE EXTENSION pg_stat_statements")
        results["concurrent"] = await bench_run(url, f"{args.callers} callers", args.identities, args.callers,
                                                args.limit, deadline, profile=True)
        if args.single and time.monotonic() < deadline:
            url = await create_database(cluster, "bench_match_single")
            results["single"] = await bench_run(url, "1 caller", args.identities, 1, args.limit, deadline,
                                                profile=False)
    runs = [results[k] for k in ("concurrent", "single") if k in results]
    ok = all(r["check"]["ok"] and not r["timed_out"] for r in runs)
    results["ok"] = ok
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    log(f"{'OK' if ok else 'FAILED'}: total run time {time.perf_counter() - started:.0f} s;"
        f" load average at the end {load}")
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.matchmaking", description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=40_000, help="waiting identities (40000)")
    parser.add_argument("--callers", type=int, default=8, help="concurrent match_waiting callers (8)")
    parser.add_argument("--limit", type=int, default=100, help="p_limit of each call (100)")
    parser.add_argument("--no-single", dest="single", action="store_false", help="skip the 1-caller run")
    parser.add_argument("--deadline", type=float, default=170.0, help="stop after this many seconds (170)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    figures = asyncio.run(main(arguments))
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(figures, indent=1, default=str))
    sys.exit(0 if figures["ok"] else 1)
