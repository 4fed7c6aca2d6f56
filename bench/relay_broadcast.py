"""Broadcast frames against message frames (issue 12). Run: `.venv/bin/python -m bench.relay_broadcast`.

Two `hearth serve` instances A and B on one database (a durable cluster: fsync and synchronous_commit
on). Clients are Node `ws` sockets (bench/node/pairs.js); latency is measured there, from the sender's
stamp in the body to the receiver's parse (sender and receiver share the process's clock).

1. Pairs: 100 sessions of a controller and a display; every controller on one instance, its display
   on the other, so every frame crosses instances (the harder path: NOTIFY, then the other listener).
   Each controller sends 60 frames/s (6,000/s in all), `broadcast` and `message` in alternating rounds
   of the same run: p50/p99/max delivery latency, frames not delivered within a second of the round's
   end, and server CPU (both instances plus PostgreSQL) per delivered frame. Message rounds are shorter
   (`--message-s`): where the durable path cannot commit 6,000 messages/s, what the server has read
   is still posted after the round, and the next round waits for that to finish. `frame_rate_limit` is
   raised to 120 for this: 60 messages/s per socket is above its default of 50.
2. Durable throughput beside broadcasts: `hearth.post_message` calls per second from 8 connections in
   a closed loop (each commit waits for its WAL flush), alone and with the 6,000 broadcasts/s of part 1
   running, in interleaved rounds: the ratio of the medians (target >= 0.9).
3. Flat out: one session, 100 receivers (50 on each instance) and S senders (split likewise), each
   sender at R broadcasts/s; delivered frames/s and latency for growing S (target: >= 50,000 frames/s
   delivered). `broadcast_rate_limit` is raised for this part to let one sender go past 120/s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
import uuid
from typing import Any

import asyncpg
import httpx

from bench.common import NODE_DIR, fmt_int, log, log_dir, save_json
from bench.load import Member, bench_cluster, create_database, make_members
from bench.measure import CpuMeter, parse_prometheus
from bench.processes import Proc, check_prerequisites, cluster_pids, hearth_server, raise_nofile
from tests.app.harness import Instance

BUCKETS_PER_MS = 20  # pairs.js's latency histogram


class Sockets:
    """bench/node/pairs.js: senders and receivers in one Node process."""

    _n = 0

    def __init__(self, name: str, senders: list[str], receivers: list[str]) -> None:
        Sockets._n += 1
        path = log_dir() / f"{name}-{Sockets._n}.json"
        path.write_text(json.dumps({"senders": senders, "receivers": receivers}))
        self.proc = Proc(f"{name}-{Sockets._n}", ["node", str(NODE_DIR / "pairs.js"), str(path)],
                         json_stdout=True, stdin=True, cwd=NODE_DIR)

    async def ready(self) -> None:
        item = await self.proc.expect("ready", 120)
        if item["failed"]:
            raise RuntimeError(f"{self.proc.name}: {item['failed']} sockets could not connect")

    def start(self, kind: str, rate: float, seconds: float, pad: int = 64) -> None:
        self.proc.send(f"run {kind} {rate} {seconds} {pad}")

    async def done(self, seconds: float) -> dict[str, Any]:
        return await self.proc.expect("done", seconds + 60)

    async def stop(self) -> None:
        if self.proc.proc.poll() is None and self.proc.proc.stdin and not self.proc.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.send("quit")
        await self.proc.stop()


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the counts and latency histograms of several pairs.js processes; percentiles of the whole."""
    hist = [sum(values) for values in zip(*(r["hist"] for r in results), strict=True)]
    over = sorted(ms for r in results for ms in r["over"])
    n = sum(hist) + len(over)

    def pct(p: float) -> float | None:
        if not n:
            return None
        rank = min(n - 1, int(p * n))
        seen = 0
        for bucket, count in enumerate(hist):
            seen += count
            if seen > rank:
                return (bucket + 1) / BUCKETS_PER_MS  # the bucket's upper edge
        return float(over[rank - sum(hist)])

    errors: dict[str, int] = {}
    for r in results:
        for code, count in r["errors"].items():
            errors[code] = errors.get(code, 0) + count
    return {
        "sent": sum(r["sent"] for r in results), "received": sum(r["received"] for r in results),
        "errors": errors,
        "closed": sum(r["closed"] for r in results), "p50_ms": pct(0.5), "p99_ms": pct(0.99),
        "max_ms": over[-1] if over else pct(1.0),
    }


