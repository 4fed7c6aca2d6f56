"""Shared helpers of the relay benchmarks (bench/relay_*.py): a throwaway cluster, Hearth instances and
peer servers as subprocesses, Node load generators, fixtures, RSS and metrics readings.

Everything runs on loopback. Peers need, besides the venv: `npm install` in bench/node (ws,
socket.io, socket.io-client, @socket.io/redis-adapter, redis), `.venv/bin/pip install broadcaster`
(bench only, not a Hearth dependency) and Debian's redis-server (the one on 127.0.0.1:6379 is used
when it answers, else a private one is started on a free port).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from app import tokens
from app.cluster import LocalCluster, free_port
from bench import _db

ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = ROOT / "bench" / "node"
SECRET = "bench-secret-for-hearth-relay-0123456789"
ADMIN_TOKEN = "bench-admin-token"
PAD = "x" * 64  # message bodies are {"ts": ..., "pad": PAD}: Hearth frames of about 300 bytes
LOG_DIR = Path(tempfile.mkdtemp(prefix="hearth-relay-bench-"))


def log(message: str = "") -> None:
    print(message, flush=True)


def raise_nofile() -> int:
    """Raise this process's open-files limit to its hard limit; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def check_prerequisites(*, peers: bool) -> list[str]:
    """What is missing to run the peers (empty when all is there)."""
    missing = []
    if shutil.which("node") is None:
        missing.append("node (Debian: nodejs)")
    if not (NODE_DIR / "node_modules" / "ws").exists():
        missing.append("bench/node/node_modules (run `npm install` in bench/node)")
    if peers:
        try:
            import broadcaster  # noqa: F401
        except ImportError:
            missing.append("broadcaster (`.venv/bin/pip install broadcaster`)")
        if shutil.which("redis-server") is None and not redis_answers("127.0.0.1", 6379):
            missing.append("redis-server (Debian: redis-server)")
    return missing


bench_cluster = _db.bench_cluster  # re-exported: bench/pairing.py imports it from here

# --- PostgreSQL ------------------------------------------------------------------------------------

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


async def function_calls(url: str, schema: str, name: str) -> int:
    """pg_stat_user_functions.calls of one function (needs track_functions = all)."""
    conn = await asyncpg.connect(url)
    try:
        calls = await conn.fetchval(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions"
            " WHERE schemaname = $1 AND funcname = $2", schema, name)
    finally:
        await conn.close()
    return int(calls)


# --- processes -------------------------------------------------------------------------------------

