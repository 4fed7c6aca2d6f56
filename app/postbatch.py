"""Group commit for durable `message` frames: the frames of one session that reach this instance while
its previous batch commits go together in the next one (hearth.post_messages), in arrival order.

Posts into one session wait for each other anyway (each takes the session row's lock until its commit);
one transaction per batch pays that wait and the WAL flush once. A session has at most one batch in
flight: the first frame after a quiet spell starts one at the end of the loop's current tick (with any
frames that arrived in the same tick), and everything that arrives while it commits forms the next, up to
`max_batch`. A sender's `post` returns its seq once its batch has committed (its ack), or raises the
HearthError of its frame alone: the database checks every element, so a bad frame never fails its
batch-mates. If the database refuses a batch as a whole (nothing committed), its frames are posted one by
one, so each still gets its own answer. If the connection is lost mid-batch the outcome is unknown and
every frame of it gets that error (HT503 to the client, which resumes and sees what committed).

Backpressure: at most `max_waiting` frames wait per instance; a sender beyond that waits in `post` for
room, so its socket is not read meanwhile and the client sees its acks come later, never a lost frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from app.errors import HearthError

# (session, participants, bodies) -> one (seq, error code, error message) per element, in order.
PostMessages = Callable[
    [uuid.UUID, Sequence[uuid.UUID], Sequence[dict[str, Any]]],
    Awaitable[list[tuple[int | None, str | None, str | None]]],
]
PostMessage = Callable[[uuid.UUID, dict[str, Any]], Awaitable[int]]

MAX_BATCH = 500
MAX_WAITING = 10_000


@dataclass(slots=True)
class _Post:
    participant_id: uuid.UUID
    body: dict[str, Any]
    done: asyncio.Future[int] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


def _refused_whole(exc: BaseException) -> bool:
    """The database answered the batch with an error (so nothing of it committed), as opposed to a lost
    connection or a timeout, after which nobody knows."""
    if isinstance(exc, HearthError):
        return True
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return isinstance(exc, asyncpg.PostgresError) and sqlstate[:2] in ("22", "23", "42")


class PostBatcher:
    def __init__(
        self,
        post_messages: PostMessages,
        post_message: PostMessage,
        *,
        max_batch: int = MAX_BATCH,
        max_waiting: int = MAX_WAITING,
    ) -> None:
        self._post_messages = post_messages
        self._post_message = post_message
        self._max_batch = max_batch
        self._room = asyncio.Semaphore(max_waiting)
        # A session is a key here exactly while its flusher runs.
        self._queues: dict[uuid.UUID, deque[_Post]] = {}
        self._flushers: set[asyncio.Task[None]] = set()
        self.batches = 0  # committed or failed, for tests and benchmarks

    async def post(self, session_id: uuid.UUID, participant_id: uuid.UUID, body: dict[str, Any]) -> int:
        """The message's seq once it has committed; HearthError for this frame alone; the database's
        error if the batch could not be committed. Frames of one caller commit in the order posted."""
        await self._room.acquire()  # released by the flusher once the frame's batch is done
        item = _Post(participant_id, body)
        queue = self._queues.get(session_id)
        if queue is None:
            queue = self._queues[session_id] = deque()
            task = asyncio.create_task(self._flush(session_id, queue))
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)
        queue.append(item)
        return await item.done

    async def _flush(self, session_id: uuid.UUID, queue: deque[_Post]) -> None:
        try:
            while queue:
                batch = [queue.popleft() for _ in range(min(len(queue), self._max_batch))]
                try:
                    await self._commit(session_id, batch)
                finally:
                    for _ in batch:
                        self._room.release()
        finally:
            # No await since the queue was last seen empty: a post arriving now starts a new flusher.
            del self._queues[session_id]
            for item in queue:  # only if cancelled (shutdown)
                self._room.release()
                item.done.cancel()

    async def _commit(self, session_id: uuid.UUID, batch: list[_Post]) -> None:
        self.batches += 1
        try:
            results = await self._post_messages(
                session_id, [p.participant_id for p in batch], [p.body for p in batch]
            )
        except Exception as exc:
            if _refused_whole(exc):
                await self._one_by_one(batch)
            else:
                for item in batch:
                    _settle(item, exc=exc)
            return
        except BaseException:
            for item in batch:
                item.done.cancel()
            raise
        for item, (seq, code, message) in zip(batch, results, strict=True):
            if code is None and seq is not None:
                _settle(item, seq=seq)
            else:
                _settle(item, exc=HearthError(code or "HT400", message or "message refused"))

    async def _one_by_one(self, batch: list[_Post]) -> None:
        for item in batch:
            try:
                seq = await self._post_message(item.participant_id, item.body)
            except Exception as exc:
                _settle(item, exc=exc)
            else:
                _settle(item, seq=seq)

    async def close(self) -> None:
        """Let the batches in flight finish (their senders get their answers), then stop."""
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._flushers, return_exceptions=True)


def _settle(item: _Post, *, seq: int | None = None, exc: BaseException | None = None) -> None:
    if item.done.done():  # its sender went away meanwhile: the frame committed (or not) all the same
        return
    if exc is not None:
        item.done.set_exception(exc)
    else:
        assert seq is not None
        item.done.set_result(seq)
