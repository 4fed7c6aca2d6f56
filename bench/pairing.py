"""Pairing benchmarks (issue 4). Run: `.venv/bin/python -m bench.pairing` (about 3.5 minutes).

1. Memory of waiting displays: RSS of one `hearth serve` process before and after N (default 5,000)
   displays wait on their event stream (`GET /v1/displays/{id}/events?token=`, SSE), against the
   same N displays waiting on an idle websocket (`/v1/ws?token=`), without compression (as the relay
   benchmark's clients) and with permessage-deflate (as browsers offer), each on a fresh instance, in
   the same run. The displays are made through the SQL API as the superuser (`hearth.register_display`,
   one statement) and their session tokens minted with app.tokens.issue; the clients live in another
   process (python -m bench.pairing --client ...). A warm-up of 50 connections of the same kind is
   opened and closed before the first reading. Target: <= 32 KiB of server RSS per waiting display.
2. Pairing throughput over HTTP: `POST /v1/displays` then `POST /v1/pair` with its code, repeated by
   `--workers` loops in each of `--load-procs` client processes, against one instance; pairs per second
   over `--measure-s` after `--warmup-s`. Once with one keep-alive httpx.AsyncClient per process, once
   with RawHttp (a minimal keep-alive client, to tell the server's cost from the load generator's).
   Peer in the same run: the same two calls made directly through the SQL API
   (`hearth.register_display`, `hearth.pair_controller`) by the same processes over 10 asyncpg
   connections in all (the app's pool size). Then (unless --no-async-commit-row) raw HTTP and SQL again
   with synchronous_commit off, to show what the WAL flush of the notifying commits costs. CPU of the
   server, PostgreSQL and the clients from /proc. Target: >= 500 pairs/s.
3. Pair-to-paired latency: `--latency-pairs` displays wait on instance A, a controller pairs each on
   instance B at `--latency-rate` pairs/s; the time from sending `POST /v1/pair` to the display
   receiving its `paired` event (p50/p90/p99/max). Peer in the same run: the same with the displays
   waiting on websockets (the `session.paired` frame). Sender and receivers are one process (one
   clock), apart from the servers.

Everything runs on loopback on a throwaway durable cluster (the settings `hearth dev` uses); the
open-files limit is raised to its hard limit (children inherit it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from websockets.asyncio.client import ClientConnection, connect

from app import tokens
from bench._db import machine_facts, server_facts
from bench.common import fmt_int, log, log_dir, percentile
from bench.load import SECRET, bench_cluster, create_database
from bench.measure import CpuMeter, Profiler, rss_kib, server_metrics
from bench.processes import Proc, cluster_pids, hearth_server, raise_nofile
from tests.app.harness import Instance

WARMUP_CONNECTIONS = 50
MEMORY_LABELS = {
    "sse": "SSE stream",
    "ws": "idle websocket",
    "ws-deflate": "idle websocket, permessage-deflate",
}
APP_POOL_SIZE = 10  # app.db.Database.open's max_size: the SQL peer uses as many connections


@dataclass
class Display:
    identity_id: uuid.UUID
    session_id: uuid.UUID
    participant_id: uuid.UUID
    code: str

    def token(self) -> str:
        return tokens.issue(SECRET, tokens.Claims(self.identity_id, self.session_id, self.participant_id))

    def sse_path(self) -> str:
        return f"/v1/displays/{self.session_id}/events?token={self.token()}"

    def ws_path(self) -> str:
        return f"/v1/ws?token={self.token()}"


async def make_displays(url: str, n: int, ttl: timedelta = timedelta(hours=1)) -> list[Display]:
    """n waiting displays (one identity each), through the SQL API as the superuser."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT i.id, r.* FROM generate_series(1, $1) g,"
            " LATERAL (SELECT hearth.create_identity('display ' || g) AS id) i,"
            " LATERAL hearth.register_display(i.id, $2) r", n, ttl)
    finally:
        await conn.close()
    return [Display(r["id"], r["session_id"], r["participant_id"], r["code"]) for r in rows]