def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Proc:
    """A subprocess with a log file, optionally a stdin pipe and a JSON-lines stdout."""

    def __init__(self, name: str, args: list[str], *, env: dict[str, str] | None = None,
                 cwd: Path = ROOT, json_stdout: bool = False, stdin: bool = False) -> None:
        self.name = name
        self.log_path = LOG_DIR / f"{name}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            args, cwd=cwd, env={**os.environ, **(env or {})},
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE if json_stdout else self._log,
            stderr=self._log, text=True, bufsize=1,
        )
        self.lines: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.last: dict[str, dict[str, Any]] = {}
        self._stats_changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        if json_stdout:
            self._reader = asyncio.get_running_loop().create_task(self._read())

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 24)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), self.proc.stdout)
        while line := await reader.readline():
            try:
                item = json.loads(line)
            except ValueError:
                self._log.write(line.decode(errors="replace"))
                continue
            ev = item.get("ev", "")
            self.last[ev] = item
            if ev == "stats":
                changed, self._stats_changed = self._stats_changed, asyncio.Event()
                changed.set()
            else:
                self.lines.put_nowait(item)

    async def next_stats(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next stats line reported after this call."""
        await asyncio.wait_for(self._stats_changed.wait(), timeout)
        return self.last["stats"]

    async def expect(self, ev: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name}: no {ev!r} (exit {self.proc.poll()}): {self.tail()}")
            try:
                item = await asyncio.wait_for(self.lines.get(), min(remaining, 1.0))
            except TimeoutError:
                continue
            if item.get("ev") == ev:
                return item

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def tail(self, chars: int = 2000) -> str:
        self._log.flush()
        return self.log_path.read_text()[-chars:]

    async def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            if self.proc.stdin is not None:
                with contextlib.suppress(OSError):
                    self.proc.stdin.close()
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        self._log.close()


async def wait_http(url: str, proc: Proc, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=1) as client:
        while time.monotonic() < deadline:
            if proc.proc.poll() is not None:
                raise RuntimeError(f"{proc.name} exited: {proc.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{proc.name} not ready at {url}: {proc.tail()}")


async def wait_port(port: int, proc: Proc, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            raise RuntimeError(f"{proc.name} exited: {proc.tail()}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{proc.name} not listening on {port}: {proc.tail()}")


class Hearth:
    """One `hearth serve` process (python -m app.cli serve) on a free loopback port."""

    def __init__(self, database_url: str, name: str) -> None:
        self.port = free_port()
        self.name = name
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/v1/ws"
        self.proc = Proc(name, [sys.executable, "-m", "app.cli", "serve"], env={
            "HEARTH_DATABASE_URL": database_url, "HEARTH_SECRET": SECRET, "HEARTH_ADMIN_TOKEN": ADMIN_TOKEN,
            "HEARTH_PORT": str(self.port), "HEARTH_INSTANCE_ID": name,
        })

    async def ready(self) -> Hearth:
        await wait_http(self.base_url + "/readyz", self.proc)
        return self

    async def metrics(self) -> dict[str, float]:
        async with httpx.AsyncClient(timeout=5) as client:
            text = (await client.get(self.base_url + "/metrics")).text
        return parse_prometheus(text)

    async def stop(self) -> None:
        await self.proc.stop()


def parse_prometheus(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.match(r"^(\S+?)(\{[^}]*\})?\s+(\S+)$", line)
        if match:
            values[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return values


class RawServer:
    """bench/relay_raw_server.py: bare `websockets` broadcasting."""

    def __init__(self, *, framed_once: bool = False) -> None:
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/"
        args = [sys.executable, "-m", "bench.relay_raw_server", str(self.port)]
        self.proc = Proc("raw-framed-once" if framed_once else "raw-websockets",
                         args + (["--framed-once"] if framed_once else []), json_stdout=True, stdin=True)

    async def ready(self) -> RawServer:
        await self.proc.expect("listening", 30)
        return self

    def broadcast(self, n: int) -> None:
        """n frames, stamped with the time of this call."""
        self.proc.send(f"B {n} {PAD} {time.time() * 1000:.3f}")

    async def stop(self) -> None:
        await self.proc.stop()


class BroadcasterServer:
    """bench/relay_broadcaster_server.py: encode/broadcaster (Postgres backend) behind Starlette."""

    def __init__(self, database_url: str, name: str = "broadcaster") -> None:
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/ws"
        self.proc = Proc(name, [sys.executable, "-m", "bench.relay_broadcaster_server", str(self.port)],
                         env={"BENCH_BROADCAST_URL": database_url})

    async def ready(self) -> BroadcasterServer:
        await wait_port(self.port, self.proc)
        return self

    async def stop(self) -> None:
        await self.proc.stop()


def redis_answers(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), 0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.asynccontextmanager
async def redis() -> AsyncIterator[str]:
    """The Redis on 127.0.0.1:6379 when it answers, else a private, non-persistent one."""
    if redis_answers("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379"
        return
    port = free_port()
    proc = Proc("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no"])
    try:
        await wait_port(port, proc)
        yield f"redis://127.0.0.1:{port}"
    finally:
        await proc.stop()


class SioServer:
    """bench/node/sio_server.js: Socket.IO 4 with the Redis adapter."""

    def __init__(self, redis_url: str, key: str, name: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = Proc(name, ["node", str(NODE_DIR / "sio_server.js"), str(self.port), redis_url, key],
                         json_stdout=True, stdin=True, cwd=NODE_DIR)

    async def ready(self) -> SioServer:
        await self.proc.expect("listening", 30)
        return self

    def broadcast(self, n: int) -> None:
        """n frames emitted to the room from this instance, stamped with the time of this call."""
        self.proc.send(f"B {n} {PAD} {time.time() * 1000:.3f}")

    async def stop(self) -> None:
        await self.proc.stop()


# --- Node load generators ----------------------------------------------------------------------------

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
        path = LOG_DIR / f"{name}-{Clients._n}.json"
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
        server = Hearth(url, f"{name}-{'ab'[i] if instances > 1 else 'server'}")
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

    return Target(name, clients, batch, each, [s.proc.pid for s in servers], servers[-1].proc.pid, call_ms)


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


# --- CPU accounting ------------------------------------------------------------------------------------

def cluster_pids(cluster: LocalCluster) -> list[int]:
    """The postmaster of `cluster` and its children (backends, walwriter, ...)."""
    try:
        postmaster = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    pids = [postmaster]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                    pids.append(int(entry.name))
    return pids


def machine_busy_s() -> float:
    """CPU seconds spent busy, all cores, since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU used over a window by given processes, by everything ours, and by the rest of the machine
    (other work sharing it: it makes figures noisier)."""

    def __init__(self, groups: dict[str, list[int]], cluster: LocalCluster | None) -> None:
        self.groups = groups
        self.cluster = cluster

    def _ours(self) -> dict[int, float]:
        pids = {os.getpid(), *(p for g in self.groups.values() for p in g)}
        if self.cluster is not None:
            pids.update(cluster_pids(self.cluster))
        found = {}
        for pid in pids:
            with contextlib.suppress(OSError):
                found[pid] = cpu_seconds(pid)
        return found

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._busy0 = machine_busy_s()
        self._ours0 = self._ours()

    def stop(self) -> dict[str, float]:
        elapsed = time.monotonic() - self._t0
        ours1 = self._ours()
        used = {pid: ours1[pid] - self._ours0.get(pid, 0.0) for pid in ours1}
        result = {name: sum(used.get(p, 0.0) for p in pids) / elapsed for name, pids in self.groups.items()}
        result["ours"] = sum(used.values()) / elapsed
        result["machine"] = (machine_busy_s() - self._busy0) / elapsed
        result["others"] = max(0.0, result["machine"] - result["ours"])
        return result


# --- drivers -----------------------------------------------------------------------------------------

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


class Profiler:
    """py-spy record of a Python process (raw collapsed stacks), when py-spy is installed."""

    def __init__(self, pid: int, seconds: float, name: str) -> None:
        exe = Path(sys.executable).parent / "py-spy"
        self.out = LOG_DIR / f"{name}-pyspy.txt"
        self.proc = None
        if exe.exists():
            self.proc = subprocess.Popen(
                [str(exe), "record", "-p", str(pid), "-d", str(max(1, round(seconds))), "-r", "250",
                 "-f", "raw", "-o", str(self.out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def wait(self) -> Path | None:
        if self.proc is None:
            return None
        await asyncio.to_thread(self.proc.wait)
        return self.out


class SyscallCounter:
    """`perf stat` of write-type system calls made by some processes (when perf can trace them)."""

    EVENTS = ("syscalls:sys_enter_write", "syscalls:sys_enter_writev", "syscalls:sys_enter_sendto",
              "syscalls:sys_enter_sendmsg")

    def __init__(self, pids: list[int], name: str) -> None:
        self.out = LOG_DIR / f"{name}-perf.csv"
        self.proc = None
        if shutil.which("perf"):
            self.proc = subprocess.Popen(
                ["perf", "stat", "-x", ",", "-o", str(self.out), "-e", ",".join(self.EVENTS),
                 "-p", ",".join(map(str, pids))], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def stop(self) -> int | None:
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGINT)
        await asyncio.to_thread(self.proc.wait)
        total = 0
        with contextlib.suppress(OSError):
            for line in self.out.read_text().splitlines():
                fields = line.split(",")
                if len(fields) > 2 and fields[2] in self.EVENTS and fields[0].isdigit():
                    total += int(fields[0])
        return total or None


def percentile(values: list[float], p: float) -> float | None:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else None


def fmt_int(value: float) -> str:
    return f"{value:,.0f}"
