"""Background loops and their one owner.

Every long-running loop of an instance (listener, dispatcher, heartbeat flusher, matcher, match reaper,
LiveKit room worker and reconciler, maintenance) is started by the `Supervisor` and stopped by its one
`stop()`. A loop that raises has crashed: it is logged at once (one line for a database or network error,
a traceback for anything else), shown as `hearth_loop_up{loop=...} 0`, and started again after a backoff
that doubles up to `max_backoff_s` (and starts over once the loop has run for a minute). A loop that
returns has finished by design (maintenance where pg_cron does the work): not a crash, not restarted.

A loop keeps only the state that must outlive a crash on its object (the hub's rung streams, the
heartbeats not yet written); anything else is rebuilt when it starts again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg

from app.metrics import Metrics

log = logging.getLogger("hearth.loops")

# What a loop meets when its database or a remote service is away: worth a line, not a traceback.
EXPECTED = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, aiohttp.ClientError)
STEADY_S = 60.0  # a loop that ran this long before crashing starts again from the first backoff


@dataclass
class Loop:
    name: str
    run: Callable[[], Awaitable[None]]
    up: bool = True
    finished: bool = False
    crashes: int = 0
    expected: tuple[type[BaseException], ...] = ()  # more errors worth a line, not a traceback
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Supervisor:
    def __init__(self, metrics: Metrics, *, first_backoff_s: float = 0.1, max_backoff_s: float = 5.0) -> None:
        self._metrics = metrics
        self._first_backoff_s = first_backoff_s
        self._max_backoff_s = max_backoff_s
        self.loops: dict[str, Loop] = {}

    def start(
        self, name: str, run: Callable[[], Awaitable[None]], *, expected: tuple[type[BaseException], ...] = ()
    ) -> None:
        loop = self.loops[name] = Loop(name, run, expected=expected)
        self._set_up(loop, True)
        loop.task = asyncio.create_task(self._keep(loop), name=f"hearth-{name}")

    def up(self, name: str) -> bool:
        """Running, or finished by design; False while it waits to start again after a crash."""
        return self.loops[name].up

    async def _keep(self, loop: Loop) -> None:
        backoff = self._first_backoff_s
        while True:
            started = time.monotonic()
            try:
                await loop.run()
            except Exception as exc:
                loop.crashes += 1
                self._set_up(loop, False)
                self._metrics.loop_restarts.labels(loop.name).inc()
                if time.monotonic() - started >= STEADY_S:
                    backoff = self._first_backoff_s
                if isinstance(exc, EXPECTED + loop.expected):
                    log.warning("%s loop failed, restarting in %.1fs: %s", loop.name, backoff, exc)
                else:
                    log.exception("%s loop crashed, restarting in %.1fs", loop.name, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)
                self._set_up(loop, True)
            else:
                loop.finished = True
                log.info("%s loop finished", loop.name)
                return

    def _set_up(self, loop: Loop, up: bool) -> None:
        loop.up = up
        self._metrics.loop_up.labels(loop.name).set(1 if up else 0)

    async def stop(self) -> None:
        """Stops every loop, the last started first (the listener, started first, goes last)."""
        for loop in reversed(list(self.loops.values())):
            if loop.task is not None:
                loop.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop.task


async def every(seconds: float, wake: asyncio.Event | None, action: Callable[[], Awaitable[Any]]) -> None:
    """Run `action` every `seconds`, or sooner when `wake` is set. A failure ends the loop: its
    supervisor logs it and starts it again."""
    while True:
        await action()
        if wake is None:
            await asyncio.sleep(seconds)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), seconds)
            wake.clear()
