"""The processes of a benchmark: Hearth instances (the tests' own `Instance`), the peer servers, Redis,
and the Node load generator's process, each a subprocess on loopback with a log file.

Peers need, besides the venv: `npm install` in bench/node (ws, socket.io, socket.io-client,
@socket.io/redis-adapter, redis), `.venv/bin/pip install broadcaster` (bench only, not a Hearth
dependency) and Debian's redis-server (the one on 127.0.0.1:6379 is used when it answers, else a private
one is started on a free port).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from app.cluster import LocalCluster, free_port
from bench.common import NODE_DIR, ROOT, log_dir
from tests.app.harness import Instance

PAD = "x" * 64  # message bodies are {"ts": ..., "pad": PAD}: Hearth frames of about 300 bytes


def hearth_server(database_url: str, name: str, env: dict[str, str] | None = None) -> Instance:
    """One `hearth serve` process, logging into this run's log directory; `await .ready()` it."""
    return Instance(database_url, name, log_dir(), env)


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


class Proc:
    """A subprocess with a log file, optionally a stdin pipe and a JSON-lines stdout."""

    def __init__(self, name: str, args: list[str], *, env: dict[str, str] | None = None,
                 cwd: Path = ROOT, json_stdout: bool = False, stdin: bool = False) -> None:
        self.name = name
        self.log_path = log_dir() / f"{name}.log"
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


