"""app.postbatch, the group commit of message frames, in-process against real PostgreSQL: frames of one
tick commit together and in order, each sender's answer comes after its commit, a bad frame fails alone,
and a batch caught by a PostgreSQL restart loses nothing acked and duplicates nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from app import db as dbmod
from app.db import Database
from app.errors import HearthError
from app.metrics import Metrics
from app.postbatch import PostBatcher
from tests.db.helpers import events, leave, member, session
from tests.pg import PgServer


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    database = await Database.open(db_url, Metrics(), min_size=1, max_size=4)
    yield database
    await database.close()


def _batcher(database: Database, **kwargs: int) -> PostBatcher:
    return PostBatcher(database.post_messages, database.post_message, **kwargs)


async def test_frames_of_one_tick_commit_together_in_order(
    db: asyncpg.Connection, database: Database
) -> None:
    s = await session(db)
    senders = [await member(db, s) for _ in range(5)]
    head = len(senders)
    batcher = _batcher(database)
    posts = [batcher.post(s, senders[n % 5], {"n": n}) for n in range(50)]
    seqs = await asyncio.gather(*posts)
    assert seqs == list(range(head + 1, head + 51))
    assert batcher.batches == 1
    found = await events(db, s, after=head)
    assert [e["payload"]["body"]["n"] for e in found] == list(range(50))
    assert [e["payload"]["participant_id"] for e in found] == [str(senders[n % 5]) for n in range(50)]


async def test_each_answer_comes_after_its_commit(
    db_url: str, db: asyncpg.Connection, database: Database
) -> None:
    s = await session(db)
    senders = [await member(db, s) for _ in range(4)]
    batcher = _batcher(database)
    reader = await asyncpg.connect(db_url)
    missing: list[int] = []
    reading = asyncio.Lock()

    async def sender(pid: uuid.UUID) -> None:
        for n in range(20):
            seq = await batcher.post(s, pid, {"n": n})
            # Another connection sees the event the moment its sender is answered.
            async with reading:
                seen = await reader.fetchval(
                    "SELECT count(*) FROM hearth.events_since($1, $2, 1) WHERE seq = $3", s, seq - 1, seq
                )
            if not seen:
                missing.append(seq)

    try:
        await asyncio.gather(*(sender(p) for p in senders))
    finally:
        await reader.close()
    assert missing == []
    # While one batch commits the next gathers: fewer transactions than frames.
    assert batcher.batches < 80
    by_sender: dict[str, list[int]] = {}
    for e in await events(db, s, after=4):
        by_sender.setdefault(e["payload"]["participant_id"], []).append(e["payload"]["body"]["n"])
    assert by_sender == {str(p): list(range(20)) for p in senders}


async def test_a_bad_frame_fails_alone(db: asyncpg.Connection, database: Database) -> None:
    s, other = await session(db), await session(db)
    alice, gone, stranger = await member(db, s), await member(db, s), await member(db, other)
    assert await leave(db, gone)
    batcher = _batcher(database)
    results = await asyncio.gather(
        batcher.post(s, alice, {"n": 1}),
        batcher.post(s, gone, {"n": 2}),
        batcher.post(s, stranger, {"n": 3}),
        batcher.post(s, alice, {"n": 4}),
        return_exceptions=True,
    )
    assert batcher.batches == 1
    first, left, foreign, last = results
    assert isinstance(first, int) and last == first + 1
    assert isinstance(left, HearthError) and left.code == "HT403"
    assert isinstance(foreign, HearthError) and foreign.code == "HT404"
    assert [e["payload"]["body"] for e in await events(db, s, after=first - 1)] == [{"n": 1}, {"n": 4}]


async def test_a_session_closed_mid_batch(
    db: asyncpg.Connection, admin: asyncpg.Connection, database: Database
) -> None:
    """A batch waiting for the session row when the session closes fails whole with HT410, and so does
    the batch that gathered behind it; nothing of either is written."""
    s = await session(db)
    alice, bob = await member(db, s), await member(db, s)
    batcher = _batcher(database)
    async with admin.transaction():
        await admin.execute("SELECT 1 FROM hearth_data.sessions WHERE session_id = $1 FOR UPDATE", s)
        first = [asyncio.ensure_future(batcher.post(s, p, {"n": n})) for n, p in enumerate([alice, bob])]
        await asyncio.sleep(0.1)
        assert batcher.batches == 1  # the first batch is in flight, waiting for the lock
        second = [asyncio.ensure_future(batcher.post(s, p, {"n": n})) for n, p in enumerate([alice, bob], 2)]
        await asyncio.sleep(0.1)
        await admin.execute("SELECT hearth_data.close_session($1, 'ended', 'test', now())", s)
    results = await asyncio.wait_for(asyncio.gather(*first, *second, return_exceptions=True), 30)
    assert [getattr(r, "code", r) for r in results] == ["HT410"] * 4
    assert batcher.batches == 2
    assert "message" not in [e["type"] for e in await events(db, s)]


async def test_a_full_queue_makes_senders_wait(
    db: asyncpg.Connection, admin: asyncpg.Connection, database: Database
) -> None:
    """Past max_waiting, a sender waits for room in post (its socket is not read meanwhile); nothing is
    refused or lost, and order holds."""
    s = await session(db)
    alice = await member(db, s)
    batcher = _batcher(database, max_waiting=2, max_batch=2)
    async with admin.transaction():
        await admin.execute("SELECT 1 FROM hearth_data.sessions WHERE session_id = $1 FOR UPDATE", s)
        posts = [asyncio.ensure_future(batcher.post(s, alice, {"n": n})) for n in range(5)]
        await asyncio.sleep(0.2)
        assert not any(p.done() for p in posts)
        assert batcher.batches == 1  # two in flight; three wait for room, not in any batch
    seqs = await asyncio.wait_for(asyncio.gather(*posts), 30)
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert [e["payload"]["body"]["n"] for e in await events(db, s, after=seqs[0] - 1)] == list(range(5))


async def test_a_postgres_restart_loses_nothing_acked_and_duplicates_nothing(
    pg: PgServer, db_url: str, db: asyncpg.Connection, database: Database
) -> None:
    """Senders post numbered messages while PostgreSQL restarts. A frame answered with its seq is in the
    stream; a frame answered with an error may or may not be (the connection died during its commit): the
    sender learns which as a client does, by reading the stream (resuming with `after`), and sends again
    only what is not there. In the end each message is in the stream exactly once, in each sender's order."""
    if pg.cluster is None:
        pytest.skip("restarting PostgreSQL needs the throwaway cluster (not TEST_DATABASE_URL)")
    s = await session(db)
    senders = [await member(db, s) for _ in range(4)]
    batcher = _batcher(database)
    acked: list[tuple[str, int, int]] = []
    failures = 0
    count = 150

    async def in_stream(pid: uuid.UUID, n: int) -> bool:
        conn = await asyncpg.connect(db_url, timeout=5)
        try:
            return bool(
                await conn.fetchval(
                    "SELECT count(*) FROM hearth.events_since($1, 0, 10000) WHERE payload = $2::jsonb",
                    s,
                    json.dumps({"participant_id": str(pid), "body": {"n": n}}),
                )
            )
        finally:
            await conn.close()

    async def sender(pid: uuid.UUID) -> None:
        nonlocal failures
        n = 0
        while n < count:
            try:
                acked.append((str(pid), n, await batcher.post(s, pid, {"n": n})))
            except dbmod.UNAVAILABLE:
                failures += 1
                while True:  # the outage lasts: ask again until the stream answers
                    try:
                        there = await in_stream(pid, n)
                        break
                    except dbmod.UNAVAILABLE:
                        await asyncio.sleep(0.1)
                if not there:
                    continue  # not committed: send it again
            n += 1
            await asyncio.sleep(0.005)

    flow = asyncio.gather(*(sender(p) for p in senders))
    await asyncio.sleep(0.3)
    await asyncio.to_thread(pg.cluster.stop)
    await asyncio.sleep(0.5)
    await asyncio.to_thread(pg.cluster.start)
    await asyncio.wait_for(flow, 120)
    assert failures > 0, "the restart happened after the senders finished: nothing was tested"

    reader = await asyncpg.connect(db_url)
    try:
        found = await events(reader, s, after=len(senders))
    finally:
        await reader.close()
    sent = [(e["payload"]["participant_id"], e["payload"]["body"]["n"], e["seq"]) for e in found]
    assert set(acked) <= set(sent)  # nothing acked is lost
    for pid in senders:
        mine = [n for p, n, _ in sent if p == str(pid)]
        assert mine == list(range(count))  # each once, in order


