"""Load generation: the fixtures a run needs in the database (members of sessions and their tokens), the
Node clients (bench/node/clients.js), one system under test with its clients and producer (`Target`),
and the two ways of driving it: closed-loop (`drive_window`) and open-loop (`drive_rate`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from app import tokens
from app.cluster import LocalCluster
from bench import _db
from bench.common import NODE_DIR, log_dir
from bench.processes import PAD, BroadcasterServer, Proc, RawServer, SioServer, hearth_server, redis
from tests.app.harness import SECRET

bench_cluster = _db.bench_cluster


async def create_database(cluster: LocalCluster, name: str) -> str:
    """A new database migrated to head without pg_cron jobs (bench._db's), with track_functions = all."""
    conn = await asyncpg.connect(cluster.url("postgres"))
    try:
        await conn.execute("ALTER SYSTEM SET track_functions = 'all'")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()
    return await _db.create_database(cluster, name)


@dataclass
class Member:
    identity_id: uuid.UUID
    session_id: uuid.UUID
    participant_id: uuid.UUID

    def token(self) -> str:
        return tokens.issue(SECRET, tokens.Claims(self.identity_id, self.session_id, self.participant_id))


async def make_members(url: str, sessions: int, per_session: int) -> list[list[Member]]:
    """`sessions` room sessions of `per_session` present participants each, made through the SQL API
    as the superuser (create_session, create_identity, join_session)."""
    conn = await asyncpg.connect(url)
    try:
        sids = [r["session_id"] for r in await conn.fetch(
            "SELECT s.session_id FROM generate_series(1, $1) g,"
            " LATERAL hearth.create_session('room', 'bench ' || g) s", sessions)]
        total = sessions * per_session
        iids = [r["id"] for r in await conn.fetch(
            "SELECT hearth.create_identity('bench ' || g) AS id FROM generate_series(1, $1) g", total)]
        sid_list = [sids[i // per_session] for i in range(total)]
        rows = await conn.fetch(
            "SELECT u.sid, u.iid, hearth.join_session(u.sid, u.iid) AS pid"
            " FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY u(sid, iid, n) ORDER BY u.n",
            sid_list, iids)
    finally:
        await conn.close()
    members = [Member(r["iid"], r["sid"], r["pid"]) for r in rows]
    return [members[i * per_session:(i + 1) * per_session] for i in range(sessions)]


def body(ts_ms: float | None = None) -> str:
    return json.dumps({"ts": time.time() * 1000 if ts_ms is None else ts_ms, "pad": PAD})


def hearth_shaped_frame(seq: int) -> str:
    """What Hearth sends for a message event, for the peers to relay (same keys and layout, about the
    same size), stamped with body.ts = now in ms since the epoch."""
    return (f'{{"at": "2026-01-01T00:00:00.000000+00:00", "seq": {seq}, "body": {{"ts": {time.time() * 1000},'
            f' "pad": "{PAD}"}}, "type": "message", "session_id": "5e55e55e-0000-4000-8000-000000000000",'
            ' "participant_id": "9a9a9a9a-0000-4000-8000-000000000000"}')


@dataclass
class Stats:
    total: int = 0
    min: int = 0
    open: int = 0
    closed: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    pongs: int = 0
    pings: int = 0


class Clients:
    """bench/node/clients.js: N `ws` (or socket.io-client) clients in one Node process."""

    _n = 0

    def __init__(self, name: str, config: dict[str, Any]) -> None:
        Clients._n += 1
        path = log_dir() / f"{name}-{Clients._n}.json"
        path.write_text(json.dumps(config))
        self.count = len(config["urls"]) if config.get("mode", "ws") == "ws" else config["count"]
        self.proc = Proc(f"{name}-{Clients._n}", ["node", str(NODE_DIR / "clients.js"), str(path)],
                         json_stdout=True, stdin=True, cwd=NODE_DIR)

    @classmethod
    def ws(cls, name: str, urls: list[str], *, latency: bool = False, report_ms: int = 20,
           ping_interval_s: float = 0, concurrency: int = 100) -> Clients:
        return cls(name, {"mode": "ws", "urls": urls, "latency": latency, "report_ms": report_ms,
                          "ping_interval_s": ping_interval_s, "concurrency": concurrency})

    @classmethod
    def sio(cls, name: str, url: str, count: int, *, latency: bool = False, report_ms: int = 20,
            concurrency: int = 100) -> Clients:
        return cls(name, {"mode": "sio", "url": url, "count": count, "latency": latency,
                          "report_ms": report_ms, "concurrency": concurrency})

    async def ready(self, timeout: float = 120.0) -> dict[str, Any]:
        item = await self.proc.expect("ready", timeout)
        if item["failed"]:
            failed = item["failed"]
            raise RuntimeError(f"{self.proc.name}: {failed} of {self.count} clients could not connect")
        return item

    @property
    def stats(self) -> Stats:
        raw = self.proc.last.get("stats")
        if raw is None:
            return Stats()
        return Stats(int(raw["total"]), int(raw["min"]), raw["open"], raw["closed"], raw["codes"],
                     raw["pongs"], raw["pings"])

    async def fresh_stats(self) -> Stats:
        """Stats reported after this call (the reports come every report_ms)."""
        await self.proc.next_stats()
        return self.stats

    async def latency(self, until_ms: float | None = None) -> dict[str, Any]:
        """Percentiles over the messages stamped up to `until_ms` (ms since the epoch)."""
        self.proc.send("latency" if until_ms is None else f"latency {until_ms:.3f}")
        return await self.proc.expect("latency", 30)

    def reset_latency(self, since_ms: float | None = None) -> None:
        """Forget the samples; from now on keep only messages stamped at or after `since_ms`."""
        self.proc.send("reset" if since_ms is None else f"reset {since_ms:.3f}")

    async def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.send("quit")
        await self.proc.stop()


# --- targets: one system under test, its clients and its producer -------------------------------

@dataclass
class Target:
    name: str
    clients: Clients
    produce_batch: Produce  # k events at once (one transaction where there is a database)
    produce_each: Produce  # k events, one transaction each, each stamped when sent
    server_pids: list[int]
    profile_pid: int | None = None
    call_ms: list[float] = field(default_factory=list)  # produce_each: duration of each database call


# Events sent one transaction each come from a pool of this many connections, so that a due burst is
# not serialised behind one connection's round trips (the stamp is taken when each call is made).
EACH_CONNECTIONS = 4
HEARTH_POST_BATCH = ("SELECT count(hearth.post_message($1, jsonb_build_object('ts',"
                     " extract(epoch FROM clock_timestamp()) * 1000, 'pad', $2::text)))"
                     " FROM generate_series(1, $3)")


async def hearth_target(stack: contextlib.AsyncExitStack, cluster: LocalCluster, n: int, *,
                        latency: bool = False, name: str = "hearth", instances: int = 1,
                        async_commit: bool = False) -> Target:
    """`instances` Hearth instances on one database; the N clients on the last one; events are
    hearth.post_message calls of a participant that is not connected, from a separate asyncpg producer.
    `async_commit`: the producer's one-per-transaction calls commit with synchronous_commit = off
    (no wait for the WAL flush), to tell the relay's share of the latency from the commit's."""
    url = await create_database(cluster, f"{name.replace('-', '_')}_{uuid.uuid4().hex[:8]}")
    (members,) = await make_members(url, 1, n + 1)
    producer_pid = members[0].participant_id
    servers = []
    for i in range(instances):
        server = hearth_server(url, f"{name}-{'ab'[i] if instances > 1 else 'server'}")
        stack.push_async_callback(server.stop)
        servers.append(server)
    for server in servers:
        await server.ready()
    producer = await asyncpg.connect(url)
    stack.push_async_callback(producer.close)
    clients = Clients.ws(f"{name}-clients", [f"{servers[-1].ws_url}?token={m.token()}" for m in members[1:]],
                         latency=latency)
    stack.push_async_callback(clients.stop)

    async def batch(k: int) -> None:
        await producer.fetchval(HEARTH_POST_BATCH, producer_pid, PAD, k)

    async def init(conn: asyncpg.Connection) -> None:
        if async_commit:
            await conn.execute("SET synchronous_commit = off")

    pool = await asyncpg.create_pool(url, min_size=EACH_CONNECTIONS, max_size=EACH_CONNECTIONS, init=init)
    stack.push_async_callback(pool.close)

    call_ms: list[float] = []

    async def post() -> None:
        start = time.perf_counter()
        await pool.fetchval("SELECT hearth.post_message($1, $2::jsonb)", producer_pid, body())
        call_ms.append((time.perf_counter() - start) * 1000)

    async def each(k: int) -> None:
        await asyncio.gather(*(post() for _ in range(k)))

    return Target(name, clients, batch, each, [s.pid for s in servers], servers[-1].pid, call_ms)


async def raw_target(stack: contextlib.AsyncExitStack, n: int, *, latency: bool = False,
                     framed_once: bool = False) -> Target:
    raw = RawServer(framed_once=framed_once)
    stack.push_async_callback(raw.stop)
    await raw.ready()
    name = "raw-framed" if framed_once else "raw"
    clients = Clients.ws(f"{name}-clients", [raw.url] * n, latency=latency)
    stack.push_async_callback(clients.stop)

    async def produce(k: int) -> None:
        raw.broadcast(k)

    return Target(name, clients, produce, produce, [raw.proc.pid], raw.proc.pid)


async def broadcaster_target(stack: contextlib.AsyncExitStack, cluster: LocalCluster, n: int, *,
                             latency: bool = False) -> Target:
    url = cluster.url("postgres")
    server = BroadcasterServer(url)
    stack.push_async_callback(server.stop)
    await server.ready()
    producer = await asyncpg.connect(url)
    stack.push_async_callback(producer.close)
    clients = Clients.ws("broadcaster-clients", [server.url] * n, latency=latency)
    stack.push_async_callback(clients.stop)
    seq = 0

    async def batch(k: int) -> None:
        nonlocal seq
        frames = [hearth_shaped_frame(seq + i + 1) for i in range(k)]
        seq += k
        await producer.fetchval("SELECT count(pg_notify('bench_relay', f)) FROM unnest($1::text[]) f", frames)

    pool = await asyncpg.create_pool(url, min_size=EACH_CONNECTIONS, max_size=EACH_CONNECTIONS)
    stack.push_async_callback(pool.close)

    call_ms: list[float] = []

    async def notify(n: int) -> None:
        start = time.perf_counter()
        await pool.execute("SELECT pg_notify('bench_relay', $1)", hearth_shaped_frame(n))
        call_ms.append((time.perf_counter() - start) * 1000)

    async def each(k: int) -> None:
        nonlocal seq
        seq += k
        await asyncio.gather(*(notify(seq - k + i + 1) for i in range(k)))

    return Target("broadcaster", clients, batch, each, [server.proc.pid], server.proc.pid, call_ms)


async def sio_target(stack: contextlib.AsyncExitStack, n: int, *, latency: bool = False) -> Target:
    """Two Socket.IO instances on one Redis: frames are emitted on A and reach B's N clients via Redis."""
    redis_url = await stack.enter_async_context(redis())
    key = f"hearth-bench-{uuid.uuid4().hex[:8]}"
    a = SioServer(redis_url, key, "sio-a")
    stack.push_async_callback(a.stop)
    b = SioServer(redis_url, key, "sio-b")
    stack.push_async_callback(b.stop)
    await a.ready()
    await b.ready()
    clients = Clients.sio("sio-clients", b.url, n, latency=latency)
    stack.push_async_callback(clients.stop)

    async def produce(k: int) -> None:
        a.broadcast(k)

    return Target("sio", clients, produce, produce, [a.proc.pid, b.proc.pid])


async def make_target(system: str, stack: contextlib.AsyncExitStack, cluster: LocalCluster, n: int, *,
                      latency: bool = False) -> Target:
    if system == "hearth":
        return await hearth_target(stack, cluster, n, latency=latency, instances=2 if latency else 1)
    if system == "hearth-async-commit":
        return await hearth_target(stack, cluster, n, latency=latency, instances=2 if latency else 1,
                                   name=system, async_commit=True)
    if system == "raw":
        return await raw_target(stack, n, latency=latency)
    if system == "raw-framed":
        return await raw_target(stack, n, latency=latency, framed_once=True)
    if system == "broadcaster":
        return await broadcaster_target(stack, cluster, n, latency=latency)
    if system == "sio":
        return await sio_target(stack, n, latency=latency)
    raise SystemExit(f"unknown system {system!r}")


Produce = Callable[[int], Awaitable[None]]


@dataclass
class Throughput:
    frames_per_s: float
    events_per_s: float
    seconds: float
    closed: int


async def drive_window(clients: Clients, produce: Produce, *, window: int, warmup_s: float,
                       measure_s: float) -> Throughput:
    """Closed-loop ceiling: keep `window` events in flight past the slowest client (events produced
    minus the fewest any client has received), so the server always has work but never piles up more
    than `window` frames per client. Returns the delivered frames/s over the measuring window."""
    produced = clients.stats.min
    start = time.monotonic()
    t0: float | None = None
    s0 = Stats()
    while True:
        now = time.monotonic()
        stats = clients.stats
        if t0 is None and now - start >= warmup_s:
            t0, s0 = now, await clients.fresh_stats()
            t0 = time.monotonic()
        elif t0 is not None and now - t0 >= measure_s:
            s1 = await clients.fresh_stats()
            t1 = time.monotonic()
            return Throughput((s1.total - s0.total) / (t1 - t0), (s1.min - s0.min) / (t1 - t0), t1 - t0,
                              s1.closed)
        in_flight = produced - stats.min
        if stats.closed:
            raise RuntimeError(f"{clients.proc.name}: {stats.closed} clients closed: {stats.codes}")
        if in_flight < window:
            n = window - in_flight
            await produce(n)
            produced += n
        await clients.fresh_stats()


async def drive_rate(produce: Produce, *, rate: float, seconds: float, tick_s: float = 0.001) -> int:
    """Open loop: `rate` events per second for `seconds`, whatever is due at each tick, without
    waiting for the previous events (a slow server or database does not slow the schedule: the
    events queue up and their latency shows it). Returns once all are sent: the number sent."""
    start = time.monotonic()
    sent = 0
    pending: set[asyncio.Task[None]] = set()
    while (elapsed := time.monotonic() - start) < seconds:
        due = min(int(elapsed * rate), int(seconds * rate)) - sent
        if due > 0:
            task = asyncio.ensure_future(produce(due))
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += due
        await asyncio.sleep(tick_s)
    due = int(seconds * rate) - sent
    if due > 0:
        await produce(due)
        sent += due
    if pending:
        await asyncio.gather(*pending)
    return sent


