"""Hostile clients against real `hearth serve` instances: no single client may stall or bloat an instance.

Each attack runs against a real instance on loopback while another client keeps checking that the instance
still answers (`/readyz` and a websocket round trip) and that its RSS stays bounded; the bounds are generous
(seconds, tens of MiB) and the measured figures are printed (`pytest -s`).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.app.conftest import start_instances
from tests.app.harness import ROOT, Api, Instance, bearer


@pytest.fixture(scope="module")
def edge(app_db: str, log_dir: Path) -> Iterator[Instance]:
    """One instance for the module's attacks."""
    [instance] = start_instances(app_db, log_dir, 1)
    yield instance
    instance.terminate()


@pytest.fixture
async def api(edge: Instance) -> AsyncIterator[Api]:
    client = Api(edge)
    yield client
    await client.close()


@pytest.fixture(autouse=True)
def no_tracebacks(edge: Instance) -> Iterator[None]:
    """An attack is answered, never an unhandled error: the instance logs no traceback."""
    start = len(edge.log())
    yield
    assert "Traceback" not in edge.log()[start:], edge.log()[start:][-3000:]


async def display(api: Api) -> dict[str, Any]:
    _, token = await api.identity("tv")
    r = await api.http.post("/v1/displays", json={}, headers=bearer(token))
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


async def close_code(instance: Instance, query: str) -> int | None:
    async with connect(f"{instance.ws_url}{query}", open_timeout=10) as conn:
        try:
            frame = await conn.recv(decode=True)
        except ConnectionClosed:
            return conn.close_code
    raise AssertionError(f"a frame instead of a close: {frame!r}")


# 9. A short HEARTH_SECRET ---------------------------------------------------------------------------


def test_a_short_secret_is_refused_with_a_clear_message(app_db: str) -> None:
    # 31 bytes: one short of what HS256 wants (RFC 7518 section 3.2: a key of at least 256 bits).
    env = {"HEARTH_DATABASE_URL": app_db, "HEARTH_SECRET": "x" * 31, "PATH": "/usr/bin:/bin"}
    serve = [sys.executable, "-m", "app.cli", "serve"]
    done = subprocess.run(serve, cwd=ROOT, env=env, capture_output=True, text=True, timeout=20)
    assert done.returncode != 0
    assert "HEARTH_SECRET" in done.stderr and "32 bytes" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


# 6. Digits that are not ASCII ------------------------------------------------------------------------

NOT_ASCII_DIGITS = ("\u00b2", "\u0661\u0662", "\uff11")  # superscript two, Arabic-Indic 12, fullwidth 1


async def test_wait_with_digits_that_are_not_ascii_is_a_400(api: Api) -> None:
    d = await display(api)
    for wait in NOT_ASCII_DIGITS:
        r = await api.http.get(
            f"/v1/displays/{d['session_id']}/events", params={"token": d["token"], "wait": wait}
        )
        assert r.status_code == 400, (wait, r.status_code, r.text)
        assert r.json()["error"]["code"] == "HT400"


async def test_after_with_digits_that_are_not_ascii_closes_with_4400(edge: Instance, api: Api) -> None:
    _, token = await api.identity("someone")
    for after in NOT_ASCII_DIGITS:
        assert await close_code(edge, f"?token={token}&after={after}") == 4400, after


# 8. A client hanging up mid-body ---------------------------------------------------------------------


async def metric(instance: Instance, name: str) -> float:
    async with httpx.AsyncClient(base_url=instance.base_url, timeout=10) as http:
        text = (await http.get("/metrics")).text
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}")
        await asyncio.sleep(0.05)


async def test_a_client_hanging_up_mid_body_is_no_error(edge: Instance) -> None:
    name = "hearth_http_client_disconnects_total"
    before = await metric(edge, name)
    start = len(edge.log())
    for _ in range(3):
        _, writer = await asyncio.open_connection("127.0.0.1", edge.port)
        writer.write(
            b"POST /v1/identities HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{\"display_"
        )
        await writer.drain()
        await asyncio.sleep(0.1)  # the app is reading the body by now
        writer.close()
        await writer.wait_closed()
    # Counted, not logged as an error (the autouse fixture also checks that no traceback was logged).
    await until(lambda: _grew(edge, name, before + 3), "three disconnects counted")
    logged = edge.log()[start:]
    assert "internal error" not in logged and "ERROR" not in logged, logged


async def _grew(instance: Instance, name: str, at_least: float) -> bool:
    return await metric(instance, name) >= at_least