async def test_a_batch_refused_whole_is_posted_one_by_one(
    db: asyncpg.Connection, admin: asyncpg.Connection, database: Database
) -> None:
    """When the database refuses the batch call itself (nothing of it committed), each frame is posted
    alone, in order, and still gets its own answer."""
    s = await session(db)
    alice, gone = await member(db, s), await member(db, s)
    assert await leave(db, gone)
    batcher = _batcher(database)
    await admin.execute(
        "REVOKE EXECUTE ON FUNCTION hearth.post_messages(uuid, uuid[], jsonb[]) FROM hearth_app"
    )
    try:
        results = await asyncio.gather(
            batcher.post(s, alice, {"n": 1}),
            batcher.post(s, gone, {"n": 2}),
            batcher.post(s, alice, {"n": 3}),
            return_exceptions=True,
        )
    finally:
        await admin.execute(
            "GRANT EXECUTE ON FUNCTION hearth.post_messages(uuid, uuid[], jsonb[]) TO hearth_app"
        )
    first, left, last = results
    assert isinstance(first, int) and last == first + 1
    assert isinstance(left, HearthError) and left.code == "HT403"
    assert [e["payload"]["body"] for e in await events(db, s, after=first - 1)] == [{"n": 1}, {"n": 3}]
    calls = database.metrics.registry.get_sample_value(
        "hearth_db_call_seconds_count", {"function": "post_message"}
    )
    assert calls == 3  # the fallback's, one per frame
