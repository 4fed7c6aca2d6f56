"""Idle websockets: server memory per connection, and database load from heartbeats (issue 3,
"Performance" 3, 4 and 5). Run: `.venv/bin/python -m bench.relay_memory`.

1. RSS of the server process before and after opening N (default 5,000) idle websockets from Node
   `ws` clients in another process (socket.io-client for Socket.IO), after a warm-up of 50
   connections opened and closed. Hearth's N participants are made through the SQL API as the
   superuser (500 room sessions of 10: `create_session`, `create_identity`, `join_session`) and their
   session tokens minted with app.tokens.issue. Peers in the same run: a bare `websockets` server,
   encode/broadcaster behind Starlette (all on one channel), Socket.IO with the Redis adapter.
2. With Hearth's N clients each sending {"type":"ping"} every 30 s (staggered), the database load
   over `--window-s`: `hearth.touch` calls per second and participants per call, from the instance's
   /metrics (hearth_db_call_seconds_count{function="touch"}, hearth_heartbeat_batch_size_*) and from
   pg_stat_user_functions (track_functions = all). Target: at most one touch call per second.

The open-files limit is raised to its hard limit (children inherit it). About 3 minutes in all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from typing import Any

from bench.common import fmt_int, log, log_dir, save_json
from bench.load import Clients, bench_cluster, create_database, make_members
from bench.measure import function_calls, rss_kib, server_metrics
from bench.processes import (
    BroadcasterServer,
    RawServer,
    SioServer,
    check_prerequisites,
    hearth_server,
    raise_nofile,
    redis,
)

SYSTEMS = ("hearth", "raw", "broadcaster", "sio")
WARMUP_CONNECTIONS = 50
PER_SESSION = 10


async def rss_per_socket(
    name: str, pid: int, urls: list[str] | None, sio_url: str | None, n: int, args: argparse.Namespace,
    stack: contextlib.AsyncExitStack,
) -> tuple[dict[str, Any], Clients]:
    """Warm up, read RSS, open n idle sockets, settle, read RSS again. The clients stay open (in stack)."""
    def clients_for(count: int, label: str) -> Clients:
        if sio_url is not None:
            return Clients.sio(f"{name}-{label}", sio_url, count, report_ms=500, concurrency=args.concurrency)
        assert urls is not None
        return Clients.ws(f"{name}-{label}", urls[:count], report_ms=500, concurrency=args.concurrency,
                          ping_interval_s=args.ping_s)

    warm = clients_for(WARMUP_CONNECTIONS, "warmup")
    await warm.ready()
    await warm.stop()
    await asyncio.sleep(args.settle_s)
    before = rss_kib(pid)
    clients = clients_for(n, "idle")
    stack.push_async_callback(clients.stop)
    ready = await clients.ready(timeout=300)
    await asyncio.sleep(args.settle_s)
    after = rss_kib(pid)
    row = {"system": name, "connections": n, "rss_before_kib": before, "rss_after_kib": after,
           "kib_per_socket": (after - before) / n, "connect_s": ready["ms"] / 1000}
    log(f"  {name:<11} RSS {before / 1024:7.1f} MiB -> {after / 1024:7.1f} MiB with {fmt_int(n)} idle"
        f" sockets: {row['kib_per_socket']:.1f} KiB per socket (connected in {row['connect_s']:.1f} s)")
    return row, clients


async def hearth_memory(cluster: Any, args: argparse.Namespace) -> dict[str, Any]:
    url = await create_database(cluster, "relay_memory")
    sessions = await make_members(url, args.connections // PER_SESSION, PER_SESSION)
    urls: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        server = hearth_server(url, "hearth-memory")
        stack.push_async_callback(server.stop)
        await server.ready()
        urls = [f"{server.ws_url}?token={m.token()}" for members in sessions for m in members]
        row, clients = await rss_per_socket("hearth", server.pid, urls, None, len(urls), args, stack)
        metrics = await server_metrics(server.base_url)
        row["open_per_metrics"] = metrics.get("hearth_ws_connections", 0)

        # Heartbeats: every client pings every ping_s; the instance touches in batches.
        log(f"  heartbeats: {fmt_int(len(urls))} clients pinging every {args.ping_s:g} s;"
            f" watching the database for {args.window_s:g} s ...")
        key = 'hearth_db_call_seconds_count{function="touch"}'
        m0, f0, s0 = metrics, await function_calls(url, "hearth", "touch"), clients.stats
        t0 = time.monotonic()
        await asyncio.sleep(args.window_s)
        m1, f1 = await server_metrics(server.base_url), await function_calls(url, "hearth", "touch")
        s1 = clients.stats
        elapsed = time.monotonic() - t0
        batches = m1["hearth_heartbeat_batch_size_count"] - m0["hearth_heartbeat_batch_size_count"]
        touched = m1["hearth_heartbeat_batch_size_sum"] - m0["hearth_heartbeat_batch_size_sum"]
        touch_time = (m1['hearth_db_call_seconds_sum{function="touch"}']
                      - m0['hearth_db_call_seconds_sum{function="touch"}'])
        calls = m1[key] - m0[key]
        heartbeat = {
            "window_s": elapsed, "clients": len(urls), "ping_interval_s": args.ping_s,
            "pings_sent": s1.pings - s0.pings, "pongs": s1.pongs - s0.pongs,
            "touch_calls_per_s_metrics": calls / elapsed,
            "touch_calls_per_s_pg_stat": (f1 - f0) / elapsed,
            "participants_per_call": touched / batches if batches else 0.0,
            "participants_touched_per_s": touched / elapsed,
            "touch_ms_mean": touch_time / calls * 1000 if calls else None,
            "rss_end_kib": rss_kib(server.pid), "closed": s1.closed,
        }
        log(f"  heartbeats: {heartbeat['pings_sent']} pings sent ({heartbeat['pongs']} pongs) in"
            f" {elapsed:.0f} s;"
            f" hearth.touch {heartbeat['touch_calls_per_s_metrics']:.2f} calls/s per /metrics,"
            f" {heartbeat['touch_calls_per_s_pg_stat']:.2f} calls/s per pg_stat_user_functions;"
            f" {heartbeat['participants_per_call']:.0f} participants per call"
            f" ({heartbeat['participants_touched_per_s']:.0f}/s),"
            f" {heartbeat['touch_ms_mean'] or 0:.1f} ms per call;"
            f" RSS at the end {heartbeat['rss_end_kib'] / 1024:.1f} MiB, {s1.closed} sockets closed")
        row["heartbeat"] = heartbeat
    return row


async def peer_memory(system: str, cluster: Any, args: argparse.Namespace) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        if system == "raw":
            server: Any = RawServer()
            stack.push_async_callback(server.stop)
            await server.ready()
            row, _ = await rss_per_socket("raw", server.proc.pid, [server.url] * args.connections,
                                          None, args.connections, args, stack)
        elif system == "broadcaster":
            server = BroadcasterServer(cluster.url("postgres"))
            stack.push_async_callback(server.stop)
            await server.ready()
            row, _ = await rss_per_socket("broadcaster", server.proc.pid, [server.url] * args.connections,
                                          None, args.connections, args, stack)
        elif system == "sio":
            redis_url = await stack.enter_async_context(redis())
            server = SioServer(redis_url, f"hearth-bench-mem-{time.time_ns()}", "sio-memory")
            stack.push_async_callback(server.stop)
            await server.ready()
            row, _ = await rss_per_socket("sio", server.proc.pid, None, server.url, args.connections,
                                          args, stack)
        else:
            raise SystemExit(f"unknown system {system!r}")
    return row


async def run(args: argparse.Namespace) -> dict[str, Any]:
    hard = raise_nofile()
    systems = [s for s in args.systems.split(",") if s]
    missing = check_prerequisites(peers=bool({"broadcaster", "sio"} & set(systems)))
    if missing:
        raise SystemExit("missing: " + "; ".join(missing))
    if hard < args.connections + 1000:
        raise SystemExit(f"the open-files hard limit ({hard}) is too low for {args.connections} sockets")
    rows = []
    with bench_cluster() as cluster:
        log(f"Idle websockets: {fmt_int(args.connections)} connections per server (logs in {log_dir()})")
        for system in systems:
            if system == "hearth":
                rows.append(await hearth_memory(cluster, args))
            else:
                rows.append(await peer_memory(system, cluster, args))
    by = {r["system"]: r for r in rows}
    if "hearth" in by and "raw" in by:
        log(f"hearth / raw websockets memory per socket: "
            f"{by['hearth']['kib_per_socket'] / by['raw']['kib_per_socket']:.2f}"
            f" (target: hearth <= 64 KiB per socket)")
    return {"connections": args.connections, "rows": rows}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--connections", type=int, default=5000)
    p.add_argument("--systems", default=",".join(SYSTEMS))
    p.add_argument("--ping-s", type=float, default=30.0, help="client heartbeat interval")
    p.add_argument("--window-s", type=float, default=60.0, help="heartbeat observation window")
    p.add_argument("--settle-s", type=float, default=3.0)
    p.add_argument("--concurrency", type=int, default=50, help="connection attempts in flight")
    p.add_argument("--json", help="also write the figures to this file")
    return p


def main() -> None:
    args = parser().parse_args()
    results = asyncio.run(run(args))
    save_json(args.json, results)


if __name__ == "__main__":
    main()
