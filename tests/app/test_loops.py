"""Background loops under their supervisor: in-process, first with loops of its own, then every loop of a
real app (a real database, the LiveKit double) with an exception raised inside it."""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from starlette.applications import Starlette

from app.config import Secret, Settings
from app.loops import Supervisor
from app.main import create_app
from app.metrics import Metrics
from app.state import AppState
from tests.app.harness import ADMIN_TOKEN, SECRET
from tests.livekit_double import LiveKitDouble


async def _eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    """Waits for a state the loops reach by themselves (a guard against hanging, not a timing test)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.02)


def _sample(metrics: Metrics, name: str, loop: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"loop": loop})


async def test_a_crashed_loop_is_logged_at_once_shown_down_and_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    loops = Supervisor(metrics, first_backoff_s=0.3)
    runs: list[int] = []
    release = asyncio.Event()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("boom")
        await release.wait()

    with caplog.at_level(logging.INFO, "hearth.loops"):
        loops.start("flaky", flaky)
        await _eventually(lambda: loops.loops["flaky"].crashes == 1)
        # Down, and logged with its traceback, before it runs again.
        assert not loops.up("flaky") and _sample(metrics, "hearth_loop_up", "flaky") == 0
        assert runs == [0]
        [record] = [r for r in caplog.records if "flaky loop crashed" in r.getMessage()]
        assert record.exc_info is not None and record.levelno == logging.ERROR
        await _eventually(lambda: runs == [0, 1])
        assert loops.up("flaky") and _sample(metrics, "hearth_loop_up", "flaky") == 1
        assert _sample(metrics, "hearth_loop_restarts_total", "flaky") == 1
        await loops.stop()


async def test_backoff_doubles_and_an_expected_error_is_one_line(caplog: pytest.LogCaptureFixture) -> None:
    loops = Supervisor(Metrics(), first_backoff_s=0.05, max_backoff_s=0.2)
    starts: list[float] = []

    async def down() -> None:
        starts.append(asyncio.get_running_loop().time())
        raise ConnectionRefusedError("database is away")

    with caplog.at_level(logging.INFO, "hearth.loops"):
        loops.start("down", down)
        await _eventually(lambda: len(starts) >= 5)
        await loops.stop()
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # Never sooner than the backoff (less a clock tick): 0.05, 0.1, then 0.2 (the cap).
    assert all(gap >= wait - 0.005 for gap, wait in zip(gaps, [0.05, 0.1, 0.2, 0.2], strict=False)), gaps
    lines = [r for r in caplog.records if "down loop failed" in r.getMessage()]
    assert lines and all(r.exc_info is None and r.levelno == logging.WARNING for r in lines)


async def test_a_loop_that_finishes_by_design_is_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    loops = Supervisor(metrics, first_backoff_s=0.01)
    runs: list[None] = []

    async def once() -> None:
        runs.append(None)

    with caplog.at_level(logging.INFO, "hearth.loops"):
        loops.start("once", once)
        await _eventually(lambda: loops.loops["once"].finished)
        await asyncio.sleep(0.1)
    assert runs == [None] and loops.up("once") and loops.loops["once"].crashes == 0
    assert _sample(metrics, "hearth_loop_up", "once") == 1
    assert _sample(metrics, "hearth_loop_restarts_total", "once") is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    await loops.stop()


async def test_one_stop_ends_every_loop_last_started_first() -> None:
    loops = Supervisor(Metrics())
    ended: list[str] = []

    def forever(name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            try:
                await asyncio.Event().wait()
            finally:
                ended.append(name)

        return run

    for name in ("first", "second", "third"):
        loops.start(name, forever(name))
    await asyncio.sleep(0)
    await loops.stop()
    assert ended == ["third", "second", "first"]
    assert all(loop.task is not None and loop.task.done() for loop in loops.loops.values())


# Every loop of a real app.
API_KEY = "devkey"
API_SECRET = "devsecret-for-hearth-tests-0123456789abcdef"


class Once:
    """Stands in for a method a loop calls: the first call raises, every later one is the real thing."""

    def __init__(self, target: Callable[..., Any]) -> None:
        self.target = target
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("raised inside the loop by the test")
        return self.target(*args, **kwargs)


@pytest.fixture(scope="module")
async def double() -> AsyncIterator[LiveKitDouble]:
    async with LiveKitDouble(api_key=API_KEY, api_secret=API_SECRET) as lk:
        yield lk


@pytest.fixture
async def running(app_db: str, double: LiveKitDouble) -> AsyncIterator[tuple[Starlette, AppState]]:
    settings = Settings(
        Secret(app_db),
        Secret(SECRET),
        Secret(ADMIN_TOKEN),
        instance_id="loops",
        livekit_url=double.url,
        livekit_api_key=API_KEY,
        livekit_api_secret=Secret(API_SECRET),
        livekit_reconcile_s=0.2,
        maintenance="on",
        maintenance_scale=1 / 60,
        settings_refresh_s=0.2,
    )
    app = create_app(settings, heartbeat_flush_s=0.1)
    async with app.router.lifespan_context(app):
        state: AppState = app.state.hearth
        await _eventually(
            lambda: state.listener.connected and state.loops.loops["maintenance"].run.__self__.leading
        )
        yield app, state


async def _terminate(app_db: str, application_name: str) -> None:
    conn = await asyncpg.connect(app_db)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE $1",
            application_name,
        )
    finally:
        await conn.close()


async def test_each_loop_comes_back_after_raising(
    running: tuple[Starlette, AppState], app_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, state = running
    maintenance = state.loops.loops["maintenance"].run.__self__
    broadcast_listener = state.loops.loops["broadcast-listener"].run.__self__
    # loop: (the object it calls, the method that will raise, what makes the loop call it soon)
    faults: dict[str, tuple[Any, str, Callable[[], Awaitable[None]] | None]] = {
        "listener": (state.listener, "_on_connect", lambda: _terminate(app_db, "hearth-listener%")),
        "dispatcher": (state.hub, "_round", _async(state.hub.resync)),
        "heartbeats": (state.heartbeats, "flush", None),
        "matcher": (state.db, "match_waiting", None),
        "match-reaper": (state.db, "end_abandoned_matches", None),
        "livekit-rooms": (state.db, "claim_livekit_jobs", None),
        "livekit-reconciler": (state.db, "reconcile_livekit_rooms", None),
        "maintenance": (maintenance, "_wanted", lambda: _terminate(app_db, "hearth-maintenance")),
        "rate-limits": (state.db, "rate_limits", None),
        "broadcasts": (state.db, "broadcast", lambda: _broadcast_twice(state)),
        "broadcast-listener": (
            broadcast_listener,
            "_on_connect",
            lambda: _terminate(app_db, "hearth-broadcast-listener%"),
        ),
    }
    assert set(faults) == set(state.loops.loops)
    for name, (owner, method, poke) in faults.items():
        fault = Once(getattr(owner, method))
        monkeypatch.setattr(owner, method, fault)
        if poke is not None:
            await poke()
        loop = state.loops.loops[name]
        await _eventually(lambda loop=loop, fault=fault: loop.crashes == 1 and loop.up and fault.calls >= 2)
        assert _sample(state.metrics, "hearth_loop_restarts_total", name) == 1
    await _eventually(lambda: state.listener.connected)
    assert all(loop.up and loop.crashes == 1 for loop in state.loops.loops.values())
    text = state.metrics.render().decode()
    assert all(f'hearth_loop_up{{loop="{name}"}} 1.0' in text for name in faults)


async def _broadcast_twice(state: AppState) -> None:
    """The sender calls the database only with something to send: once to fail, once after its restart."""
    for _ in range(2):
        state.broadcasts.send(str(uuid.uuid4()), str(uuid.uuid4()), {"type": "broadcast", "body": {}})
        await asyncio.sleep(0.5)


def _async(action: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        action()

    return run
