"""HEARTH_CORS_ORIGINS against real `hearth serve` processes: preflights, headers on answers and errors, no
credentials, and the Origin checks of the websocket and the display's event stream when restricted."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from starlette.requests import Request
from starlette.routing import Route
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from app.config import Settings
from app.main import _Hearth, _internal_error
from tests.app.conftest import start_instances
from tests.app.harness import SECRET, Api, Instance, bearer

PAGE = "http://page.test:5173"
OTHER = "https://other.test"
FOREIGN = "http://evil.test"


@pytest.fixture(scope="module")
def instances(app_db: str, log_dir: Path) -> Iterator[tuple[Instance, Instance]]:
    """One instance with the default (`*`), one restricted to two origins."""
    open_one, restricted = start_instances(app_db, log_dir, 1) + start_instances(
        app_db, log_dir, 1, {"HEARTH_CORS_ORIGINS": f" {PAGE}, {OTHER.upper()} "}
    )
    yield open_one, restricted
    open_one.terminate()
    restricted.terminate()


@pytest.fixture
async def anyone(instances: tuple[Instance, Instance]) -> AsyncIterator[Api]:
    api = Api(instances[0])
    yield api
    await api.close()


@pytest.fixture
async def restricted(instances: tuple[Instance, Instance]) -> AsyncIterator[Api]:
    api = Api(instances[1])
    yield api
    await api.close()


def _preflight(origin: str, headers: str = "authorization,content-type") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": headers,
    }


def _no_credentials(response: httpx.Response) -> None:
    assert "access-control-allow-credentials" not in response.headers


async def test_any_origin_preflight_is_answered(anyone: Api) -> None:
    r = await anyone.http.options("/v1/sessions", headers=_preflight(FOREIGN))
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "*"
    methods = {m.strip() for m in r.headers["access-control-allow-methods"].split(",")}
    assert {"GET", "POST", "DELETE"} <= methods
    allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert int(r.headers["access-control-max-age"]) > 0
    _no_credentials(r)


async def test_any_origin_reads_answers_and_errors(anyone: Api, sql: asyncpg.Connection) -> None:
    origin = {"Origin": FOREIGN}
    r = await anyone.http.post("/v1/identities", json={}, headers=origin)
    assert r.status_code == 201
    assert r.headers["access-control-allow-origin"] == "*"
    exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
    assert {"retry-after", "etag"} <= exposed
    _no_credentials(r)
    # Errors a page must be able to read: a bad token, an unknown route, a rate limit with its Retry-After.
    for response in (
        await anyone.http.post("/v1/sessions", json={}, headers={**origin, **bearer("not-a-token")}),
        await anyone.http.get("/v1/no-such-route", headers=origin),
    ):
        assert response.status_code in (401, 404)
        assert response.json()["error"]["code"] in ("HT401", "HT404")
        assert response.headers["access-control-allow-origin"] == "*"
        _no_credentials(response)
    await sql.fetchval("SELECT hearth.set_setting('identity_rate_limit', '1')")
    try:
        statuses = [(await anyone.http.post("/v1/identities", json={}, headers=origin)) for _ in range(2)]
    finally:
        await sql.fetchval("SELECT hearth.set_setting('identity_rate_limit', '30')")
    limited = statuses[-1]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    assert limited.headers["access-control-allow-origin"] == "*"


async def test_any_origin_reads_the_edges_own_refusals(anyone: Api) -> None:
    """A request the edge refuses before the app sees it (here: too many header fields, 431)."""
    many = {f"x-filler-{n}": "1" for n in range(120)}
    r = await anyone.http.get("/healthz", headers={"Origin": FOREIGN, **many})
    assert r.status_code == 431
    assert r.json()["error"]["code"] == "HT431"
    assert r.headers["access-control-allow-origin"] == "*"
    assert "retry-after" in r.headers["access-control-expose-headers"].lower()


async def test_any_origin_streams_pass(instances: tuple[Instance, Instance], anyone: Api) -> None:
    _, token = await anyone.identity()
    async with connect(f"{instances[0].ws_url}?token={token}", origin=FOREIGN, open_timeout=10) as ws:
        assert '"welcome"' in str(await ws.recv())


async def test_a_listed_origin_is_answered_by_name(restricted: Api) -> None:
    r = await restricted.http.options("/v1/identities", headers=_preflight(PAGE))
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == PAGE
    assert "origin" in r.headers["vary"].lower()
    _no_credentials(r)
    r = await restricted.http.post("/v1/identities", json={}, headers={"Origin": OTHER})
    assert r.status_code == 201
    assert r.headers["access-control-allow-origin"] == OTHER  # listed in capitals: case-insensitive
    assert "origin" in r.headers["vary"].lower()


async def test_an_unlisted_origin_gets_no_cors_headers(restricted: Api) -> None:
    r = await restricted.http.options("/v1/identities", headers=_preflight(FOREIGN))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "HT403"
    assert "HEARTH_CORS_ORIGINS" in r.json()["error"]["message"]
    assert "access-control-allow-origin" not in r.headers
    r = await restricted.http.post("/v1/identities", json={}, headers={"Origin": FOREIGN})
    assert "access-control-allow-origin" not in r.headers  # the browser keeps the answer from the page
    r = await restricted.http.options("/v1/identities", headers=_preflight(PAGE, headers="x-unknown"))
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "HT400"


async def test_restricted_websocket_refuses_an_unlisted_origin(
    instances: tuple[Instance, Instance], restricted: Api
) -> None:
    _, token = await restricted.identity()
    url = f"{instances[1].ws_url}?token={token}"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, origin=FOREIGN, open_timeout=10):
            pass
    assert refused.value.response.status_code == 403
    assert b'"HT403"' in refused.value.response.body
    for origin in (PAGE, None):  # a listed page, and a client that is not a browser page
        async with connect(url, origin=origin, open_timeout=10) as ws:
            assert '"welcome"' in str(await ws.recv())


async def test_restricted_event_stream_refuses_an_unlisted_origin(restricted: Api) -> None:
    _, identity = await restricted.identity()
    r = await restricted.http.post("/v1/displays", json={}, headers=bearer(identity))
    assert r.status_code == 201
    display = r.json()
    path = f"/v1/displays/{display['session_id']}/events"
    for query in ("", "&wait=0"):  # the event stream, and its long-poll fallback
        r = await restricted.http.get(f"{path}?token={display['token']}{query}", headers={"Origin": FOREIGN})
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "HT403"
    r = await restricted.http.get(f"{path}?token={display['token']}&wait=0", headers={"Origin": PAGE})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == PAGE


@pytest.mark.parametrize(
    "value",
    ["https://app.test/", "https://app.test/path", "app.test", "*, https://app.test", " , ", "null"],
)
def test_a_bad_setting_stops_startup_with_a_clear_error(value: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        Settings.from_env({"HEARTH_CORS_ORIGINS": value})
    assert "HEARTH_CORS_ORIGINS" in str(stopped.value)


def test_hearth_serve_refuses_to_start_with_a_bad_setting() -> None:
    env = {**os.environ, "HEARTH_CORS_ORIGINS": "https://app.test/", "HEARTH_DATABASE_URL": "postgresql://x/y"}
    env["HEARTH_SECRET"] = SECRET
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "HEARTH_CORS_ORIGINS" in done.stderr and "'https://app.test/'" in done.stderr, done.stderr


def test_the_setting_is_parsed() -> None:
    assert Settings.from_env({}).cors_origins == ("*",)
    assert Settings.from_env({"HEARTH_CORS_ORIGINS": "*"}).cors_origins == ("*",)
    parsed = Settings.from_env(
        {"HEARTH_CORS_ORIGINS": "HTTPS://App.test, http://[::1]:8080,https://app.test"}
    )
    assert parsed.cors_origins == ("https://app.test", "http://[::1]:8080")


async def test_an_internal_error_carries_the_cors_headers_too() -> None:
    """A 500 is answered by Starlette's outermost error middleware: the CORS layer wraps even that."""

    async def boom(request: Request) -> None:
        raise RuntimeError("a bug")

    app = _Hearth(("*",), routes=[Route("/boom", boom)], exception_handlers={Exception: _internal_error})
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://hearth.test") as client:
        r = await client.get("/boom", headers={"Origin": FOREIGN})
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "HT500"
    assert r.headers["access-control-allow-origin"] == "*"
