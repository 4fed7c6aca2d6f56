"""Fan-out: doorbells in, frames read from the events table out, each to the local subscribers of its stream.

A doorbell ('<stream id> <seq>', see app.events) says a stream has news; it is not trusted for
anything else. The hub ignores doorbells for streams no local subscriber follows and doorbells at or
below what it has already read (`_cursor`), keeps the rest coalesced per stream, and reads them all in
one `hearth.event_frames` call per round: frames come ready-encoded from the table, so only events that
Hearth's functions wrote are ever delivered, and a doorbell naming no row (forged, or beyond the head)
costs one read at most, never a loop.

Correctness lives with the subscriber: it knows the next sequence number it needs per stream. A
frame below it is a duplicate and is dropped; a frame above it means a gap (doorbells lost while the
listener was down, rows deleted), and the subscriber catches up from the table while buffering live
frames, then goes live again. So a client sees every event of its streams once, in order, whatever
the listener went through. The same routine brings a new subscriber from its `after` to live.

Each event is framed once per instance (`Event.wire`, app.frames) and the same bytes are queued to
every subscriber that gets it; a socket's writer takes its whole queue, joined, for one write, so a
dispatch round costs each socket one write however many events it brought.

A subscription is an async context manager (`async with hub.subscribe(...) as sub`, as broadcaster's
`subscribe()`): the subscriber leaves the hub when the block ends, however it ends. A consumer declares
the event types it acts on (`watch`) and what to do with one (`on_event`); a consumer that only watches
(a display's event stream) asks for no frames (`send=False`), so none queue up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from app.events import Event, parse_doorbell
from app.frames import text_frame
from app.metrics import Metrics

log = logging.getLogger("hearth.hub")

# A client more than this many frames (or bytes) behind is closed: memory stays bounded.
MAX_QUEUED_FRAMES = 2000
MAX_QUEUED_BYTES = 8 * 1024 * 1024
CLOSE_SLOW_CONSUMER = 1013

# Events of streams after given seqs, at most PAGE per stream, in order (hearth.event_frames).
FetchFrames = Callable[[list[str], list[int]], Awaitable[list[Event]]]
PAGE = 500
# A resync's mark in `_pending`: read the stream whatever its cursor.
_RESYNC = 2**63


OnEvent = Callable[["Subscriber", Event], None]


class Subscriber:
    """One consumer's view (a websocket, a display's event stream): the streams it follows, what it has
    been sent, what it still must send, and the event types it watches."""

    def __init__(
        self,
        hub: Hub,
        participant_id: str | None,
        *,
        watch: Iterable[str] = (),
        on_event: OnEvent | None = None,
        send: bool = True,
    ) -> None:
        self.hub = hub
        self.participant_id = participant_id
        self.next_seq: dict[str, int] = {}
        self._buffers: dict[str, list[Event]] = {}  # streams being caught up: live frames wait here
        self._out: deque[bytes] = deque()  # websocket frames, ready to write
        self._out_bytes = 0
        self._wake = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        self._watch = frozenset(watch)
        self._on_event = on_event
        self._send = send

    @property
    def streams(self) -> set[str]:
        """The streams it follows, live or catching up."""
        return set(self.next_seq) | set(self._buffers)

    # Called by the hub (dispatcher) for every live event of a followed stream.
    def offer(self, event: Event) -> None:
        if self.close_code is not None:
            return  # closing: its writer sends what is queued, nothing more
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
        if self._send:
            self.push_frame(event.wire())  # framed once, the same bytes for every subscriber
            self.hub.delivered += 1
        if self._on_event is not None and event.type in self._watch:
            self._on_event(self, event)

    def push(self, text: str) -> None:
        """Queue a frame of this socket's own (a welcome, an ack, an error)."""
        if self.close_code is None:
            self.push_frame(text_frame(text))

    def push_frame(self, frame: bytes) -> None:
        """Queue a websocket frame (app.frames), often one shared with other subscribers."""
        if self.close_code is not None:
            return
        self._out.append(frame)
        self._out_bytes += len(frame)
        if len(self._out) > MAX_QUEUED_FRAMES or self._out_bytes > MAX_QUEUED_BYTES:
            self._out.clear()
            self._out_bytes = 0
            self.hub.metrics.slow_consumers.inc()
            self.close(CLOSE_SLOW_CONSUMER, "too slow: frames were piling up")
        elif len(self._out) == 1:
            self._wake.set()  # the writer waits only on an empty queue

    @property
    def queued(self) -> int:
        """Frames waiting for the writer."""
        return len(self._out)

    def close(self, code: int, reason: str = "") -> None:
        """Close after the frames already queued are sent."""
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        self._wake.set()

    async def next_frames(self) -> bytes:
        """Wait for queued frames and take them all, joined for one write; empty means: close now (see
        close_code)."""
        while not self._out and self.close_code is None:
            self._wake.clear()
            await self._wake.wait()
        frames = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        self._out_bytes = 0
        return frames

    # Streams
    def follow(self, stream_id: str) -> None:
        """Start following a stream in catch-up mode: live frames are buffered until `go_live`."""
        self._buffers.setdefault(stream_id, [])
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
        buffer = self._buffers.setdefault(stream_id, [])
        while True:
            arrived = len(buffer)
            fetched = await self.hub.fetch([stream_id], [self.next_seq[stream_id] - 1])
            for event in fetched:
                if event.seq >= self.next_seq[stream_id]:
                    self.next_seq[stream_id] = event.seq  # the table has no holes to wait for
                    self._accept(event)
            if fetched:
                continue  # a full page may have more behind it
            expected = self.next_seq[stream_id]
            pending = sorted((e for e in buffer if e.seq >= expected), key=lambda e: e.seq)
            if pending and pending[0].seq > expected and pending[0] in buffer[arrived:]:
                continue  # buffered while the table was read: what lies below it may have committed since
            # Buffered frames were read from the table too, so a hole below one that was buffered before
            # this read began is rows deleted meanwhile (cleanup, pruning): skip it, never wait for it.
            # No await from here on: the switch to live is atomic for the dispatcher.
            self._buffers.pop(stream_id, None)
            for event in pending:
                if event.seq >= self.next_seq[stream_id]:
                    self.next_seq[stream_id] = event.seq
                    self._accept(event)
            return


