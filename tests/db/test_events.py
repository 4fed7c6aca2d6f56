"""post_message, relay_signal and events_since."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import asyncpg

from tests.conftest import raises_sqlstate
from tests.db.helpers import (
    app_connection,
    db_now,
    events,
    identity,
    join,
    leave,
    member,
    minutes,
    post,
    session,
    session_for_two,
    session_row,
    signal,
)

# --- post_message --------------------------------------------------------------------------------


async def test_post_message_returns_its_seq(db: asyncpg.Connection) -> None:
    s = await session(db)
    alice, bob = await member(db, s, "alice"), await member(db, s, "bob")
    assert await post(db, alice, {"text": "hi"}) == 3
    assert await post(db, bob, {"text": "hello", "n": [1, 2]}) == 4
    found = await events(db, s, after=2)
    assert [(e["seq"], e["type"], e["payload"]) for e in found] == [
        (3, "message", {"participant_id": str(alice), "body": {"text": "hi"}}),
        (4, "message", {"participant_id": str(bob), "body": {"text": "hello", "n": [1, 2]}}),
    ]


async def test_post_message_is_session_activity(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    s = await session(db)
    t0 = await db_now(db)
    pid = await member(db, s, now=t0 - minutes(30))
    stored = await session_row(admin, s)
    assert stored is not None and stored["last_activity_at"] < t0
    t1 = await db_now(db)
    await post(db, pid, {"text": "still here"})
    stored = await session_row(admin, s)
    assert stored is not None and stored["last_activity_at"] >= t1
    assert stored["idle_deadline"] == stored["last_activity_at"] + minutes(60)


async def test_post_message_unknown_participant_is_ht404(db: asyncpg.Connection) -> None:
    async with raises_sqlstate("HT404"):
        await post(db, uuid.uuid4(), {"text": "hi"})


async def test_post_message_after_leaving_is_ht403(db: asyncpg.Connection) -> None:
    s = await session(db)
    pid = await member(db, s)
    await member(db, s)
    assert await leave(db, pid)
    async with raises_sqlstate("HT403"):
        await post(db, pid, {"text": "hi"})


async def test_post_message_after_expiry_is_ht410(db: asyncpg.Connection) -> None:
    s = await session(db)
    pid = await member(db, s)
    t0 = await db_now(db)
    assert await db.fetchval("SELECT hearth.expire_sessions($1)", t0 + minutes(61)) == 1
    async with raises_sqlstate("HT410"):
        await post(db, pid, {"text": "anyone?"})


async def test_post_message_to_an_ended_session_is_ht410(db: asyncpg.Connection) -> None:
    s, (i1, i2) = await session_for_two(db, "match")
    p1, p2 = await join(db, s, i1), await join(db, s, i2)
    assert await leave(db, p2)
    assert await leave(db, p1)
    async with raises_sqlstate("HT410"):
        await post(db, p1, {"text": "hi"})


# --- relay_signal --------------------------------------------------------------------------------


async def test_relay_signal_returns_its_seq(db: asyncpg.Connection) -> None:
    s = await session(db)
    a, b = await member(db, s), await member(db, s)
    offer = {"type": "offer", "sdp": "v=0\r\n..."}
    assert await signal(db, a, b, "offer", offer) == 3
    assert await signal(db, b, a, "answer", {"type": "answer", "sdp": "v=0"}) == 4
    assert await signal(db, a, b, "ice", {"candidate": "candidate:1 1 udp 1 10.0.0.1 5000 typ host"}) == 5
    found = await events(db, s, after=2)
    assert [e["type"] for e in found] == ["signal"] * 3
    assert found[0]["payload"] == {"from": str(a), "to": str(b), "kind": "offer", "data": offer}
    assert [e["payload"]["kind"] for e in found] == ["offer", "answer", "ice"]


async def test_relay_signal_across_sessions_is_ht403(db: asyncpg.Connection) -> None:
    s, elsewhere = await session(db), await session(db)
    a = await member(db, s)
    stranger = await member(db, elsewhere)
    async with raises_sqlstate("HT403"):
        await signal(db, a, stranger, "offer", {})
    async with raises_sqlstate("HT403"):
        await signal(db, stranger, a, "offer", {})
    assert [e["type"] for e in await events(db, s)] == ["presence.join"]


async def test_relay_signal_unknown_participant_is_ht404(db: asyncpg.Connection) -> None:
    s = await session(db)
    a = await member(db, s)
    async with raises_sqlstate("HT404"):
        await signal(db, a, uuid.uuid4(), "offer", {})
    async with raises_sqlstate("HT404"):
        await signal(db, uuid.uuid4(), a, "offer", {})


async def test_relay_signal_with_departed_participants(db: asyncpg.Connection) -> None:
    s = await session(db)
    a, b, c = await member(db, s), await member(db, s), await member(db, s)
    assert await leave(db, b)
    async with raises_sqlstate("HT404"):  # to someone who left
        await signal(db, a, b, "offer", {})
    async with raises_sqlstate("HT403"):  # from someone who left
        await signal(db, b, c, "offer", {})
    assert await signal(db, a, c, "offer", {}) > 0


async def test_relay_signal_after_expiry_is_ht410(db: asyncpg.Connection) -> None:
    s = await session(db)
    a, b = await member(db, s), await member(db, s)
    t0 = await db_now(db)
    assert await db.fetchval("SELECT hearth.expire_sessions($1)", t0 + minutes(61)) == 1
    async with raises_sqlstate("HT410"):
        await signal(db, a, b, "offer", {})


async def test_relay_signal_larger_than_a_notify_payload_is_stored_whole(db: asyncpg.Connection) -> None:
    s = await session(db)
    a, b = await member(db, s), await member(db, s)
    sdp = "a=candidate:" + "x" * 20_000
    seq = await signal(db, a, b, "offer", {"type": "offer", "sdp": sdp})
    found = await events(db, s, after=seq - 1)
    assert len(found) == 1
    assert found[0]["payload"]["data"] == {"type": "offer", "sdp": sdp}


# --- events_since --------------------------------------------------------------------------------


async def test_events_since_after_and_limit(db: asyncpg.Connection) -> None:
    s = await session(db)
    pid = await member(db, s)
    for i in range(9):
        await post(db, pid, {"i": i})
    rows = await db.fetch("SELECT * FROM hearth.events_since($1, 0)", s)
    assert list(rows[0].keys()) == ["seq", "type", "payload", "created_at"]
    assert [r["seq"] for r in rows] == list(range(1, 11))
    assert [r["seq"] for r in await db.fetch("SELECT * FROM hearth.events_since($1, 4, 3)", s)] == [5, 6, 7]
    assert [r["seq"] for r in await db.fetch("SELECT * FROM hearth.events_since($1, 8)", s)] == [9, 10]
    assert await db.fetch("SELECT * FROM hearth.events_since($1, 10)", s) == []
    assert await db.fetch("SELECT * FROM hearth.events_since($1, 1000)", s) == []


async def test_events_since_default_limit_is_500(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    s = await session(db)
    await admin.execute(
        """INSERT INTO hearth_data.events (stream_id, seq, scope, type, payload, created_at, emitted_at)
           SELECT $1, n, 'session', 'message', '{}', now(), now() FROM generate_series(1, 600) AS n""",
        s,
    )
    rows = await db.fetch("SELECT seq FROM hearth.events_since($1, 0)", s)
    assert [r["seq"] for r in rows] == list(range(1, 501))
    assert len(await db.fetch("SELECT seq FROM hearth.events_since($1, 0, 10000)", s)) == 600


async def test_events_since_is_per_session(db: asyncpg.Connection) -> None:
    s1, s2 = await session(db), await session(db)
    p1 = await member(db, s1)
    await member(db, s2)
    await post(db, p1, {"only": "s1"})
    assert [e["type"] for e in await events(db, s1)] == ["presence.join", "message"]
    assert [e["type"] for e in await events(db, s2)] == ["presence.join"]


async def test_events_since_identity_stream(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    a = await identity(db)
    t0 = await db_now(db)
    await admin.execute(
        "SELECT hearth_data.emit_event('identity', $1, 'match.found', '{\"peer_identity_id\": null}', $2)",
        a,
        t0,
    )
    found = await events(db, a)
    assert [(e["seq"], e["type"], e["created_at"]) for e in found] == [(1, "match.found", t0)]


async def test_events_since_unknown_stream_is_ht404(db: asyncpg.Connection) -> None:
    async with raises_sqlstate("HT404"):
        await db.fetch("SELECT * FROM hearth.events_since($1, 0)", uuid.uuid4())


async def test_event_times_follow_p_now(db: asyncpg.Connection) -> None:
    s = await session(db)
    t0 = await db_now(db)
    a = await identity(db)
    pid = await join(db, s, a, now=t0 + minutes(1))
    assert await leave(db, pid, now=t0 + minutes(2))
    assert [e["created_at"] for e in await events(db, s)] == [t0 + minutes(1), t0 + minutes(2)]


async def test_join_touch_message_and_read_back(db: asyncpg.Connection) -> None:
    """The former smoke test: the shortest path through the API."""
    alice = await db.fetchval("SELECT hearth.create_identity('alice')")
    created = await db.fetchrow("SELECT * FROM hearth.create_session()")
    assert created is not None
    pid = await db.fetchval("SELECT hearth.join_session($1, $2)", created["session_id"], alice)
    assert await db.fetchval("SELECT hearth.touch($1)", [pid]) == 1
    seq = await db.fetchval("SELECT hearth.post_message($1, $2::jsonb)", pid, '{"text": "hi"}')
    assert seq == 2
    rows = await db.fetch("SELECT * FROM hearth.events_since($1, 0)", created["session_id"])
    assert [r["type"] for r in rows] == ["presence.join", "message"]
    async with raises_sqlstate("HT404"):
        await db.fetchval("SELECT hearth.leave_session(gen_random_uuid())")


async def test_prune_never_leaves_a_hole_in_a_stream(db: asyncpg.Connection, db_url: str) -> None:
    """The audit's prune_hole.py: T1 starts, T2 posts and commits (seq N), T1 posts and commits (N+1).
    Pruning by the writer's transaction time could delete N+1 and keep N, a hole no resume can see.
    Events now carry a time that rises with seq in every stream; whatever the cutoff, what is left of a
    stream is the run of its newest events."""
    s = await session(db)
    first, second = await member(db, s), await member(db, s)
    older, newer = await app_connection(db_url), await app_connection(db_url)
    try:
        async with older.transaction():
            t1 = await older.fetchval("SELECT now()")  # this transaction's time: before the other's
            await asyncio.sleep(0.05)
            n = await newer.fetchval("SELECT hearth.post_message($1, '{\"m\": \"second writer\"}')", second)
            t2 = await newer.fetchval("SELECT now()")
            n1 = await older.fetchval("SELECT hearth.post_message($1, '{\"m\": \"first writer\"}')", first)
        assert n1 == n + 1
    finally:
        await older.close()
        await newer.close()
    head = n1
    for step in range(11):
        cutoff = t1 + (t2 - t1) * step / 10 + timedelta(milliseconds=step - 5)
        tx = db.transaction()  # each cutoff tried on the same stream, then rolled back
        await tx.start()
        try:
            await db.fetchval("SELECT hearth.prune_events('1 hour', $1)", cutoff + timedelta(hours=1))
            left = [e["seq"] for e in await events(db, s)]
        finally:
            await tx.rollback()
        assert left == list(range(head - len(left) + 1, head + 1)), (step, left)
