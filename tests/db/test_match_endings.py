"""Every way a match session ends finishes its match: both identities go idle (neither is waiting for a
call any more), match.ended reaches both, the room is deleted, and they may queue again. Before, a match
session ended by its last leave, a sweep, expiry or cleanup left both identities connecting forever."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

import asyncpg
import pytest

from tests.db.helpers import db_now, join, leave, minutes
from tests.db.test_matchmaking import (
    Match,
    enqueue,
    identity_events,
    jobs,
    leave_queue,
    match_row,
    new_match,
    states,
    status,
)


async def _join_both(db: asyncpg.Connection, m: Match, now: datetime) -> list[object]:
    return [await join(db, m.session_id, who, now=now) for who in (m.a, m.b)]


async def _by_leaving(db: asyncpg.Connection, admin: asyncpg.Connection, m: Match, t0: datetime) -> str:
    for pid in await _join_both(db, m, t0):
        assert await leave(db, pid, now=t0)  # type: ignore[arg-type]
    return "left"


async def _by_sweep(db: asyncpg.Connection, admin: asyncpg.Connection, m: Match, t0: datetime) -> str:
    await _join_both(db, m, t0)
    assert await db.fetchval("SELECT hearth.sweep_presence(NULL, $1)", t0 + minutes(2)) == 2
    return "left"


async def _by_expiry(db: asyncpg.Connection, admin: asyncpg.Connection, m: Match, t0: datetime) -> str:
    # Nobody ever joined (the clients crashed after match.found): the session expires after 6 hours.
    assert await db.fetchval("SELECT hearth.expire_sessions($1)", t0 + minutes(7 * 60)) == 1
    return "expired"


async def _by_cleanup_of_the_open_session(
    db: asyncpg.Connection, admin: asyncpg.Connection, m: Match, t0: datetime
) -> str:
    cleanup = "SELECT hearth.cleanup_inactive_sessions(NULL, 1000, $1)"
    assert await db.fetchval(cleanup, t0 + minutes(420)) == 1
    return "expired"


async def _by_cleanup_of_a_closed_session(
    db: asyncpg.Connection, admin: asyncpg.Connection, m: Match, t0: datetime
) -> str:
    # A session closed while its match stayed open (as revision 0003 left them): cleanup finishes it.
    close = "UPDATE hearth_data.sessions SET status = 'ended', closed_at = $2 WHERE session_id = $1"
    await admin.execute(close, m.session_id, t0)
    assert await db.fetchval("SELECT hearth.cleanup_inactive_sessions(NULL, 1000, $1)", t0) == 1
    return "expired"


Ending = Callable[[asyncpg.Connection, asyncpg.Connection, Match, datetime], Awaitable[str]]


@pytest.mark.parametrize(
    "ending",
    [_by_leaving, _by_sweep, _by_expiry, _by_cleanup_of_the_open_session, _by_cleanup_of_a_closed_session],
    ids=["last-leave", "sweep", "expiry", "cleanup-open", "cleanup-closed"],
)
async def test_every_way_a_match_session_ends_finishes_its_match(
    db: asyncpg.Connection, admin: asyncpg.Connection, ending: Ending
) -> None:
    m = await new_match(db, admin)
    t0 = await db_now(db)
    action = await ending(db, admin, m, t0)

    assert await states(db, m.a, m.b) == ["idle", "idle"]
    assert await status(db, m.a) == {"state": "idle"}
    for who in (m.a, m.b):
        assert (await identity_events(db, who))[-1] == (
            "match.ended",
            {"match_session_id": str(m.session_id), "action": action, "by": None},
        )
    assert [j["kind"] for j in await jobs(admin, m.session_id)] == ["create_room", "delete_room"]
    if await admin.fetchval("SELECT count(*) FROM hearth_data.matches WHERE session_id = $1", m.session_id):
        assert (await match_row(admin, m.session_id))["ended_at"] is not None
    # Free again: the queue calls answer, end_match says the match is over.
    assert await leave_queue(db, m.a) == "idle"
    assert await enqueue(db, m.b) == "waiting"
