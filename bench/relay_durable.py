"""Durable messages into one session, with group commit (issue 15, target 4).
Run: `.venv/bin/python -m bench.relay_durable`.

Two `hearth serve` instances A and B on one durable cluster (fsync and synchronous_commit on). Clients are
Node `ws` sockets (bench/node/pairs.js), sending `message` frames stamped with their send time.

1. Throughput: one session, `--senders` senders (half on each instance) at `--rate` messages/s each (the
   default `frame_rate_limit`, 50), and 4 receivers (2 per instance). Figures: messages committed per
   second within the sending window (the session's seq before and after), delivered at the receivers,
   post_messages calls (so the mean batch), and server CPU (both instances plus PostgreSQL) per
   message. Peer in the same run, interleaved: `hearth.post_message` one per transaction from 8
   connections in a closed loop (what a frame cost before group commit).
2. Latency: 1,000 messages/s into one session from 20 senders on A, 100 receivers on B: p50/p99/max from
   the sender's stamp to the receiver's parse (websocket in, batch commit, doorbell, B's listener, fan
   out). Peers in the same run, by bench.relay_latency's machinery at the same rate and client count: a
   bare `websockets` server broadcasting (raw) and Socket.IO with its Redis adapter across two instances
   (sio), stamped when broadcast.
3. The batcher alone: app.postbatch in this process, two batchers (as two instances would have) over
   their own pools, the same senders and rate as part 1 but as coroutines (no websockets, no fan-out):
   what group commit itself sustains on this machine, beside the same post_message peer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import uuid
from typing import Any

import asyncpg

from app.db import Database
from app.metrics import Metrics
from app.postbatch import PostBatcher
from bench import relay_latency
from bench.common import fmt_int, log, log_dir, save_json
from bench.load import bench_cluster, create_database, make_members, make_target
from bench.measure import CpuMeter
from bench.processes import check_prerequisites, cluster_pids, hearth_server, raise_nofile
from bench.relay_broadcast import Sockets, _url, call_ms, durable_rate, merge, metrics


async def _head(url: str, session_id: uuid.UUID) -> int:
    conn = await asyncpg.connect(url)
    try:
        seq: int = await conn.fetchval(
            "SELECT event_seq FROM hearth_data.sessions WHERE session_id = $1", session_id
        )
        return seq
    finally:
        await conn.close()


async def _settle(url: str, session_id: uuid.UUID, timeout: float = 120.0) -> float:
    """Wait until the session's head stops moving (the instances' backlog is posted); seconds waited."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    last = await _head(url, session_id)
    while loop.time() - start < timeout:
        await asyncio.sleep(1.0)
        head = await _head(url, session_id)
        if head == last:
            break
        last = head
    return loop.time() - start


