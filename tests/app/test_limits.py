"""What an anonymous caller may create, with the default settings (SPEC section 2), against real servers:
identities per client address per minute, shared by every instance (429 + Retry-After); open sessions and
waiting displays per identity (429 without it); websockets per identity per instance (4429).

The instances trust loopback as a proxy (HEARTH_TRUSTED_PROXIES), so each test is its own client address
through X-Forwarded-For and the tests do not share a count.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.app.conftest import clone_database, start_instances
from tests.app.harness import Instance, Ws, bearer
from tests.pg import PgServer

IDENTITY_RATE_LIMIT = 30
MAX_OPEN_SESSIONS = 20
MAX_SOCKETS = 10


@pytest.fixture(scope="module")
def limited(pg: PgServer, template_db: str, log_dir: Path) -> Iterator[list[Instance]]:
    """Two instances on a database with the default limits."""
    url = clone_database(pg, template_db, raise_limits=False)
    instances = start_instances(url, log_dir, 2, {"HEARTH_TRUSTED_PROXIES": "127.0.0.1/32"})
    yield instances
    for instance in instances:
        instance.terminate()


@pytest.fixture
async def clients(limited: list[Instance]) -> AsyncIterator[list[httpx.AsyncClient]]:
    pair = [httpx.AsyncClient(base_url=i.base_url, timeout=10) for i in limited]
    yield pair
    for client in pair:
        await client.aclose()


async def _flood(clients: list[httpx.AsyncClient], address: str, count: int) -> list[httpx.Response]:
    """`count` identity creations from one client address, in turn over the given instances."""
    headers = {"X-Forwarded-For": address}
    return [
        await clients[n % len(clients)].post("/v1/identities", json={}, headers=headers) for n in range(count)
    ]


def _assert_limited(answers: list[httpx.Response]) -> None:
    assert [r.status_code for r in answers] == [201] * IDENTITY_RATE_LIMIT + [429] * (
        len(answers) - IDENTITY_RATE_LIMIT
    )
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "HT429"
    assert 1 <= int(refused.headers["retry-after"]) <= 60


async def test_the_identity_flood_answers_429_after_the_limit(clients: list[httpx.AsyncClient]) -> None:
    _assert_limited(await _flood(clients[:1], "203.0.113.10", IDENTITY_RATE_LIMIT + 5))
    # Another address is a count of its own.
    assert (await _flood(clients[:1], "203.0.113.11", 1))[0].status_code == 201


async def test_the_limit_is_shared_by_every_instance(clients: list[httpx.AsyncClient]) -> None:
    _assert_limited(await _flood(clients, "203.0.113.12", IDENTITY_RATE_LIMIT + 6))


async def test_a_forged_forwarded_address_on_the_left_is_not_believed(
    clients: list[httpx.AsyncClient],
) -> None:
    """Only the right-most hop the trusted proxy wrote counts: what the client put left of it does not."""
    answers = [
        await clients[0].post(
            "/v1/identities", json={}, headers={"X-Forwarded-For": f"10.9.{n}.1, 203.0.113.13"}
        )
        for n in range(IDENTITY_RATE_LIMIT + 1)
    ]
    _assert_limited(answers)


async def test_an_identity_holds_20_open_rooms_and_displays(clients: list[httpx.AsyncClient]) -> None:
    http = clients[0]
    token = (await http.post("/v1/identities", json={}, headers={"X-Forwarded-For": "203.0.113.20"})).json()[
        "token"
    ]
    for _ in range(MAX_OPEN_SESSIONS - 1):
        assert (await http.post("/v1/sessions", json={}, headers=bearer(token))).status_code == 201
    assert (await http.post("/v1/displays", json={}, headers=bearer(token))).status_code == 201
    for path in ("/v1/sessions", "/v1/displays"):
        refused = await clients[1].post(path, json={}, headers=bearer(token))
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "HT429"
        assert "retry-after" not in refused.headers  # a quota: waiting does not help


async def test_an_identity_holds_10_sockets_per_instance(
    limited: list[Instance], clients: list[httpx.AsyncClient]
) -> None:
    created = await clients[0].post("/v1/identities", json={}, headers={"X-Forwarded-For": "203.0.113.30"})
    token = created.json()["token"]
    sockets = [await Ws.open(limited[0], token) for _ in range(MAX_SOCKETS)]
    try:
        for ws in sockets:
            assert (await ws.until_type("welcome"))["type"] == "welcome"
        refused = await Ws.open(limited[0], token)
        assert await refused.closed() == 4429
        # Per instance: the other one still takes one.
        elsewhere = await Ws.open(limited[1], token)
        await elsewhere.until_type("welcome")
        await elsewhere.close()
        # A socket closed gives its place back.
        await sockets.pop().close()
        for _ in range(50):  # the server gives it back once that socket's handler has ended
            again = await Ws.open(limited[0], token)
            try:
                await again.until_type("welcome")
            except ConnectionClosed:
                assert again.conn.close_code == 4429
                await asyncio.sleep(0.1)
                continue
            sockets.append(again)
            break
        else:
            pytest.fail("the closed socket's place was not given back")
    finally:
        for ws in sockets:
            await ws.close()
