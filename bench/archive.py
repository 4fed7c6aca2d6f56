"""Cleanup with the session archive (issue 12). Run: `.venv/bin/python -m bench.archive`.

What archiving costs the session cleanup: the pg_cron job's batches of 1,000 sessions (each in its own
transaction, as `hearth_data.run_cleanup_inactive_sessions` runs them), in three variants measured in the
same run on the same data, in interleaved rounds:

  pre-archive   cleanup_sessions_batch as it was before the archive (its newest frozen copy before the
                revision that added the archive), loaded in place of the current one
  messages off  the current cleanup, archive_messages off (the default): an archive row per session
  messages on   the current cleanup, archive_messages on: the archive row also holds the messages

Data as bench.db_core's cleanup (whose builders it uses): next to N open sessions that are not due (a
background of N identities, sessions, participants and presence rows), sessions idle for 2 hours with 2
participants and 10 message events each, either still `open` (cleanup expires them first) or already
`closed`. Each variant cleans a fresh copy; the archive is emptied between variants. Figures: median
batch time (commit included) and the median server CPU of the batch's backend, per variant and state,
and each variant's ratio to pre-archive. Target (issue 12): within 1.5x of pre-archive.
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

from app import sqlfiles
from bench._db import bench_cluster, connect, create_database, machine_facts, server_facts, settle
from bench.common import log
from bench.db_core import TABLES, build_due, build_scale, cleanup_batches

FUNCTION = "hearth_data/cleanup_sessions_batch.sql"
VARIANTS = ("pre-archive", "messages off", "messages on")
TARGET = 1.5


def function_texts() -> dict[str, str]:
    """The cleanup batch function's text before the archive and now."""
    copies = [sqlfiles.VERSIONS_DIR / r / "functions" / FUNCTION for r in sqlfiles.revisions()]
    copies = [c for c in copies if c.exists()]
    first = next(i for i, c in enumerate(copies) if "session_archive" in c.read_text())
    assert first > 0, "no frozen copy before the archive"
    now = (sqlfiles.FUNCTIONS_DIR / FUNCTION).read_text()
    return {"pre-archive": copies[first - 1].read_text(), "now": now}


async def load_variant(admin: asyncpg.Connection, texts: dict[str, str], variant: str) -> None:
    await admin.execute("SET ROLE hearth_owner")
    await admin.execute(texts["pre-archive" if variant == "pre-archive" else "now"])
    await admin.execute("RESET ROLE")
    value = "on" if variant == "messages on" else "off"
    await admin.execute("UPDATE hearth_data.settings SET value = $1 WHERE key = 'archive_messages'",
                        "true" if value == "on" else "false")


async def clean(admin: asyncpg.Connection, pid: int, n: int) -> dict[str, list[float]]:
    """The job's batches; wall time and backend CPU of each full batch (the last, short one is not a
    batch of 1,000)."""
    wall, cpu, _ = await cleanup_batches(admin, pid, n)
    return {"wall": wall[:-1] if len(wall) > 1 else wall, "cpu": cpu[:-1] if len(cpu) > 1 else cpu}


async def bench(url: str, background: int, n: int, rounds: int) -> dict[str, Any]:
    texts = function_texts()
    results: dict[str, dict[str, dict[str, list[float]]]] = {
        state: {v: {"wall": [], "cpu": []} for v in VARIANTS} for state in ("open", "closed")}
    async with connect(url) as admin:
        pid = await admin.fetchval("SELECT pg_backend_pid()")
        t_ref = await admin.fetchval("SELECT now()")
        took = await build_scale(admin, t_ref, 1, background)
        log(f"  background: {background:,} open sessions, identities, participants, presence"
            f" (built + VACUUM ANALYZE in {took:.1f} s)")
        for r in range(rounds):
            order = VARIANTS[r % 3:] + VARIANTS[:r % 3]
            for state in ("open", "closed"):
                for variant in order:
                    await load_variant(admin, texts, variant)
                    await build_due(admin, t_ref, n, background, state == "closed")
                    await settle(admin, "hearth_data.session_archive")
                    got = await clean(admin, pid, n)
                    archived = await admin.fetchval("SELECT count(*) FROM hearth_data.session_archive")
                    assert archived == (0 if variant == "pre-archive" else n), archived
                    if variant == "messages on":
                        kept = await admin.fetchval(
                            "SELECT sum(cardinality(messages)) FROM hearth_data.session_archive")
                        assert kept == 10 * n, kept
                    for k in ("wall", "cpu"):
                        results[state][variant][k] += got[k]
                    log(f"  round {r + 1} {state:6} {variant:12}: batch median"
                        f" {statistics.median(got['wall']) * 1000:6.1f} ms,"
                        f" backend CPU {statistics.median(got['cpu']) * 1000:6.1f} ms"
                        f" ({len(got['wall'])} batches)")
                    await settle(admin, *TABLES)
        await load_variant(admin, texts, "messages off")
    return {"background": background, "due": n, "rounds": rounds, "batches": results}


def summary(figures: dict[str, Any]) -> None:
    log("== summary: median per batch of 1,000 sessions (all rounds), ratio to pre-archive")
    for state, variants in figures["batches"].items():
        base = {k: statistics.median(variants["pre-archive"][k]) for k in ("wall", "cpu")}
        for variant, series in variants.items():
            wall, cpu = (statistics.median(series[k]) for k in ("wall", "cpu"))
            worst = max(wall / base["wall"], cpu / base["cpu"])
            ratio = (f"  wall x{wall / base['wall']:.2f}, CPU x{cpu / base['cpu']:.2f}"
                     f" (target <= {TARGET}: {'met' if worst <= TARGET else 'MISSED'})"
                     if variant != "pre-archive" else "")
            log(f"  {state:6} {variant:12}: {wall * 1000:6.1f} ms, backend CPU {cpu * 1000:6.1f} ms"
                f" (n={len(series['wall'])}){ratio}")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    figures: dict[str, Any] = {"machine": machine_facts(), "command": " ".join(sys.argv)}
    with bench_cluster() as cluster:
        async with connect(cluster.url()) as conn:
            figures["server"] = await server_facts(conn)
        log("machine: " + ", ".join(f"{k} {v}" for k, v in figures["machine"].items()))
        log("server:  " + ", ".join(f"{k} {v}" for k, v in figures["server"].items()))
        url = await create_database(cluster, "bench_archive")
        log(f"== cleanup batches with the session archive: {args.due:,} due sessions per variant and state,"
            f" {args.rounds} rounds")
        figures |= await bench(url, args.background, args.due, args.rounds)
    summary(figures)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    log(f"total run time {time.perf_counter() - started:.0f} s; load average at the end {load}")
    return figures


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.archive", description=__doc__.splitlines()[0])
    parser.add_argument("--background", type=int, default=1_000_000,
                        help="open sessions that are not due, next to the cleaned ones (1000000)")
    parser.add_argument("--due", type=int, default=20_000,
                        help="due sessions per variant, state and round (20000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    result = asyncio.run(main(arguments))
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(result, indent=1, default=str))
