"""Relay latency (issue 3, "Performance" 2 and 5). Run: `.venv/bin/python -m bench.relay_latency`.

From the moment an event is produced to its delivery at each of 100 websocket clients, at a fixed
rate (default 1,000 messages per second, then 200 and 50), p50/p90/p99/max over every delivered frame:
- hearth: two `hearth serve` instances A and B on one database, the 100 clients on B. A separate
  asyncpg producer calls `hearth.post_message` (one per transaction, from a pool of 4 connections);
  the message body carries the send timestamp taken just before the call, so the figure covers the
  commit, NOTIFY, B's listener and fan-out, and the websocket. (A listens too, as in production.)
- hearth-async-commit: the same with the producer's sessions on synchronous_commit = off, so its
  commits do not wait for the WAL flush: the relay's share of the latency, without the disk's.
- raw: a bare `websockets` server broadcasting; stamped when broadcast (no database, no hop).
- broadcaster: encode/broadcaster (Postgres backend) behind Starlette; one NOTIFY per transaction
  from a pool of 4 asyncpg connections, stamped before the call.
- sio: Socket.IO + Redis adapter; emitted on instance A (stamped there), delivered by B via Redis.
Clients are Node `ws` / socket.io-client in one other process; the latency is measured there
(sender and receivers share the machine's clock). A fresh server and client set is started for each
rate and system; each runs `--warmup-s` before `--seconds` of measurement, then drains. Frames that
never arrive (a client closed as too slow) are counted as missing. About 3 minutes in all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from typing import Any

from bench.common import fmt_int, log, log_dir, percentile, save_json
from bench.load import Target, bench_cluster, drive_rate, make_target
from bench.measure import CpuMeter
from bench.processes import check_prerequisites, raise_nofile

SYSTEMS = ("hearth", "hearth-async-commit", "raw", "broadcaster", "sio")


async def one(target: Target, cluster: Any, rate: float, args: argparse.Namespace) -> dict[str, Any]:
    clients = target.clients
    await clients.ready()
    await asyncio.sleep(0.5)
    await drive_rate(target.produce_each, rate=rate, seconds=args.warmup_s)
    await asyncio.sleep(0.3)
    since = time.time() * 1000
    clients.reset_latency(since)
    target.call_ms.clear()
    meter = CpuMeter({"server": target.server_pids, "clients": [clients.proc.pid]}, cluster)
    meter.start()
    start = time.monotonic()
    sent = await drive_rate(target.produce_each, rate=rate, seconds=args.seconds)
    send_s = time.monotonic() - start  # longer than `seconds` when the producer's calls back up
    until = time.time() * 1000
    cpu = meter.stop()
    expected = sent * clients.count
    deadline = time.monotonic() + args.drain_s
    lat = await clients.latency(until)
    while lat["n"] < expected and time.monotonic() < deadline and clients.stats.open:
        await asyncio.sleep(0.5)
        lat = await clients.latency(until)
    stats = clients.stats
    return {
        "system": target.name, "rate": rate, "sent": sent, "send_s": send_s, "clients": clients.count,
        "delivered": lat["n"], "expected": expected, "closed": stats.closed, "close_codes": stats.codes,
        "p50_ms": lat["p50"], "p90_ms": lat["p90"], "p99_ms": lat["p99"], "max_ms": lat["max"],
        "server_cpu": cpu["server"], "client_cpu": cpu["clients"], "others_cpu": cpu["others"],
        "producer_call_p50_ms": percentile(target.call_ms, 0.5),
        "producer_call_p99_ms": percentile(target.call_ms, 0.99),
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    raise_nofile()
    systems = [s for s in args.systems.split(",") if s]
    missing = check_prerequisites(peers=bool({"broadcaster", "sio"} & set(systems)))
    if missing:
        raise SystemExit("missing: " + "; ".join(missing))
    rates = [float(r) for r in args.rates.split(",")]
    rows = []
    with bench_cluster() as cluster:
        log(f"Relay latency to {args.clients} clients (logs in {log_dir()})")
        for rate in rates:
            log(f"At {rate:g} messages/s ({fmt_int(rate * args.clients)} frames/s to deliver):")
            for system in systems:
                async with contextlib.AsyncExitStack() as stack:
                    target = await make_target(system, stack, cluster, args.clients, latency=True)
                    row = await one(target, cluster, rate, args)
                rows.append(row)
                missing_frames = row["expected"] - row["delivered"]
                log(f"  {system:<19} p50 {_ms(row['p50_ms']):>7} ms  p90 {_ms(row['p90_ms']):>7} ms"
                    f"  p99 {_ms(row['p99_ms']):>7} ms  max {_ms(row['max_ms']):>7} ms;"
                    f" {row['sent']} sent in {row['send_s']:.1f} s,"
                    f" {fmt_int(row['delivered'])} frames delivered"
                    + (f", {fmt_int(missing_frames)} missing" if missing_frames > 0 else "")
                    + (f", {row['closed']} clients closed {row['close_codes']}" if row["closed"] else "")
                    + f"; CPU: server {row['server_cpu']:.0%}, clients {row['client_cpu']:.0%},"
                    f" other work {row['others_cpu']:.0%}"
                    + (f"; producer's database call p50 {_ms(row['producer_call_p50_ms'])} ms,"
                       f" p99 {_ms(row['producer_call_p99_ms'])} ms" if row["producer_call_p50_ms"] else ""))
    return {"clients": args.clients, "seconds": args.seconds, "rows": rows}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--rates", default="1000,200,50", help="messages per second, comma-separated")
    p.add_argument("--systems", default=",".join(SYSTEMS))
    p.add_argument("--warmup-s", type=float, default=2.0)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--drain-s", type=float, default=5.0)
    p.add_argument("--json", help="also write the figures to this file")
    return p


def main() -> None:
    args = parser().parse_args()
    results = asyncio.run(run(args))
    save_json(args.json, results)


if __name__ == "__main__":
    main()
