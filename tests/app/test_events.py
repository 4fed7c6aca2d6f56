"""The listener in-process, with a fake database: a keepalive that fails is noticed, the connection is
dropped and made again with backoff, and on every connection it LISTENs before it asks for a catch-up
(NOTIFY replays nothing, so the other order could lose a doorbell between the two)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from app.events import CHANNEL, Listener, parse_doorbell
from app.metrics import Metrics

STREAM = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"


class FakeDatabase:
    """Connections as the listener uses them; `log` records what happens, in order. `plan` says how each
    connection attempt goes: "refuse" (the server is away), or the keepalives it answers before failing."""

    def __init__(self, plan: list[str | int]) -> None:
        self.plan = plan
        self.log: list[str] = []
        self.connections: list[FakeConnection] = []
        self.attempts = 0

    async def connect(self, url: str, **kwargs: Any) -> FakeConnection:
        self.attempts += 1
        attempt = self.attempts
        self.log.append(f"connect {attempt}")
        step = self.plan.pop(0) if self.plan else 10**9
        if step == "refuse":
            raise ConnectionRefusedError("the server is away")
        assert isinstance(step, int)
        conn = FakeConnection(self, attempt, step)
        self.connections.append(conn)
        return conn


class FakeConnection:
    def __init__(self, db: FakeDatabase, number: int, keepalives: int) -> None:
        self.db = db
        self.number = number
        self.keepalives = keepalives
        self.listeners: dict[str, Callable[..., None]] = {}
        self.closed = False

    def add_termination_listener(self, callback: Callable[..., None]) -> None:
        pass

    async def add_listener(self, channel: str, callback: Callable[..., None]) -> None:
        self.db.log.append(f"listen {self.number} {channel}")
        self.listeners[channel] = callback

    async def fetchval(self, query: str, timeout: float) -> int:
        if self.keepalives == 0:
            self.db.log.append(f"keepalive {self.number} fails")
            raise TimeoutError  # the server stopped answering
        self.keepalives -= 1
        return 1

    def notify(self, payload: str) -> None:
        self.listeners[CHANNEL](self, 1, CHANNEL, payload)

    def is_closed(self) -> bool:
        return self.closed

    async def close(self) -> None:
        self.closed = True
        self.db.log.append(f"close {self.number}")


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


async def _until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not check():  # noqa: ASYNC110 (the fake has no event to wait on)
            await asyncio.sleep(0.005)


async def test_a_failed_keepalive_reconnects_and_listens_before_catching_up(
    monkeypatch: pytest.MonkeyPatch, metrics: Metrics
) -> None:
    db = FakeDatabase([2, "refuse", 10**9])
    monkeypatch.setattr(asyncpg, "connect", db.connect)
    doorbells: list[str] = []
    listener = Listener(
        "postgresql://fake", doorbells.append, lambda: db.log.append("catch up"), metrics, keepalive_s=0.01
    )
    task = asyncio.create_task(listener.run())
    try:
        await _until(lambda: len(db.connections) == 2 and listener.connected)
        assert db.log == [
            "connect 1",
            f"listen 1 {CHANNEL}",
            "catch up",
            "keepalive 1 fails",
            "close 1",
            "connect 2",  # refused: tried again after a backoff
            "connect 3",
            f"listen 3 {CHANNEL}",
            "catch up",
        ]
        assert metrics.registry.get_sample_value("hearth_listener_reconnects_total") == 1
        assert metrics.registry.get_sample_value("hearth_listener_up") == 1
        db.connections[-1].notify(f"{STREAM} 7")
        assert doorbells == [f"{STREAM} 7"]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert db.connections[-1].closed and not listener.connected  # cancelled by its supervisor: closed


async def test_wake_channels_only_wake(monkeypatch: pytest.MonkeyPatch, metrics: Metrics) -> None:
    db = FakeDatabase([])
    monkeypatch.setattr(asyncpg, "connect", db.connect)
    woken: list[str] = []
    listener = Listener(
        "postgresql://fake",
        lambda payload: woken.append("doorbell"),
        lambda: None,
        metrics,
        wake_channels={"hearth_match": lambda: woken.append("match")},
    )
    task = asyncio.create_task(listener.run())
    try:
        await _until(lambda: listener.connected)
        conn = db.connections[0]
        conn.listeners["hearth_match"](conn, 1, "hearth_match", "anything")
        assert woken == ["match"]
    finally:
        task.cancel()


@pytest.mark.parametrize(
    ("payload", "parsed"),
    [
        (f"{STREAM} 12", (STREAM, 12)),
        (f"{STREAM} 0012", (STREAM, 12)),
        (f"{STREAM} -1", None),
        (f"{STREAM} 1e3", None),
        (f"{STREAM} ١٢", None),  # digits, but not ASCII ones
        (f"{STREAM} {'9' * 19}", None),
        (f"{STREAM[:-1]} 12", None),
        ('{"type": "message"}', None),
        ("", None),
    ],
)
def test_a_doorbell_is_a_stream_and_a_seq_and_nothing_else(
    payload: str, parsed: tuple[str, int] | None
) -> None:
    assert parse_doorbell(payload) == parsed
