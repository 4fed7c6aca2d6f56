"""create_identity and cleanup_inactive_identities."""

from __future__ import annotations

import uuid

import asyncpg

from tests.db.helpers import (
    db_now,
    display,
    events,
    identity,
    join,
    last_seq,
    leave,
    minutes,
    post,
    session,
    session_row,
    touch,
)

CLEANUP = "SELECT hearth.cleanup_inactive_identities(NULL, $1)"


async def _exists(admin: asyncpg.Connection, identity_id: uuid.UUID) -> bool:
    found: bool = await admin.fetchval(
        "SELECT EXISTS (SELECT FROM hearth_data.identities WHERE identity_id = $1)", identity_id
    )
    return found


# --- create_identity -----------------------------------------------------------------------------


async def test_create_anonymous_identity(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    a = await identity(db, "alice")
    b = await identity(db, "alice")
    unnamed = await db.fetchval("SELECT hearth.create_identity()")
    assert len({a, b, unnamed}) == 3
    row = await admin.fetchrow("SELECT * FROM hearth_data.identities WHERE identity_id = $1", a)
    assert row is not None
    assert (row["display_name"], row["external_id"]) == ("alice", None)
    row = await admin.fetchrow("SELECT * FROM hearth_data.identities WHERE identity_id = $1", unnamed)
    assert row is not None and row["display_name"] is None


async def test_same_external_id_returns_same_identity(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    first = await identity(db, "Alice", "auth|42")
    assert await identity(db, None, "auth|42") == first
    name = await admin.fetchval(
        "SELECT display_name FROM hearth_data.identities WHERE identity_id = $1", first
    )
    assert name == "Alice"  # no name given: the old one stays
    assert await identity(db, "Al", "auth|42") == first
    name = await admin.fetchval(
        "SELECT display_name FROM hearth_data.identities WHERE identity_id = $1", first
    )
    assert name == "Al"
    other = await identity(db, "Alice", "auth|43")
    assert other != first
    assert await admin.fetchval("SELECT count(*) FROM hearth_data.identities") == 2


async def test_new_identity_has_an_empty_stream(db: asyncpg.Connection) -> None:
    assert await events(db, await identity(db)) == []


# --- cleanup_inactive_identities -----------------------------------------------------------------


async def test_cleanup_deletes_a_silent_anonymous_identity_with_what_it_owns(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    t0 = await db_now(db)
    s = await session(db)
    ghost = await identity(db, "ghost")
    keeper = await identity(db, "keeper")
    p_ghost = await join(db, s, ghost, now=t0)
    p_keeper = await join(db, s, keeper, now=t0)
    await post(db, p_ghost, {"text": "from the ghost"})
    await post(db, p_keeper, {"text": "from the keeper"})
    await post(db, p_ghost, {"text": "again"})
    # The keeper keeps heartbeating; the ghost falls silent at t0.
    for i in range(1, 63):
        await touch(db, [p_keeper], t0 + minutes(i / 2))
    before = await last_seq(db, s)

    assert await db.fetchval(CLEANUP, t0 + minutes(29)) == 0
    assert await db.fetchval(CLEANUP, t0 + minutes(31)) == 1

    assert not await _exists(admin, ghost)
    assert await _exists(admin, keeper)
    assert (
        await admin.fetchval("SELECT count(*) FROM hearth_data.participants WHERE identity_id = $1", ghost)
        == 0
    )
    assert (
        await admin.fetchval("SELECT count(*) FROM hearth_data.presence WHERE participant_id = $1", p_ghost)
        == 0
    )
    found = await events(db, s)
    # It left first (reason inactive); its messages are gone, the keeper's stays.
    assert found[-1]["seq"] == before + 1
    assert (found[-1]["type"], found[-1]["payload"]) == (
        "presence.leave",
        {"participant_id": str(p_ghost), "reason": "inactive"},
    )
    messages = [e["payload"] for e in found if e["type"] == "message"]
    assert messages == [{"participant_id": str(p_keeper), "body": {"text": "from the keeper"}}]
    # The session carries on with the keeper.
    stored = await session_row(admin, s)
    assert stored is not None and stored["status"] == "active"
    assert await db.fetchval(CLEANUP, t0 + minutes(31)) == 0


async def test_cleanup_leaves_identities_with_recent_activity(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    t0 = await db_now(db)
    s = await session(db, idle_timeout=minutes(600))
    idle = await identity(db, "never joined anything")
    heartbeating = await identity(db, "heard from at +29 min")
    p_heartbeating = await join(db, s, heartbeating, now=t0)
    await touch(db, [p_heartbeating], t0 + minutes(29))
    departed = await identity(db, "left at +40 min")
    p_departed = await join(db, s, departed, now=t0 + minutes(35))
    assert await leave(db, p_departed, now=t0 + minutes(40))

    assert await db.fetchval(CLEANUP, t0 + minutes(31)) == 1
    assert not await _exists(admin, idle)
    # The heartbeat at +29 min counts until +59 min.
    assert await db.fetchval(CLEANUP, t0 + minutes(58)) == 0
    assert await db.fetchval(CLEANUP, t0 + minutes(61)) == 1
    assert not await _exists(admin, heartbeating)
    # A participation that ended at +40 min counts until +70 min.
    assert await _exists(admin, departed)
    assert await db.fetchval(CLEANUP, t0 + minutes(69)) == 0
    assert await db.fetchval(CLEANUP, t0 + minutes(71)) == 1
    assert not await _exists(admin, departed)


async def test_cleanup_never_deletes_identities_with_an_external_id(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    t0 = await db_now(db)
    s = await session(db)
    known = await identity(db, "known", "sso|1")
    pid = await join(db, s, known, now=t0)
    await post(db, pid, {"text": "kept"})
    assert await db.fetchval(CLEANUP, t0 + minutes(60 * 24 * 3650)) == 0
    assert await _exists(admin, known)
    left_at = await admin.fetchval(
        "SELECT left_at FROM hearth_data.participants WHERE participant_id = $1", pid
    )
    assert left_at is None
    assert [e["type"] for e in await events(db, s)] == ["presence.join", "message"]


async def test_cleanup_with_explicit_max_idle(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    t0 = await db_now(db)
    a = await identity(db)
    cleanup = "SELECT hearth.cleanup_inactive_identities($1, $2)"
    assert await db.fetchval(cleanup, minutes(10), t0 + minutes(9)) == 0
    assert await db.fetchval(cleanup, minutes(10), t0 + minutes(11)) == 1
    assert not await _exists(admin, a)
    assert await db.fetchval("SELECT hearth.cleanup_inactive_identities()") == 0


async def test_cleanup_of_the_last_one_in_a_pairing_session_ends_it(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    t0 = await db_now(db)
    s, _, _ = await display(db, ttl=minutes(600))
    assert await db.fetchval(CLEANUP, t0 + minutes(31)) == 1
    assert [e["type"] for e in await events(db, s)] == ["presence.join", "presence.leave", "session.ended"]
    stored = await session_row(admin, s)
    assert stored is not None and stored["status"] == "ended"


async def test_cleanup_deletes_the_identity_stream(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    t0 = await db_now(db)
    a = await identity(db)
    await admin.execute(
        "SELECT hearth_data.emit_event('identity', $1, 'match.found', '{\"peer_identity_id\": null}', $2)",
        a,
        t0,
    )
    assert [e["type"] for e in await events(db, a)] == ["match.found"]
    assert await db.fetchval(CLEANUP, t0 + minutes(31)) == 1
    assert await admin.fetchval("SELECT count(*) FROM hearth_data.events WHERE stream_id = $1", a) == 0


async def test_cleanup_skips_identities_in_a_busy_session(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    t0 = await db_now(db)
    s = await session(db)
    ghost = await identity(db)
    await join(db, s, ghost, now=t0)
    async with admin.transaction():
        await admin.execute("SELECT FROM hearth_data.sessions WHERE session_id = $1 FOR UPDATE", s)
        assert await db.fetchval(CLEANUP, t0 + minutes(31)) == 0
    assert await _exists(admin, ghost)
    assert await db.fetchval(CLEANUP, t0 + minutes(31)) == 1


async def test_identity_for_user_creates_once_and_says_so(db: asyncpg.Connection) -> None:
    first = await db.fetchrow("SELECT * FROM hearth.identity_for_user('app-user-7', 'Ann')")
    again = await db.fetchrow("SELECT * FROM hearth.identity_for_user('app-user-7')")
    renamed = await db.fetchrow("SELECT * FROM hearth.identity_for_user('app-user-7', 'Ann B.')")
    assert first is not None and again is not None and renamed is not None
    assert (first["created"], again["created"], renamed["created"]) == (True, False, False)
    assert first["identity_id"] == again["identity_id"] == renamed["identity_id"]
    # The same user as create_identity's external id.
    assert await db.fetchval("SELECT hearth.create_identity(NULL, 'app-user-7')") == first["identity_id"]
