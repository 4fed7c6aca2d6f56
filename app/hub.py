"""Fan-out: each database event, parsed and encoded once, goes to the local subscribers of its stream.

Correctness lives with the subscriber: it knows the next sequence number it needs per stream. A
frame below it is a duplicate and is dropped; a frame above it means a gap (a NOTIFY lost while the
listener was down), and the subscriber catches up from `hearth.events_since` while buffering live
frames, then goes live again. So a client sees every event of its streams once, in order, whatever
the listener went through. The same routine brings a new subscriber from its `after` to live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from app.events import Event
from app.metrics import Metrics

log = logging.getLogger("hearth.hub")

# A client more than this many frames (or bytes) behind is closed: memory stays bounded.
MAX_QUEUED_FRAMES = 2000
MAX_QUEUED_BYTES = 8 * 1024 * 1024
CLOSE_SLOW_CONSUMER = 1013
# The only event types an `on_frame` watcher acts on (socket closes, a display's outcome).
WATCHED_TYPES = frozenset({"presence.leave", "session.expired", "session.ended", "session.paired"})

FetchEvents = Callable[[str, bool, int], Awaitable[list[Event]]]


class Subscriber:
    """One websocket's view: the streams it follows, what it has been sent, what it still must send."""

    def __init__(self, hub: Hub, participant_id: str | None) -> None:
        self.hub = hub
        self.participant_id = participant_id
        self.next_seq: dict[str, int] = {}
        self.identity_streams: set[str] = set()
        self._buffers: dict[str, list[Event]] = {}  # streams being caught up: live frames wait here
        self._out: deque[str] = deque()
        self._out_bytes = 0
        self._wake = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        self.on_frame: Callable[[Subscriber, Event], None] | None = None

    # Called by the hub (dispatcher) for every live event of a followed stream.
    def offer(self, event: Event) -> None:
        buffer = self._buffers.get(event.stream_id)
        if buffer is not None:
            buffer.append(event)
            return
        expected = self.next_seq[event.stream_id]
        if event.seq > expected:
            self._buffers[event.stream_id] = [event]
            self.hub.spawn(self.catch_up(event.stream_id))
        elif event.seq == expected:
            self._accept(event)

    def _accept(self, event: Event) -> None:
        """The next event of its stream: sent, unless it is a signal for someone else."""
        if event.to is not None and event.to != self.participant_id:
            self.next_seq[event.stream_id] = event.seq + 1
        else:
            self._deliver(event)

    def _deliver(self, event: Event) -> None:
        self.next_seq[event.stream_id] = event.seq + 1
        self.push(event.text)
        self.hub.delivered += 1
        if self.on_frame is not None and event.type in WATCHED_TYPES:
            self.on_frame(self, event)

    def push(self, text: str) -> None:
        if self.close_code is not None:
            return
        self._out.append(text)
        self._out_bytes += len(text)
        if len(self._out) > MAX_QUEUED_FRAMES or self._out_bytes > MAX_QUEUED_BYTES:
            self._out.clear()
            self._out_bytes = 0
            self.hub.metrics.slow_consumers.inc()
            self.close(CLOSE_SLOW_CONSUMER, "too slow: frames were piling up")
        elif len(self._out) == 1:
            self._wake.set()  # the writer waits only on an empty queue

    def drop_frames(self) -> None:
        """For followers that only watch (a display's event stream): forget what was queued."""
        self._out.clear()
        self._out_bytes = 0

    def close(self, code: int, reason: str = "") -> None:
        """Close after the frames already queued are sent."""
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        self._wake.set()

    async def next_frames(self) -> list[str]:
        """Wait for queued frames; an empty list means: close now (see close_code)."""
        while not self._out and self.close_code is None:
            self._wake.clear()
            await self._wake.wait()
        frames = list(self._out)
        self._out.clear()
        self._out_bytes = 0
        return frames

    # Streams
    def follow(self, stream_id: str, *, identity: bool = False) -> None:
        """Start following a stream in catch-up mode: live frames are buffered until `go_live`."""
        self._buffers.setdefault(stream_id, [])
        if identity:
            self.identity_streams.add(stream_id)
        self.hub.add(stream_id, self)

    async def go_live(self, stream_id: str, after: int) -> None:
        """Send what came after `after`, from the table and the buffer, then take live frames."""
        self.next_seq[stream_id] = after + 1
        await self._drain(stream_id)

    async def catch_up(self, stream_id: str) -> None:
        try:
            await self._drain(stream_id)
        except Exception:
            log.exception("catch-up of %s failed", stream_id)
            self.close(1011, "could not catch up")

    async def _drain(self, stream_id: str) -> None:
        is_identity = stream_id in self.identity_streams
        while True:
            fetched = await self.hub.fetch(stream_id, is_identity, self.next_seq[stream_id] - 1)
            for event in fetched:
                if event.seq >= self.next_seq[stream_id]:
                    self.next_seq[stream_id] = event.seq  # the table has no holes to wait for
                    self._accept(event)
            if fetched:
                continue  # a full page may have more behind it
            buffer = self._buffers.get(stream_id, [])
            expected = self.next_seq[stream_id]
            pending = [e for e in buffer if e.seq >= expected]
            if pending and pending[0].seq > expected:
                buffer[:] = pending
                continue  # still a hole below the buffered frames: read the table again
            # No await from here on: the switch to live is atomic for the dispatcher.
            self._buffers.pop(stream_id, None)
            for event in pending:
                if event.seq == self.next_seq[stream_id]:
                    self._accept(event)
            return

    def detach(self) -> None:
        self.hub.remove(self)
        self.close(1000)


