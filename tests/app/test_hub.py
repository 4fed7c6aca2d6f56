"""The hub in-process, with a fake table: doorbells cost nothing unless they are news for a followed
stream, are coalesced into one read per round, and a doorbell naming no row never loops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.events import Event
from app.hub import Hub, Subscriber
from app.metrics import Metrics

A = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
B = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
C = "cccccccc-cccc-4ccc-8ccc-cccccccccccc"


class Table:
    """The events table as hearth.event_frames reads it; records every read."""

    def __init__(self) -> None:
        self.rows: dict[str, list[int]] = {}
        self.reads: list[tuple[list[str], list[int]]] = []

    def append(self, stream: str, seq: int) -> None:
        self.rows.setdefault(stream, []).append(seq)

    async def fetch(self, streams: list[str], after: list[int]) -> list[Event]:
        self.reads.append((list(streams), list(after)))
        await asyncio.sleep(0)
        return [
            Event(stream, seq, "message", None, f'{{"seq": {seq}}}')
            for stream, a in zip(streams, after, strict=True)
            for seq in self.rows.get(stream, [])
            if seq > a
        ][:500]


@pytest.fixture
async def hub_table() -> AsyncIterator[tuple[Hub, Table]]:
    table = Table()
    hub = Hub(table.fetch, Metrics())
    task = asyncio.create_task(hub.run())
    yield hub, table
    task.cancel()
    await hub.stop()


async def _live(hub: Hub, stream: str, after: int = 0) -> Subscriber:
    sub = Subscriber(hub, None)
    sub.follow(stream)
    await sub.go_live(stream, after)
    return sub


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_doorbells_for_streams_nobody_here_follows_cost_nothing(hub_table: tuple[Hub, Table]) -> None:
    hub, table = hub_table
    for seq in range(100):
        hub.notify(f"{A} {seq}")
    hub.notify("not a doorbell")
    hub.notify('{"type": "message", "seq": 1}')
    await _settle()
    assert table.reads == []


async def test_doorbells_coalesce_into_one_read_and_stale_ones_are_free(hub_table: tuple[Hub, Table]) -> None:
    hub, table = hub_table
    subs = [await _live(hub, stream) for stream in (A, B)]
    table.reads.clear()
    for seq in (1, 2, 3):
        table.append(A, seq)
        table.append(B, seq)
    for seq in (1, 2, 3):
        hub.notify(f"{A} {seq}")
        hub.notify(f"{B} {seq}")
    await _settle()
    assert table.reads == [([A, B], [0, 0])]
    assert [sub.next_seq for sub in subs] == [{A: 4}, {B: 4}]
    for seq in (1, 2, 3):  # again, as a replay or a forger would: at or below what was read
        hub.notify(f"{A} {seq}")
    await _settle()
    assert len(table.reads) == 1


async def test_a_doorbell_beyond_the_head_is_read_once(hub_table: tuple[Hub, Table]) -> None:
    hub, table = hub_table
    sub = await _live(hub, C)
    table.reads.clear()
    hub.notify(f"{C} 1000000")
    await _settle()
    await asyncio.sleep(0.05)
    assert len(table.reads) == 1
    assert sub.next_seq == {C: 1}


async def test_catch_up_skips_a_hole_of_deleted_rows(hub_table: tuple[Hub, Table]) -> None:
    """A frame buffered during catch-up sits above rows deleted meanwhile: the catch-up ends."""
    hub, table = hub_table
    table.append(A, 5)
    sub = Subscriber(hub, None)
    sub.follow(A)
    sub.offer(Event(A, 5, "message", None, '{"seq": 5}'))  # buffered: read from the table by the hub
    table.rows[A] = []  # then deleted (cleanup, prune) before this subscriber reads
    await asyncio.wait_for(sub.go_live(A, 2), 2)
    assert sub.next_seq == {A: 6}
    assert len(table.reads) <= 2
