"""The hub in-process, with a fake table: doorbells cost nothing unless they are news for a followed
stream, are coalesced into one read per round, and a doorbell naming no row never loops; gaps are caught
up, duplicates dropped, a resync reads what no doorbell announced, a slow consumer is closed, and a
subscription leaves the hub when its block ends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from app.events import Event
from app.hub import CLOSE_SLOW_CONSUMER, MAX_QUEUED_FRAMES, Hub, Subscriber
from app.metrics import Metrics
from tests.app.wire import texts

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


async def _frames(sub: Subscriber) -> list[int]:
    """The seqs of what the subscriber's writer would send now."""
    frames = await asyncio.wait_for(sub.next_frames(), 2)
    return [json.loads(frame)["seq"] for frame in texts(frames)]


async def test_a_gap_is_caught_up_from_the_table_in_order(hub_table: tuple[Hub, Table]) -> None:
    hub, table = hub_table
    async with hub.subscribe(None) as sub:
        sub.follow(A)
        await sub.go_live(A, 0)
        for seq in (1, 2, 3):
            table.append(A, seq)
        table.reads.clear()
        hub.notify(f"{A} 3")  # the doorbells of 1 and 2 were lost (the listener was down)
        await _settle()
        # The hub read 3 (just below its doorbell); the subscriber saw the gap and read 1-3 itself.
        assert table.reads == [([A], [2]), ([A], [0]), ([A], [3])]
        assert await _frames(sub) == [1, 2, 3]
        assert sub.next_seq == {A: 4}


async def test_a_duplicate_is_dropped_and_a_signal_for_someone_else_is_skipped(
    hub_table: tuple[Hub, Table],
) -> None:
    hub, _ = hub_table
    async with hub.subscribe("me") as sub:
        sub.follow(A)
        await sub.go_live(A, 0)
        sub.offer(Event(A, 1, "message", None, '{"seq": 1}'))
        sub.offer(Event(A, 1, "message", None, '{"seq": 1}'))  # again: a second read of the same rows
        sub.offer(Event(A, 2, "signal", "someone-else", '{"seq": 2}'))
        sub.offer(Event(A, 3, "signal", "me", '{"seq": 3}'))
        assert await _frames(sub) == [1, 3]
        assert sub.next_seq == {A: 4}


async def test_frames_come_from_the_table_never_from_the_doorbell(hub_table: tuple[Hub, Table]) -> None:
    """A doorbell is only a reference ('<stream> <seq>'): the hub resolves it through the SQL API."""
    hub, table = hub_table
    async with hub.subscribe(None) as sub:
        sub.follow(A)
        await sub.go_live(A, 0)
        table.reads.clear()
        hub.notify(f'{A} 1 {{"type": "message", "seq": 1, "forged": true}}')  # not a doorbell
        hub.notify(f"{A} 1")  # a doorbell with no row behind it: one read, nothing sent
        await _settle()
        assert table.reads == [([A], [0])] and sub.next_seq == {A: 1}
        table.append(A, 1)
        hub.notify(f"{A} 1")
        await _settle()
        frames = await asyncio.wait_for(sub.next_frames(), 2)
        assert texts(frames) == ['{"seq": 1}']  # the table's text


async def test_resync_after_a_reconnect_reads_what_no_doorbell_announced(
    hub_table: tuple[Hub, Table],
) -> None:
    hub, table = hub_table
    async with hub.subscribe(None) as behind, hub.subscribe(None) as ahead:
        for sub, after in ((behind, 0), (ahead, 1)):
            sub.follow(A)
            await sub.go_live(A, after)
        for seq in (1, 2):
            table.append(A, seq)  # committed while the listener was away: no doorbell arrives
        table.reads.clear()
        hub.resync()
        await _settle()
        assert table.reads[0] == ([A], [0])  # from the least advanced subscriber
        assert await _frames(behind) == [1, 2] and await _frames(ahead) == [2]


async def test_a_slow_consumer_is_closed_and_its_queue_dropped(hub_table: tuple[Hub, Table]) -> None:
    hub, _ = hub_table
    async with hub.subscribe(None) as slow:
        slow.follow(A)
        await slow.go_live(A, 0)
        for seq in range(1, MAX_QUEUED_FRAMES + 2):  # nobody reads
            slow.offer(Event(A, seq, "message", None, '{"seq": 0}'))
        assert slow.close_code == CLOSE_SLOW_CONSUMER
        assert await asyncio.wait_for(slow.next_frames(), 2) == b""  # the writer closes at once
        assert hub.metrics.registry.get_sample_value("hearth_ws_slow_consumer_closes_total") == 1
        slow.offer(Event(A, MAX_QUEUED_FRAMES + 2, "message", None, "{}"))
        assert await asyncio.wait_for(slow.next_frames(), 2) == b""


async def test_a_subscription_leaves_every_stream_when_its_block_ends(hub_table: tuple[Hub, Table]) -> None:
    hub, table = hub_table
    with pytest.raises(RuntimeError):
        async with hub.subscribe(None) as sub:
            sub.follow(A)
            await sub.go_live(A, 0)
            sub.follow(B)  # still catching up when the block fails
            raise RuntimeError("the consumer failed")
    assert hub.subscribers(A) == set() and hub.subscribers(B) == set()
    table.reads.clear()
    hub.notify(f"{A} 5")
    hub.notify(f"{B} 5")
    await _settle()
    assert table.reads == []


async def test_a_consumer_watches_the_event_types_it_declares(hub_table: tuple[Hub, Table]) -> None:
    hub, _ = hub_table
    seen: list[str] = []
    watch = {"session.paired"}
    async with hub.subscribe(
        None, watch=watch, on_event=lambda _sub, e: seen.append(e.type), send=False
    ) as sub:
        sub.follow(A)
        await sub.go_live(A, 0)
        for seq, kind in enumerate(("message", "session.paired", "presence.leave"), start=1):
            sub.offer(Event(A, seq, kind, None, "{}"))
        assert seen == ["session.paired"]
        sub.close(1000)
        assert await asyncio.wait_for(sub.next_frames(), 2) == b""  # it asked for no frames: none queued


async def test_an_event_is_framed_once_and_its_bytes_shared_by_every_subscriber(
    hub_table: tuple[Hub, Table],
) -> None:
    hub, table = hub_table
    async with hub.subscribe(None) as ann, hub.subscribe(None) as bob:
        for sub in (ann, bob):
            sub.follow(A)
            await sub.go_live(A, 0)
        table.append(A, 1)
        hub.notify(f"{A} 1")
        await _settle()
        assert ann._out[0] is bob._out[0]  # one bytes object, not a copy per socket
        assert texts(ann._out[0]) == ['{"seq": 1}']


async def test_a_dispatch_round_gives_each_socket_one_write(hub_table: tuple[Hub, Table]) -> None:
    """Every frame a round brought, and the socket's own frames queued meanwhile, in one joined write."""
    hub, table = hub_table
    async with hub.subscribe(None) as sub:
        sub.follow(A)
        await sub.go_live(A, 0)
        for seq in (1, 2, 3):
            table.append(A, seq)
            hub.notify(f"{A} {seq}")
        sub.push('{"type":"pong"}')
        await _settle()
        assert len(table.reads) == 2  # go_live's, then one round for the three doorbells
        write = await asyncio.wait_for(sub.next_frames(), 2)
        assert texts(write) == ['{"type":"pong"}', '{"seq": 1}', '{"seq": 2}', '{"seq": 3}']
        assert sub.queued == 0
