"""hearth.post_messages: a batch of chat messages into one session, one transaction, one doorbell; each
element checked as post_message checks it, so a bad one fails alone."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg

from tests.conftest import raises_sqlstate
from tests.db.helpers import (
    app_connection,
    db_now,
    events,
    leave,
    member,
    minutes,
    notifications,
    post,
    session,
    session_row,
)

POST_MESSAGES = "SELECT * FROM hearth.post_messages($1, $2::uuid[], $3::jsonb[])"


async def _post_messages(
    conn: asyncpg.Connection, s: uuid.UUID, batch: list[tuple[uuid.UUID | None, Any]]
) -> list[tuple[int | None, str | None]]:
    rows = await conn.fetch(
        POST_MESSAGES, s, [p for p, _ in batch], [None if b is None else json.dumps(b) for _, b in batch]
    )
    return [(r["seq"], r["error_code"]) for r in rows]


async def test_a_batch_takes_consecutive_seqs_in_order(db: asyncpg.Connection) -> None:
    s = await session(db)
    alice, bob = await member(db, s, "alice"), await member(db, s, "bob")
    batch = [(alice, {"n": 1}), (bob, {"n": 2}), (alice, {"n": 3})]
    assert await _post_messages(db, s, batch) == [(3, None), (4, None), (5, None)]
    assert await post(db, bob, {"n": 4}) == 6
    found = await events(db, s, after=2)
    assert [(e["seq"], e["type"], e["payload"]) for e in found] == [
        (3, "message", {"participant_id": str(alice), "body": {"n": 1}}),
        (4, "message", {"participant_id": str(bob), "body": {"n": 2}}),
        (5, "message", {"participant_id": str(alice), "body": {"n": 3}}),
        (6, "message", {"participant_id": str(bob), "body": {"n": 4}}),
    ]


async def test_a_bad_element_fails_alone(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    s, other = await session(db), await session(db)
    alice, gone, stranger = await member(db, s), await member(db, s), await member(db, other)
    assert await leave(db, gone)
    batch: list[tuple[uuid.UUID | None, Any]] = [
        (alice, {"n": 1}),
        (alice, [1, 2]),  # not an object
        (None, {"n": 2}),
        (alice, {"x": "a" * 33_000}),  # over 32 KiB
        (uuid.uuid4(), {"n": 3}),  # nobody
        (stranger, {"n": 4}),  # a participant of another session
        (gone, {"n": 5}),  # left
        (alice, {"n": 6}),
    ]
    head = (await session_row(admin, s))["event_seq"]  # type: ignore[index]
    assert await _post_messages(db, s, batch) == [
        (head + 1, None),
        (None, "HT400"),
        (None, "HT400"),
        (None, "HT400"),
        (None, "HT404"),
        (None, "HT404"),
        (None, "HT403"),
        (head + 2, None),
    ]
    found = await events(db, s, after=head)
    assert [e["payload"]["body"] for e in found] == [{"n": 1}, {"n": 6}]
    stored = await session_row(admin, s)
    assert stored is not None and stored["event_seq"] == head + 2 and stored["message_count"] == 2


async def test_errors_say_what_post_message_would(db: asyncpg.Connection) -> None:
    s = await session(db)
    alice = await member(db, s)
    rows = await db.fetch(POST_MESSAGES, s, [alice, None], ["[]", "{}"])
    assert [(r["error_code"], r["error_message"]) for r in rows] == [
        ("HT400", "p_body must be a JSON object"),
        ("HT400", "p_participant_id must not be null"),
    ]


async def test_a_closed_session_fails_every_element(db: asyncpg.Connection) -> None:
    s = await session(db)
    alice, bob = await member(db, s), await member(db, s)
    t0 = await db_now(db)
    assert await db.fetchval("SELECT hearth.expire_sessions($1)", t0 + minutes(61)) == 1
    before = await events(db, s)
    assert await _post_messages(db, s, [(alice, {"n": 1}), (bob, {"n": 2})]) == [(None, "HT410")] * 2
    assert await events(db, s) == before


async def test_a_session_closed_while_the_batch_waits_for_its_lock(
    db: asyncpg.Connection, admin: asyncpg.Connection, db_url: str
) -> None:
    """The batch waits for the session row, then sees it closed: nothing of it commits."""
    s = await session(db)
    alice, bob = await member(db, s), await member(db, s)
    other = await app_connection(db_url)
    try:
        async with admin.transaction():
            await admin.execute("SELECT 1 FROM hearth_data.sessions WHERE session_id = $1 FOR UPDATE", s)
            batch = asyncio.ensure_future(_post_messages(other, s, [(alice, {"n": 1}), (bob, {"n": 2})]))
            await asyncio.sleep(0.2)
            assert not batch.done()
            await admin.execute("SELECT hearth_data.close_session($1, 'ended', 'test', now())", s)
        assert await asyncio.wait_for(batch, 30) == [(None, "HT410")] * 2
    finally:
        await other.close()
    assert "message" not in [e["type"] for e in await events(db, s)]


async def test_one_doorbell_per_batch_naming_its_first_seq(db: asyncpg.Connection, db_url: str) -> None:
    s = await session(db)
    alice = await member(db, s)
    async with notifications(db_url, db) as heard:
        await heard.drain()
        assert await _post_messages(db, s, [(alice, {"n": n}) for n in range(5)]) == [
            (seq, None) for seq in range(2, 7)
        ]
        frames = await heard.drain()
    assert heard.doorbells[-1:] == [f"{s} 2"] and len(frames) == 1


async def test_a_batch_with_nothing_good_rings_nothing(db: asyncpg.Connection, db_url: str) -> None:
    s = await session(db)
    async with notifications(db_url, db) as heard:
        await heard.drain()
        assert await _post_messages(db, s, [(uuid.uuid4(), {"n": 1})]) == [(None, "HT404")]
        assert await heard.drain() == []


async def test_is_session_activity(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    s = await session(db)
    t0 = await db_now(db)
    pid = await member(db, s, now=t0 - minutes(30))
    t1 = await db_now(db)
    await _post_messages(db, s, [(pid, {"text": "still here"})])
    stored = await session_row(admin, s)
    assert stored is not None and stored["last_activity_at"] >= t1


async def test_bad_arrays_are_ht400(db: asyncpg.Connection) -> None:
    s = await session(db)
    alice = await member(db, s)
    for args in [
        (None, [alice], ["{}"]),
        (s, None, ["{}"]),
        (s, [alice], None),
        (s, [alice, alice], ["{}"]),
        (s, [], []),
        (s, [alice] * 1001, ["{}"] * 1001),
    ]:
        async with raises_sqlstate("HT400"):
            await db.fetch(POST_MESSAGES, *args)
