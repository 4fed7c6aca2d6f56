"""Hostile clients against real `hearth serve` instances: no single client may stall or bloat an instance.

Each attack runs against a real instance on loopback while another client keeps checking that the instance
still answers (`/readyz` and a websocket round trip) and that its RSS stays bounded; the bounds are generous
(seconds, tens of MiB) and the measured figures are printed (`pytest -s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.app.conftest import start_instances
from tests.app.harness import ROOT, SECRET, Api, Instance, bearer

# Read deadlines short enough for a test to see them pass.
DEADLINE_S = 2.0
EDGE_ENV = {
    "HEARTH_HEADER_TIMEOUT_S": str(DEADLINE_S),
    "HEARTH_BODY_TIMEOUT_S": str(DEADLINE_S),
    "HEARTH_WS_CLOSE_TIMEOUT_S": str(DEADLINE_S),
}


@pytest.fixture(scope="module")
def edge(app_db: str, log_dir: Path) -> Iterator[Instance]:
    """One instance for the module's attacks."""
    [instance] = start_instances(app_db, log_dir, 1, EDGE_ENV)
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


def rss_mib(instance: Instance) -> float:
    for line in Path(f"/proc/{instance.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class Watch:
    """Another client's view of an instance while an attack runs: every 0.1 s a `/readyz` and a websocket
    ping/pong round trip (each within PROBE_TIMEOUT_S, or counted as that long), and the instance's RSS."""

    PROBE_TIMEOUT_S = 10.0

    def __init__(self, instance: Instance, what: str) -> None:
        self.instance = instance
        self.what = what
        self.readyz: list[float] = []
        self.round_trips: list[float] = []
        self.rss: list[float] = []
        self.rss_before = self.rss_after = 0.0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watch:
        self.http = httpx.AsyncClient(base_url=self.instance.base_url, timeout=self.PROBE_TIMEOUT_S)
        r = await self.http.post("/v1/identities", json={})
        self.ws = await connect(f"{self.instance.ws_url}?token={r.json()['token']}", open_timeout=10)
        assert json.loads(await self.ws.recv())["type"] == "welcome"
        self.rss_before = rss_mib(self.instance)
        self._task = asyncio.create_task(self._probe())
        return self

    async def _timed(self, call: Awaitable[Any]) -> float:
        start = time.monotonic()
        try:
            async with asyncio.timeout(self.PROBE_TIMEOUT_S):
                await call
        except TimeoutError:
            return self.PROBE_TIMEOUT_S
        return time.monotonic() - start

    async def _readyz(self) -> None:
        assert (await self.http.get("/readyz")).status_code == 200

    async def _round_trip(self) -> None:
        await self.ws.send('{"type":"ping"}')
        assert json.loads(await self.ws.recv()) == {"type": "pong"}

    async def _probe(self) -> None:
        while not self._stop.is_set():
            self.readyz.append(await self._timed(self._readyz()))
            self.round_trips.append(await self._timed(self._round_trip()))
            self.rss.append(rss_mib(self.instance))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.1)

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task
        await self.ws.close()
        await self.http.aclose()
        await asyncio.sleep(0.5)
        self.rss_after = rss_mib(self.instance)
        print(
            f"\n{self.what}: /readyz max {max(self.readyz) * 1000:.0f} ms "
            f"(median {statistics.median(self.readyz) * 1000:.1f} ms, {len(self.readyz)} probes); "
            f"websocket round trip max {max(self.round_trips) * 1000:.0f} ms "
            f"(median {statistics.median(self.round_trips) * 1000:.1f} ms); "
            f"RSS {self.rss_before:.1f} MiB before, {max(self.rss):.1f} peak, {self.rss_after:.1f} after"
        )

    def assert_held(self, *, latency_s: float = 2.0, rss_growth_mib: float = 64.0) -> None:
        """Generous bounds: every probe answered within `latency_s`, RSS grew by under `rss_growth_mib`."""
        assert len(self.readyz) >= 3, "too few probes ran during the attack"
        assert max(self.readyz) < latency_s, self.readyz
        assert max(self.round_trips) < latency_s, self.round_trips
        assert max(self.rss) - self.rss_before < rss_growth_mib, (self.rss_before, max(self.rss))


