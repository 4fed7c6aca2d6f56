"""The instance's one LISTEN connection, doorbells, and events as the relay sees them.

The listener owns a dedicated asyncpg connection (a pooled one would be UNLISTENed on release). It
runs a keepalive query, because a dead server is otherwise noticed only at the next query or TCP
timeout, and reconnects with backoff. After every reconnect it LISTENs first and only then asks the
hub to catch up from the events table: NOTIFY replays nothing.

A notification on hearth_events is a doorbell, '<stream id> <seq>', never a frame: LISTEN/NOTIFY has no
privileges, so anyone who can connect could NOTIFY. Frames are read from the events table
(`hearth.event_frames`), so only events Hearth's functions wrote are ever delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from app.frames import text_frame
from app.metrics import Metrics

CHANNEL = "hearth_events"
log = logging.getLogger("hearth.events")


@dataclass(slots=True)
class Event:
    """One event of a stream: routing fields plus the client frame, encoded once (by the database)."""

    stream_id: str
    seq: int
    type: str
    to: str | None
    text: str
    identity: bool = False
    at: datetime | None = None
    _wire: bytes | None = field(default=None, repr=False, compare=False)

    def wire(self) -> bytes:
        """The event's websocket frame, built at the first call and shared by every later one."""
        if self._wire is None:
            self._wire = text_frame(self.text)
        return self._wire

    @classmethod
    def from_row(cls, row: Any) -> Event:
        """A row of hearth.event_frames."""
        return cls(
            str(row["stream_id"]),
            row["seq"],
            row["type"],
            row["recipient"],
            row["frame"],
            row["identity"],
            row["emitted_at"],
        )


def parse_doorbell(payload: str) -> tuple[str, int] | None:
    """'<stream id> <seq>' -> (stream id, seq); None for anything else (ignored)."""
    stream, _, seq = payload.partition(" ")
    if len(stream) != 36 or not (seq.isascii() and seq.isdigit()) or len(seq) > 18:
        return None
    return stream, int(seq)


class Listener:
    """Keeps `LISTEN <channel>` (hearth_events) up; hands each payload to `on_notify`, each (re)connect
    to `on_connect`. `wake_channels` are further channels whose notifications only wake a loop. With
    `metrics` None (the broadcast channel's listener), it does not speak for `hearth_listener_up`."""

    def __init__(
        self,
        url: str,
        on_notify: Callable[[str], None],
        on_connect: Callable[[], None],
        metrics: Metrics | None,
        *,
        channel: str = CHANNEL,
        keepalive_s: float = 2.0,
        max_backoff_s: float = 5.0,
        application_name: str = "hearth-listener",
        wake_channels: dict[str, Callable[[], None]] | None = None,
    ) -> None:
        self._url = url
        self._channel = channel
        self._label = "listener" if channel == CHANNEL else f"{channel} listener"  # in log lines
        self._wake_channels = wake_channels or {}
        self._application_name = application_name
        self._on_notify = on_notify
        self._on_connect = on_connect
        self._metrics = metrics
        self._keepalive_s = keepalive_s
        self._max_backoff_s = max_backoff_s
        self._conn: asyncpg.Connection | None = None
        self._stopping = asyncio.Event()
        self.connected = False
        self.connects = 0

    def _callback(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        self._on_notify(payload)

    async def run(self) -> None:
        """Until cancelled by its supervisor (or stopped); what it does not expect escapes to it."""
        backoff = 0.1
        while not self._stopping.is_set():
            lost = asyncio.Event()
            try:
                self._conn = await asyncpg.connect(
                    self._url, timeout=5, server_settings={"application_name": self._application_name}
                )
                self._conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await self._conn.add_listener(self._channel, self._callback)
                for channel, wake in self._wake_channels.items():
                    await self._conn.add_listener(channel, lambda *_args, wake=wake: wake())
                self.connected = True
                if self._metrics is not None:
                    self._metrics.listener_up.set(1)
                if self.connects:
                    if self._metrics is not None:
                        self._metrics.listener_reconnects.inc()
                    log.warning("%s reconnected", self._label)
                self.connects += 1
                self._on_connect()
                backoff = 0.1
                while not self._stopping.is_set() and not lost.is_set():
                    await self._conn.fetchval("SELECT 1", timeout=self._keepalive_s)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), self._keepalive_s)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                if not self._stopping.is_set():
                    log.warning("%s connection lost: %s", self._label, exc)
            finally:
                self.connected = False
                if self._metrics is not None:
                    self._metrics.listener_up.set(0)
                await self._close_conn()
            if self._stopping.is_set():
                break
            # Jittered exponential backoff, so instances do not reconnect in lockstep.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, self._max_backoff_s)

    async def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)

    async def stop(self) -> None:
        self._stopping.set()
        await self._close_conn()