class Hub:
    def __init__(self, fetch: FetchEvents, metrics: Metrics, *, max_queue: int = 100_000) -> None:
        self.fetch = fetch
        self.metrics = metrics
        self._streams: dict[str, set[Subscriber]] = {}
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._max_queue = max_queue
        self._tasks: set[asyncio.Task[Any]] = set()
        self.delivered = 0  # frames queued to subscribers; flushed into the metric once per event
        self._counted = 0

    def add(self, stream_id: str, subscriber: Subscriber) -> None:
        self._streams.setdefault(stream_id, set()).add(subscriber)

    def remove(self, subscriber: Subscriber) -> None:
        for stream_id in list(subscriber.next_seq) + list(subscriber._buffers):
            subs = self._streams.get(stream_id)
            if subs is not None:
                subs.discard(subscriber)
                if not subs:
                    del self._streams[stream_id]

    def subscribers(self, stream_id: str) -> set[Subscriber]:
        return self._streams.get(stream_id, set())

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Fed by the listener.
    def notify(self, payload: str) -> None:
        if self._queue.qsize() >= self._max_queue:
            # Too far behind: drop the backlog and re-read every followed stream from the table.
            while not self._queue.empty():
                self._queue.get_nowait()
            self.resync()
            return
        self._queue.put_nowait(payload)

    def resync(self) -> None:
        """After a (re)connect: every followed stream catches up from the table."""
        self._queue.put_nowait(None)

    async def run(self) -> None:
        """The dispatcher: one task, in NOTIFY (commit) order."""
        while True:
            item = await self._queue.get()
            try:
                if item is None:
                    await self._resync_all()
                else:
                    await self._dispatch(item)
            except Exception:
                log.exception("dispatch failed; re-reading followed streams")
                self.spawn(self._delayed_resync())
            self._count()  # also what catch-ups delivered meanwhile

    async def _delayed_resync(self) -> None:
        await asyncio.sleep(0.5)
        self.resync()

    async def _dispatch(self, payload: str) -> None:
        event = Event.from_notify(payload)
        self.metrics.events_received.inc()
        with contextlib.suppress(ValueError):
            lag = time.time() - datetime.fromisoformat(event.at).timestamp()
            self.metrics.relay_lag.observe(max(lag, 0.0))
        subs = self._streams.get(event.stream_id)
        if not subs:
            return
        if event.ref:
            # Too big for NOTIFY: read it from the table, once for this instance.
            fetched = await self.fetch(event.stream_id, event.identity, event.seq - 1)
            if not fetched or fetched[0].seq != event.seq:
                return  # pruned or deleted meanwhile; followers catch up if they need to
            event = fetched[0]
            subs = self._streams.get(event.stream_id, set())
        for sub in list(subs):
            sub.offer(event)

    def _count(self) -> None:
        if self.delivered != self._counted:
            self.metrics.events_relayed.inc(self.delivered - self._counted)
            self._counted = self.delivered

    async def _resync_all(self) -> None:
        for stream_id, subs in list(self._streams.items()):
            live = [s for s in subs if stream_id in s.next_seq and stream_id not in s._buffers]
            if not live:
                continue
            is_identity = stream_id in live[0].identity_streams
            after = min(s.next_seq[stream_id] for s in live) - 1
            while True:
                fetched = await self.fetch(stream_id, is_identity, after)
                if not fetched:
                    break
                for event in fetched:
                    for sub in list(self._streams.get(stream_id, ())):
                        sub.offer(event)
                after = fetched[-1].seq

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
