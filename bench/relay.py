"""All relay benchmarks of issue 3 in one go: `.venv/bin/python -m bench.relay [--json FILE]`.

Runs bench.relay_ceiling, bench.relay_latency and bench.relay_memory with their defaults (each on
its own throwaway cluster, about 8-10 minutes in all on 2 cores) and prints a Markdown summary for
BENCHMARKS.md. Needs `npm install` in bench/node, `.venv/bin/pip install broadcaster py-spy` and
Debian's redis-server (see bench/processes.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import relay_ceiling, relay_latency, relay_memory
from bench.common import NODE_DIR, ROOT, log


def _version(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        return "?"


def facts() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    result = {
        "nproc": str(len(os.sched_getaffinity(0))),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__(),
        "python": platform.python_version(),
        "node": _version(["node", "--version"]),
        "commit": _version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]) or "?",
    }
    snapshot = ROOT / ".snapshot-commit"
    if snapshot.exists():
        result["commit"] = snapshot.read_text().strip()[:7] + " (clean snapshot)"
    for package in ("websockets", "uvicorn", "uvloop", "starlette", "asyncpg", "broadcaster"):
        try:
            result[package] = version(package)
        except PackageNotFoundError:
            result[package] = "-"
    for package in ("ws", "socket.io", "socket.io-client", "@socket.io/redis-adapter"):
        with open(NODE_DIR / "node_modules" / package / "package.json") as f:
            result[package] = json.load(f)["version"]
    return result


def summary(results: dict[str, Any]) -> str:
    lines = []
    ceiling = results["ceiling"]
    lines.append(f"| delivered frames/s, {ceiling['clients']} clients, one session (median of rounds) "
                 "| frames/s | server CPU-us/frame | Hearth / this |")
    lines.append("|---|---|---|---|")
    by = {r["system"]: r for r in ceiling["fanout"]}
    hearth = by.get("hearth")
    for row in ceiling["fanout"]:
        ratio = f"{hearth['frames_per_s'] / row['frames_per_s']:.2f}" if hearth and row is not hearth else ""
        lines.append(f"| {row['system']} | {row['frames_per_s']:,.0f} | {row['server_us_per_frame']:.1f}"
                     f" | {ratio} |")
    for row in ceiling["notify"]:
        label = "hearth.post_message, 1/txn" if row.get("post_message") else f"NOTIFY, {row['per_txn']}/txn"
        lines.append(f"| LISTEN/{label} | {row['received_per_s']:,.0f} notifications/s"
                     f" | p99 {row['p99_ms']:.1f} ms | |")
    lines.append("")
    lines.append("| latency, 100 clients | rate | p50 ms | p99 ms | delivered"
                 " | producer call p99 ms |")
    lines.append("|---|---|---|---|---|---|")
    for row in results["latency"]["rows"]:
        call = row.get("producer_call_p99_ms")
        lines.append(f"| {row['system']} | {row['rate']:.0f}/s"
                     f" | {row['p50_ms'] or 0:.1f} | {row['p99_ms'] or 0:.1f}"
                     f" | {row['delivered'] / row['expected']:.0%}"
                     f" | {'' if call is None else f'{call:.1f}'} |")
    lines.append("")
    lines.append(f"| idle sockets ({results['memory']['connections']:,}) | KiB per socket"
                 " | RSS before → after MiB |")
    lines.append("|---|---|---|")
    for row in results["memory"]["rows"]:
        lines.append(f"| {row['system']} | {row['kib_per_socket']:.1f}"
                     f" | {row['rss_before_kib'] / 1024:.0f} → {row['rss_after_kib'] / 1024:.0f} |")
        if "heartbeat" in row:
            hb = row["heartbeat"]
            lines.append(f"| hearth.touch calls/s ({hb['clients']:,} clients, ping every"
                         f" {hb['ping_interval_s']:g} s) | {hb['touch_calls_per_s_metrics']:.2f} (/metrics),"
                         f" {hb['touch_calls_per_s_pg_stat']:.2f} (pg_stat)"
                         f" | {hb['participants_per_call']:.0f} ids/call |")
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"facts": facts(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    log(json.dumps(results["facts"]))
    results["ceiling"] = await relay_ceiling.run(relay_ceiling.parser().parse_args([]))
    results["latency"] = await relay_latency.run(relay_latency.parser().parse_args([]))
    results["memory"] = await relay_memory.run(relay_memory.parser().parse_args([]))
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args()
    start = time.monotonic()
    results = asyncio.run(run(args))
    results["seconds"] = time.monotonic() - start
    log("")
    log(summary(results))
    log(f"\n(all relay benchmarks: {results['seconds']:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