async def metrics(servers: list[Instance]) -> dict[str, float]:
    """The instances' counters, summed (an overloaded instance may take a while to answer)."""
    total: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=60) as client:
        for server in servers:
            text = (await client.get(server.base_url + "/metrics")).text
            for key, value in parse_prometheus(text).items():
                total[key] = total.get(key, 0.0) + value
    return total


def call_ms(before: dict[str, float], after: dict[str, float], function: str) -> tuple[int, float | None]:
    """Calls of a SQL function between two readings, and their mean duration in ms."""
    key = f'hearth_db_call_seconds_{{}}{{{{function="{function}"}}}}'
    count = after.get(key.format("count"), 0.0) - before.get(key.format("count"), 0.0)
    total = after.get(key.format("sum"), 0.0) - before.get(key.format("sum"), 0.0)
    return int(count), (total / count * 1000 if count else None)


async def timed_run(
    sockets: list[Sockets], kind: str, rate: float, seconds: float, meter: CpuMeter, servers: list[Instance]
) -> dict[str, Any]:
    before = await metrics(servers)
    meter.start()
    for s in sockets:
        s.start(kind, rate, seconds)
    results = [await s.done(seconds) for s in sockets]
    cpu = meter.stop()  # includes the 1 s drain: CPU per frame is over the whole window
    after = await metrics(servers)
    row = merge(results)
    function = {"broadcast": "broadcast", "message": "post_message"}.get(kind, "touch")
    row["db_calls"], row["db_call_ms"] = call_ms(before, after, function)
    window = seconds + 1
    row["server_cpu_us_per_frame"] = (cpu["server"] + cpu["db"]) * window / max(row["received"], 1) * 1e6
    row["hearth_cpu_us_per_frame"] = cpu["server"] * window / max(row["received"], 1) * 1e6
    row["hearth_cpu_us_per_sent"] = cpu["server"] * window / max(row["sent"], 1) * 1e6
    row["cpu"] = cpu
    row["kind"] = kind
    return row


def _fmt(row: dict[str, Any]) -> str:
    lost = row["sent_frames"] - row["received"]
    latency = (f"p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms, max {row['max_ms']:.1f} ms; "
               if row["p50_ms"] is not None and row["kind"] != "ping" else "")
    return (latency + f"{fmt_int(row['received'])} of {fmt_int(row['sent_frames'])} frames delivered"
            + (f" ({fmt_int(lost)} lost)" if lost > 0 else "")
            + (f", errors {row['errors']}" if row["errors"] else "")
            + (f", {row['closed']} sockets closed" if row["closed"] else "")
            + f"; {fmt_int(row['db_calls'])} database calls"
            + (f" of {row['db_call_ms']:.1f} ms on average" if row["db_call_ms"] is not None else "")
            + f"; Hearth CPU per frame sent {row['hearth_cpu_us_per_sent']:.1f} us"
            + f"; CPU per delivered frame: Hearth {row['hearth_cpu_us_per_frame']:.1f} us,"
            f" Hearth + PostgreSQL {row['server_cpu_us_per_frame']:.1f} us"
            f" (other work on the machine {row['cpu']['others']:.0%} of a core)")


async def set_settings(url: str, values: dict[str, int]) -> None:
    conn = await asyncpg.connect(url)
    try:
        for key, value in values.items():
            await conn.fetchval("SELECT hearth.set_setting($1, $2)", key, str(value))
    finally:
        await conn.close()


async def durable_rate(url: str, participant: uuid.UUID, seconds: float, connections: int = 8) -> float:
    """hearth.post_message calls per second from `connections` connections in a closed loop."""
    pool = await asyncpg.create_pool(url, min_size=connections, max_size=connections)
    assert pool is not None
    done = 0
    stop = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        async with pool.acquire() as conn:
            while time.monotonic() < stop:
                await conn.fetchval("SELECT hearth.post_message($1, '{\"d\": 1}'::jsonb)", participant)
                done += 1

    start = time.monotonic()
    try:
        await asyncio.gather(*(worker() for _ in range(connections)))
    finally:
        await pool.close()
    return done / (time.monotonic() - start)


