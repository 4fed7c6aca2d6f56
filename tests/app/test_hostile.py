"""Hostile clients against real `hearth serve` instances: no single client may stall or bloat an instance.

Each attack runs against a real instance on loopback while another client keeps checking that the instance
still answers (`/readyz` and a websocket round trip) and that its RSS stays bounded; the bounds are generous
(seconds, tens of MiB) and the measured figures are printed (`pytest -s`).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

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
