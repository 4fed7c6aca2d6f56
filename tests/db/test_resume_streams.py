"""hearth.resume_streams: where a resuming client's streams pick up, and whether the replay is complete."""

from __future__ import annotations

import uuid

import asyncpg

from tests.conftest import raises_sqlstate
from tests.db.helpers import db_now, identity, join, minutes, post, session


async def _points(db: asyncpg.Connection, streams: list[uuid.UUID], afters: list[int | None]) -> list[tuple]:
    rows = await db.fetch("SELECT * FROM hearth.resume_streams($1, $2)", streams, afters)
    return [(r["stream_id"], r["head"], r["resume_after"], r["recovered"]) for r in rows]


async def test_each_case_in_one_call(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    s = await session(db)
    ann = await identity(db, "ann")
    pid = await join(db, s, ann)  # seq 1
    seqs = [await post(db, pid, {"n": n}) for n in range(4)]  # seqs 2..5
    assert seqs == [2, 3, 4, 5]
    assert await _points(db, [s, ann, s, s, s], [None, None, 5, 2, 9]) == [
        (s, 5, 5, True),  # not resumed: from the head
        (ann, 0, 0, True),
        (s, 5, 5, True),  # at the head
        (s, 5, 2, True),  # inside retention
        (s, 5, 5, False),  # beyond the head
    ]
    emitted = await admin.fetchval(
        "SELECT emitted_at FROM hearth_data.events WHERE stream_id = $1 AND seq = 4", s
    )
    assert await db.fetchval("SELECT hearth.prune_events('1 hour', $1)", emitted + minutes(60)) == 3
    assert await _points(db, [s, s, s, s], [0, 2, 3, 4]) == [
        (s, 5, 3, False),  # events 1..3 pruned: from the oldest kept
        (s, 5, 3, False),
        (s, 5, 3, True),  # everything after 3 is kept
        (s, 5, 4, True),
    ]
    later = await db_now(db) + minutes(120)
    await db.fetchval("SELECT hearth.prune_events('1 hour', $1)", later)
    assert await _points(db, [s, s], [1, 5]) == [(s, 5, 5, False), (s, 5, 5, True)]


async def test_unknown_streams_and_bad_arguments(db: asyncpg.Connection) -> None:
    s = await session(db)
    async with raises_sqlstate("HT404"):
        await _points(db, [s, uuid.uuid4()], [None, None])
    for streams, afters in (([s], [0, 1]), ([s], [-1]), ([None], [0]), ([s] * 101, [0] * 101)):
        async with raises_sqlstate("HT400"):
            await _points(db, streams, afters)
    async with raises_sqlstate("HT400"):
        await db.fetch("SELECT * FROM hearth.resume_streams(NULL, ARRAY[0::bigint])")