async def flood(instance: Instance, head: bytes, filler: bytes, limit: int) -> tuple[bytes, int]:
    """Sends `head`, then `filler` over and over (up to `limit` bytes in all) while reading: returns what
    the server answered and how many bytes had been sent when it answered (or closed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", instance.port)
    sent = 0

    async def send() -> None:
        nonlocal sent
        writer.write(head)
        sent += len(head)
        while sent < limit:
            writer.write(filler)
            sent += len(filler)
            await writer.drain()
            await asyncio.sleep(0)  # the reader sees an answer as soon as it comes

    sending = asyncio.create_task(send())
    try:
        answer = await asyncio.wait_for(reader.read(65536), 30)
        at = sent
    finally:
        sending.cancel()
        with contextlib.suppress(BaseException):
            await sending
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return answer, at


def error_of(answer: bytes) -> tuple[int, str]:
    """The status and HT code of a raw HTTP answer with Hearth's error body."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    assert b"connection: close" in head.lower(), head
    return status, json.loads(body)["error"]["code"]


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


# 1. One long header ---------------------------------------------------------------------------------


async def test_a_long_header_is_refused_at_once(edge: Instance) -> None:
    head = b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Long: "
    answer, sent = await flood(edge, head, b"a" * 65536, 256 * 1024 * 1024)
    assert error_of(answer) == (431, "HT431"), answer
    # Answered while the header was still arriving: long before the 256 MiB were sent.
    assert sent < 64 * 1024 * 1024, sent
    # The request line counts too.
    answer, _ = await flood(edge, b"GET /readyz?", b"a" * 65536, 256 * 1024 * 1024)
    assert error_of(answer) == (431, "HT431"), answer


async def test_too_many_headers_are_refused(edge: Instance) -> None:
    headers = b"".join(b"X-%d: 1\r\n" % n for n in range(101))
    answer, _ = await flood(edge, b"GET /readyz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n", b"", 0)
    assert error_of(answer) == (431, "HT431"), answer
    # Within the limits (16 KiB, 100 fields), a request is served: HTTP, and a websocket handshake.
    fields = {f"x-{n}": "v" * 150 for n in range(90)}
    async with httpx.AsyncClient(base_url=edge.base_url, timeout=10) as http:
        assert (await http.get("/readyz", headers=fields)).status_code == 200
        token = (await http.post("/v1/identities", json={})).json()["token"]
    async with connect(f"{edge.ws_url}?token={token}", additional_headers=fields, open_timeout=10) as ws:
        assert json.loads(await ws.recv())["type"] == "welcome"


def test_a_bad_limit_is_refused_with_a_clear_message(app_db: str) -> None:
    for value in ("lots", "-1", "1.5", "100"):
        stderr = serve_refuses(app_db, HEARTH_MAX_HEADER_BYTES=value)
        assert "HEARTH_MAX_HEADER_BYTES must be a whole number of at least 1024" in stderr, stderr


async def test_long_headers_do_not_stall_the_instance(edge: Instance) -> None:
    head = b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Long: "

    async def attacker() -> None:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            await flood(edge, head, b"a" * 65536, 64 * 1024 * 1024)

    async with Watch(edge, "long headers, 4 attackers for 4 s") as watch:
        await asyncio.gather(*(attacker() for _ in range(4)))
    watch.assert_held()


# 2. A ping flood ----------------------------------------------------------------------------------------

