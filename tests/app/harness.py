"""Real app instances (`hearth serve` subprocesses) on loopback, and small HTTP/websocket clients."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.cluster import free_port

SECRET = "test-secret-for-hearth-tokens-0123456789"
ADMIN_TOKEN = "test-admin-token"
ROOT = Path(__file__).resolve().parents[2]
# How long an instance may take to answer /readyz. A liveness bound, not a speed claim: on a loaded 2-core
# machine, importing the app and opening its pool took over 20 s, and the suite errored on it.
READY_TIMEOUT_S = 90.0


class Instance:
    """One `hearth serve` process on a free loopback port, its output in `log_dir`: the one server-process
    helper of the tests and the benchmarks (bench/processes.py)."""

    def __init__(
        self, database_url: str, name: str, log_dir: Path, env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.name = name
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/v1/ws"
        env = {
            **os.environ,
            "HEARTH_DATABASE_URL": database_url,
            "HEARTH_SECRET": SECRET,
            "HEARTH_ADMIN_TOKEN": ADMIN_TOKEN,
            "HEARTH_PORT": str(self.port),
            "HEARTH_INSTANCE_ID": name,
            **(env or {}),
        }
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.tail()}")
            try:
                if httpx.get(self.base_url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready: {self.tail()}")

    async def ready(self, timeout: float = READY_TIMEOUT_S) -> Instance:
        """`wait_ready` for an event loop that has other work meanwhile."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited: {self.tail()}")
                try:
                    if (await client.get(self.base_url + "/readyz")).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready: {self.tail()}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def terminate(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    async def stop(self) -> None:
        await asyncio.to_thread(self.terminate)

    def log(self) -> str:
        return self.log_path.read_text()

    def tail(self, chars: int = 2000) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log()[-chars:]


class Api:
    """HTTP calls a web client makes."""

    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        # Idle connections are dropped sooner than the server's 5 s keep-alive timeout: a request sent on
        # a connection the server is closing at that moment fails ("disconnected without a response").
        self.http = httpx.AsyncClient(
            base_url=instance.base_url, timeout=10, limits=httpx.Limits(keepalive_expiry=2.0)
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def identity(self, name: str | None = None) -> tuple[str, str]:
        r = await self.http.post("/v1/identities", json={"display_name": name} if name else {})
        assert r.status_code == 201, r.text
        return r.json()["identity_id"], r.json()["token"]

    async def session(self, token: str, **body: Any) -> dict[str, Any]:
        r = await self.http.post("/v1/sessions", json=body, headers=bearer(token))
        assert r.status_code == 201, r.text
        result: dict[str, Any] = r.json()
        return result

    async def join(self, session_id: str, token: str) -> tuple[str, str]:
        r = await self.http.post(f"/v1/sessions/{session_id}/join", json={}, headers=bearer(token))
        assert r.status_code == 200, r.text
        return r.json()["participant_id"], r.json()["token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Ws:
    """A websocket client that keeps every frame it receives."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.frames: list[dict[str, Any]] = []
        self._cursor = 0

    @classmethod
    async def open(
        cls, instance: Instance, token: str, after: int | None = None, after_identity: int | None = None
    ) -> Ws:
        url = f"{instance.ws_url}?token={token}" + (f"&after={after}" if after is not None else "")
        url += f"&after_identity={after_identity}" if after_identity is not None else ""
        return cls(await connect(url, max_size=2**20, open_timeout=10))

    async def send(self, frame: dict[str, Any]) -> None:
        await self.conn.send(json.dumps(frame))

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        if self._cursor < len(self.frames):
            frame = self.frames[self._cursor]
        else:
            frame = json.loads(await asyncio.wait_for(self.conn.recv(), timeout))
            self.frames.append(frame)
        self._cursor += 1
        return frame

    async def until(self, predicate: Any, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.next(max(0.01, deadline - time.monotonic()))
            if predicate(frame):
                return frame

    async def until_type(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        return await self.until(lambda f: f.get("type") == kind, timeout)

    async def closed(self, timeout: float = 5.0) -> int | None:
        """Read until the server closes; returns the close code."""
        try:
            while True:
                self.frames.append(json.loads(await asyncio.wait_for(self.conn.recv(), timeout)))
        except ConnectionClosed:
            return self.conn.close_code

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [
            f
            for f in self.frames
            if "seq" in f and f.get("type") != "welcome" and (kind is None or f["type"] == kind)
        ]

    async def close(self) -> None:
        await self.conn.close()
