"""Matchmaking (revision 0003): identity states, the queue, match_waiting, end_match, match sessions,
LiveKit webhook events, the room-job outbox, the reaper, the reconciler, livekit_room.

Identities are queued a second apart in a known order (queued_at set directly), so "oldest first" is
observable; times given to the p_now / p_created_at parameters are relative to the database's clock.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import psycopg
import pytest

from tests.conftest import raises_sqlstate, recreate_database
from tests.db.helpers import (
    app_connection,
    db_now,
    events,
    identity,
    join,
    minutes,
    seconds,
    session,
    session_row,
)
from tests.pg import PgServer

UNKNOWN = uuid.UUID("00000000-0000-4000-8000-000000000000")


@dataclass
class Match:
    session_id: uuid.UUID
    a: uuid.UUID  # the one queued first (identity_a)
    b: uuid.UUID

    @property
    def room(self) -> str:
        return f"hearth-match-{self.session_id}"


async def state(db: asyncpg.Connection, identity_id: uuid.UUID) -> str:
    value: str = await db.fetchval("SELECT hearth.identity_state($1)", identity_id)
    return value


async def states(db: asyncpg.Connection, *identity_ids: uuid.UUID) -> list[str]:
    return [await state(db, i) for i in identity_ids]


async def enqueue(db: asyncpg.Connection, identity_id: uuid.UUID) -> str:
    value: str = await db.fetchval("SELECT hearth.enqueue_match($1)", identity_id)
    return value


async def leave_queue(db: asyncpg.Connection, identity_id: uuid.UUID) -> str:
    value: str = await db.fetchval("SELECT hearth.leave_queue($1)", identity_id)
    return value


async def match_waiting(db: asyncpg.Connection, limit: int = 100) -> int:
    value: int = await db.fetchval("SELECT hearth.match_waiting($1)", limit)
    return value


async def status(db: asyncpg.Connection, identity_id: uuid.UUID) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(await db.fetchval("SELECT hearth.match_status($1)", identity_id))
    return value


async def end_match(db: asyncpg.Connection, session_id: uuid.UUID, by: uuid.UUID, action: str | None) -> None:
    await db.execute("SELECT hearth.end_match($1, $2, $3)", session_id, by, action)


async def queued_at(admin: asyncpg.Connection, identity_id: uuid.UUID) -> datetime | None:
    value: datetime | None = await admin.fetchval(
        "SELECT queued_at FROM hearth_data.identities WHERE identity_id = $1", identity_id
    )
    return value


async def queue(db: asyncpg.Connection, admin: asyncpg.Connection, n: int) -> list[uuid.UUID]:
    """n new waiting identities, queued a second apart in the order returned (oldest first), all before
    anything queued by the test afterwards."""
    ids = [await identity(db, f"player {i}") for i in range(n)]
    for i in ids:
        assert await enqueue(db, i) == "waiting"
    await admin.execute(
        """UPDATE hearth_data.identities i
              SET queued_at = now() - interval '1 hour' + u.n * interval '1 second'
             FROM unnest($1::uuid[]) WITH ORDINALITY u(id, n) WHERE i.identity_id = u.id""",
        ids,
    )
    return ids


async def match_row(admin: asyncpg.Connection, session_id: uuid.UUID) -> asyncpg.Record:
    row: asyncpg.Record | None = await admin.fetchrow(
        "SELECT * FROM hearth_data.matches WHERE session_id = $1", session_id
    )
    assert row is not None
    return row


async def open_match_of(admin: asyncpg.Connection, identity_id: uuid.UUID) -> Match:
    row = await admin.fetchrow(
        """SELECT session_id, identity_a, identity_b FROM hearth_data.matches
            WHERE ended_at IS NULL AND $1 IN (identity_a, identity_b)""",
        identity_id,
    )
    assert row is not None
    return Match(row["session_id"], row["identity_a"], row["identity_b"])


async def new_match(db: asyncpg.Connection, admin: asyncpg.Connection) -> Match:
    """Two new identities, queued and matched (nobody else may be waiting)."""
    a, b = await queue(db, admin, 2)
    assert await match_waiting(db) == 1
    m = await open_match_of(admin, a)
    assert (m.a, m.b) == (a, b)
    return m


async def jobs(admin: asyncpg.Connection, session_id: uuid.UUID | None = None) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await admin.fetch(
        "SELECT * FROM hearth_data.livekit_jobs WHERE $1::uuid IS NULL OR session_id = $1 ORDER BY job_id",
        session_id,
    )
    return rows


async def identity_events(db: asyncpg.Connection, identity_id: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
    return [(e["type"], e["payload"]) for e in await events(db, identity_id)]


async def livekit_event(
    db: asyncpg.Connection,
    event: str,
    room: str | None,
    who: uuid.UUID | str | None,
    at: datetime | None,
    event_id: str | None = None,
) -> bool:
    value: bool = await db.fetchval(
        "SELECT hearth.record_livekit_event($1, $2, $3, $4, $5)",
        event_id or f"EV_{uuid.uuid4().hex}",
        event,
        room,
        None if who is None else str(who),
        at,
    )
    return value


async def in_call(db: asyncpg.Connection, m: Match, at: datetime) -> None:
    assert await livekit_event(db, "participant_joined", m.room, m.a, at)
    assert await livekit_event(db, "participant_joined", m.room, m.b, at)


async def claim(
    db: asyncpg.Connection, now: datetime, limit: int = 10, lease: Any = None
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await db.fetch(
        "SELECT * FROM hearth.claim_livekit_jobs($1, $2, $3)", limit, lease or seconds(30), now
    )
    return rows


async def finish_job(
    db: asyncpg.Connection, job_id: int, error: str | None, now: datetime, max_attempts: int = 6
) -> str:
    value: str = await db.fetchval(
        "SELECT hearth.finish_livekit_job($1, $2, $3, $4)", job_id, error, max_attempts, now
    )
    return value


async def reap(db: asyncpg.Connection, grace: Any, now: datetime) -> int:
    value: int = await db.fetchval("SELECT hearth.end_abandoned_matches($1, $2)", grace, now)
    return value


async def reconcile(db: asyncpg.Connection, rooms: list[str], listed_at: datetime) -> set[str]:
    rows = await db.fetch("SELECT room FROM hearth.reconcile_livekit_rooms($1, $2)", rooms, listed_at)
    return {r["room"] for r in rows}


# --- identity_state, enqueue_match, leave_queue, match_status -------------------------------------


async def test_a_new_identity_is_idle(db: asyncpg.Connection) -> None:
    me = await identity(db)
    assert await state(db, me) == "idle"
    assert await status(db, me) == {"state": "idle"}


async def test_enqueue_then_leave_the_queue(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    me = await identity(db)
    assert await enqueue(db, me) == "waiting"
    assert await state(db, me) == "waiting"
    assert await status(db, me) == {"state": "waiting"}
    assert await queued_at(admin, me) is not None
    assert await leave_queue(db, me) == "idle"
    assert await state(db, me) == "idle"
    assert await queued_at(admin, me) is None
    # Leaving when not queued is harmless; queueing again works.
    assert await leave_queue(db, me) == "idle"
    assert await enqueue(db, me) == "waiting"
    assert await state(db, me) == "waiting"


async def test_enqueue_twice_keeps_the_place_in_the_queue(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    first, second = await queue(db, admin, 2)
    place = await queued_at(admin, first)
    late = await identity(db, "late")
    assert await enqueue(db, late) == "waiting"
    assert await enqueue(db, first) == "waiting"
    assert await state(db, first) == "waiting"
    assert await queued_at(admin, first) == place
    # Still ahead of the newcomer: the two oldest are matched, the newcomer waits.
    assert await match_waiting(db, 1) == 1
    m = await open_match_of(admin, first)
    assert (m.a, m.b) == (first, second)
    assert await state(db, late) == "waiting"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT hearth.identity_state($1)",
        "SELECT hearth.enqueue_match($1)",
        "SELECT hearth.leave_queue($1)",
        "SELECT hearth.match_status($1)",
    ],
)
async def test_unknown_identity_is_ht404(db: asyncpg.Connection, sql: str) -> None:
    async with raises_sqlstate("HT404"):
        await db.fetchval(sql, UNKNOWN)


@pytest.mark.parametrize("call", ["enqueue_match", "leave_queue"])
@pytest.mark.parametrize("match_state", ["connecting", "in_call"])
async def test_queue_calls_while_in_a_match_are_ht409(
    db: asyncpg.Connection, admin: asyncpg.Connection, call: str, match_state: str
) -> None:
    m = await new_match(db, admin)
    if match_state == "in_call":
        await in_call(db, m, await db_now(db))
    for who in (m.a, m.b):
        assert await state(db, who) == match_state
        async with raises_sqlstate("HT409"):
            await db.fetchval(f"SELECT hearth.{call}($1)", who)
        assert await state(db, who) == match_state
    assert (await match_row(admin, m.session_id))["ended_at"] is None


async def test_match_status_names_the_session_and_the_peer(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    m = await new_match(db, admin)
    assert await status(db, m.a) == {"state": "connecting", "session_id": str(m.session_id), "peer": str(m.b)}
    assert await status(db, m.b) == {"state": "connecting", "session_id": str(m.session_id), "peer": str(m.a)}
    await in_call(db, m, await db_now(db))
    assert await status(db, m.a) == {"state": "in_call", "session_id": str(m.session_id), "peer": str(m.b)}
    await end_match(db, m.session_id, m.a, "skip")
    assert await status(db, m.a) == {"state": "waiting"}


# --- match_waiting -------------------------------------------------------------------------------


async def test_match_waiting_pairs_oldest_first_and_leaves_the_odd_one(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    ids = await queue(db, admin, 5)
    # Created in one order, queued in another: queued_at decides.
    order = [ids[3], ids[0], ids[4], ids[2], ids[1]]
    for n, who in enumerate(order):
        await admin.execute(
            "UPDATE hearth_data.identities"
            " SET queued_at = now() - interval '1 day' + $2 * interval '1 minute' WHERE identity_id = $1",
            who,
            n,
        )
    assert await match_waiting(db) == 2
    pairs = await admin.fetch(
        "SELECT identity_a, identity_b FROM hearth_data.matches ORDER BY identity_a = $1 DESC", order[0]
    )
    assert [(p["identity_a"], p["identity_b"]) for p in pairs] == [(order[0], order[1]), (order[2], order[3])]
    assert await states(db, *order) == ["connecting"] * 4 + ["waiting"]
    assert await match_waiting(db) == 0
    assert await state(db, order[4]) == "waiting"


async def test_match_waiting_with_nobody_or_one_waiting(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    assert await match_waiting(db) == 0
    (alone,) = await queue(db, admin, 1)
    assert await match_waiting(db) == 0
    assert await state(db, alone) == "waiting"
    assert await admin.fetchval("SELECT count(*) FROM hearth_data.matches") == 0


async def test_a_match_has_a_session_a_room_a_job_states_and_events(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    m = await new_match(db, admin)
    stored = await session_row(admin, m.session_id)
    assert stored is not None
    assert (stored["kind"], stored["status"], stored["max_participants"]) == ("match", "waiting", 2)
    assert json.loads(stored["metadata"]) == {"identities": [str(m.a), str(m.b)]}

    row = await match_row(admin, m.session_id)
    assert row["room"] == f"hearth-match-{m.session_id}"
    assert (row["room_state"], row["room_created_at"], row["ended_at"]) == ("pending", None, None)

    (job,) = await jobs(admin)
    assert (job["kind"], job["room"], job["session_id"], job["attempts"]) == (
        "create_room",
        m.room,
        m.session_id,
        0,
    )
    assert job["run_at"] == row["created_at"] and job["leased_until"] is None

    for me, peer in ((m.a, m.b), (m.b, m.a)):
        assert await state(db, me) == "connecting"
        assert await queued_at(admin, me) is None
        assert (
            await admin.fetchval(
                "SELECT match_session_id FROM hearth_data.identities WHERE identity_id = $1", me
            )
            == m.session_id
        )
        found = await events(db, me)
        assert [(e["seq"], e["type"]) for e in found] == [(1, "match.found")]
        assert found[0]["payload"] == {"match_session_id": str(m.session_id), "peer_identity_id": str(peer)}


async def test_match_waiting_respects_p_limit(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    ids = await queue(db, admin, 7)
    assert await match_waiting(db, 2) == 2
    assert await states(db, *ids) == ["connecting"] * 4 + ["waiting"] * 3
    assert await match_waiting(db, 2) == 1
    assert await states(db, *ids) == ["connecting"] * 6 + ["waiting"]
    assert await admin.fetchval("SELECT count(*) FROM hearth_data.matches") == 3


@pytest.mark.parametrize("limit", [0, -1, 10001, None])
async def test_match_waiting_bad_limit_is_ht400(
    db: asyncpg.Connection, admin: asyncpg.Connection, limit: int | None
) -> None:
    ids = await queue(db, admin, 2)
    async with raises_sqlstate("HT400"):
        await db.fetchval("SELECT hearth.match_waiting($1)", limit)
    assert await states(db, *ids) == ["waiting", "waiting"]


async def test_only_the_two_matched_identities_can_join(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    m = await new_match(db, admin)
    stranger = await identity(db, "stranger")
    async with raises_sqlstate("HT403"):
        await join(db, m.session_id, stranger)
    pa = await join(db, m.session_id, m.a)
    async with raises_sqlstate("HT403"):
        await join(db, m.session_id, stranger)
    pb = await join(db, m.session_id, m.b)
    assert pa != pb
    assert await join(db, m.session_id, m.a) == pa
    async with raises_sqlstate("HT403"):
        await join(db, m.session_id, stranger)
    present = await admin.fetch(
        """SELECT pa.identity_id FROM hearth_data.presence pr
             JOIN hearth_data.participants pa USING (participant_id) WHERE pr.session_id = $1""",
        m.session_id,
    )
    assert {r["identity_id"] for r in present} == {m.a, m.b}
    stored = await session_row(admin, m.session_id)
    assert stored is not None and stored["status"] == "active"


# --- end_match -----------------------------------------------------------------------------------


async def test_skip_requeues_both_and_ends_the_session(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    m = await new_match(db, admin)
    pa = await join(db, m.session_id, m.a)
    pb = await join(db, m.session_id, m.b)
    await end_match(db, m.session_id, m.b, "skip")

    assert await states(db, m.a, m.b) == ["waiting", "waiting"]
    row = await match_row(admin, m.session_id)
    assert row["ended_at"] is not None
    assert (row["end_action"], row["ended_by"]) == ("skip", m.b)
    for who in (m.a, m.b):
        assert await queued_at(admin, who) == row["ended_at"]
        assert await status(db, who) == {"state": "waiting"}
        assert (await identity_events(db, who))[-1] == (
            "match.ended",
            {"match_session_id": str(m.session_id), "action": "skip", "by": str(m.b)},
        )

    stored = await session_row(admin, m.session_id)
    assert stored is not None
    assert (stored["status"], stored["close_reason"]) == ("ended", "skip")
    session_events = [(e["type"], e["payload"]) for e in await events(db, m.session_id)]
    assert session_events[-3:] == [
        ("presence.leave", {"participant_id": str(p), "reason": "left"}) for p in sorted([pa, pb], key=str)
    ] + [("session.ended", {"reason": "skip"})]
    assert (
        await admin.fetchval("SELECT count(*) FROM hearth_data.presence WHERE session_id = $1", m.session_id)
        == 0
    )

    kinds = [(j["kind"], j["room"]) for j in await jobs(admin, m.session_id)]
    assert kinds == [("create_room", m.room), ("delete_room", m.room)]
    until = await admin.fetchval(
        "SELECT until FROM hearth_data.match_cooldowns WHERE identity_low = $1 AND identity_high = $2",
        min(m.a, m.b, key=str),
        max(m.a, m.b, key=str),
    )
    assert until == row["ended_at"] + minutes(10)


async def test_skipped_pair_is_not_rematched_within_the_cooldown(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    m = await new_match(db, admin)
    await end_match(db, m.session_id, m.a, "skip")
    assert await states(db, m.a, m.b) == ["waiting", "waiting"]
    assert await match_waiting(db) == 0
    assert await states(db, m.a, m.b) == ["waiting", "waiting"]

    # A third identity is matched with one of them instead.
    third = await identity(db, "third")
    await enqueue(db, third)
    assert await match_waiting(db) == 1
    other = await open_match_of(admin, third)
    partner = other.a if other.b == third else other.b
    assert partner in (m.a, m.b)
    left_over = m.b if partner == m.a else m.a
    assert await state(db, left_over) == "waiting"

    # The third ends that match; its partner waits again, next to the one it skipped: still apart.
    await end_match(db, other.session_id, third, "end")
    assert await states(db, m.a, m.b, third) == ["waiting", "waiting", "idle"]
    assert await match_waiting(db) == 0

    # Once the cooldown is over they can meet again.
    await admin.execute("UPDATE hearth_data.match_cooldowns SET until = now() - interval '1 second'")
    assert await match_waiting(db) == 1
    again = await open_match_of(admin, m.a)
    assert {again.a, again.b} == {m.a, m.b}
    assert again.session_id != m.session_id


async def test_rematch_cooldown_follows_the_setting(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    assert await admin.fetchval("SELECT hearth.set_setting('rematch_cooldown', '30 minutes')") == "00:30:00"
    m = await new_match(db, admin)
    await end_match(db, m.session_id, m.b, "skip")
    row = await match_row(admin, m.session_id)
    assert await admin.fetchval("SELECT until FROM hearth_data.match_cooldowns") == row["ended_at"] + minutes(
        30
    )


async def test_end_sends_the_ender_idle_and_the_other_back_to_the_queue(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    m = await new_match(db, admin)
    await in_call(db, m, await db_now(db))
    await end_match(db, m.session_id, m.b, "end")
    assert await states(db, m.a, m.b) == ["waiting", "idle"]
    assert await queued_at(admin, m.b) is None
    row = await match_row(admin, m.session_id)
    assert (row["end_action"], row["ended_by"]) == ("end", m.b)
    assert await queued_at(admin, m.a) == row["ended_at"]
    for who in (m.a, m.b):
        assert (await identity_events(db, who))[-1] == (
            "match.ended",
            {"match_session_id": str(m.session_id), "action": "end", "by": str(m.b)},
        )
    stored = await session_row(admin, m.session_id)
    assert stored is not None and (stored["status"], stored["close_reason"]) == ("ended", "end")
    assert [j["kind"] for j in await jobs(admin, m.session_id)] == ["create_room", "delete_room"]
    # Only a skip keeps the two apart.
    assert await admin.fetchval("SELECT count(*) FROM hearth_data.match_cooldowns") == 0


async def test_end_match_errors(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    m = await new_match(db, admin)
    stranger = await identity(db, "stranger")
    async with raises_sqlstate("HT403"):
        await end_match(db, m.session_id, stranger, "skip")
    async with raises_sqlstate("HT404"):
        await end_match(db, UNKNOWN, m.a, "skip")
    async with raises_sqlstate("HT404"):
        await end_match(db, await session(db), m.a, "end")  # a room session is no match
    for action in ("leave", "SKIP", "", None):
        async with raises_sqlstate("HT400"):
            await end_match(db, m.session_id, m.a, action)
    assert await states(db, m.a, m.b) == ["connecting", "connecting"]
    assert (await match_row(admin, m.session_id))["ended_at"] is None

    await end_match(db, m.session_id, m.a, "end")
    for who, action in ((m.a, "end"), (m.b, "skip")):
        async with raises_sqlstate("HT410"):
            await end_match(db, m.session_id, who, action)
    assert await states(db, m.a, m.b) == ["idle", "waiting"]
    assert [t for t, _ in await identity_events(db, m.b)] == ["match.found", "match.ended"]


# --- concurrency ---------------------------------------------------------------------------------


async def test_concurrent_enqueue_and_matching_never_matches_anyone_twice(
    db: asyncpg.Connection, admin: asyncpg.Connection, db_url: str
) -> None:
    ids: list[uuid.UUID] = [
        r[0] for r in await db.fetch("SELECT hearth.create_identity() FROM generate_series(1, 1000)")
    ]
    enqueuers = [await app_connection(db_url) for _ in range(8)]
    matchers = [await app_connection(db_url) for _ in range(3)]
    done = asyncio.Event()
    matched = 0

    async def enqueue_share(conn: asyncpg.Connection, share: list[uuid.UUID]) -> None:
        for who in share:
            assert await enqueue(conn, who) == "waiting"

    async def match_until_done(conn: asyncpg.Connection, limit: int) -> None:
        nonlocal matched
        while not done.is_set():
            n = await match_waiting(conn, limit)
            matched += n  # not `matched += await ...`: that reads `matched` before awaiting
            await asyncio.sleep(0)

    async def enqueue_all() -> None:
        try:
            await asyncio.gather(*(enqueue_share(c, ids[n::8]) for n, c in enumerate(enqueuers)))
        finally:
            done.set()

    try:
        await asyncio.gather(
            enqueue_all(), *(match_until_done(c, lim) for c, lim in zip(matchers, (3, 10, 50), strict=True))
        )
    finally:
        for conn in enqueuers + matchers:
            await conn.close()
    while (n := await match_waiting(db)) > 0:
        matched += n

    assert matched == 500
    twice = await admin.fetch(
        """SELECT who, count(*) FROM (SELECT identity_a AS who FROM hearth_data.matches WHERE ended_at IS NULL
                                      UNION ALL
                                      SELECT identity_b FROM hearth_data.matches WHERE ended_at IS NULL) t
            GROUP BY who HAVING count(*) > 1"""
    )
    assert twice == []
    counts = await admin.fetchrow(
        """SELECT (SELECT count(*) FROM hearth_data.matches WHERE ended_at IS NULL) AS open_matches,
                  count(*) FILTER (WHERE match_state = 'waiting') AS waiting,
                  count(*) FILTER (WHERE match_state = 'connecting') AS connecting
             FROM hearth_data.identities"""
    )
    assert counts is not None
    assert dict(counts) == {"open_matches": 500, "waiting": 0, "connecting": 1000}
    # Every connecting identity points at a match that contains it, and was told of it exactly once.
    consistent = await admin.fetchval(
        """SELECT count(*) FROM hearth_data.identities i
             JOIN hearth_data.matches m ON m.session_id = i.match_session_id
                                      AND i.identity_id IN (m.identity_a, m.identity_b)
            WHERE i.match_state = 'connecting' AND i.identity_id = ANY ($1::uuid[])""",
        ids,
    )
    assert consistent == 1000
    found = await admin.fetch(
        """SELECT e.stream_id, e.payload->>'match_session_id' AS sid, e.payload->>'peer_identity_id' AS peer
             FROM hearth_data.events e WHERE e.type = 'match.found'"""
    )
    assert len(found) == 1000 and len({r["stream_id"] for r in found}) == 1000
    peer_of = {r["stream_id"]: uuid.UUID(r["peer"]) for r in found}
    assert all(peer_of[peer_of[who]] == who for who in ids)


# --- record_livekit_event and end_abandoned_matches ----------------------------------------------


async def test_livekit_events_are_recorded_once(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    m = await new_match(db, admin)
    t0 = await db_now(db)
    assert await livekit_event(db, "participant_joined", m.room, m.a, t0, "EV_1") is True
    # A redelivery, even one that would now mean something else, is not applied again.
    assert await livekit_event(db, "participant_joined", m.room, m.a, t0, "EV_1") is False
    assert await livekit_event(db, "participant_left", m.room, m.a, t0 + seconds(5), "EV_1") is False
    assert await livekit_event(db, "room_finished", m.room, None, t0 + seconds(5), "EV_1") is False
    row = await match_row(admin, m.session_id)
    assert (row["a_joined_at"], row["a_left_at"], row["a_seen_at"], row["ended_at"]) == (t0, None, t0, None)
    stored = await admin.fetch("SELECT event, room, identity, created_at FROM hearth_data.livekit_events")
    assert [tuple(r) for r in stored] == [("participant_joined", m.room, str(m.a), t0)]
    assert await states(db, m.a, m.b) == ["connecting", "connecting"]


async def test_both_sides_joined_is_in_call(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    m = await new_match(db, admin)
    t0 = await db_now(db)
    assert await livekit_event(db, "participant_joined", m.room, m.b, t0)
    assert await states(db, m.a, m.b) == ["connecting", "connecting"]
    assert await livekit_event(db, "participant_joined", m.room, m.a, t0 + seconds(1))
    assert await states(db, m.a, m.b) == ["in_call", "in_call"]
    # Someone else in the room changes nothing.
    assert await livekit_event(db, "participant_left", m.room, "egress-bot", t0 + seconds(2))
    assert await reap(db, seconds(1), t0 + minutes(10)) == 0
    assert await states(db, m.a, m.b) == ["in_call", "in_call"]


async def test_a_side_that_left_is_reaped_after_the_grace(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    m = await new_match(db, admin)
    t0 = await db_now(db)
    await in_call(db, m, t0)
    assert await livekit_event(db, "participant_left", m.room, m.b, t0 + seconds(5))
    assert await states(db, m.a, m.b) == ["in_call", "in_call"]
    assert await reap(db, seconds(20), t0 + seconds(24)) == 0
    assert (await match_row(admin, m.session_id))["ended_at"] is None
    assert await reap(db, seconds(20), t0 + seconds(25)) == 1
    assert await states(db, m.a, m.b) == ["waiting", "idle"]
    row = await match_row(admin, m.session_id)
    assert (row["ended_at"], row["end_action"], row["ended_by"]) == (t0 + seconds(25), "end", m.b)
    for who in (m.a, m.b):
        assert (await identity_events(db, who))[-1] == (
            "match.ended",
            {"match_session_id": str(m.session_id), "action": "end", "by": str(m.b)},
        )
    assert await reap(db, seconds(20), t0 + minutes(5)) == 0


async def test_a_quick_rejoin_is_not_reaped(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    m = await new_match(db, admin)
    t0 = await db_now(db)
    await in_call(db, m, t0)
    assert await livekit_event(db, "participant_left", m.room, m.a, t0 + seconds(5))
    assert await livekit_event(db, "participant_joined", m.room, m.a, t0 + seconds(8))
    assert await reap(db, seconds(20), t0 + minutes(5)) == 0
    assert await states(db, m.a, m.b) == ["in_call", "in_call"]


async def test_a_late_participant_left_is_ignored(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    m = await new_match(db, admin)
    t0 = await db_now(db)
    await in_call(db, m, t0 + seconds(10))
    # Delivered after the join but older than it (LiveKit #2399).
    assert await livekit_event(db, "participant_left", m.room, m.a, t0 + seconds(3)) is True
    row = await match_row(admin, m.session_id)
    assert (row["a_left_at"], row["a_seen_at"]) == (None, t0 + seconds(10))
    assert await states(db, m.a, m.b) == ["in_call", "in_call"]
    assert await reap(db, seconds(20), t0 + minutes(10)) == 0
    assert (await match_row(admin, m.session_id))["ended_at"] is None


async def sid_event(
    db: asyncpg.Connection, event: str, room: str, who: uuid.UUID, sid: str | None, at: datetime
) -> bool:
    value: bool = await db.fetchval(
        "SELECT hearth.record_livekit_participant_event($1, $2, $3, $4, $5, $6)",
        f"EV_{uuid.uuid4().hex}",
        event,
        room,
        str(who),
        sid,
        at,
    )
    return value


async def test_the_leave_of_an_older_participant_sid_is_ignored(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    m = await new_match(db, admin)
    t0 = await db_now(db)
    assert await sid_event(db, "participant_joined", m.room, m.a, "PA_a1", t0)
    assert await sid_event(db, "participant_joined", m.room, m.b, "PA_b1", t0)
    assert await states(db, m.a, m.b) == ["in_call", "in_call"]
    # A rejoins under a new sid; the old connection's leave arrives afterwards, even stamped later.
    assert await sid_event(db, "participant_joined", m.room, m.a, "PA_a2", t0 + seconds(5))
    assert await sid_event(db, "participant_left", m.room, m.a, "PA_a1", t0 + seconds(5))
    assert await sid_event(db, "participant_left", m.room, m.a, "PA_a1", t0 + seconds(6))
    row = await match_row(admin, m.session_id)
    assert (row["a_sid"], row["a_left_at"]) == ("PA_a2", None)
    assert await reap(db, seconds(20), t0 + minutes(10)) == 0
    # The leave of the current sid counts.
    assert await sid_event(db, "participant_left", m.room, m.a, "PA_a2", t0 + seconds(7))
    assert (await match_row(admin, m.session_id))["a_left_at"] == t0 + seconds(7)
    assert await reap(db, seconds(20), t0 + seconds(27)) == 1
    assert await states(db, m.a, m.b) == ["idle", "waiting"]


async def test_room_finished_ends_an_open_match_as_vanished(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    m = await new_match(db, admin)
    await in_call(db, m, await db_now(db))
    assert await livekit_event(db, "room_finished", m.room, None, await db_now(db)) is True
    assert await states(db, m.a, m.b) == ["waiting", "waiting"]
    row = await match_row(admin, m.session_id)
    assert (row["end_action"], row["ended_by"]) == ("vanished", None)
    assert row["ended_at"] is not None
    for who in (m.a, m.b):
        assert (await identity_events(db, who))[-1] == (
            "match.ended",
            {"match_session_id": str(m.session_id), "action": "vanished", "by": None},
        )
    stored = await session_row(admin, m.session_id)
    assert stored is not None and (stored["status"], stored["close_reason"]) == ("ended", "vanished")
    # A second room_finished (another id) for the ended match changes nothing.
    assert await livekit_event(db, "room_finished", m.room, None, await db_now(db)) is True
    assert [t for t, _ in await identity_events(db, m.a)] == ["match.found", "match.ended"]


async def test_events_for_unknown_rooms_are_recorded_and_ignored(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    m = await new_match(db, admin)
    t0 = await db_now(db)
    for event, room in (
        ("room_finished", "hearth-match-00000000-0000-4000-8000-000000000000"),
        ("participant_joined", "some-other-room"),
        ("participant_left", f"hearth-{m.session_id}"),
        ("room_started", None),
    ):
        assert await livekit_event(db, event, room, m.a, t0, f"EV_{event}") is True
    assert await admin.fetchval("SELECT count(*) FROM hearth_data.livekit_events") == 4
    row = await match_row(admin, m.session_id)
    assert (row["a_seen_at"], row["ended_at"]) == (None, None)
    assert await states(db, m.a, m.b) == ["connecting", "connecting"]
    assert [t for t, _ in await identity_events(db, m.a)] == ["match.found"]


async def test_a_deleted_identity_does_not_block_the_reaper_or_its_peer(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    """cleanup_inactive_identities may delete an anonymous identity that is in a match (a call with
    no Hearth activity for identity_idle_timeout). Ending such a match must still work, for every match
    the reaper handles in the same run."""
    gone, other = await new_match(db, admin), await new_match(db, admin)
    t0 = await db_now(db)
    for m in (gone, other):
        await in_call(db, m, t0)
    await admin.execute(
        "UPDATE hearth_data.identities SET last_active_at = $2 WHERE identity_id = $1", gone.b, t0
    )
    await admin.execute(
        "UPDATE hearth_data.identities SET last_active_at = $2 WHERE identity_id <> $1",
        gone.b,
        t0 + minutes(60),
    )
    assert await db.fetchval("SELECT hearth.cleanup_inactive_identities(NULL, $1)", t0 + minutes(31)) == 1
    async with raises_sqlstate("HT404"):
        await state(db, gone.b)

    for m in (gone, other):
        assert await livekit_event(db, "participant_left", m.room, m.b, t0 + seconds(1))
    assert await reap(db, seconds(20), t0 + minutes(32)) == 2
    assert await states(db, gone.a, other.a, other.b) == ["waiting", "waiting", "idle"]
    assert (await identity_events(db, gone.a))[-1] == (
        "match.ended",
        {"match_session_id": str(gone.session_id), "action": "end", "by": str(gone.b)},
    )


# --- the LiveKit room outbox: claim_livekit_jobs, finish_livekit_job ------------------------------


async def test_claimed_jobs_are_leased(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    m = await new_match(db, admin)
    t0 = await db_now(db)
    (job,) = await claim(db, t0)
    assert list(job.keys()) == ["job_id", "kind", "room", "session_id", "attempts"]
    assert (job["kind"], job["room"], job["session_id"], job["attempts"]) == (
        "create_room",
        m.room,
        m.session_id,
        0,
    )
    assert await claim(db, t0) == []
    assert await claim(db, t0 + seconds(29)) == []
    (again,) = await claim(db, t0 + seconds(31))
    assert again["job_id"] == job["job_id"]
    assert (await jobs(admin))[0]["leased_until"] == t0 + seconds(61)


async def test_claim_takes_at_most_p_limit(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    await queue(db, admin, 6)
    assert await match_waiting(db) == 3
    t0 = await db_now(db)
    first = await claim(db, t0, limit=2)
    second = await claim(db, t0, limit=2)
    assert (len(first), len(second)) == (2, 1)
    assert {j["job_id"] for j in first + second} == {j["job_id"] for j in await jobs(admin)}


async def test_a_done_create_room_job_marks_the_room_created(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    m = await new_match(db, admin)
    t0 = await db_now(db)
    (job,) = await claim(db, t0)
    assert await finish_job(db, job["job_id"], None, t0 + seconds(1)) == "done"
    assert await jobs(admin) == []
    row = await match_row(admin, m.session_id)
    assert (row["room_state"], row["room_created_at"]) == ("created", t0 + seconds(1))
    assert await finish_job(db, job["job_id"], None, t0 + seconds(2)) == "gone"

    await end_match(db, m.session_id, m.a, "skip")
    t1 = await db_now(db)
    (delete,) = await claim(db, t1)
    assert delete["kind"] == "delete_room"
    assert await finish_job(db, delete["job_id"], None, t1) == "done"
    assert (await match_row(admin, m.session_id))["room_state"] == "deleted"
    assert await jobs(admin) == []


async def test_a_failing_create_room_is_retried_then_rolls_the_match_back(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    m = await new_match(db, admin)
    t0 = await db_now(db)
    (job,) = await claim(db, t0)
    assert await finish_job(db, job["job_id"], "503 unavailable", t0, max_attempts=3) == "retry"
    stored = (await jobs(admin))[0]
    assert (stored["attempts"], stored["leased_until"], stored["last_error"]) == (1, None, "503 unavailable")
    # 0.25 s with jitter (x0.5 .. x1.5): not due at once.
    assert t0 + seconds(0.125) <= stored["run_at"] <= t0 + seconds(0.375)
    assert await claim(db, t0) == []

    t1 = t0 + seconds(1)
    (job,) = await claim(db, t1)
    assert job["attempts"] == 1
    assert await finish_job(db, job["job_id"], "503 unavailable", t1, max_attempts=3) == "retry"
    stored = (await jobs(admin))[0]
    assert stored["attempts"] == 2
    assert t1 + seconds(0.25) <= stored["run_at"] <= t1 + seconds(0.75)
    assert (await match_row(admin, m.session_id))["ended_at"] is None
    assert await states(db, m.a, m.b) == ["connecting", "connecting"]

    t2 = t1 + seconds(1)
    (job,) = await claim(db, t2)
    assert await finish_job(db, job["job_id"], "503 unavailable", t2, max_attempts=3) == "failed"
    assert await jobs(admin) == []  # no delete_room for a room that never was
    row = await match_row(admin, m.session_id)
    assert (row["room_state"], row["ended_at"], row["end_action"], row["ended_by"]) == (
        "failed",
        t2,
        "failed",
        None,
    )
    assert await states(db, m.a, m.b) == ["waiting", "waiting"]
    for who in (m.a, m.b):
        assert (await identity_events(db, who))[-1] == (
            "match.ended",
            {"match_session_id": str(m.session_id), "action": "failed", "by": None},
        )
    # They may be matched again at once: a failed room is no skip.
    assert await match_waiting(db) == 1


async def test_a_create_room_failing_after_the_match_ended_ends_nothing_twice(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    m = await new_match(db, admin)
    t0 = await db_now(db)
    (create,) = await claim(db, t0)
    await end_match(db, m.session_id, m.a, "end")
    assert await finish_job(db, create["job_id"], "boom", t0, max_attempts=1) == "failed"
    row = await match_row(admin, m.session_id)
    assert (row["room_state"], row["end_action"], row["ended_by"]) == ("failed", "end", m.a)
    assert await states(db, m.a, m.b) == ["idle", "waiting"]
    assert [t for t, _ in await identity_events(db, m.b)] == ["match.found", "match.ended"]


async def test_a_failing_delete_room_is_dropped(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    m = await new_match(db, admin)
    t0 = await db_now(db)
    (create,) = await claim(db, t0)
    assert await finish_job(db, create["job_id"], None, t0) == "done"
    await end_match(db, m.session_id, m.a, "skip")
    t1 = await db_now(db)
    (delete,) = await claim(db, t1)
    assert delete["kind"] == "delete_room"
    assert await finish_job(db, delete["job_id"], "500", t1, max_attempts=2) == "retry"
    (delete,) = await claim(db, t1 + minutes(1))
    assert await finish_job(db, delete["job_id"], "500", t1 + minutes(1), max_attempts=2) == "failed"
    assert await jobs(admin) == []
    row = await match_row(admin, m.session_id)
    assert (row["room_state"], row["end_action"]) == ("created", "skip")
    assert await states(db, m.a, m.b) == ["waiting", "waiting"]
    assert [t for t, _ in await identity_events(db, m.a)] == ["match.found", "match.ended"]


async def test_finishing_an_unknown_job_is_gone(db: asyncpg.Connection) -> None:
    assert await finish_job(db, 987654321, None, await db_now(db)) == "gone"
    assert await finish_job(db, 987654321, "boom", await db_now(db)) == "gone"


# --- reconcile_livekit_rooms ---------------------------------------------------------------------


async def test_reconcile_returns_stray_rooms_and_ends_vanished_matches(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    ids = await queue(db, admin, 10)
    assert await match_waiting(db) == 5
    old, fresh, listed, pending, ended = [await open_match_of(admin, who) for who in ids[::2]]
    t = await db_now(db)
    for m, created in (
        (old, t - minutes(10)),
        (fresh, t - seconds(1)),
        (listed, t - minutes(10)),
        (ended, t - minutes(10)),
    ):
        (job,) = await jobs(admin, m.session_id)
        assert await finish_job(db, job["job_id"], None, created) == "done"
    await end_match(db, ended.session_id, ended.a, "skip")
    unknown = "hearth-match-00000000-0000-4000-8000-000000000000"

    stray = await reconcile(db, [listed.room, ended.room, unknown, "standup-room", "hearth-1234"], t)
    assert stray == {ended.room, unknown}

    # old's room is missing from the list: it vanished. fresh's was created too recently to be listed,
    # pending's is not created yet, listed's is there.
    row = await match_row(admin, old.session_id)
    assert (row["end_action"], row["ended_by"]) == ("vanished", None)
    assert await states(db, old.a, old.b) == ["waiting", "waiting"]
    for m in (fresh, listed, pending):
        assert (await match_row(admin, m.session_id))["ended_at"] is None
        assert await states(db, m.a, m.b) == ["connecting", "connecting"]
    assert (await match_row(admin, ended.session_id))["end_action"] == "skip"


async def test_reconcile_with_a_margin(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    m = await new_match(db, admin)
    t = await db_now(db)
    (job,) = await jobs(admin)
    assert await finish_job(db, job["job_id"], None, t - minutes(2)) == "done"
    rows = await db.fetch("SELECT * FROM hearth.reconcile_livekit_rooms($1, $2, $3)", [], t, minutes(3))
    assert rows == []
    assert (await match_row(admin, m.session_id))["ended_at"] is None
    rows = await db.fetch("SELECT * FROM hearth.reconcile_livekit_rooms($1, $2, $3)", [], t, minutes(1))
    assert rows == []
    assert (await match_row(admin, m.session_id))["end_action"] == "vanished"


# --- livekit_room --------------------------------------------------------------------------------


async def test_livekit_room_of_a_match_and_of_a_room(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    m = await new_match(db, admin)
    pa = await join(db, m.session_id, m.a)
    assert await db.fetchval("SELECT hearth.livekit_room($1, $2)", m.session_id, pa) == m.room
    room = await session(db)
    pr = await join(db, room, await identity(db))
    assert await db.fetchval("SELECT hearth.livekit_room($1, $2)", room, pr) == f"hearth-{room}"

    # A participant of another session, or one that left, is not let in.
    async with raises_sqlstate("HT403"):
        await db.fetchval("SELECT hearth.livekit_room($1, $2)", m.session_id, pr)
    async with raises_sqlstate("HT403"):
        await db.fetchval("SELECT hearth.livekit_room($1, $2)", room, pa)
    async with raises_sqlstate("HT404"):
        await db.fetchval("SELECT hearth.livekit_room($1, $2)", UNKNOWN, pa)


async def test_livekit_room_after_the_match_ended_is_ht410(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    m = await new_match(db, admin)
    pa = await join(db, m.session_id, m.a)
    pb = await join(db, m.session_id, m.b)
    await end_match(db, m.session_id, m.b, "skip")
    for p in (pa, pb):
        async with raises_sqlstate("HT410"):
            await db.fetchval("SELECT hearth.livekit_room($1, $2)", m.session_id, p)


# --- bad input -----------------------------------------------------------------------------------


@dataclass
class World:
    app: asyncpg.Connection
    admin: asyncpg.Connection
    ids: dict[str, uuid.UUID]


@pytest.fixture(scope="module")
async def world(pg: PgServer, template_db: str) -> AsyncIterator[World]:
    """One database for every bad-input case (they all fail, so nothing is written): a match with a
    present participant and a job."""
    name = f"hearth_test_mm_{uuid.uuid4().hex[:8]}"
    recreate_database(pg, name, template_db)
    app = await asyncpg.connect(pg.url(name))
    admin = await asyncpg.connect(pg.url(name))
    try:
        await app.execute("SET ROLE hearth_app")
        a = await identity(app, "a")
        b = await identity(app, "b")
        await enqueue(app, a)
        await enqueue(app, b)
        assert await match_waiting(app) == 1
        m = await open_match_of(admin, a)
        participant = await join(app, m.session_id, a)
        yield World(app, admin, {"identity": a, "match": m.session_id, "participant": participant})
    finally:
        await app.close()
        await admin.close()
        with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# (sql, args): each must fail with HT400. ":name" arguments are the world's ids.
BAD_INPUT: list[tuple[str, list[Any]]] = [
    ("SELECT hearth.identity_state($1)", [None]),
    ("SELECT hearth.enqueue_match($1)", [None]),
    ("SELECT hearth.leave_queue($1)", [None]),
    ("SELECT hearth.match_status($1)", [None]),
    ("SELECT hearth.match_waiting($1)", [None]),
    ("SELECT hearth.match_waiting($1)", [0]),
    ("SELECT hearth.match_waiting($1)", [10_001]),
    ("SELECT hearth.end_match($1, $2, 'skip')", [None, ":identity"]),
    ("SELECT hearth.end_match($1, $2, 'skip')", [":match", None]),
    ("SELECT hearth.end_match($1, $2, $3)", [":match", ":identity", None]),
    ("SELECT hearth.end_match($1, $2, $3)", [":match", ":identity", "quit"]),
    ("SELECT hearth.livekit_room($1, $2)", [None, ":participant"]),
    ("SELECT hearth.livekit_room($1, $2)", [":match", None]),
    ("SELECT hearth.record_livekit_event($1, 'room_started', 'r', NULL, now())", [None]),
    ("SELECT hearth.record_livekit_event($1, 'room_started', 'r', NULL, now())", [""]),
    ("SELECT hearth.record_livekit_event($1, 'room_started', 'r', NULL, now())", ["e" * 201]),
    ("SELECT hearth.record_livekit_event('EV_x', $1, 'r', NULL, now())", [None]),
    ("SELECT hearth.record_livekit_event('EV_x', $1, 'r', NULL, now())", [""]),
    ("SELECT hearth.record_livekit_event('EV_x', $1, 'r', NULL, now())", ["e" * 101]),
    ("SELECT hearth.record_livekit_event('EV_x', 'room_started', $1, NULL, now())", ["r" * 301]),
    ("SELECT hearth.record_livekit_event('EV_x', 'participant_joined', 'r', $1, now())", ["i" * 301]),
    ("SELECT hearth.record_livekit_participant_event($1, 'room_started', 'r', NULL, NULL, now())", [None]),
    ("SELECT hearth.record_livekit_participant_event('EV_x', $1, 'r', NULL, NULL, now())", [""]),
    (
        "SELECT hearth.record_livekit_participant_event('EV_x', 'participant_left', 'r', 'i', $1, now())",
        ["s" * 301],
    ),
    ("SELECT * FROM hearth.claim_livekit_jobs($1)", [None]),
    ("SELECT * FROM hearth.claim_livekit_jobs($1)", [0]),
    ("SELECT * FROM hearth.claim_livekit_jobs($1)", [1001]),
    ("SELECT * FROM hearth.claim_livekit_jobs(10, $1)", [None]),
    ("SELECT * FROM hearth.claim_livekit_jobs(10, $1)", [seconds(0)]),
    ("SELECT * FROM hearth.claim_livekit_jobs(10, $1)", [seconds(-30)]),
    ("SELECT * FROM hearth.claim_livekit_jobs(10, $1)", [minutes(61)]),
    ("SELECT * FROM hearth.claim_livekit_jobs(10, '30 seconds', $1)", [None]),
    ("SELECT hearth.finish_livekit_job($1)", [None]),
    ("SELECT hearth.finish_livekit_job(1, NULL, $1)", [None]),
    ("SELECT hearth.finish_livekit_job(1, NULL, $1)", [0]),
    ("SELECT hearth.finish_livekit_job(1, NULL, $1)", [101]),
    ("SELECT hearth.finish_livekit_job(1, NULL, 6, $1)", [None]),
    ("SELECT hearth.end_abandoned_matches($1)", [None]),
    ("SELECT hearth.end_abandoned_matches($1)", [seconds(0)]),
    ("SELECT hearth.end_abandoned_matches($1)", [seconds(-20)]),
    ("SELECT hearth.end_abandoned_matches($1)", [minutes(24 * 60 + 1)]),
    ("SELECT hearth.end_abandoned_matches('20 seconds', $1)", [None]),
    ("SELECT * FROM hearth.reconcile_livekit_rooms($1)", [None]),
    ("SELECT * FROM hearth.reconcile_livekit_rooms('{}', $1)", [None]),
    ("SELECT * FROM hearth.reconcile_livekit_rooms('{}', now(), $1)", [None]),
    ("SELECT * FROM hearth.reconcile_livekit_rooms('{}', now(), $1)", [seconds(-1)]),
]


def _case_id(case: tuple[str, list[Any]]) -> str:
    sql, args = case
    name = sql.split("hearth.", 1)[1].split("(", 1)[0]
    shown = ",".join("null" if a is None else str(a)[:12] for a in args)
    return f"{name}({shown})"


@pytest.mark.parametrize(("sql", "args"), BAD_INPUT, ids=[_case_id(c) for c in BAD_INPUT])
async def test_bad_input_is_ht400(world: World, sql: str, args: list[Any]) -> None:
    values = [world.ids[a[1:]] if isinstance(a, str) and a.startswith(":") else a for a in args]
    async with raises_sqlstate("HT400"):
        await world.app.fetch(sql, *values)


async def test_bad_input_changed_nothing(world: World) -> None:
    a = world.ids["identity"]
    assert await state(world.app, a) == "connecting"
    counts = await world.admin.fetchrow(
        """SELECT (SELECT count(*) FROM hearth_data.matches WHERE ended_at IS NULL) AS open_matches,
                  (SELECT count(*) FROM hearth_data.livekit_jobs WHERE leased_until IS NULL) AS unleased_jobs,
                  (SELECT count(*) FROM hearth_data.livekit_events) AS livekit_events"""
    )
    assert counts is not None
    assert dict(counts) == {"open_matches": 1, "unleased_jobs": 1, "livekit_events": 0}