# A client's ping frame: FIN + ping, masked, 125 bytes of payload (the most a control frame carries).
PING = bytes([0x89, 0x80 | 125]) + b"\x00\x00\x00\x00" + b"p" * 125
PINGS = PING * (256 * 1024 // len(PING))


def upgrade(token: str, extra: bytes = b"") -> bytes:
    head = (
        f"GET /v1/ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n"
    )
    return head.encode() + extra + b"\r\n"


async def ping_flood(instance: Instance, token: str, seconds: float) -> tuple[int, float | None]:
    """A websocket client that sends pings as fast as it can for `seconds` and never reads a frame:
    returns the bytes it got sent, and when (seconds after it began) the server dropped it, if it did."""
    reader, writer = await asyncio.open_connection("127.0.0.1", instance.port)
    writer.write(upgrade(token))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 101"), head
    sent, started = 0, time.monotonic()
    dropped = None
    try:
        async with asyncio.timeout(seconds):
            while True:
                writer.write(PINGS)
                await writer.drain()
                sent += len(PINGS)
    except TimeoutError:
        pass
    except OSError:
        dropped = time.monotonic() - started
    writer.transport.abort()  # a close would wait for the server to read what it has not
    return sent, dropped


async def flood_for(instance: Instance, token: str, seconds: float) -> list[tuple[int, float | None]]:
    """Ping floods one after another (a new one when the server drops the last) for `seconds`."""
    results = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0.1:
        results.append(await ping_flood(instance, token, left))
    return results


async def test_a_ping_flood_that_never_reads_is_dropped(edge: Instance, api: Api) -> None:
    _, token = await api.identity("flooder")
    async with Watch(edge, "ping flood, 2 clients that never read, 5 s") as watch:
        runs = await asyncio.gather(*(flood_for(edge, token, 5) for _ in range(2)))
    print(f"ping floods that never read: {sum(map(len, runs))} dropped, ", end="")
    print(f"after {max(d or 0 for run in runs for _, d in run) * 1000:.0f} ms at most")
    # Past the control-frame rate the socket is closed with 4429; a peer that does not read the close
    # frame either, and keeps sending, is aborted.
    assert all(dropped is not None for run in runs for _, dropped in run[:-1])
    watch.assert_held()
    assert await metric(edge, 'hearth_ws_aborted_total{reason="not closing"}') >= 2


async def test_a_ping_flood_that_reads_its_pongs_is_closed_with_4429(edge: Instance, api: Api) -> None:
    _, token = await api.identity("flooder")
    async with Watch(edge, "ping flood, a client that reads its pongs") as watch:
        async with connect(f"{edge.ws_url}?token={token}", open_timeout=10) as conn:
            with contextlib.suppress(ConnectionClosed):
                for _ in range(500):  # a burst is 40
                    await conn.ping()
            with contextlib.suppress(ConnectionClosed):
                while True:
                    await asyncio.wait_for(conn.recv(), 10)
        await asyncio.sleep(0.5)
    assert conn.close_code == 4429, conn.close_code
    watch.assert_held()


async def test_a_ping_flood_on_a_refused_socket_is_dropped(edge: Instance) -> None:
    # A bad token: the server closes with 4401 at once. No pong is written after that, and what the peer
    # still sends spends the same budget: past it (or past HEARTH_WS_CLOSE_TIMEOUT_S) it is aborted.
    async with Watch(edge, "ping flood with a bad token, 2 clients, 5 s") as watch:
        runs = await asyncio.gather(*(flood_for(edge, "not-a-token", 5) for _ in range(2)))
    for run in runs:
        for sent, dropped in run[:-1]:
            assert dropped is not None and dropped < DEADLINE_S + 3, (sent, dropped)
    watch.assert_held()


async def test_without_a_ping_rate_a_flood_that_never_reads_stalls_itself(app_db: str, log_dir: Path) -> None:
    # With the control-frame rate out of the way, what holds is the bound on unsent bytes: reading
    # stops while the pongs do not drain, so the flooder stalls and the instance does not grow.
    env = {**EDGE_ENV, "HEARTH_WS_PINGS_PER_S": "1000000"}
    [instance] = start_instances(app_db, log_dir, 1, env)
    api = Api(instance)
    try:
        _, token = await api.identity("flooder")
        async with Watch(instance, "ping flood without a ping rate, 2 clients that never read, 5 s") as watch:
            results = await asyncio.gather(*(ping_flood(instance, token, 5) for _ in range(2)))
        print(f"sent before stalling: {[f'{sent / 2**20:.1f} MiB' for sent, _ in results]}")
        assert all(dropped is None for _, dropped in results)
        # Until the kernel's socket buffers are full (megabytes on loopback), the instance answers the
        # floods' pings as fast as they come, and the others wait their turn: how long depends on the
        # machine's speed (over 5 s on a loaded 2-core one), and bounding it is the ping rate's job, off
        # here (the test above). What holds without it: the instance does not grow, every probe is
        # answered, and it serves at once when the floods stop.
        assert watch.readyz and max(watch.readyz) < Watch.PROBE_TIMEOUT_S, watch.readyz
        assert max(watch.rss) - watch.rss_before < 64.0, (watch.rss_before, max(watch.rss))
        async with Watch(instance, "after the ping floods") as after:
            await asyncio.sleep(1.0)
        after.assert_held()
    finally:
        await api.close()
        instance.terminate()


async def test_a_socket_past_its_unsent_bytes_bound_is_aborted(app_db: str, log_dir: Path) -> None:
    # A bound below what one read of pings makes in pongs: the abort itself shows.
    env = {**EDGE_ENV, "HEARTH_WS_PINGS_PER_S": "1000000", "HEARTH_WS_MAX_BUFFERED_BYTES": str(16 * 1024)}
    [instance] = start_instances(app_db, log_dir, 1, env)
    api = Api(instance)
    try:
        _, token = await api.identity("flooder")
        sent, dropped = await ping_flood(instance, token, 10)
        assert dropped is not None, f"not dropped after {sent} bytes of pings"
        assert await metric(instance, 'hearth_ws_aborted_total{reason="unsent bytes"}') == 1
        # Everyone else is served as before.
        async with Watch(instance, "after an abort") as watch:
            await asyncio.sleep(0.5)
        watch.assert_held()
    finally:
        await api.close()
        instance.terminate()


async def test_a_handshake_header_line_too_long_for_websockets_is_answered(edge: Instance, api: Api) -> None:
    # Within HEARTH_MAX_HEADER_BYTES but past the 8 KiB line websockets' own parser takes.
    _, token = await api.identity("someone")
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    writer.write(upgrade(token, b"X-Long: " + b"a" * 10000 + b"\r\n"))
    try:
        answer = await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 431"), answer


# 3. Slowloris ---------------------------------------------------------------------------------------


class Slow:
    """A raw connection that sends `first`, then one of `drip` every `every` seconds, and keeps what the
    server answers and when the server closed it."""

    def __init__(self, instance: Instance, first: bytes, drip: bytes = b"", every: float = 0.5) -> None:
        self.instance = instance
        self.first, self.drip, self.every = first, drip, every
        self.answer = b""
        self.closed_after: float | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> Slow:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.instance.port)
        self.started = time.monotonic()
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        dripping = asyncio.create_task(self._drip())
        try:
            while chunk := await self.reader.read(65536):
                self.answer += chunk
        except OSError:
            pass
        self.closed_after = time.monotonic() - self.started
        self.writer.close()  # as a client does once the server is done
        dripping.cancel()
        with contextlib.suppress(BaseException):
            await dripping

    async def _drip(self) -> None:
        with contextlib.suppress(OSError):
            self.writer.write(self.first)
            while self.drip:
                await asyncio.sleep(self.every)
                self.writer.write(self.drip)
                await self.writer.drain()
            await asyncio.Event().wait()

    async def stop(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()
        if self._task is not None:
            await self._task


def slow_kinds(instance: Instance, token: str) -> dict[str, Slow]:
    post = b"POST /v1/identities HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    upgrade = (
        f"GET /v1/ws?token={token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    ).encode()
    return {
        "silent": Slow(instance, b""),
        "a header line every 0.5 s": Slow(instance, b"GET /readyz HTTP/1.1\r\n", b"X-A: b\r\n"),
        "a body byte every 0.5 s": Slow(instance, post, b"{"),
        "a websocket handshake, slowly": Slow(instance, upgrade, b"X-A: b\r\n"),
    }


async def test_slow_and_silent_connections_are_closed_past_their_deadlines(edge: Instance, api: Api) -> None:
    _, token = await api.identity("slow")
    kinds = slow_kinds(edge, token)
    for slow in kinds.values():
        await slow.start()
    await asyncio.sleep(DEADLINE_S + 3)
    try:
        for kind, slow in kinds.items():
            assert slow.closed_after is not None, f"{kind}: still open after {DEADLINE_S + 3} s"
            assert DEADLINE_S - 0.5 < slow.closed_after < DEADLINE_S + 3, (kind, slow.closed_after)
            assert error_of(slow.answer) == (408, "HT408"), (kind, slow.answer)
    finally:
        for slow in kinds.values():
            await slow.stop()


async def test_many_slow_connections_do_not_stall_the_instance(edge: Instance, api: Api) -> None:
    _, token = await api.identity("slow")
    async with Watch(edge, "slowloris, 200 connections of 4 kinds for 4 s") as watch:
        slows = [slow for _ in range(50) for slow in slow_kinds(edge, token).values()]
        for slow in slows:
            await slow.start()
        await asyncio.sleep(DEADLINE_S + 2)
    try:
        assert all(slow.closed_after is not None for slow in slows)
    finally:
        for slow in slows:
            await slow.stop()
    watch.assert_held()


async def test_connections_past_the_limit_are_refused_until_some_close(app_db: str, log_dir: Path) -> None:
    limit = 30
    env = {**EDGE_ENV, "HEARTH_MAX_CONNECTIONS": str(limit)}
    [instance] = start_instances(app_db, log_dir, 1, env)
    silent: list[Slow] = []
    try:
        silent = [await Slow(instance, b"").start() for _ in range(limit)]
        await asyncio.sleep(0.2)
        answer, _ = await flood(instance, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", b"", 0)
        assert error_of(answer) == (503, "HT503"), answer
        assert b"retry-after: 1" in answer.lower()
        # The silent ones are closed at their head deadline: the instance serves again.
        await until(lambda: _all_closed(silent), "the silent connections closed", DEADLINE_S + 5)
        async with httpx.AsyncClient(base_url=instance.base_url, timeout=10) as http:
            assert (await http.get("/readyz")).status_code == 200
        assert await metric(instance, 'hearth_http_refused_total{reason="connections"}') == 1
        assert await metric(instance, 'hearth_http_refused_total{reason="header_timeout"}') == limit
        assert "refusing new ones (HEARTH_MAX_CONNECTIONS)" in instance.log()
    finally:
        for slow in silent:
            await slow.stop()
        instance.terminate()


async def _all_closed(slows: list[Slow]) -> bool:
    return all(slow.closed_after is not None for slow in slows)


# 4. A display's event stream on a long session ------------------------------------------------------


async def test_display_events_answer_from_the_session_state_not_by_replaying_its_stream(
    edge: Instance, api: Api, superuser: asyncpg.Connection
) -> None:
    d = await display(api)
    _, controller_token = await api.identity("phone")
    r = await api.http.post("/v1/pair", json={"code": d["code"]}, headers=bearer(controller_token))
    assert r.status_code == 200, r.text
    controller, controller_session_token = uuid.UUID(r.json()["participant_id"]), r.json()["token"]
    paired_seq = await superuser.fetchval(
        "SELECT seq FROM hearth_data.events WHERE stream_id = $1 AND type = 'session.paired'",
        uuid.UUID(d["session_id"]),
    )
    # The paired session's stream grows with what its two sides send: 1,500 messages of 30 KiB.
    body = json.dumps({"text": "x" * 30_000})
    await superuser.execute(
        "SELECT hearth.post_message($1, $2::jsonb) FROM generate_series(1, 1500)", controller, body
    )
    path = f"/v1/displays/{d['session_id']}/events"
    reads = 'hearth_db_call_seconds_count{function="event_frames"}'
    answers: list[httpx.Response] = []
    async with Watch(edge, "long polls of a paired display, 10 at once for 3 s, 45 MB since") as watch:
        before = await metric(edge, reads)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            answers += await asyncio.gather(
                *(api.http.get(path, params={"token": d["token"], "wait": "0"}) for _ in range(10))
            )
        # One read of the stream's first events per call, not a replay of its 45 MB.
        assert await metric(edge, reads) - before == len(answers)
    print(f"{len(answers)} long polls answered")
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.json()["event"] == "paired" and answer.json()["data"]["seq"] == paired_seq
    watch.assert_held()

    # The event stream answers the same way, and a display that is over finds its end at the head.
    async with api.http.stream("GET", path, params={"token": d["token"]}) as stream:
        text = (await stream.aread()).decode()
    assert "event: paired" in text and f'"seq": {paired_seq}' in text
    for token in (d["token"], controller_session_token):  # the last to leave ends the session
        r = await api.http.post(f"/v1/sessions/{d['session_id']}/leave", headers=bearer(token))
        assert r.json() == {"left": True}
    before = await metric(edge, reads)
    over = await api.http.get(path, params={"token": d["token"], "wait": "0"})
    assert over.json()["event"] == "expired" and over.json()["data"]["type"] == "session.ended"
    assert await metric(edge, reads) - before == 1


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


# 7. Tokens in logs --------------------------------------------------------------------------------------


async def test_query_strings_are_never_logged(app_db: str, log_dir: Path) -> None:
    [instance] = start_instances(app_db, log_dir, 1, {"HEARTH_LOG_LEVEL": "debug"})
    api = Api(instance)
    try:
        _, token = await api.identity("someone")
        # Starlette decodes a percent-encoded name: each of these is accepted as the token.
        for name in ("token", "%74oken", "%74%6F%6B%65%6E"):
            async with connect(f"{instance.ws_url}?{name}={token}&after=0", open_timeout=10) as conn:
                assert json.loads(await conn.recv())["type"] == "welcome"
        assert await close_code(instance, f"?%74oken={token}&after=x") == 4400
        d = await display(api)
        path = f"/v1/displays/{d['session_id']}/events"
        r = await api.http.get(f"{path}?%74oken={d['token']}&wait=0")
        assert r.status_code == 200, r.text
    finally:
        await api.close()
        instance.terminate()
    text = instance.log()
    assert "/v1/ws" in text  # the lines are there, without their query strings
    for secret in (token, d["token"], token.rsplit(".", 1)[1], d["token"].rsplit(".", 1)[1]):
        assert secret not in text
    assert "oken=" not in text and "after=" not in text and "wait=" not in text


# 8. A client hanging up mid-body ---------------------------------------------------------------------


async def test_a_client_hanging_up_mid_body_is_no_error(edge: Instance) -> None:
    name = "hearth_http_client_disconnects_total"
    before = await metric(edge, name)
    start = len(edge.log())
    for _ in range(3):
        _, writer = await asyncio.open_connection("127.0.0.1", edge.port)
        writer.write(
            b"POST /v1/identities HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"display_'
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


# 9. A short HEARTH_SECRET ---------------------------------------------------------------------------


def serve_refuses(app_db: str, **env: str) -> str:
    """`hearth serve` with this environment exits at once, with an error and no traceback: its stderr."""
    env = {"HEARTH_DATABASE_URL": app_db, "HEARTH_SECRET": SECRET, "PATH": "/usr/bin:/bin", **env}
    serve = [sys.executable, "-m", "app.cli", "serve"]
    done = subprocess.run(serve, cwd=ROOT, env=env, capture_output=True, text=True, timeout=20)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    return done.stderr


def test_a_short_secret_is_refused_with_a_clear_message(app_db: str) -> None:
    # 31 bytes: one short of what HS256 wants (RFC 7518 section 3.2: a key of at least 256 bits).
    stderr = serve_refuses(app_db, HEARTH_SECRET="x" * 31)
    assert "HEARTH_SECRET" in stderr and "32 bytes" in stderr, stderr


# 10. One logging setup ---------------------------------------------------------------------------------


def json_lines(instance: Instance) -> list[dict[str, Any]]:
    """The instance's log, every line a JSON object with time, level, logger and message."""
    entries = []
    for line in instance.log().splitlines():
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= set(entry), line
        entries.append(entry)
    return entries


async def test_json_log_lines_at_the_asked_level_with_a_reason_in_every_warning(
    app_db: str, log_dir: Path, superuser: asyncpg.Connection
) -> None:
    env = {"HEARTH_LOG_FORMAT": "json", "HEARTH_LOG_LEVEL": "debug"}
    [instance] = start_instances(app_db, log_dir, 1, env)
    try:
        # A debug line of Hearth's own: a client gone mid-request.
        _, writer = await asyncio.open_connection("127.0.0.1", instance.port)
        writer.write(b"POST /v1/identities HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n{")
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.close()
        await writer.wait_closed()
        await until(lambda: _logged(instance, "client went away"), "the debug line")

        # A warning whose exception says nothing by itself: the listener's keepalive query times out
        # (TimeoutError, str() empty) while its PostgreSQL backend is stopped.
        pid = await superuser.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1", f"hearth-listener {instance.name}"
        )
        if not _local_postgres(pid):
            pytest.skip("the test server's backends are not processes of this machine")
        os.kill(pid, signal.SIGSTOP)
        try:
            await until(lambda: _logged(instance, "listener connection lost"), "the warning", 20)
        finally:
            os.kill(pid, signal.SIGCONT)
        await until(lambda: _ready(instance), "the listener back", 20)
    finally:
        instance.terminate()
    entries = json_lines(instance)
    seen = {(e["level"], e["logger"]) for e in entries}
    assert ("info", "hearth.maintenance") in seen, seen  # INFO lines of hearth.* are no longer lost
    assert ("info", "uvicorn.error") in seen, seen
    assert any(e["level"] == "debug" and "client went away" in e["message"] for e in entries)
    [lost] = [e for e in entries if e["message"].startswith("listener connection lost")]
    assert (lost["level"], lost["logger"]) == ("warning", "hearth.events")
    assert lost["message"] == "listener connection lost: TimeoutError()", lost


def test_the_log_level_is_heeded_and_checked(app_db: str, log_dir: Path) -> None:
    [instance] = start_instances(app_db, log_dir, 1, {"HEARTH_LOG_LEVEL": "WARNING"})
    instance.terminate()
    text = instance.log()
    assert " INFO " not in text and " DEBUG " not in text and "INFO:" not in text, text
    stderr = serve_refuses(app_db, HEARTH_LOG_LEVEL="loud")
    assert "HEARTH_LOG_LEVEL" in stderr and "debug" in stderr, stderr
    stderr = serve_refuses(app_db, HEARTH_LOG_FORMAT="xml")
    assert "HEARTH_LOG_FORMAT" in stderr and "json" in stderr, stderr


def _local_postgres(pid: int) -> bool:
    path = Path(f"/proc/{pid}/cmdline")
    return path.exists() and b"postgres" in path.read_bytes()


async def _logged(instance: Instance, text: str) -> bool:
    return text in instance.log()


async def _ready(instance: Instance) -> bool:
    async with httpx.AsyncClient(base_url=instance.base_url, timeout=5) as http:
        return (await http.get("/readyz")).status_code == 200