async def make_identities(url: str, n: int) -> list[uuid.UUID]:
    conn = await asyncpg.connect(url)
    try:
        return [r["id"] for r in await conn.fetch(
            "SELECT hearth.create_identity('bench ' || g) AS id FROM generate_series(1, $1) g", n)]
    finally:
        await conn.close()


def identity_token(identity_id: uuid.UUID) -> str:
    return tokens.issue(SECRET, tokens.Claims(identity_id))


# --- connections (used by the client processes and by the latency driver) -----------------------------

async def open_sse(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw HTTP/1.1 event-stream request, returned once its opening comment has arrived."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n"
    writer.write(request.encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    if status != b"200":
        writer.close()
        raise RuntimeError(f"event stream answered {status.decode()}: {head[:200]!r}")
    buffered = b""
    while b": waiting for a controller\n\n" not in buffered:
        chunk = await reader.read(4096)
        if not chunk:
            raise RuntimeError("event stream closed before its opening comment")
        buffered += chunk
    return reader, writer


async def wait_sse_event(reader: asyncio.StreamReader, name: bytes = b"event: paired") -> float:
    """Reads the stream until the named event; returns the time it arrived (perf_counter)."""
    seen = b""
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            raise RuntimeError("event stream ended without the event")
        seen = seen[-64:] + chunk
        if name in seen:
            return time.perf_counter()


async def open_ws(port: int, path: str, *, deflate: bool = False) -> ClientConnection:
    """A websocket past its welcome frame; `deflate` offers permessage-deflate, as browsers do."""
    conn = await connect(f"ws://127.0.0.1:{port}{path}", max_size=2**20, open_timeout=60,
                         ping_interval=None, compression="deflate" if deflate else None)
    welcome = json.loads(await conn.recv())
    if welcome.get("type") != "welcome":
        raise RuntimeError(f"no welcome: {welcome}")
    return conn


async def wait_ws_event(conn: ClientConnection, kind: str = '"session.paired"') -> float:
    while True:
        frame = await conn.recv()
        if kind in frame:
            return time.perf_counter()


# --- client process: hold N idle connections ----------------------------------------------------------

async def hold_clients(kind: str, port: int, paths: list[str], concurrency: int) -> None:
    """Opens every path (SSE or websocket), reports {"ev": "ready"}, holds them until stdin closes or
    says quit."""
    gate = asyncio.Semaphore(concurrency)
    held: list[Any] = []
    failed = 0
    t0 = time.monotonic()

    async def one(path: str) -> None:
        nonlocal failed
        async with gate:
            try:
                if kind == "sse":
                    held.append(await open_sse(port, path))
                else:
                    held.append(await open_ws(port, path, deflate=kind == "ws-deflate"))
            except Exception as exc:
                failed += 1
                print(json.dumps({"ev": "error", "error": repr(exc)[:300]}), file=sys.stderr, flush=True)

    await asyncio.gather(*(one(p) for p in paths))
    print(json.dumps({"ev": "ready", "open": len(held), "failed": failed,
                      "ms": (time.monotonic() - t0) * 1000}), flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == "quit":
            break
    for item in held:
        with contextlib.suppress(Exception):
            if kind == "sse":
                item[1].close()
            else:
                await item.close()


class Holder:
    """A client process holding idle connections of one kind."""

    _n = 0

    def __init__(self, kind: str, port: int, paths: list[str], concurrency: int = 100) -> None:
        Holder._n += 1
        name = f"pairing-{kind}-clients-{Holder._n}"
        spec = log_dir() / f"{name}.json"
        spec.write_text(json.dumps({"kind": kind, "port": port, "paths": paths, "concurrency": concurrency}))
        self.count = len(paths)
        self.proc = Proc(name, [sys.executable, "-m", "bench.pairing", "--client", str(spec)],
                         json_stdout=True, stdin=True)

    async def ready(self, timeout: float = 180.0) -> dict[str, Any]:
        item = await self.proc.expect("ready", timeout)
        if item["failed"]:
            raise RuntimeError(f"{item['failed']} of {self.count} connections failed: {self.proc.tail()}")
        return item

    async def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.send("quit")
        await self.proc.stop()


# --- 1. memory per waiting display ------------------------------------------------------------------

async def memory_one(kind: str, url: str, displays: list[Display],
                     args: argparse.Namespace) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        server = hearth_server(url, f"pairing-memory-{kind}")
        stack.push_async_callback(server.stop)
        await server.ready()
        paths = [d.sse_path() if kind == "sse" else d.ws_path() for d in displays]
        warm = Holder(kind, server.port, paths[:WARMUP_CONNECTIONS])
        await warm.ready()
        await warm.stop()
        await asyncio.sleep(args.settle_s)
        before = rss_kib(server.pid)
        holder = Holder(kind, server.port, paths, concurrency=args.concurrency)
        stack.push_async_callback(holder.stop)
        ready = await holder.ready()
        await asyncio.sleep(args.settle_s)
        after = rss_kib(server.pid)
        metrics = await server_metrics(server.base_url)
    row = {
        "kind": kind, "connections": len(paths), "rss_before_kib": before, "rss_after_kib": after,
        "kib_per_display": (after - before) / len(paths), "connect_s": ready["ms"] / 1000,
        "touched_by_heartbeats": metrics.get("hearth_heartbeat_batch_size_sum", 0.0),
    }
    label = MEMORY_LABELS[kind]
    log(f"  {label:<38} RSS {before / 1024:7.1f} MiB -> {after / 1024:7.1f} MiB with {fmt_int(len(paths))}"
        f" waiting displays: {row['kib_per_display']:.1f} KiB per display (connected in"
        f" {row['connect_s']:.1f} s)")
    return row


async def memory(cluster: Any, args: argparse.Namespace) -> dict[str, Any]:
    url = await create_database(cluster, "pairing_memory")
    displays = await make_displays(url, args.displays)
    log(f"1. Waiting displays: {fmt_int(args.displays)} per instance, a fresh instance each")
    rows = [await memory_one(kind, url, displays, args) for kind in MEMORY_LABELS]
    sse, ws, ws_deflate = rows
    ratio = sse["kib_per_display"] / ws["kib_per_display"]
    deflate_ratio = sse["kib_per_display"] / ws_deflate["kib_per_display"]
    log(f"  SSE / websocket memory per waiting display: {ratio:.2f};"
        f" SSE / websocket with permessage-deflate: {deflate_ratio:.2f}")
    log(f"  target: <= 32 KiB per waiting display on SSE -> {sse['kib_per_display']:.1f} KiB"
        f" ({'met' if sse['kib_per_display'] <= 32 else 'MISSED'})")
    return {"displays": args.displays, "rows": rows, "sse_over_ws": ratio,
            "sse_over_ws_deflate": deflate_ratio}


# --- 2. pairing throughput ----------------------------------------------------------------------------

class RawHttp:
    """A minimal keep-alive HTTP/1.1 client (one connection, one request at a time): the same requests
    as httpx at a fraction of its CPU, to tell the server's cost from the load generator's."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, body: dict[str, Any], token: str) -> tuple[int, Any]:
        if self._conn is None:
            self._conn = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self._conn
        data = json.dumps(body).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n")
        writer.write(head.encode() + data)
        answer = await reader.readuntil(b"\r\n\r\n")
        at = answer.lower().index(b"content-length:") + 15
        length = int(answer[at:answer.index(b"\r\n", at)])
        return int(answer[9:12]), json.loads(await reader.readexactly(length))

    def close(self) -> None:
        if self._conn is not None:
            self._conn[1].close()


async def load_http(spec: dict[str, Any]) -> dict[str, Any]:
    """One load process: `workers` loops of register + pair, over one keep-alive httpx client (or, with
    client "raw", one RawHttp connection per loop)."""
    start, warm_end = spec["start"], spec["start"] + spec["warmup_s"]
    end = warm_end + spec["measure_s"]
    counted = errors = 0
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=spec["workers"], max_keepalive_connections=spec["workers"])
    async with httpx.AsyncClient(base_url=spec["base_url"], limits=limits, timeout=30) as client:
        async def post(raw: RawHttp | None, path: str, body: dict[str, Any], token: str) -> tuple[int, Any]:
            if raw is not None:
                return await raw.post(path, body, token)
            r = await client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
            return r.status_code, r.json()

        async def worker(i: int) -> None:
            nonlocal counted, errors
            raw = RawHttp(spec["port"]) if spec["client"] == "raw" else None
            display_token, controller_token = spec["display_tokens"][i], spec["controller_tokens"][i]
            try:
                while time.time() < end:
                    t0 = time.perf_counter()
                    status, registered = await post(raw, "/v1/displays", {}, display_token)
                    if status != 201:
                        errors += 1
                        continue
                    status, _ = await post(raw, "/v1/pair", {"code": registered["code"]}, controller_token)
                    now = time.time()
                    if status != 200:
                        errors += 1
                    elif warm_end <= now < end:
                        counted += 1
                        latencies.append(time.perf_counter() - t0)
            finally:
                if raw is not None:
                    raw.close()

        await asyncio.sleep(max(0.0, start - time.time()))
        await asyncio.gather(*(worker(i) for i in range(spec["workers"])))
    return {"pairs": counted, "errors": errors, "latencies": latencies}


async def load_sql(spec: dict[str, Any]) -> dict[str, Any]:
    """The peer: the same calls straight to the SQL API, as hearth_app, over `connections` connections."""
    start, warm_end = spec["start"], spec["start"] + spec["warmup_s"]
    end = warm_end + spec["measure_s"]
    counted = errors = 0
    latencies: list[float] = []

    async def init(conn: asyncpg.Connection) -> None:
        await conn.execute("SET ROLE hearth_app")

    pool = await asyncpg.create_pool(spec["database_url"], min_size=spec["connections"],
                                     max_size=spec["connections"], init=init)
    try:
        async def worker(i: int) -> None:
            nonlocal counted, errors
            display, controller = uuid.UUID(spec["display_ids"][i]), uuid.UUID(spec["controller_ids"][i])
            while time.time() < end:
                t0 = time.perf_counter()
                try:
                    code = await pool.fetchval("SELECT code FROM hearth.register_display($1)", display)
                    await pool.fetchrow("SELECT * FROM hearth.pair_controller($1, $2, '127.0.0.1')",
                                        code, controller)
                except asyncpg.PostgresError:
                    errors += 1
                    continue
                now = time.time()
                if warm_end <= now < end:
                    counted += 1
                    latencies.append(time.perf_counter() - t0)

        await asyncio.sleep(max(0.0, start - time.time()))
        await asyncio.gather(*(worker(i) for i in range(spec["workers"])))
    finally:
        await pool.close()
    return {"pairs": counted, "errors": errors, "latencies": latencies}


async def throughput_one(mode: str, label: str, url: str, server: Instance | None, cluster: Any,
                         args: argparse.Namespace, *, client: str = "httpx") -> dict[str, Any]:
    server_pids = [server.pid] if server is not None else []
    procs: list[Proc] = []
    workers = args.workers
    ids = await make_identities(url, 2 * workers * args.load_procs)
    start = time.time() + 3.0  # every process connected and waiting by then
    for n in range(args.load_procs):
        mine = ids[2 * workers * n: 2 * workers * (n + 1)]
        spec: dict[str, Any] = {
            "mode": mode, "start": start, "warmup_s": args.warmup_s, "measure_s": args.measure_s,
            "workers": workers,
        }
        if mode == "http":
            assert server is not None
            spec |= {"base_url": server.base_url, "port": server.port, "client": client,
                     "display_tokens": [identity_token(i) for i in mine[:workers]],
                     "controller_tokens": [identity_token(i) for i in mine[workers:]]}
        else:
            spec |= {"database_url": url, "connections": max(1, APP_POOL_SIZE // args.load_procs),
                     "display_ids": [str(i) for i in mine[:workers]],
                     "controller_ids": [str(i) for i in mine[workers:]]}
        name = f"pairing-load-{re.sub('[^a-z]+', '-', label.lower())}-{n}"
        path = log_dir() / f"{name}.json"
        path.write_text(json.dumps(spec))
        procs.append(Proc(name,
                          [sys.executable, "-m", "bench.pairing", "--load", str(path)], json_stdout=True))
    # CPU over the measuring window, read while every process (and its database backends) still lives.
    await asyncio.sleep(max(0.0, start + args.warmup_s - time.time()))
    meter = CpuMeter({"server": server_pids, "clients": [p.pid for p in procs]}, cluster)
    meter.start()
    profiler = None
    if args.profile and server_pids:
        profiler = Profiler(server_pids[0], args.measure_s, f"pairing-server-{label}")
    await asyncio.sleep(max(0.0, start + args.warmup_s + args.measure_s - time.time()))
    cpu = meter.stop()
    results = [await p.expect("result", 60) for p in procs]
    if profiler is not None:
        log(f"  py-spy profile of the server: {await profiler.wait()}")
    for p in procs:
        await p.stop()
    pairs = sum(r["pairs"] for r in results)
    latencies = sorted(x for r in results for x in r["latencies"])
    row = {
        "mode": mode, "label": label, "pairs_per_s": pairs / args.measure_s, "pairs": pairs,
        "errors": sum(r["errors"] for r in results), "concurrency": workers * args.load_procs,
        "p50_ms": percentile(latencies, 0.5) * 1000 if latencies else None,
        "p99_ms": percentile(latencies, 0.99) * 1000 if latencies else None,
        "cpu_server": cpu["server"], "cpu_clients": cpu["clients"],
        "cpu_postgres": cpu["ours"] - cpu["server"] - cpu["clients"], "cpu_others": cpu["others"],
    }
    log(f"  {label:<28} {row['pairs_per_s']:5.0f} pairs/s ({fmt_int(pairs)} in {args.measure_s:g} s,"
        f" {row['errors']} errors, {row['concurrency']} in flight); register+pair p50"
        f" {row['p50_ms'] or 0:.1f} ms, p99 {row['p99_ms'] or 0:.1f} ms; CPU (cores): server"
        f" {row['cpu_server']:.2f}, postgres+driver {row['cpu_postgres']:.2f},"
        f" clients {row['cpu_clients']:.2f},"
        f" other work {row['cpu_others']:.2f}")
    return row


async def throughput(cluster: Any, args: argparse.Namespace) -> dict[str, Any]:
    url = await create_database(cluster, "pairing_throughput")
    log(f"2. Pairing throughput: register + pair, {args.load_procs} client processes x {args.workers} loops")
    async with contextlib.AsyncExitStack() as stack:
        server = hearth_server(url, "pairing-throughput")
        stack.push_async_callback(server.stop)
        await server.ready()
        http_row = await throughput_one("http", "HTTP, httpx clients", url, server, cluster, args)
        raw_row = await throughput_one("http", "HTTP, raw clients", url, server, cluster, args, client="raw")
        sql_row = await throughput_one("sql", "SQL API direct", url, None, cluster, args)
        rows = [http_row, raw_row, sql_row]
        if args.async_commit_row:
            # What moves the database's ceiling: every pairing call NOTIFYs, and PostgreSQL serialises
            # notifying commits (PreCommit_Notify's lock is held through the WAL flush), so with
            # synchronous_commit on the rate is bounded by the disk's flush time. The same loads with
            # synchronous_commit off (a reload, picked up by the app's open connections):
            await set_synchronous_commit(cluster, "off")
            try:
                rows.append(await throughput_one("http", "HTTP, raw, sync_commit off", url, server, cluster,
                                                 args, client="raw"))
                rows.append(await throughput_one("sql", "SQL API, sync_commit off", url, None, cluster, args))
            finally:
                await set_synchronous_commit(cluster, "on")
    ratio = http_row["pairs_per_s"] / sql_row["pairs_per_s"] if sql_row["pairs_per_s"] else None
    log(f"  HTTP (httpx) / SQL API pairs per second: {ratio:.2f}; HTTP (raw clients) / SQL API:"
        f" {raw_row['pairs_per_s'] / sql_row['pairs_per_s']:.2f}" if ratio is not None else "  ratio: n/a")
    log(f"  target: >= 500 pairs/s over HTTP -> {http_row['pairs_per_s']:.0f}"
        f" ({'met' if http_row['pairs_per_s'] >= 500 else 'MISSED'})")
    raw_ratio = raw_row["pairs_per_s"] / sql_row["pairs_per_s"] if ratio is not None else None
    return {"rows": rows, "http_over_sql": ratio, "raw_http_over_sql": raw_ratio}


async def set_synchronous_commit(cluster: Any, value: str) -> None:
    conn = await asyncpg.connect(cluster.url("postgres"))
    try:
        await conn.execute(f"ALTER SYSTEM SET synchronous_commit = {value}")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()
    await asyncio.sleep(0.5)  # the reload reaches every backend


# --- 3. POST /v1/pair -> paired event -----------------------------------------------------------------

async def warm(idle: asyncio.Queue[RawHttp], token: str) -> None:
    raw = await idle.get()
    try:
        status, _ = await raw.post("/v1/displays", {}, token)
        if status != 201:
            raise RuntimeError(f"register answered {status}")
    finally:
        idle.put_nowait(raw)


async def latency_one(
    kind: str, url: str, a: Instance, b: Instance, args: argparse.Namespace
) -> dict[str, Any]:
    displays = await make_displays(url, args.latency_pairs)
    controllers = await make_identities(url, max(1, args.latency_pairs // 50))
    gate = asyncio.Semaphore(args.concurrency)

    async def opened(d: Display) -> Any:
        async with gate:
            return await (open_sse(a.port, d.sse_path()) if kind == "sse" else open_ws(a.port, d.ws_path()))

    conns = await asyncio.gather(*(opened(d) for d in displays))
    arrivals = [
        asyncio.create_task(wait_sse_event(c[0]) if kind == "sse" else wait_ws_event(c)) for c in conns
    ]
    sent: list[float] = [0.0] * len(displays)
    answered: list[float] = [0.0] * len(displays)
    # Controllers' requests go over a pool of keep-alive connections (RawHttp: the sender adds little).
    idle: asyncio.Queue[RawHttp] = asyncio.Queue()
    for _ in range(64):
        idle.put_nowait(RawHttp(b.port))
    tokens_ = [identity_token(c) for c in controllers]

    async def pair_one(i: int) -> None:
        raw = await idle.get()
        try:
            sent[i] = time.perf_counter()
            status, body = await raw.post("/v1/pair", {"code": displays[i].code}, tokens_[i % len(tokens_)])
            answered[i] = time.perf_counter()
        finally:
            idle.put_nowait(raw)
        if status != 200:
            raise RuntimeError(f"pair answered {status}: {body}")

    # Warm the connections (and the server's code paths) with one register call each.
    warm_token = identity_token(controllers[0])
    await asyncio.gather(*(warm(idle, warm_token) for _ in range(64)))
    requests = []
    t0 = time.perf_counter()
    for i in range(len(displays)):
        due = t0 + i / args.latency_rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        requests.append(asyncio.create_task(pair_one(i)))
    await asyncio.gather(*requests)
    arrived = await asyncio.wait_for(asyncio.gather(*arrivals), 60)
    while not idle.empty():
        idle.get_nowait().close()
    for c in conns:
        with contextlib.suppress(Exception):
            if kind == "sse":
                c[1].close()
            else:
                await c.close()
    event_ms = sorted((arrived[i] - sent[i]) * 1000 for i in range(len(displays)))
    response_ms = sorted((answered[i] - sent[i]) * 1000 for i in range(len(displays)))
    row = {
        "kind": kind, "pairs": len(displays), "rate": args.latency_rate,
        "p50_ms": percentile(event_ms, 0.50), "p90_ms": percentile(event_ms, 0.90),
        "p99_ms": percentile(event_ms, 0.99), "max_ms": event_ms[-1],
        "pair_response_p50_ms": percentile(response_ms, 0.50),
        "pair_response_p99_ms": percentile(response_ms, 0.99),
    }
    label = "display on SSE" if kind == "sse" else "display on ws"
    log(f"  {label:<15} POST /v1/pair -> paired: p50 {row['p50_ms']:.1f} ms, p90 {row['p90_ms']:.1f} ms,"
        f" p99 {row['p99_ms']:.1f} ms, max {row['max_ms']:.1f} ms (the POST's own response: p50"
        f" {row['pair_response_p50_ms']:.1f} ms, p99 {row['pair_response_p99_ms']:.1f} ms)")
    return row


async def latency(cluster: Any, args: argparse.Namespace) -> dict[str, Any]:
    url = await create_database(cluster, "pairing_latency")
    log(f"3. POST /v1/pair (to instance B) -> the display's paired event (on instance A):"
        f" {fmt_int(args.latency_pairs)} pairs at {args.latency_rate:g}/s")
    async with contextlib.AsyncExitStack() as stack:
        a, b = hearth_server(url, "pairing-latency-a"), hearth_server(url, "pairing-latency-b")
        stack.push_async_callback(a.stop)
        stack.push_async_callback(b.stop)
        await a.ready()
        await b.ready()
        rows = [await latency_one("sse", url, a, b, args), await latency_one("ws", url, a, b, args)]
    ratio = rows[0]["p99_ms"] / rows[1]["p99_ms"] if rows[1]["p99_ms"] else None
    log(f"  SSE / websocket p99: {ratio:.2f}" if ratio is not None else "  ratio: n/a")
    return {"rows": rows, "sse_over_ws_p99": ratio}


# --- driver ------------------------------------------------------------------------------------------

async def run(args: argparse.Namespace) -> dict[str, Any]:
    hard = raise_nofile()
    if hard < args.displays + 2000:
        raise SystemExit(f"the open-files hard limit ({hard}) is too low for {args.displays} connections")
    parts = {p for p in args.parts.split(",") if p}
    started = time.monotonic()
    command = " ".join([".venv/bin/python -m bench.pairing", *sys.argv[1:]])
    results: dict[str, Any] = {"machine": machine_facts(), "command": command}
    with bench_cluster() as cluster:
        conn = await asyncpg.connect(cluster.url("postgres"))
        try:
            results["postgres"] = await server_facts(conn)
        finally:
            await conn.close()
        log(f"Pairing benchmarks (logs in {log_dir()}); machine: {results['machine']};"
            f" postgres: {results['postgres']}; cluster pids: {len(cluster_pids(cluster))}")
        if "memory" in parts:
            results["memory"] = await memory(cluster, args)
        if "throughput" in parts:
            results["throughput"] = await throughput(cluster, args)
        if "latency" in parts:
            results["latency"] = await latency(cluster, args)
    results["elapsed_s"] = time.monotonic() - started
    log(f"Done in {results['elapsed_s']:.0f} s")
    return results


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default="memory,throughput,latency")
    p.add_argument("--displays", type=int, default=5000, help="waiting displays for the memory reading")
    p.add_argument("--concurrency", type=int, default=100, help="connection attempts in flight")
    p.add_argument("--settle-s", type=float, default=3.0)
    p.add_argument("--load-procs", type=int, default=2)
    p.add_argument("--workers", type=int, default=16, help="register+pair loops per client process")
    p.add_argument("--warmup-s", type=float, default=3.0)
    p.add_argument("--measure-s", type=float, default=10.0)
    p.add_argument("--latency-pairs", type=int, default=1000)
    p.add_argument("--latency-rate", type=float, default=100.0, help="pairs per second")
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--no-async-commit-row", dest="async_commit_row", action="store_false",
                   help="skip the HTTP throughput run with synchronous_commit off")
    p.add_argument("--profile", action="store_true", help="py-spy the server during the HTTP throughput run")
    p.add_argument("--client", help=argparse.SUPPRESS)
    p.add_argument("--load", help=argparse.SUPPRESS)
    return p


def main() -> None:
    args = parser().parse_args()
    if args.client:
        raise_nofile()
        spec = json.loads(Path(args.client).read_text())
        asyncio.run(hold_clients(spec["kind"], spec["port"], spec["paths"], spec["concurrency"]))
        return
    if args.load:
        spec = json.loads(Path(args.load).read_text())
        result = asyncio.run(load_http(spec) if spec["mode"] == "http" else load_sql(spec))
        print(json.dumps({"ev": "result", **result}), flush=True)
        return
    results = asyncio.run(run(args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=str)


if __name__ == "__main__":
    main()