class Hub:
    def __init__(self, fetch: FetchFrames, metrics: Metrics) -> None:
        self.fetch = fetch
        self.metrics = metrics
        self._streams: dict[str, set[Subscriber]] = {}
        # Per followed stream: the highest seq read from the table and offered to its subscribers.
        self._cursor: dict[str, int] = {}
        # Streams whose doorbell rang above their cursor: the lowest seq rung (or _RESYNC).
        self._pending: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.delivered = 0  # frames queued to subscribers; flushed into the metric once per round
        self._counted = 0

    @contextlib.asynccontextmanager
    async def subscribe(
        self,
        participant_id: str | None,
        *,
        watch: Iterable[str] = (),
        on_event: OnEvent | None = None,
        send: bool = True,
    ) -> AsyncIterator[Subscriber]:
        """A subscriber for the block's duration: it follows streams with `follow`/`go_live` and leaves
        every one of them when the block ends."""
        subscriber = Subscriber(self, participant_id, watch=watch, on_event=on_event, send=send)
        try:
            yield subscriber
        finally:
            self.leave(subscriber)

    def add(self, stream_id: str, subscriber: Subscriber) -> None:
        self._streams.setdefault(stream_id, set()).add(subscriber)

    def leave(self, subscriber: Subscriber) -> None:
        """The subscriber leaves every stream it follows (what `subscribe`'s block does at its end)."""
        for stream_id in subscriber.streams:
            subs = self._streams.get(stream_id)
            if subs is not None:
                subs.discard(subscriber)
                if not subs:
                    del self._streams[stream_id]
                    self._cursor.pop(stream_id, None)
                    self._pending.pop(stream_id, None)

    def subscribers(self, stream_id: str) -> set[Subscriber]:
        return self._streams.get(stream_id, set())

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Fed by the listener.
    def notify(self, payload: str) -> None:
        """A doorbell. Costs a lookup or two unless it is news for a stream followed here."""
        bell = parse_doorbell(payload)
        if bell is None:
            return  # not a doorbell: nothing on this channel is trusted beyond that
        stream_id, seq = bell
        if stream_id not in self._streams:
            return
        cursor = self._cursor.get(stream_id)
        if cursor is not None and seq <= cursor:
            return
        rung = self._pending.get(stream_id)
        if rung is None or seq < rung:
            self._pending[stream_id] = seq
        self._wake.set()

    def resync(self) -> None:
        """After a (re)connect: every followed stream is read again from its cursor."""
        for stream_id in self._streams:
            self._pending[stream_id] = _RESYNC
        self._wake.set()

    async def run(self) -> None:
        """The dispatcher: one task; each round reads every stream rung since the last one. A failed
        round rings its streams again; its supervisor starts the dispatcher again, which reads them."""
        self._wake.set()
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._round()
            finally:
                self._count()  # also what catch-ups delivered meanwhile

    def _read_from(self, stream_id: str, rung: int) -> int | None:
        """Where to read a rung stream from: its cursor; for a stream not read here yet, just below the
        doorbell (everything before it was committed before its subscribers read the table); after a
        resync, from the least advanced subscriber. None: nothing to read."""
        cursor = self._cursor.get(stream_id)
        if cursor is not None:
            return cursor if rung > cursor else None
        if rung != _RESYNC:
            return rung - 1
        positions = [s.next_seq[stream_id] for s in self._streams[stream_id] if stream_id in s.next_seq]
        return min(positions) - 1 if positions else None

    async def _round(self) -> None:
        rung, self._pending = self._pending, {}
        streams: list[str] = []
        afters: list[int] = []
        for stream_id, seq in rung.items():
            after = self._read_from(stream_id, seq) if stream_id in self._streams else None
            if after is not None:
                streams.append(stream_id)
                afters.append(after)
        if not streams:
            return
        try:
            events = await self.fetch(streams, afters)
        except BaseException:
            for stream_id, seq in rung.items():  # ring them again for the next round
                if stream_id in self._streams and seq < self._pending.get(stream_id, _RESYNC + 1):
                    self._pending[stream_id] = seq
            raise
        self.metrics.events_received.inc(len(events))
        per_stream: dict[str, int] = {}
        now = time.time()
        for event in events:
            per_stream[event.stream_id] = per_stream.get(event.stream_id, 0) + 1
            if event.at is not None:
                self.metrics.relay_lag.observe(max(now - event.at.timestamp(), 0.0))
            subs = self._streams.get(event.stream_id)
            if not subs:
                continue
            if event.seq > self._cursor.get(event.stream_id, -1):
                self._cursor[event.stream_id] = event.seq
            for sub in list(subs):
                sub.offer(event)
        for stream_id, count in per_stream.items():
            if count >= PAGE and stream_id in self._streams:  # a full page: read on from the cursor
                self._pending[stream_id] = self._cursor[stream_id] + 1
                self._wake.set()

    def _count(self) -> None:
        if self.delivered != self._counted:
            self.metrics.events_relayed.inc(self.delivered - self._counted)
            self._counted = self.delivered

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
