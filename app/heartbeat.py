"""Heartbeats, coalesced per instance: at most one `hearth.touch` call a second for all local sockets.

A participant counts as alive while its socket is open (the server's protocol pings close dead ones),
so every connected participant is touched at least every `keepalive_s`, frames or not: a throttled
background tab keeps its presence. Client frames make a participant due at the next flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable

from app.metrics import Metrics

MAX_BATCH = 10_000
# One round trip: touch(participants, identities) -> how many participants were present.
Touch = Callable[[list[uuid.UUID], list[uuid.UUID]], Awaitable[int]]
IDENTITY_KEEPALIVE_S = 30.0


class Heartbeats:
    def __init__(
        self, touch: Touch, metrics: Metrics, *, flush_s: float = 1.0, keepalive_s: float = 15.0
    ) -> None:
        self._touch = touch
        self._metrics = metrics
        self.flush_s = flush_s
        self.keepalive_s = keepalive_s
        self._sockets: dict[uuid.UUID, int] = {}  # participant -> open sockets here
        self._last_touch: dict[uuid.UUID, float] = {}
        self._active: set[uuid.UUID] = set()
        self._identities: dict[uuid.UUID, int] = {}  # identity-token sockets here
        self._identity_touch: dict[uuid.UUID, float] = {}
        self.calls = 0

    def connected(self, participant_id: uuid.UUID) -> None:
        self._sockets[participant_id] = self._sockets.get(participant_id, 0) + 1
        self._active.add(participant_id)

    def disconnected(self, participant_id: uuid.UUID) -> None:
        # Seen until this moment: one more touch gives it a full presence_timeout to reconnect (on
        # shutdown uvicorn closes the sockets before the final flush runs).
        self._active.add(participant_id)
        count = self._sockets.get(participant_id, 0) - 1
        if count > 0:
            self._sockets[participant_id] = count
        else:
            self._sockets.pop(participant_id, None)
            self._last_touch.pop(participant_id, None)

    def activity(self, participant_id: uuid.UUID) -> None:
        self._active.add(participant_id)

    def identity_connected(self, identity_id: uuid.UUID) -> None:
        """An identity-token socket (e.g. waiting in the match queue) keeps its identity active."""
        self._identities[identity_id] = self._identities.get(identity_id, 0) + 1

    def identity_disconnected(self, identity_id: uuid.UUID) -> None:
        count = self._identities.get(identity_id, 0) - 1
        if count > 0:
            self._identities[identity_id] = count
        else:
            self._identities.pop(identity_id, None)
            self._identity_touch.pop(identity_id, None)

    def _due_identities(self, now: float, everyone: bool) -> list[uuid.UUID]:
        return sorted(
            i
            for i in self._identities
            if everyone or now - self._identity_touch.get(i, 0.0) >= IDENTITY_KEEPALIVE_S
        )

    def _due(self, now: float, everyone: bool) -> list[uuid.UUID]:
        due = set(self._active)
        for pid in self._sockets:
            if everyone or now - self._last_touch.get(pid, 0.0) >= self.keepalive_s:
                due.add(pid)
        return sorted(due)

    async def flush(self, *, everyone: bool = False) -> int:
        """One round: touch what is due. Kept for the next round if the database is unreachable."""
        now = time.monotonic()
        due = self._due(now, everyone)
        identities = self._due_identities(now, everyone)
        present = 0
        for start in range(0, max(len(due), len(identities)), MAX_BATCH):
            batch = due[start : start + MAX_BATCH]
            identity_batch = identities[start : start + MAX_BATCH]
            present += await self._touch(batch, identity_batch)
            self.calls += 1
            self._metrics.heartbeat_batch.observe(len(batch))
            for pid in batch:
                self._active.discard(pid)
                if pid in self._sockets:
                    self._last_touch[pid] = now
            for identity_id in identity_batch:
                self._identity_touch[identity_id] = now
        return present

    async def run(self) -> None:
        """The flusher. A failed flush keeps what was due for the next (its supervisor restarts it)."""
        while True:
            await asyncio.sleep(self.flush_s)
            await self.flush()

    async def close(self) -> None:
        """On shutdown: one last touch for everyone here, so they have a full presence_timeout to
        reconnect elsewhere."""
        with contextlib.suppress(Exception):
            await self.flush(everyone=True)
