"""Heartbeats in-process, with a fake `hearth.touch`: coalesced into one call per flush, kept when a flush
fails, kept alive for open sockets, and flushed for everyone on shutdown."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from app.heartbeat import Heartbeats
from app.metrics import Metrics

P1, P2, P3 = (uuid.UUID(int=n) for n in (1, 2, 3))
IDENTITY = uuid.UUID(int=100)


class Touch:
    """hearth.touch as the flusher sees it; records each call, fails when told to."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[uuid.UUID], list[uuid.UUID]]] = []
        self.fail = False
        self.called = asyncio.Event()

    async def __call__(self, participants: list[uuid.UUID], identities: list[uuid.UUID]) -> int:
        if self.fail:
            raise ConnectionRefusedError("database is away")
        self.calls.append((participants, identities))
        self.called.set()
        return len(participants)


def _heartbeats(touch: Touch, keepalive_s: float = 3600.0) -> Heartbeats:
    return Heartbeats(touch, Metrics(), flush_s=0.01, keepalive_s=keepalive_s)


async def test_a_flush_coalesces_everything_due_into_one_call() -> None:
    touch = Touch()
    heartbeats = _heartbeats(touch)
    heartbeats.connected(P1)
    heartbeats.connected(P2)
    for _ in range(50):
        heartbeats.activity(P1)
        heartbeats.activity(P3)  # frames of a participant with no socket here (a display's long poll)
    heartbeats.identity_connected(IDENTITY)
    assert await heartbeats.flush() == 3
    assert touch.calls == [([P1, P2, P3], [IDENTITY])]
    assert await heartbeats.flush() == 0  # nothing new, and the keepalive is not due
    assert len(touch.calls) == 1


async def test_open_sockets_are_kept_alive_without_frames() -> None:
    touch = Touch()
    heartbeats = _heartbeats(touch, keepalive_s=0.05)
    heartbeats.connected(P1)
    await heartbeats.flush()
    await asyncio.sleep(0.06)
    await heartbeats.flush()
    assert [call[0] for call in touch.calls] == [[P1], [P1]]


async def test_a_failed_flush_keeps_what_was_due() -> None:
    touch = Touch()
    heartbeats = _heartbeats(touch)
    heartbeats.activity(P1)
    touch.fail = True
    with pytest.raises(ConnectionRefusedError):
        await heartbeats.flush()
    touch.fail = False
    await heartbeats.flush()
    assert touch.calls == [([P1], [])]


async def test_a_participant_that_disconnects_is_touched_once_more() -> None:
    touch = Touch()
    heartbeats = _heartbeats(touch)
    heartbeats.connected(P1)
    await heartbeats.flush()
    heartbeats.disconnected(P1)  # a full presence_timeout from now to reconnect elsewhere
    await heartbeats.flush()
    await heartbeats.flush()
    assert [call[0] for call in touch.calls] == [[P1], [P1]]


async def test_shutdown_touches_everyone_here_once_more() -> None:
    touch = Touch()
    heartbeats = _heartbeats(touch)
    heartbeats.connected(P1)
    heartbeats.connected(P2)
    heartbeats.identity_connected(IDENTITY)
    await heartbeats.flush()
    await heartbeats.close()  # though nothing is due: they are touched just before the instance goes
    assert touch.calls[-1] == ([P1, P2], [IDENTITY])
    touch.fail = True
    await heartbeats.close()  # a database already gone does not fail the shutdown


async def test_the_flusher_runs_every_flush_interval() -> None:
    touch = Touch()
    heartbeats = _heartbeats(touch)
    task = asyncio.create_task(heartbeats.run())
    try:
        for participant in (P1, P2):
            heartbeats.activity(participant)
            await asyncio.wait_for(touch.called.wait(), 5)
            touch.called.clear()
        assert touch.calls == [([P1], []), ([P2], [])]
    finally:
        task.cancel()