async def throughput_round(
    url: str,
    session_id: uuid.UUID,
    sockets: list[Sockets],
    servers: list[Any],
    meter: CpuMeter,
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    before = await metrics(servers)
    head = await _head(url, session_id)
    meter.start()
    for s in sockets:
        s.start("message", rate, seconds)
    await asyncio.sleep(seconds)
    committed = await _head(url, session_id) - head  # within the sending window
    results = [await s.done(seconds) for s in sockets]
    cpu = meter.stop()
    after = await metrics(servers)
    row = merge(results)
    row["committed_per_s"] = committed / seconds
    row["batches"], row["batch_ms"] = call_ms(before, after, "post_messages")
    total = await _head(url, session_id) - head
    row["mean_batch"] = total / max(row["batches"], 1)
    window = seconds + 1
    row["server_cpu_us_per_message"] = (cpu["server"] + cpu["db"]) * window / max(total, 1) * 1e6
    row["cpu"] = cpu
    return row


async def batcher_alone(url: str, senders: int, rate: float, seconds: float) -> dict[str, Any]:
    """Part 3: committed messages/s through two in-process batchers, senders as coroutines."""
    (members,) = await make_members(url, 1, senders)
    session_id = members[0].session_id
    databases = [await Database.open(url, Metrics()) for _ in range(2)]
    batchers = [PostBatcher(d.post_messages, d.post_message) for d in databases]
    done = 0
    loop = asyncio.get_running_loop()
    stop = loop.time() + seconds

    async def sender(i: int, participant_id: uuid.UUID) -> None:
        nonlocal done
        due = loop.time() + i / senders / rate  # staggered, as pairs.js does
        while loop.time() < stop:
            await asyncio.sleep(max(0.0, due - loop.time()))
            await batchers[i % 2].post(session_id, participant_id, {"ts": 0, "pad": "x" * 64})
            done += 1
            due += 1 / rate

    start = loop.time()
    try:
        await asyncio.gather(*(sender(i, m.participant_id) for i, m in enumerate(members)))
    finally:
        for database in databases:
            await database.close()
    batches = sum(b.batches for b in batchers)
    return {"per_s": done / (loop.time() - start), "batches": batches, "mean_batch": done / max(batches, 1)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    raise_nofile()
    missing = check_prerequisites(peers=True)
    if missing:
        raise SystemExit("missing: " + "; ".join(missing))
    out: dict[str, Any] = {"throughput": [], "peer": [], "latency": []}
    parts = {int(p) for p in args.parts.split(",")}
    with bench_cluster() as cluster:
        url = await create_database(cluster, f"durable_{uuid.uuid4().hex[:8]}")
        async with contextlib.AsyncExitStack() as stack:
            servers = [hearth_server(url, f"hearth-{name}") for name in "ab"]
            for server in servers:
                stack.push_async_callback(server.stop)
            for server in servers:
                await server.ready()
            groups = {"server": [s.proc.pid for s in servers], "db": cluster_pids(cluster)}

            if 1 in parts:
                (members,) = await make_members(url, 1, args.senders + 4)
                session_id = members[0].session_id
                send, recv = members[: args.senders], members[args.senders :]
                (writer,) = (await make_members(url, 1, 1))[0]
                log(
                    f"1. {args.senders} senders over 2 instances at {args.rate:g} messages/s each"
                    f" ({fmt_int(args.senders * args.rate)}/s offered) into one session, {args.seconds:g} s"
                    f" rounds; peer: post_message from 8 connections (logs in {log_dir()})"
                )
                for r in range(args.rounds):
                    for kind in ("group", "peer") if r % 2 == 0 else ("peer", "group"):
                        if kind == "peer":
                            meter = CpuMeter(groups, cluster)
                            meter.start()
                            per_s = await durable_rate(url, writer.participant_id, args.seconds)
                            cpu = meter.stop()
                            cpu_us = (
                                (cpu["server"] + cpu["db"])
                                * args.seconds
                                / max(per_s * args.seconds, 1)
                                * 1e6
                            )
                            out["peer"].append(
                                {"round": r + 1, "per_s": per_s, "server_cpu_us_per_message": cpu_us}
                            )
                            log(
                                f"  round {r + 1} peer : {per_s:,.0f} post_message/s,"
                                f" {cpu_us:.0f} us server CPU per message"
                            )
                            continue
                        # Fresh sockets each round: what a round's senders left unread goes with them.
                        sockets = [
                            Sockets(
                                f"durable-{side}",
                                [_url(servers[side], m) for m in send[side::2]],
                                [_url(servers[side], m) for m in recv[side::2]],
                            )
                            for side in (0, 1)
                        ]
                        try:
                            for s in sockets:
                                await s.ready()
                            meter = CpuMeter({**groups, "clients": [s.proc.pid for s in sockets]}, cluster)
                            row = await throughput_round(
                                url, session_id, sockets, servers, meter, args.rate, args.seconds
                            )
                        finally:
                            for s in sockets:
                                await s.stop()
                        row["round"] = r + 1
                        out["throughput"].append(row)
                        row["settle_s"] = await _settle(url, session_id)
                        log(
                            f"  round {r + 1} group: {row['committed_per_s']:,.0f} messages/s committed"
                            f" of {fmt_int(row['sent'] / args.seconds)}/s sent; {fmt_int(row['batches'])}"
                            f" batches of {row['mean_batch']:.0f} on average,"
                            f" {row['batch_ms'] or 0:.1f} ms each;"
                            f" {row['server_cpu_us_per_message']:.0f} us server CPU per message"
                            f" (clients {row['cpu']['clients']:.0%}, other work {row['cpu']['others']:.0%});"
                            f" receivers' p99 {row['p99_ms'] or 0:.1f} ms"
                            + (f", errors {row['errors']}" if row["errors"] else "")
                        )
                group = statistics.median(r["committed_per_s"] for r in out["throughput"])
                peer = statistics.median(r["per_s"] for r in out["peer"])
                out["ratio"] = group / peer
                log(
                    f"  median {group:,.0f} committed/s with group commit / {peer:,.0f} post_message/s ="
                    f" {group / peer:.1f}x (target >= 10,000/s)"
                )

            if 2 in parts:
                (members,) = await make_members(url, 1, args.latency_senders + args.clients)
                send, recv = members[: args.latency_senders], members[args.latency_senders :]
                rate = args.latency_rate / args.latency_senders
                log(
                    f"2. {args.latency_rate:g} messages/s from {args.latency_senders} senders on A to"
                    f" {args.clients} receivers on B, {args.seconds:g} s rounds; peers raw and sio"
                )
                for r in range(args.rounds):
                    sockets = [
                        Sockets("latency-a", [_url(servers[0], m) for m in send], []),
                        Sockets("latency-b", [], [_url(servers[1], m) for m in recv]),
                    ]
                    try:
                        for s in sockets:
                            await s.ready()
                        for s in sockets:
                            s.start("message", rate, args.seconds)
                        row = merge([await s.done(args.seconds) for s in sockets])
                    finally:
                        for s in sockets:
                            await s.stop()
                    row.update(system="hearth", round=r + 1)
                    out["latency"].append(row)
                    await _settle(url, members[0].session_id)
                    log(
                        f"  round {r + 1} hearth: p50 {row['p50_ms'] or 0:.1f} ms,"
                        f" p99 {row['p99_ms'] or 0:.1f} ms,"
                        f" max {row['max_ms'] or 0:.1f} ms; {fmt_int(row['received'])} of"
                        f" {fmt_int(row['sent'] * args.clients)} frames delivered"
                    )
                    for system in ("raw", "sio"):
                        async with contextlib.AsyncExitStack() as peer_stack:
                            target = await make_target(
                                system, peer_stack, cluster, args.clients, latency=True
                            )
                            peer_row = await relay_latency.one(target, cluster, args.latency_rate, args)
                        peer_row["round"] = r + 1
                        out["latency"].append(peer_row)
                        log(
                            f"  round {r + 1} {system:<6}: p50 {peer_row['p50_ms'] or 0:.1f} ms,"
                            f" p99 {peer_row['p99_ms'] or 0:.1f} ms, max {peer_row['max_ms'] or 0:.1f} ms;"
                            f" {fmt_int(peer_row['delivered'])} of {fmt_int(peer_row['expected'])} delivered"
                        )
                for system in ("hearth", "raw", "sio"):
                    p99s = [r["p99_ms"] for r in out["latency"] if r["system"] == system and r["p99_ms"]]
                    if p99s:
                        log(f"  {system:<6} median p99 {statistics.median(p99s):.1f} ms")
            if 3 in parts:
                out["alone"] = []
                (writer,) = (await make_members(url, 1, 1))[0]
                log(f"3. the batcher alone: {args.senders} coroutines at {args.rate:g}/s over two batchers")
                for r in range(args.rounds):
                    for kind in ("group", "peer") if r % 2 == 0 else ("peer", "group"):
                        if kind == "group":
                            row = await batcher_alone(url, args.senders, args.rate, args.seconds)
                        else:
                            row = {"per_s": await durable_rate(url, writer.participant_id, args.seconds)}
                        out["alone"].append({"round": r + 1, "kind": kind, **row})
                        log(
                            f"  round {r + 1} {kind}: {row['per_s']:,.0f} messages/s committed"
                            + (
                                f" in {row['batches']} batches of {row['mean_batch']:.0f}"
                                if kind == "group"
                                else ""
                            )
                        )
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--senders", type=int, default=200)
    p.add_argument("--rate", type=float, default=50.0, help="messages per second per sender, part 1")
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--clients", type=int, default=100, help="receivers on B, part 2")
    p.add_argument("--latency-senders", type=int, default=20)
    p.add_argument("--latency-rate", type=float, default=1000.0, help="messages per second in all, part 2")
    p.add_argument("--warmup-s", type=float, default=2.0, help="the peers' warm-up (bench.relay_latency)")
    p.add_argument("--drain-s", type=float, default=5.0, help="the peers' drain (bench.relay_latency)")
    p.add_argument("--parts", default="1,2,3")
    p.add_argument("--json", help="also write the figures to this file")
    return p


def main() -> None:
    args = parser().parse_args()
    results = asyncio.run(run(args))
    save_json(args.json, results)


if __name__ == "__main__":
    main()
