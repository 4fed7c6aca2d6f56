"""Within a session, sequence order is commit order: a reader resuming from any seq misses nothing."""

from __future__ import annotations

import asyncio
import random
import uuid

import asyncpg

from tests.db.helpers import app_connection, events, member, session


async def _wait_until_blocked(admin: asyncpg.Connection, pid: int) -> None:
    """Polls until backend `pid` waits for a lock (a state check, not a timing assertion)."""
    for _ in range(3000):
        waiting = await admin.fetchval("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid)
        if waiting == "Lock":
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited for a lock")


async def test_concurrent_posts_commit_in_seq_order(
    db: asyncpg.Connection, admin: asyncpg.Connection, db_url: str
) -> None:
    s = await session(db)
    p1, p2 = await member(db, s), await member(db, s)  # seqs 1, 2
    first, second = await app_connection(db_url), await app_connection(db_url)
    try:
        tx1 = first.transaction()
        await tx1.start()
        seq1 = await first.fetchval("SELECT hearth.post_message($1, '{\"n\": 1}')", p1)
        assert seq1 == 3

        async def post_second() -> int:
            async with second.transaction():
                value: int = await second.fetchval("SELECT hearth.post_message($1, '{\"n\": 2}')", p2)
                return value

        task = asyncio.create_task(post_second())
        # The second transaction waits for the session row, which the first holds until it commits.
        await _wait_until_blocked(admin, second.get_server_pid())
        assert not task.done()
        # Nothing uncommitted is visible: a reader sees the stream up to seq 2, no gap at 3 to skip.
        assert [e["seq"] for e in await events(db, s)] == [1, 2]

        await tx1.commit()
        seq2 = await task
        assert seq2 == seq1 + 1
        for after in range(5):
            assert [e["seq"] for e in await events(db, s, after=after)] == list(range(after + 1, 5))
        assert [e["payload"]["body"] for e in await events(db, s, after=2)] == [{"n": 1}, {"n": 2}]
    finally:
        await first.close()
        await second.close()


async def test_concurrent_posters_and_a_polling_reader_never_see_a_gap(
    db: asyncpg.Connection, db_url: str
) -> None:
    s = await session(db)
    writers, per_writer = 6, 20
    conns = [await app_connection(db_url) for _ in range(writers)]
    pids = [await member(db, s) for _ in range(writers)]
    joined = writers
    total = joined + writers * per_writer
    rng = random.Random(7)

    async def write(conn: asyncpg.Connection, pid: uuid.UUID, w: int) -> list[int]:
        seqs = []
        for i in range(per_writer):
            async with conn.transaction():
                seqs.append(
                    await conn.fetchval(
                        "SELECT hearth.post_message($1, $2::jsonb)", pid, f'{{"w": {w}, "i": {i}}}'
                    )
                )
                # Some work after the insert and before the commit widens any window for a gap.
                await conn.execute(f"SELECT pg_sleep({rng.choice([0, 0, 0.001, 0.003])})")
        return seqs

    async def read() -> list[list[int]]:
        polls: list[list[int]] = []
        seen = 0
        while seen < total:
            got = [e["seq"] for e in await events(db, s, after=seen)]
            # Every poll continues exactly where the last one stopped, with consecutive numbers.
            assert got == list(range(seen + 1, seen + 1 + len(got))), (seen, got)
            if got:
                polls.append(got)
                seen = got[-1]
            await asyncio.sleep(0)
        return polls

    reader = asyncio.create_task(read())
    try:
        per_conn = await asyncio.gather(
            *(write(c, p, w) for w, (c, p) in enumerate(zip(conns, pids, strict=True)))
        )
        polls = await reader
    finally:
        if not reader.done():
            reader.cancel()
        for conn in conns:
            await conn.close()
    written = sorted(seq for seqs in per_conn for seq in seqs)
    assert written == list(range(joined + 1, total + 1))
    assert [seq for poll in polls for seq in poll] == list(range(1, total + 1))
    # Each writer's own messages are in its order.
    stored = await events(db, s, after=joined)
    for w in range(writers):
        assert [e["payload"]["body"]["i"] for e in stored if e["payload"]["body"]["w"] == w] == list(
            range(per_writer)
        )