async def settle(servers: list[Instance], timeout: float = 120.0) -> float:
    """Wait until the instances make no more hearth.post_message calls (a message round's backlog:
    frames the server had read but not yet posted when the round's sockets closed); seconds waited."""
    start = time.monotonic()
    key = 'hearth_db_call_seconds_count{function="post_message"}'
    last = (await metrics(servers)).get(key, 0.0)
    while time.monotonic() - start < timeout:
        await asyncio.sleep(1.0)
        now = (await metrics(servers)).get(key, 0.0)
        if now == last:
            break
        last = now
    return time.monotonic() - start


def _url(server: Instance, member: Member) -> str:
    return f"{server.ws_url}?token={member.token()}"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    raise_nofile()
    missing = check_prerequisites(peers=False)
    if missing:
        raise SystemExit("missing: " + "; ".join(missing))
    out: dict[str, Any] = {"pairs": [], "durable": [], "flat_out": []}
    with bench_cluster() as cluster:
        url = await create_database(cluster, f"broadcast_{uuid.uuid4().hex[:8]}")
        await set_settings(url, {"frame_rate_limit": 120, "broadcast_rate_limit": int(args.flat_rate * 2)})
        async with contextlib.AsyncExitStack() as stack:
            refresh = {"HEARTH_SETTINGS_REFRESH_S": "0.5"}
            servers = [hearth_server(url, f"hearth-{name}", refresh) for name in "ab"]
            for server in servers:
                stack.push_async_callback(server.stop)
            for server in servers:
                await server.ready()
            meter_groups = {"server": [s.proc.pid for s in servers], "db": cluster_pids(cluster)}

            parts = {int(p) for p in args.parts.split(",")}
            # 1. Pairs across instances, broadcast against message (and ping: the floor, a frame in and
            # a pong out, no database).
            sessions = await make_members(url, args.pairs, 2)
            senders: list[list[str]] = [[], []]  # per Node process: the controllers on A / on B
            receivers: list[list[str]] = [[], []]
            for i, (controller, display) in enumerate(sessions):
                side = i % 2
                senders[side].append(_url(servers[side], controller))
                receivers[side].append(_url(servers[1 - side], display))

            async def connect_pairs(label: str) -> list[Sockets]:
                pairs = [Sockets(f"pairs-{label}-{side}", senders[side], receivers[side]) for side in (0, 1)]
                for s in pairs:
                    await s.ready()
                return pairs

            log(f"1. {args.pairs} controller->display pairs across instances, {args.rate:g} frames/s each,"
                f" rounds of {args.seconds:g} s (broadcast) and {args.message_s:g} s (message), fresh sockets"
                f" each round, then the instances' backlog drains (logs in {log_dir()})")
            for r in range(args.rounds if 1 in parts else 0):
                kinds = ("ping", "broadcast", "message") if r % 2 == 0 else ("message", "broadcast", "ping")
                for kind in kinds:
                    pairs = await connect_pairs(f"{kind}-{r + 1}")
                    try:
                        meter = CpuMeter({**meter_groups, "clients": [p.proc.pid for p in pairs]}, cluster)
                        seconds = args.message_s if kind == "message" else args.seconds
                        row = await timed_run(pairs, kind, args.rate, seconds, meter, servers)
                    finally:
                        for s in pairs:
                            await s.stop()
                    row["sent_frames"] = row["sent"]  # one receiver per sender
                    row["round"] = r + 1
                    out["pairs"].append(row)
                    row["settle_s"] = await settle(servers)
                    log(f"  round {r + 1} {kind:<9}: " + _fmt(row) + f"; drained in {row['settle_s']:.0f} s")
            for kind in ("ping", "broadcast", "message"):
                rows = [row for row in out["pairs"] if row["kind"] == kind and row["p50_ms"] is not None]
                if not rows:
                    continue
                p50, p99, cpu = (
                    statistics.median(r[key] for r in rows)
                    for key in ("p50_ms", "p99_ms", "server_cpu_us_per_frame")
                )
                log(f"  {kind:<9} median over rounds: p50 {p50:.2f} ms, p99 {p99:.2f} ms,"
                    f" Hearth + PostgreSQL CPU {cpu:.1f} us per frame")

            # 2. Durable throughput with and without the broadcast load.
            if 2 in parts:
                (writer,) = (await make_members(url, 1, 1))[0]
                log(f"2. hearth.post_message from 8 connections, closed loop, {args.durable_s:g} s rounds,"
                    f" alone and beside {fmt_int(args.pairs * args.rate)} broadcasts/s")
                pairs = await connect_pairs("durable")
                for r in range(args.rounds):
                    for loaded in ((False, True) if r % 2 == 0 else (True, False)):
                        if loaded:
                            for s in pairs:
                                s.start("broadcast", args.rate, args.durable_s + 1)
                            await asyncio.sleep(0.5)
                        rate = await durable_rate(url, writer.participant_id, args.durable_s)
                        load = merge([await s.done(args.durable_s + 1) for s in pairs]) if loaded else {}
                        out["durable"].append({"round": r + 1, "broadcasts": loaded, "per_s": rate,
                                               **({"broadcast_p99_ms": load["p99_ms"]} if loaded else {})})
                        label = "with" if loaded else "without"
                        log(f"  round {r + 1} {label} broadcasts: {rate:,.0f} messages/s"
                            + (f" (broadcast p99 meanwhile {load['p99_ms'] or 0:.2f} ms)" if loaded else ""))
                alone = statistics.median(d["per_s"] for d in out["durable"] if not d["broadcasts"])
                beside = statistics.median(d["per_s"] for d in out["durable"] if d["broadcasts"])
                out["durable_ratio"] = beside / alone
                log(f"  median {beside:,.0f} with / {alone:,.0f} without = {beside / alone:.2f}"
                    " (target >= 0.9)")
                for s in pairs:
                    await s.stop()

            # 3. Flat out: one session, 100 receivers, growing numbers of senders.
            if 3 in parts:
                log(f"3. one session, {args.receivers} receivers over both instances, senders at"
                    f" {args.flat_rate:g} broadcasts/s each"
                    f" (broadcast_rate_limit raised to {args.flat_rate * 2:g})")
                for count in [int(c) for c in args.senders.split(",")]:
                    (members,) = await make_members(url, 1, args.receivers + count)
                    recv, send = members[: args.receivers], members[args.receivers :]
                    flat = [
                        Sockets(f"flat-{count}-{side}",
                                [_url(servers[side], m) for m in send[side::2]],
                                [_url(servers[side], m) for m in recv[side::2]])
                        for side in (0, 1)
                    ]
                    try:
                        for s in flat:
                            await s.ready()
                        meter = CpuMeter({**meter_groups, "clients": [p.proc.pid for p in flat]}, cluster)
                        row = await timed_run(flat, "broadcast", args.flat_rate, args.seconds, meter, servers)
                    finally:
                        for s in flat:
                            await s.stop()
                    row["senders"] = count
                    row["sent_frames"] = row["sent"] * args.receivers
                    row["delivered_per_s"] = row["received"] / args.seconds
                    out["flat_out"].append(row)
                    log(f"  {count:>3} senders ({fmt_int(count * args.flat_rate)} broadcasts/s):"
                        f" {fmt_int(row['delivered_per_s'])} frames/s delivered; " + _fmt(row)
                        + f"; client CPU {row['cpu']['clients']:.0%}")
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=100)
    p.add_argument("--rate", type=float, default=60.0, help="frames per second per controller")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--message-s", type=float, default=2.0,
                   help="length of the message rounds of part 1 (their backlog drains before the next round)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--durable-s", type=float, default=5.0)
    p.add_argument("--receivers", type=int, default=100)
    p.add_argument("--senders", default="5,10,20", help="sender counts for part 3, comma-separated")
    p.add_argument("--flat-rate", type=float, default=110.0, help="broadcasts per second per sender, part 3")
    p.add_argument("--parts", default="1,2,3", help="which parts to run, comma-separated")
    p.add_argument("--json", help="also write the figures to this file")
    return p


def main() -> None:
    args = parser().parse_args()
    results = asyncio.run(run(args))
    save_json(args.json, results)


if __name__ == "__main__":
    main()
