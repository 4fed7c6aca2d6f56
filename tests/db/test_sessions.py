"""create_session, join_session, leave_session, check_session_expiry, expire_sessions, session_stats."""

from __future__ import annotations

import json
import re
import uuid

import asyncpg
import pytest

from tests.conftest import raises_sqlstate
from tests.db.helpers import (
    db_now,
    display,
    events,
    identity,
    join,
    last_seq,
    leave,
    member,
    minutes,
    paired,
    session,
    session_for_two,
    session_row,
    touch,
)

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


# --- create_session ------------------------------------------------------------------------------


async def test_create_session_defaults(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    row = await db.fetchrow("SELECT * FROM hearth.create_session()")
    assert row is not None
    assert list(row.keys()) == ["session_id", "code", "expires_at"]
    assert re.fullmatch(f"[{ALPHABET}]{{6}}", row["code"])
    assert row["expires_at"] is None
    stored = await session_row(admin, row["session_id"])
    assert stored is not None
    assert stored["kind"] == "room"
    assert stored["status"] == "waiting"
    assert stored["code"] == row["code"]
    assert stored["max_participants"] is None
    assert json.loads(stored["metadata"]) == {}
    # No own idle timeout: the session_idle_timeout setting (1 hour) applies.
    assert stored["idle_deadline"] - stored["last_activity_at"] == minutes(60)
    assert await events(db, row["session_id"]) == []


async def test_create_session_with_every_option(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    row = await db.fetchrow(
        "SELECT * FROM hearth.create_session('match', 'standup', 2, interval '5 minutes', interval '2 hours',"
        ' \'{"topic": "x"}\'::jsonb)'
    )
    assert row is not None
    stored = await session_row(admin, row["session_id"])
    assert stored is not None
    assert (stored["kind"], stored["name"], stored["max_participants"]) == ("match", "standup", 2)
    assert stored["idle_timeout"] == minutes(5)
    assert json.loads(stored["metadata"]) == {"topic": "x"}
    assert row["expires_at"] == stored["created_at"] + minutes(120)
    assert stored["expires_at"] == row["expires_at"]
    assert stored["idle_deadline"] == stored["last_activity_at"] + minutes(5)


@pytest.mark.parametrize("kind", ["room", "pairing", "match"])
async def test_create_session_kinds(db: asyncpg.Connection, admin: asyncpg.Connection, kind: str) -> None:
    stored = await session_row(admin, await session(db, kind))
    assert stored is not None
    assert stored["kind"] == kind


async def test_session_codes_are_unique_and_avoid_look_alikes(db: asyncpg.Connection) -> None:
    codes = [
        r["code"]
        for r in await db.fetch("SELECT (hearth.create_session()).code FROM generate_series(1, 300)")
    ]
    assert len(set(codes)) == 300
    assert all(re.fullmatch(f"[{ALPHABET}]{{6}}", c) for c in codes)
    # 1,800 symbols drawn uniformly: every one of the 31 shows up, and nothing else.
    assert set("".join(codes)) == set(ALPHABET)


# --- join_session --------------------------------------------------------------------------------


async def test_join_returns_participant_and_emits_presence_join(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    s = await session(db)
    alice = await identity(db, "alice")
    t0 = await db_now(db)
    pid = await join(db, s, alice, "host", t0)
    assert isinstance(pid, uuid.UUID)
    found = await events(db, s)
    assert [(e["seq"], e["type"]) for e in found] == [(1, "presence.join")]
    assert found[0]["payload"] == {
        "participant_id": str(pid),
        "identity_id": str(alice),
        "role": "host",
        "display_name": "alice",
    }
    assert found[0]["created_at"] == t0
    participant = await admin.fetchrow(
        "SELECT * FROM hearth_data.participants WHERE participant_id = $1", pid
    )
    assert participant is not None
    assert (participant["session_id"], participant["identity_id"], participant["role"]) == (s, alice, "host")
    assert participant["joined_at"] == t0 and participant["left_at"] is None
    seen = await admin.fetchval(
        "SELECT last_seen_at FROM hearth_data.presence WHERE participant_id = $1", pid
    )
    assert seen == t0


async def test_join_default_role_is_member(db: asyncpg.Connection) -> None:
    s = await session(db)
    await db.fetchval("SELECT hearth.join_session($1, $2)", s, await identity(db))
    assert (await events(db, s))[0]["payload"]["role"] == "member"


async def test_join_twice_while_present_returns_same_participant(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    s = await session(db)
    alice = await identity(db, "alice")
    t0 = await db_now(db)
    first = await join(db, s, alice, now=t0)
    again = await join(db, s, alice, now=t0 + minutes(1))
    assert again == first
    # No second presence.join, and the rejoin counted as a heartbeat.
    assert [e["type"] for e in await events(db, s)] == ["presence.join"]
    seen = await admin.fetchval(
        "SELECT last_seen_at FROM hearth_data.presence WHERE participant_id = $1", first
    )
    assert seen == t0 + minutes(1)
    assert await admin.fetchval("SELECT count(*) FROM hearth_data.participants WHERE session_id = $1", s) == 1


async def test_join_after_leaving_is_a_new_participant(db: asyncpg.Connection) -> None:
    s = await session(db)
    alice = await identity(db)
    first = await join(db, s, alice)
    assert await leave(db, first)
    second = await join(db, s, alice)
    assert second != first
    assert [e["type"] for e in await events(db, s)] == ["presence.join", "presence.leave", "presence.join"]


async def test_join_full_session_is_ht409(db: asyncpg.Connection) -> None:
    s = await session(db, max_participants=2)
    alice, bob, carol = await identity(db), await identity(db), await identity(db)
    pa = await join(db, s, alice)
    await join(db, s, bob)
    async with raises_sqlstate("HT409"):
        await join(db, s, carol)
    # Someone already present may still "join" again (same participant), full or not.
    assert await join(db, s, alice) == pa
    # A free place can be taken.
    assert await leave(db, pa)
    assert await join(db, s, carol) is not None
    async with raises_sqlstate("HT409"):
        await join(db, s, alice)


async def test_join_unknown_session_or_identity_is_ht404(db: asyncpg.Connection) -> None:
    s = await session(db)
    async with raises_sqlstate("HT404"):
        await join(db, uuid.uuid4(), await identity(db))
    async with raises_sqlstate("HT404"):
        await join(db, s, uuid.uuid4())


async def test_join_expired_or_due_session_is_ht410(db: asyncpg.Connection) -> None:
    s = await session(db)
    alice = await identity(db)
    t0 = await db_now(db)
    # Due (idle past its timeout) but not yet marked: joining at that time is refused already.
    async with raises_sqlstate("HT410"):
        await join(db, s, alice, now=t0 + minutes(61))
    assert await db.fetchval("SELECT hearth.expire_sessions($1)", t0 + minutes(61)) == 1
    # Marked expired: refused at any time.
    async with raises_sqlstate("HT410"):
        await join(db, s, alice, now=t0)
    async with raises_sqlstate("HT410"):
        await join(db, s, alice)


async def test_join_ended_session_is_ht410(db: asyncpg.Connection) -> None:
    s, (first, second) = await session_for_two(db, "match")
    assert await leave(db, await join(db, s, first))
    async with raises_sqlstate("HT410"):
        await join(db, s, second)


async def test_join_ttl_session_is_refused_after_its_ttl(db: asyncpg.Connection) -> None:
    s = await session(db, ttl=minutes(5))
    t0 = await db_now(db)
    assert await join(db, s, await identity(db), now=t0 + minutes(4)) is not None
    async with raises_sqlstate("HT410"):
        await join(db, s, await identity(db), now=t0 + minutes(6))


@pytest.mark.parametrize(
    ("kind", "status_after_join"), [("room", "active"), ("match", "active")]
)
async def test_session_becomes_active_at_first_join(
    db: asyncpg.Connection, admin: asyncpg.Connection, kind: str, status_after_join: str
) -> None:
    s, identities = await session_for_two(db, kind)
    stored = await session_row(admin, s)
    assert stored is not None and stored["status"] == "waiting"
    await join(db, s, identities[0])
    stored = await session_row(admin, s)
    assert stored is not None and stored["status"] == status_after_join


async def test_a_pairing_session_is_entered_only_by_its_display_and_pair_controller(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    """The audit's pairing_bypass.py: join_session (and session_by_code, the join-by-code path) took a
    waiting display's session, uncounted, without session.paired; the real controller then got HT409."""
    s, _, code = await display(db)
    async with raises_sqlstate("HT403"):
        await member(db, s)
    async with raises_sqlstate("HT404"):
        await db.fetchval("SELECT hearth.session_by_code($1)", code)
    async with raises_sqlstate("HT404"):
        await db.fetch("SELECT * FROM hearth.join_by_code($1, hearth.create_identity())", code)
    stored = await session_row(admin, s)
    assert stored is not None and stored["status"] == "waiting"
    assert await db.fetchrow("SELECT * FROM hearth.pair_controller($1, hearth.create_identity())", code)


async def test_join_is_session_activity(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    s = await session(db)
    t0 = await db_now(db)
    await member(db, s, now=t0 + minutes(30))
    stored = await session_row(admin, s)
    assert stored is not None and stored["last_activity_at"] == t0 + minutes(30)
    assert not await db.fetchval("SELECT hearth.check_session_expiry($1, $2)", s, t0 + minutes(61))
    assert await db.fetchval("SELECT hearth.check_session_expiry($1, $2)", s, t0 + minutes(91))


# --- leave_session -------------------------------------------------------------------------------


async def test_leave_then_leave_again(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    s = await session(db)
    pid = await member(db, s)
    t0 = await db_now(db)
    assert await leave(db, pid, now=t0) is True
    assert await leave(db, pid, now=t0) is False
    found = await events(db, s)
    assert [e["type"] for e in found] == ["presence.join", "presence.leave"]
    assert found[1]["payload"] == {"participant_id": str(pid), "reason": "left"}
    participant = await admin.fetchrow(
        "SELECT * FROM hearth_data.participants WHERE participant_id = $1", pid
    )
    assert participant is not None
    assert (participant["left_at"], participant["leave_reason"]) == (t0, "left")
    assert (
        await admin.fetchval("SELECT count(*) FROM hearth_data.presence WHERE participant_id = $1", pid) == 0
    )


async def test_leave_default_reason_and_given_reason(db: asyncpg.Connection) -> None:
    s = await session(db)
    p1, p2 = await member(db, s), await member(db, s)
    assert await db.fetchval("SELECT hearth.leave_session($1)", p1)
    assert await leave(db, p2, "timeout")
    leaves = [e["payload"] for e in await events(db, s) if e["type"] == "presence.leave"]
    assert leaves == [
        {"participant_id": str(p1), "reason": "left"},
        {"participant_id": str(p2), "reason": "timeout"},
    ]


async def test_leave_unknown_participant_is_ht404(db: asyncpg.Connection) -> None:
    async with raises_sqlstate("HT404"):
        await leave(db, uuid.uuid4())


@pytest.mark.parametrize("kind", ["pairing", "match"])
async def test_last_leaving_a_pairing_or_match_session_ends_it(
    db: asyncpg.Connection, admin: asyncpg.Connection, kind: str
) -> None:
    if kind == "pairing":
        s, (p1, p2) = await paired(db)
    else:
        s, identities = await session_for_two(db, kind)
        p1, p2 = await join(db, s, identities[0]), await join(db, s, identities[1])
    t0 = await db_now(db)
    assert await leave(db, p1, now=t0)
    stored = await session_row(admin, s)
    assert stored is not None and stored["status"] in ("waiting", "active")
    assert await leave(db, p2, now=t0)
    stored = await session_row(admin, s)
    assert stored is not None
    assert (stored["status"], stored["closed_at"], stored["close_reason"]) == ("ended", t0, "empty")
    found = await events(db, s)
    assert [e["type"] for e in found][-3:] == ["presence.leave", "presence.leave", "session.ended"]
    assert found[-1]["payload"] == {"reason": "empty"}
    assert await db.fetchval("SELECT hearth.check_session_expiry($1, $2)", s, t0)


async def test_last_leaving_a_room_does_not_end_it(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    s = await session(db)
    assert await leave(db, await member(db, s))
    stored = await session_row(admin, s)
    assert stored is not None and stored["status"] == "active"
    assert "session.ended" not in [e["type"] for e in await events(db, s)]
    # Others can still join the empty room.
    assert await member(db, s) is not None


async def test_leave_after_expiry_returns_false(db: asyncpg.Connection) -> None:
    s = await session(db)
    pid = await member(db, s)
    t0 = await db_now(db)
    await db.fetchval("SELECT hearth.expire_sessions($1)", t0 + minutes(61))
    before = await last_seq(db, s)
    assert await leave(db, pid) is False
    assert await last_seq(db, s) == before


# --- check_session_expiry ------------------------------------------------------------------------


async def test_check_session_expiry_idle(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    s = await session(db)
    t0 = await db_now(db)
    await member(db, s, now=t0)
    check = "SELECT hearth.check_session_expiry($1, $2)"
    assert await db.fetchval("SELECT hearth.check_session_expiry($1)", s) is False
    assert await db.fetchval(check, s, t0 + minutes(59)) is False
    assert await db.fetchval(check, s, t0 + minutes(61)) is True
    # Read-only: asking changed nothing.
    stored = await session_row(admin, s)
    assert stored is not None and stored["status"] == "active"
    assert [e["type"] for e in await events(db, s)] == ["presence.join"]


async def test_check_session_expiry_own_idle_timeout(db: asyncpg.Connection) -> None:
    s = await session(db, idle_timeout=minutes(5))
    t0 = await db_now(db)
    await member(db, s, now=t0)
    assert await db.fetchval("SELECT hearth.check_session_expiry($1, $2)", s, t0 + minutes(4)) is False
    assert await db.fetchval("SELECT hearth.check_session_expiry($1, $2)", s, t0 + minutes(6)) is True


async def test_check_session_expiry_ttl(db: asyncpg.Connection) -> None:
    s = await session(db, ttl=minutes(5))
    t0 = await db_now(db)
    pid = await member(db, s, now=t0)
    # Busy (heartbeats) but past its TTL.
    await touch(db, [pid], t0 + minutes(5))
    assert await db.fetchval("SELECT hearth.check_session_expiry($1, $2)", s, t0 + minutes(4)) is False
    assert await db.fetchval("SELECT hearth.check_session_expiry($1, $2)", s, t0 + minutes(6)) is True


async def test_check_session_expiry_closed_sessions(db: asyncpg.Connection) -> None:
    ended, display_pid, _ = await display(db)
    assert await leave(db, display_pid)
    expired = await session(db)
    t0 = await db_now(db)
    await db.fetchval("SELECT hearth.expire_sessions($1)", t0 + minutes(61))
    # Closed is closed, whatever p_now says.
    for s in (ended, expired):
        assert await db.fetchval("SELECT hearth.check_session_expiry($1, $2)", s, t0 - minutes(60)) is True


async def test_check_session_expiry_unknown_is_ht404(db: asyncpg.Connection) -> None:
    async with raises_sqlstate("HT404"):
        await db.fetchval("SELECT hearth.check_session_expiry($1)", uuid.uuid4())


# --- expire_sessions -----------------------------------------------------------------------------


async def test_expire_idle_session(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    s = await session(db)
    t0 = await db_now(db)
    p1 = await member(db, s, now=t0)
    p2 = await member(db, s, now=t0)
    lively = await session(db)
    await member(db, lively, now=t0 + minutes(30))
    expire = "SELECT hearth.expire_sessions($1)"

    assert await db.fetchval(expire, t0 + minutes(59)) == 0
    assert await db.fetchval(expire, t0 + minutes(61)) == 1
    assert await db.fetchval(expire, t0 + minutes(61)) == 0  # done once

    found = await events(db, s, after=2)
    assert [e["type"] for e in found] == ["presence.leave", "presence.leave", "session.expired"]
    assert {e["payload"]["participant_id"] for e in found[:2]} == {str(p1), str(p2)}
    assert all(e["payload"]["reason"] == "expired" for e in found[:2])
    assert found[2]["payload"] == {"reason": "idle"}
    assert [e["seq"] for e in found] == [3, 4, 5]
    stored = await session_row(admin, s)
    assert stored is not None
    assert (stored["status"], stored["closed_at"], stored["close_reason"]) == (
        "expired",
        t0 + minutes(61),
        "idle",
    )
    assert await admin.fetchval("SELECT count(*) FROM hearth_data.presence WHERE session_id = $1", s) == 0
    reasons = await admin.fetch(
        "SELECT leave_reason, left_at FROM hearth_data.participants WHERE session_id = $1", s
    )
    assert {(r["leave_reason"], r["left_at"]) for r in reasons} == {("expired", t0 + minutes(61))}

    stored = await session_row(admin, lively)
    assert stored is not None and stored["status"] == "active"
    assert await db.fetchval(expire, t0 + minutes(91)) == 1


async def test_expire_by_ttl(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    s = await session(db, ttl=minutes(10))
    t0 = await db_now(db)
    pid = await member(db, s, now=t0)
    await touch(db, [pid], t0 + minutes(9))
    assert await db.fetchval("SELECT hearth.expire_sessions($1)", t0 + minutes(9)) == 0
    assert await db.fetchval("SELECT hearth.expire_sessions($1)", t0 + minutes(11)) == 1
    found = await events(db, s, after=1)
    assert [(e["type"], e["payload"]["reason"]) for e in found] == [
        ("presence.leave", "expired"),
        ("session.expired", "ttl"),
    ]
    stored = await session_row(admin, s)
    assert stored is not None and (stored["status"], stored["close_reason"]) == ("expired", "ttl")


async def test_expire_waiting_pairing_session_is_a_pairing_timeout(db: asyncpg.Connection) -> None:
    s, display_pid, _ = await display(db, ttl=minutes(10))
    t0 = await db_now(db)
    await touch(db, [display_pid], t0 + minutes(9))
    assert await db.fetchval("SELECT hearth.expire_sessions($1)", t0 + minutes(11)) == 1
    found = await events(db, s)
    assert found[-1]["type"] == "session.expired"
    assert found[-1]["payload"] == {"reason": "pairing_timeout"}


async def test_expire_skips_sessions_locked_by_others(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    s = await session(db)
    t0 = await db_now(db)
    async with admin.transaction():
        await admin.execute("SELECT FROM hearth_data.sessions WHERE session_id = $1 FOR UPDATE", s)
        assert await db.fetchval("SELECT hearth.expire_sessions($1)", t0 + minutes(61)) == 0
    assert await db.fetchval("SELECT hearth.expire_sessions($1)", t0 + minutes(61)) == 1


# --- session_stats -------------------------------------------------------------------------------


async def test_session_stats(db: asyncpg.Connection) -> None:
    t0 = await db_now(db)
    stats = "SELECT * FROM hearth.session_stats($1)"
    empty = await db.fetchrow(stats, t0)
    assert empty is not None and tuple(empty) == (0, 0, 0, 0, 0)

    active = await session(db)
    online = await member(db, active, now=t0)
    await session(db)  # waiting: nobody joined
    short = await session(db, idle_timeout=minutes(1))  # expired below
    await member(db, short, now=t0)
    _, display_pid, _ = await display(db)  # ended below
    assert await leave(db, display_pid)
    due = await session(db, idle_timeout=minutes(5))  # open, but due at t0 + 10 min
    await member(db, due, now=t0)
    assert await db.fetchval("SELECT hearth.expire_sessions($1)", t0 + minutes(2)) == 1

    row = await db.fetchrow(stats, t0)
    assert row is not None
    assert list(row.keys()) == [
        "total_sessions",
        "active_sessions",
        "waiting_sessions",
        "inactive_sessions",
        "online_participants",
    ]
    # At t0: active + due are active, one waiting, expired + ended inactive; online: active's and due's.
    assert tuple(row) == (5, 2, 1, 2, 2)

    await touch(db, [online], t0 + minutes(9) + minutes(0.5))
    later = await db.fetchrow(stats, t0 + minutes(10))
    assert later is not None
    # At t0 + 10 min: `due` is past its idle timeout; only the touched participant is still heard from.
    assert tuple(later) == (5, 1, 1, 3, 1)
    default_now = await db.fetchrow("SELECT * FROM hearth.session_stats()")
    assert default_now is not None and default_now["total_sessions"] == 5


async def test_a_leave_after_the_idle_deadline_does_not_revive_the_session(db: asyncpg.Connection) -> None:
    """The audit's leave_revives.py: a deliberate leave counts as activity, but like touch and join it
    must not move the deadline of a session already due, or expire_sessions would never expire it."""
    s = await session(db, idle_timeout=minutes(1))
    t0 = await db_now(db)
    first = await member(db, s, now=t0)
    await member(db, s, now=t0)  # still present: the leave does not end the session
    later = t0 + minutes(3)
    assert await db.fetchval("SELECT hearth.check_session_expiry($1, $2)", s, later) is True
    assert await leave(db, first, now=later)
    assert await db.fetchval("SELECT hearth.check_session_expiry($1, $2)", s, later) is True
    assert await db.fetchval("SELECT hearth.expire_sessions($1)", later) == 1
