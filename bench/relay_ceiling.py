"""Relay ceiling (issue 3, "Performance" 1 and 5). Run: `.venv/bin/python -m bench.relay_ceiling`.

1. The database ceiling: raw asyncpg LISTEN/NOTIFY, one producer connection, one NOTIFY per
   transaction and 50 NOTIFYs per transaction, the listener in another process (notifications/s
   received, and commit-to-callback latency).
2. Delivered frames per second from one server to N websocket clients (default 1,000) in one
   session, in the same run, for:
   - hearth: one `hearth serve`; events are `hearth.post_message` calls from a separate asyncpg
     producer, as many per transaction (one statement) as the window allows;
   - raw: a bare `websockets` server (bench/relay_raw_server.py), `websockets.broadcast` of the same
     frames (the target is hearth/raw >= 0.5);
   - broadcaster: encode/broadcaster's Postgres backend behind a minimal Starlette endpoint
     (bench/relay_broadcaster_server.py), fed by NOTIFYs of the same frames from an asyncpg producer;
   - sio: Socket.IO 4 + Redis adapter, two Node instances: the frames are emitted on A, reach B
     through Redis, and B sends them to its N clients.
   Clients are Node `ws` (socket.io-client for sio) in one separate process that JSON-parses every
   frame. The producer is closed-loop: it keeps `--window` events in flight past the slowest client,
   so each server runs flat out without piling up frames; the figure is frames delivered per second
   over `--measure-s` after `--warmup-s`.

Everything runs on loopback, on a throwaway cluster, and stops by itself (about 3-4 minutes).
`--profile` also records the Hearth server with py-spy (into the log directory).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
import uuid
from typing import Any

import asyncpg

from bench.common import fmt_int, log, log_dir, percentile, save_json
from bench.load import (
    Target,
    Throughput,
    bench_cluster,
    body,
    create_database,
    drive_window,
    hearth_shaped_frame,
    make_members,
    make_target,
)
from bench.measure import CpuMeter, Profiler, SyscallCounter
from bench.processes import Proc, check_prerequisites, cluster_pids, raise_nofile

NOTIFY_CHANNEL = "bench_notify"
SYSTEMS = ("hearth", "raw", "broadcaster", "sio", "raw-framed")


# --- 1. LISTEN/NOTIFY --------------------------------------------------------------------------------

async def listen_main(url: str, channel: str) -> None:
    """The listener process: counts notifications, and samples their latency (now - the frame's
    body.ts) on every 8th, so that parsing does not become the bottleneck."""
    conn = await asyncpg.connect(url)
    lat: list[float] = []
    count = 0

    def on_notify(_c: Any, _pid: int, _channel: str, payload: str) -> None:
        nonlocal count
        count += 1
        if not count & 7:
            # hearth_events carries doorbells ('<stream id> <seq>'), not frames: no latency from those.
            with contextlib.suppress(ValueError):
                lat.append(time.time() * 1000 - json.loads(payload)["body"]["ts"])

    await conn.add_listener(channel, on_notify)
    print(json.dumps({"ev": "listening"}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def report() -> None:
        while True:
            print(json.dumps({"ev": "stats", "total": count, "min": count, "open": 1, "closed": 0,
                              "codes": {}, "pongs": 0, "pings": 0}), flush=True)
            await asyncio.sleep(0.02)

    task = asyncio.create_task(report())
    while line := await reader.readline():
        if line.strip() == b"latency":
            s = sorted(lat)
            print(json.dumps({"ev": "latency", "n": len(s), "p50": percentile(s, 0.5),
                              "p99": percentile(s, 0.99), "max": s[-1] if s else None}), flush=True)
        elif line.strip() == b"reset":
            lat.clear()
    task.cancel()
    await conn.close()


async def notify_ceiling(cluster: Any, url: str, per_txn: int, seconds: float,
                         participant: uuid.UUID | None = None) -> dict[str, Any]:
    """One producer connection as fast as it goes; with `participant`, each transaction is one
    hearth.post_message call (listened to on hearth_events) instead of bare NOTIFYs."""
    channel = "hearth_events" if participant else NOTIFY_CHANNEL
    listener = Proc(f"notify-listener-{per_txn}{'-post' if participant else ''}",
                    [sys.executable, "-m", "bench.relay_ceiling", "--listen", url, "--channel", channel],
                    json_stdout=True, stdin=True)
    producer = await asyncpg.connect(url)
    try:
        await listener.expect("listening", 30)
        seq = 0
        sql = ("SELECT pg_notify($1, $2)" if per_txn == 1
               else "SELECT count(pg_notify($1, p)) FROM unnest($2::text[]) p")

        async def burst(deadline: float) -> int:
            nonlocal seq
            sent = 0
            while time.monotonic() < deadline:
                if participant:
                    await producer.fetchval("SELECT hearth.post_message($1, $2::jsonb)", participant, body())
                elif per_txn == 1:
                    seq += 1
                    await producer.execute(sql, NOTIFY_CHANNEL, hearth_shaped_frame(seq))
                else:
                    frames = [hearth_shaped_frame(seq + i + 1) for i in range(per_txn)]
                    seq += per_txn
                    await producer.fetchval(sql, NOTIFY_CHANNEL, frames)
                sent += per_txn
            return sent

        await burst(time.monotonic() + 1.0)  # warm-up
        await asyncio.sleep(0.2)
        listener.send("reset")
        meter = CpuMeter({"listener": [listener.pid], "producer": [os.getpid()]}, cluster)
        meter.start()
        c0 = listener.last["stats"]["total"]
        t0 = time.monotonic()
        sent = await burst(t0 + seconds)
        t_sent = time.monotonic()
        while listener.last["stats"]["total"] - c0 < sent and time.monotonic() - t_sent < 10:
            await listener.next_stats()
        received = listener.last["stats"]["total"] - c0
        elapsed = time.monotonic() - t0
        cpu = meter.stop()
        listener.send("latency")
        lat = await listener.expect("latency", 10)
        return {"per_txn": per_txn, "post_message": bool(participant), "sent_per_s": sent / (t_sent - t0),
                "received_per_s": received / elapsed,
                "lost": sent - received, "p50_ms": lat["p50"], "p99_ms": lat["p99"],
                "listener_cpu": cpu["listener"], "producer_cpu": cpu["producer"], "others_cpu": cpu["others"]}
    finally:
        await producer.close()
        listener.send("quit")
        await listener.stop()


# --- 2. fan-out ceilings -----------------------------------------------------------------------------

async def measure(target: Target, cluster: Any, args: argparse.Namespace, window: int,
                  profile: bool) -> dict[str, Any]:
    # The database's share: for Hearth, the producer's post_message calls and the relay's reads.
    meter = CpuMeter({"server": target.server_pids, "clients": [target.clients.proc.pid],
                      "database": cluster_pids(cluster)}, cluster)
    profiler = None
    if profile and target.profile_pid is not None:
        profiler = Profiler(target.profile_pid, args.warmup_s + args.measure_s, f"ceiling-{target.name}")
    counter = SyscallCounter(target.server_pids, f"ceiling-{target.name}") if args.syscalls else None
    frames0 = target.clients.stats.total
    meter.start()
    result: Throughput = await drive_window(target.clients, target.produce_batch, window=window,
                                            warmup_s=args.warmup_s, measure_s=args.measure_s)
    cpu = meter.stop()
    per_frame = 1e6 / result.frames_per_s if result.frames_per_s else None
    writes = await counter.stop() if counter is not None else None
    frames = target.clients.stats.total - frames0
    if profiler is not None:
        await profiler.wait()
    # Let the window drain, so the next system starts on a quiet machine.
    await asyncio.sleep(0.5)
    return {"frames_per_s": result.frames_per_s, "events_per_s": result.events_per_s,
            "server_cpu": cpu["server"], "client_cpu": cpu["clients"], "others_cpu": cpu["others"],
            "server_us_per_frame": cpu["server"] * per_frame if per_frame else None,
            "database_us_per_frame": cpu["database"] * per_frame if per_frame else None,
            "writes_per_frame": writes / frames if writes and frames else None}


async def fanout(cluster: Any, args: argparse.Namespace, systems: list[str]) -> list[dict[str, Any]]:
    window = max(10, args.in_flight // args.clients)
    log(f"Fan-out to {args.clients} websocket clients in one session; {window} events in flight past the"
        f" slowest client; {args.rounds} interleaved rounds of {args.measure_s:g} s per system:")
    async with contextlib.AsyncExitStack() as stack:
        targets = []
        for system in systems:
            target = await make_target(system, stack, cluster, args.clients)
            ready = await target.clients.ready()
            log(f"  {system}: {ready['n']} clients connected and ready in {ready['ms'] / 1000:.1f} s")
            targets.append(target)
        await asyncio.sleep(1.0)
        rounds: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
        for r in range(args.rounds):
            for target in targets:
                row = await measure(target, cluster, args, window, args.profile and r == args.rounds - 1)
                rounds[target.name].append(row)
                log(f"  round {r + 1} {target.name:<11} {fmt_int(row['frames_per_s']):>8} frames/s"
                    f" ({row['events_per_s']:6.1f} events/s); CPU: server {row['server_cpu']:.0%},"
                    f" clients {row['client_cpu']:.0%}, other work on the machine {row['others_cpu']:.0%};"
                    f" {row['server_us_per_frame']:.1f} server CPU-us/frame,"
                    f" {row['database_us_per_frame']:.1f} database CPU-us/frame"
                    + (f", {row['writes_per_frame']:.2f} writes/frame" if row["writes_per_frame"] else ""))
        rows = []
        for target in targets:
            runs = rounds[target.name]
            best = max(runs, key=lambda x: x["frames_per_s"])
            rows.append({
                "system": target.name, "clients": args.clients,
                "frames_per_s": statistics.median(x["frames_per_s"] for x in runs),
                "frames_per_s_best": best["frames_per_s"],
                "server_us_per_frame": statistics.median(x["server_us_per_frame"] for x in runs),
                "database_us_per_frame": statistics.median(x["database_us_per_frame"] for x in runs),
                "server_cpu": statistics.median(x["server_cpu"] for x in runs),
                "others_cpu": statistics.median(x["others_cpu"] for x in runs),
                "rounds": runs,
            })
    return rows


def log_notify(label: str, row: dict[str, Any]) -> None:
    log(f"  {label:<27} {fmt_int(row['received_per_s']):>7} notifications/s received"
        f" (sent {fmt_int(row['sent_per_s'])}/s, lost {row['lost']}), p50 {row['p50_ms']:.1f} ms,"
        f" p99 {row['p99_ms']:.1f} ms; CPU: listener {row['listener_cpu']:.0%},"
        f" producer {row['producer_cpu']:.0%}, other work {row['others_cpu']:.0%}")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    raise_nofile()
    systems = [s for s in args.systems.split(",") if s]
    missing = check_prerequisites(peers=bool({"broadcaster", "sio"} & set(systems)))
    if missing:
        raise SystemExit("missing: " + "; ".join(missing))
    results: dict[str, Any] = {"clients": args.clients, "measure_s": args.measure_s, "notify": [],
                               "fanout": []}
    with bench_cluster() as cluster:
        log(f"Relay ceiling (logs in {log_dir()})")
        if not args.skip_notify:
            log("LISTEN/NOTIFY, raw asyncpg, one producer connection, listener in another process:")
            url = await create_database(cluster, "relay_notify")
            for per_txn in (1, 50):
                row = await notify_ceiling(cluster, url, per_txn, args.notify_s)
                results["notify"].append(row)
                log_notify(f"{per_txn:>2} NOTIFY/txn:", row)
            (members,) = await make_members(url, 1, 1)
            row = await notify_ceiling(cluster, url, 1, args.notify_s, members[0].participant_id)
            results["notify"].append(row)
            log_notify("hearth.post_message, 1/txn:", row)
        if systems:
            results["fanout"] = await fanout(cluster, args, systems)
    log("Summary (median of rounds):")
    by = {r["system"]: r for r in results["fanout"]}
    for row in results["fanout"]:
        log(f"  {row['system']:<11} {fmt_int(row['frames_per_s']):>8} frames/s"
            f" (best {fmt_int(row['frames_per_s_best'])}),"
            f" {row['server_us_per_frame']:.1f} server CPU-us/frame,"
            f" {row['database_us_per_frame']:.1f} database CPU-us/frame")
    if "hearth" in by:
        for peer in ("raw", "broadcaster", "sio"):
            if peer in by:
                h, o = by["hearth"], by[peer]
                log(f"  hearth / {peer}: throughput {h['frames_per_s'] / o['frames_per_s']:.2f},"
                    f" CPU per frame {h['server_us_per_frame'] / o['server_us_per_frame']:.2f}"
                    + ("  (target throughput >= 0.5)" if peer == "raw" else ""))
    return results


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--systems", default=",".join(SYSTEMS))
    p.add_argument("--in-flight", type=int, default=100_000,
                   help="frames in flight past the slowest client (events = this / clients)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup-s", type=float, default=1.5)
    p.add_argument("--measure-s", type=float, default=5.0)
    p.add_argument("--notify-s", type=float, default=5.0)
    p.add_argument("--skip-notify", action="store_true")
    p.add_argument("--profile", action="store_true", help="py-spy the Python servers (output in the logs)")
    p.add_argument("--syscalls", action="store_true",
                   help="count the servers' write system calls per delivered frame (perf stat)")
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--listen", help=argparse.SUPPRESS)
    p.add_argument("--channel", default=NOTIFY_CHANNEL, help=argparse.SUPPRESS)
    return p


def main() -> None:
    args = parser().parse_args()
    if args.listen:
        asyncio.run(listen_main(args.listen, args.channel))
        return
    results = asyncio.run(run(args))
    save_json(args.json, results)


if __name__ == "__main__":
    main()
