"""Session history: the archive row cleanup_inactive_sessions writes in the transaction that deletes a
session, complete whichever job ran first; session_history, archived_sessions, archive_retention and
archive_messages."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from tests.conftest import raises_sqlstate
from tests.db.helpers import (
    app_connection,
    db_now,
    display,
    events,
    identity,
    join,
    leave,
    minutes,
    post,
    session,
    signal,
)

CLEANUP = "SELECT hearth.cleanup_inactive_sessions(NULL, 1000, $1)"


async def _history(conn: asyncpg.Connection, s: uuid.UUID) -> dict[str, Any]:
    row = await conn.fetchrow("SELECT * FROM hearth.session_history($1)", s)
    assert row is not None
    found = dict(row)
    for key in ("participants", "messages"):
        if found[key] is not None:
            found[key] = json.loads(found[key])
    return found


async def _set(admin: asyncpg.Connection, key: str, value: str) -> None:
    await admin.execute("SET ROLE hearth_admin")
    await admin.fetchval("SELECT hearth.set_setting($1, $2)", key, value)
    await admin.execute("RESET ROLE")


async def _publish(conn: asyncpg.Connection, s: uuid.UUID, kind: str, payload: dict[str, Any]) -> int:
    seq: int = await conn.fetchval("SELECT hearth.publish($1, $2, $3::jsonb)", s, kind, json.dumps(payload))
    return seq


async def _pending(admin: asyncpg.Connection) -> tuple[int, int]:
    row = await admin.fetchrow(
        """SELECT (SELECT count(*) FROM hearth_data.archive_pending_participants) AS participants,
                  (SELECT count(*) FROM hearth_data.archive_pending_messages) AS messages"""
    )
    assert row is not None
    return row["participants"], row["messages"]


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


class Reading:
    """A room where two named identities met: ann (reader) stayed, bob came a minute later and left early;
    two messages, a signal and an application event."""

    def __init__(self, s: uuid.UUID, ann: uuid.UUID, bob: uuid.UUID, ann_pid: uuid.UUID, bob_pid: uuid.UUID):
        self.s, self.ann, self.bob, self.ann_pid, self.bob_pid = s, ann, bob, ann_pid, bob_pid

    @classmethod
    async def create(cls, db: asyncpg.Connection, t0: datetime) -> Reading:
        s = await session(db, name="reading")
        ann, bob = await identity(db, "Ann"), await identity(db, "Bob")
        ann_pid = await join(db, s, ann, "reader", now=t0)
        bob_pid = await join(db, s, bob, now=t0 + minutes(1))
        await post(db, ann_pid, {"text": "hello"})
        await signal(db, ann_pid, bob_pid, "offer", {"sdp": "x"})
        await _publish(db, s, "app.card_drawn", {"card": "The Star"})
        await post(db, bob_pid, {"text": "bye"})
        await leave(db, bob_pid, now=t0 + minutes(5))
        return cls(s, ann, bob, ann_pid, bob_pid)


async def test_cleanup_archives_the_session_it_deletes(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    t0 = await db_now(db)
    r = await Reading.create(db, t0)
    created_at = await admin.fetchval(
        "SELECT created_at FROM hearth_data.sessions WHERE session_id = $1", r.s
    )
    async with raises_sqlstate("HT404"):
        await _history(db, r.s)  # not archived while it lives

    assert await db.fetchval(CLEANUP, t0 + minutes(66)) == 1
    history = await _history(db, r.s)
    participants = history.pop("participants")
    assert history == {
        "session_id": r.s,
        "kind": "room",
        "name": "reading",
        "created_at": created_at,
        "ended_at": t0 + minutes(66),
        "end_reason": "idle",
        "message_count": 3,  # two messages and the app event; not the signal
        "event_count": 8,  # 2 joins, 2 messages, signal, app event, leave, session.expired
        "messages": None,  # archive_messages is off by default
    }
    assert [{**p, "joined_at": _at(p["joined_at"]), "left_at": _at(p["left_at"])} for p in participants] == [
        {
            "participant_id": str(r.ann_pid),
            "identity_id": str(r.ann),
            "display_name": "Ann",
            "role": "reader",
            "joined_at": t0,
            # Still present when cleanup closed the session: leaves with it.
            "left_at": t0 + minutes(66),
            "leave_reason": "expired",
        },
        {
            "participant_id": str(r.bob_pid),
            "identity_id": str(r.bob),
            "display_name": "Bob",
            "role": "member",
            "joined_at": t0 + minutes(1),
            "left_at": t0 + minutes(5),
            "leave_reason": "left",
        },
    ]


async def test_the_archive_and_the_deletion_are_one_transaction(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    t0 = await db_now(db)
    r = await Reading.create(db, t0)
    transaction = db.transaction()
    await transaction.start()
    assert await db.fetchval(CLEANUP, t0 + minutes(66)) == 1
    assert (await _history(db, r.s))["session_id"] == r.s
    await transaction.rollback()
    async with raises_sqlstate("HT404"):
        await _history(db, r.s)
    assert await admin.fetchval("SELECT count(*) FROM hearth_data.sessions WHERE session_id = $1", r.s) == 1

    # The pg_cron job's procedure (a commit per batch) archives the same way.
    await admin.execute(
        "UPDATE hearth_data.sessions SET last_activity_at = $2 WHERE session_id = $1", r.s, t0 - minutes(90)
    )
    await admin.execute("CALL hearth_data.run_cleanup_inactive_sessions()")
    assert (await _history(db, r.s))["end_reason"] == "idle"


async def test_archive_messages_keeps_the_messages_as_clients_saw_them(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    await _set(admin, "archive_messages", "on")
    t0 = await db_now(db)
    r = await Reading.create(db, t0)
    frames = {e["seq"]: e for e in await events(db, r.s)}
    assert await db.fetchval(CLEANUP, t0 + minutes(66)) == 1
    messages = (await _history(db, r.s))["messages"]
    assert [(m["seq"], m["type"]) for m in messages] == [
        (3, "message"),
        (5, "app.card_drawn"),
        (6, "message"),
    ]
    for m in messages:
        stored = frames[m["seq"]]
        assert _at(m.pop("at")) == stored["created_at"]
        assert m == {"type": stored["type"], "seq": stored["seq"], **stored["payload"]}


async def test_a_room_of_anonymous_identities_cleaned_before_the_session(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    """cleanup_inactive_identities runs first and deletes both identities with their participants and
    messages; the session's archive still has their names, times, counts and (archive_messages on)
    messages."""
    await _set(admin, "archive_messages", "true")
    t0 = await db_now(db)
    s = await session(db, name="anonymous")
    ann, bob = await identity(db, "Ann"), await identity(db, "Bob")
    ann_pid, bob_pid = await join(db, s, ann, now=t0), await join(db, s, bob, now=t0)
    await post(db, ann_pid, {"text": "one"})
    await post(db, bob_pid, {"text": "two"})
    await _publish(db, s, "app.score", {"points": 3})
    await leave(db, ann_pid, now=t0 + minutes(1))
    await leave(db, bob_pid, now=t0 + minutes(2))
    expected_messages = [
        (e["seq"], e["type"]) for e in await events(db, s) if not e["type"].startswith("presence.")
    ]

    assert await db.fetchval("SELECT hearth.cleanup_inactive_identities(NULL, $1)", t0 + minutes(45)) == 2
    assert await admin.fetchval("SELECT count(*) FROM hearth_data.participants WHERE session_id = $1", s) == 0
    assert [e["type"] for e in await events(db, s)].count("message") == 0  # gone from the live stream
    assert await _pending(admin) == (2, 2)

    assert await db.fetchval(CLEANUP, t0 + minutes(65)) == 1
    history = await _history(db, s)
    assert sorted(
        (p["display_name"], p["identity_id"], _at(p["left_at"]), p["leave_reason"])
        for p in history["participants"]
    ) == [
        ("Ann", str(ann), t0 + minutes(1), "left"),
        ("Bob", str(bob), t0 + minutes(2), "left"),
    ]
    assert history["message_count"] == 3
    assert [(m["seq"], m["type"]) for m in history["messages"]] == expected_messages
    assert [m.get("body") for m in history["messages"]] == [{"text": "one"}, {"text": "two"}, None]
    assert await _pending(admin) == (0, 0)


async def test_identities_cleaned_first_with_archive_messages_off(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    t0 = await db_now(db)
    s = await session(db)
    pid = await join(db, s, await identity(db, "Cat"), now=t0)
    await post(db, pid, {"text": "gone for good"})
    await leave(db, pid, now=t0 + minutes(1))
    assert await db.fetchval("SELECT hearth.cleanup_inactive_identities(NULL, $1)", t0 + minutes(45)) == 1
    assert await _pending(admin) == (1, 0)
    assert await db.fetchval(CLEANUP, t0 + minutes(65)) == 1
    history = await _history(db, s)
    assert [p["display_name"] for p in history["participants"]] == ["Cat"]
    assert (history["message_count"], history["messages"]) == (1, None)


@pytest.mark.parametrize("archive_messages", [True, False])
async def test_a_session_older_than_event_retention(
    db: asyncpg.Connection, admin: asyncpg.Connection, archive_messages: bool
) -> None:
    """A long session: its first messages are pruned (event_retention, 1 hour) long before it is cleaned.
    With archive_messages on the archive still has them all; either way it counts them all."""
    await _set(admin, "archive_messages", str(archive_messages).lower())
    t0 = await db_now(db)
    s = await session(db, idle_timeout=minutes(180))
    pid = await join(db, s, await identity(db, "Dee"), now=t0)
    first = [await post(db, pid, {"n": n}) for n in range(3)]
    await _publish(db, s, "app.round", {"n": 1})
    await leave(db, await join(db, s, await identity(db)))  # events that are not messages
    assert await db.fetchval("SELECT hearth.prune_events(NULL, $1)", t0 + minutes(120)) >= 4
    assert await events(db, s) == []
    later = await post(db, pid, {"n": 3})
    assert await _pending(admin) == (0, 4 if archive_messages else 0)

    assert await db.fetchval(CLEANUP, t0 + minutes(185)) == 1
    history = await _history(db, s)
    assert history["message_count"] == 5
    if archive_messages:
        assert [m["seq"] for m in history["messages"]] == [*first, first[-1] + 1, later]
        assert [m["body"]["n"] if m["type"] == "message" else m["n"] for m in history["messages"]] == [
            0,
            1,
            2,
            1,
            3,
        ]
    else:
        assert history["messages"] is None
    assert await _pending(admin) == (0, 0)


async def test_archived_sessions_newest_first(db: asyncpg.Connection) -> None:
    t0 = await db_now(db)
    ids = []
    for n in range(3):
        s = await session(db, name=f"s{n}")
        ann = await identity(db, "Ann")
        pid = await join(db, s, ann, now=t0)
        await post(db, pid, {"n": n})
        await leave(db, pid, now=t0 + minutes(1))
        await join(db, s, ann, now=t0 + minutes(2))  # the same identity again: a second participant
        await join(db, s, await identity(db, "Bob"), now=t0 + minutes(2))
        assert await db.fetchval(CLEANUP, t0 + minutes(70 + n)) == 1
        ids.append(s)
    rows = await db.fetch("SELECT * FROM hearth.archived_sessions()")
    assert [r["session_id"] for r in rows] == ids[::-1]
    assert dict(rows[0]) == {
        "session_id": ids[2],
        "kind": "room",
        "name": "s2",
        "created_at": rows[0]["created_at"],
        "ended_at": t0 + minutes(72),
        "end_reason": "idle",
        "participant_count": 2,
        "message_count": 1,
    }
    since = await db.fetch("SELECT session_id FROM hearth.archived_sessions($1)", t0 + minutes(71))
    assert [r["session_id"] for r in since] == [ids[2], ids[1]]
    limited = await db.fetch("SELECT session_id FROM hearth.archived_sessions(NULL, 1)")
    assert [r["session_id"] for r in limited] == [ids[2]]


async def test_archive_retention(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    s, pid, _ = await display(db)
    assert await leave(db, pid)  # a display that left: its pairing session ended
    assert await db.fetchval("SELECT hearth.cleanup_inactive_sessions()") == 1
    history = await _history(db, s)
    assert (history["kind"], history["end_reason"]) == ("pairing", "empty")
    ended_at = history["ended_at"]

    # Kept for archive_retention (30 days) after it ended, then pruned.
    await db.fetchval("SELECT hearth.prune_events(NULL, $1)", ended_at + minutes(60 * 24 * 29))
    assert (await _history(db, s))["session_id"] == s
    await db.fetchval("SELECT hearth.prune_events(NULL, $1)", ended_at + minutes(60 * 24 * 31))
    assert await admin.fetchval("SELECT count(*) FROM hearth_data.session_archive") == 0
    async with raises_sqlstate("HT404"):
        await _history(db, s)


async def test_an_archive_past_retention_is_not_shown_before_it_is_pruned(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    s, pid, _ = await display(db)
    await leave(db, pid)
    assert await db.fetchval("SELECT hearth.cleanup_inactive_sessions()") == 1
    await _set(admin, "archive_retention", "1 hour")
    await admin.execute("UPDATE hearth_data.session_archive SET ended_at = ended_at - interval '2 hours'")
    async with raises_sqlstate("HT404"):
        await _history(db, s)
    assert await db.fetch("SELECT * FROM hearth.archived_sessions()") == []


async def test_no_archive(db: asyncpg.Connection) -> None:
    async with raises_sqlstate("HT404"):
        await _history(db, uuid.uuid4())
    async with raises_sqlstate("HT400"):
        await db.fetch("SELECT * FROM hearth.session_history(NULL)")


async def _wait_until_blocked(admin: asyncpg.Connection, pid: int) -> None:
    """Until backend `pid` waits for a lock (a guard against hanging, not a timing assertion)."""
    deadline = time.monotonic() + 30
    while not await admin.fetchval(
        "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
    ):
        assert time.monotonic() < deadline, "never blocked"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("first", ["prune_events", "cleanup"])
async def test_prune_racing_cleanup_loses_no_message(
    db: asyncpg.Connection, admin: asyncpg.Connection, db_url: str, first: str
) -> None:
    """prune_events and the session's cleanup at once, each holding the other up: the message they both
    touch is in the archive exactly once, and nothing is left behind in the pending tables."""
    await _set(admin, "archive_messages", "on")
    t0 = await db_now(db)
    s = await session(db, idle_timeout=minutes(90))
    pid = await join(db, s, await identity(db), now=t0)
    seqs = [await post(db, pid, {"n": n}) for n in range(3)]
    other = await app_connection(db_url)
    prune = "SELECT hearth.prune_events(NULL, $1)"
    try:
        holder, waiter = (db, other)
        first_call, second_call = (prune, CLEANUP) if first == "prune_events" else (CLEANUP, prune)
        transaction = holder.transaction()
        await transaction.start()
        await holder.fetchval(first_call, t0 + minutes(95))
        second = asyncio.ensure_future(waiter.fetchval(second_call, t0 + minutes(95)))
        await _wait_until_blocked(admin, waiter.get_server_pid())
        await transaction.commit()
        await asyncio.wait_for(second, 30)
    finally:
        await other.close()
    await db.fetchval(prune, t0 + minutes(95))  # sweeps whatever a race left behind
    history = await _history(db, s)
    assert [m["seq"] for m in history["messages"]] == seqs
    assert await _pending(admin) == (0, 0)
