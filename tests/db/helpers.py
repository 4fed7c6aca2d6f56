"""Shared helpers for the SQL API tests: short wrappers over hearth.* calls, and a doorbell collector.

Times: tests read the database's clock once (`db_now`) and pass `p_now` values relative to it, so that
"61 minutes later" needs no sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg

CHANNEL = "hearth_events"


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


async def db_now(conn: asyncpg.Connection) -> datetime:
    value: datetime = await conn.fetchval("SELECT now()")
    return value


async def identity(
    conn: asyncpg.Connection, name: str | None = None, external_id: str | None = None
) -> uuid.UUID:
    value: uuid.UUID = await conn.fetchval("SELECT hearth.create_identity($1, $2)", name, external_id)
    return value


async def session(
    conn: asyncpg.Connection,
    kind: str = "room",
    *,
    max_participants: int | None = None,
    idle_timeout: timedelta | None = None,
    ttl: timedelta | None = None,
    name: str | None = None,
    metadata: str = "{}",
) -> uuid.UUID:
    value: uuid.UUID = await conn.fetchval(
        "SELECT session_id FROM hearth.create_session($1, $2, $3, $4, $5, $6::jsonb)",
        kind,
        name,
        max_participants,
        idle_timeout,
        ttl,
        metadata,
    )
    return value


async def session_for_two(conn: asyncpg.Connection, kind: str) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A session of `kind` that two new identities may join (a match session names its two identities
    in its metadata, as hearth_data.create_match does)."""
    identities = [await identity(conn), await identity(conn)]
    metadata = json.dumps({"identities": [str(i) for i in identities]} if kind == "match" else {})
    return await session(conn, kind, metadata=metadata), identities


async def display(
    conn: asyncpg.Connection, ttl: timedelta | None = None
) -> tuple[uuid.UUID, uuid.UUID, str]:
    """A waiting display (register_display, a new identity): its pairing session, participant and code.
    A pairing session is entered only this way and by pair_controller."""
    row = await conn.fetchrow("SELECT * FROM hearth.register_display(hearth.create_identity(), $1)", ttl)
    assert row is not None
    return row["session_id"], row["participant_id"], row["code"]


async def paired(conn: asyncpg.Connection) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A display and a controller paired: the session and their two participants."""
    s, display_pid, code = await display(conn)
    row = await conn.fetchrow("SELECT * FROM hearth.pair_controller($1, hearth.create_identity())", code)
    assert row is not None
    return s, [display_pid, row["participant_id"]]


async def join(
    conn: asyncpg.Connection,
    session_id: uuid.UUID,
    identity_id: uuid.UUID,
    role: str = "member",
    now: datetime | None = None,
) -> uuid.UUID:
    if now is None:
        value: uuid.UUID = await conn.fetchval(
            "SELECT hearth.join_session($1, $2, $3)", session_id, identity_id, role
        )
    else:
        value = await conn.fetchval(
            "SELECT hearth.join_session($1, $2, $3, $4)", session_id, identity_id, role, now
        )
    return value


async def member(
    conn: asyncpg.Connection, session_id: uuid.UUID, name: str | None = None, now: datetime | None = None
) -> uuid.UUID:
    """A new identity joined to the session; returns its participant id."""
    return await join(conn, session_id, await identity(conn, name), now=now)


async def leave(
    conn: asyncpg.Connection, participant_id: uuid.UUID, reason: str = "left", now: datetime | None = None
) -> bool:
    if now is None:
        value: bool = await conn.fetchval("SELECT hearth.leave_session($1, $2)", participant_id, reason)
    else:
        value = await conn.fetchval("SELECT hearth.leave_session($1, $2, $3)", participant_id, reason, now)
    return value


async def touch(conn: asyncpg.Connection, participant_ids: list[uuid.UUID], now: datetime) -> int:
    value: int = await conn.fetchval("SELECT hearth.touch($1::uuid[], $2)", participant_ids, now)
    return value


async def post(conn: asyncpg.Connection, participant_id: uuid.UUID, body: dict[str, Any]) -> int:
    value: int = await conn.fetchval(
        "SELECT hearth.post_message($1, $2::jsonb)", participant_id, json.dumps(body)
    )
    return value


async def signal(
    conn: asyncpg.Connection, sender: uuid.UUID, to: uuid.UUID, kind: str, data: dict[str, Any]
) -> int:
    value: int = await conn.fetchval(
        "SELECT hearth.relay_signal($1, $2, $3, $4::jsonb)", sender, to, kind, json.dumps(data)
    )
    return value


async def events(conn: asyncpg.Connection, stream_id: uuid.UUID, after: int = 0) -> list[dict[str, Any]]:
    """The stream's events after `after`, payloads decoded."""
    rows = await conn.fetch(
        "SELECT seq, type, payload, created_at FROM hearth.events_since($1, $2, 10000)", stream_id, after
    )
    return [
        {
            "seq": r["seq"],
            "type": r["type"],
            "payload": json.loads(r["payload"]),
            "created_at": r["created_at"],
        }
        for r in rows
    ]


async def event_types(conn: asyncpg.Connection, stream_id: uuid.UUID, after: int = 0) -> list[str]:
    return [e["type"] for e in await events(conn, stream_id, after)]


async def last_seq(conn: asyncpg.Connection, stream_id: uuid.UUID) -> int:
    found = await events(conn, stream_id)
    return found[-1]["seq"] if found else 0


async def session_row(admin: asyncpg.Connection, session_id: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await admin.fetchrow(
        "SELECT * FROM hearth_data.sessions WHERE session_id = $1", session_id
    )
    return row


async def app_connection(db_url: str) -> asyncpg.Connection:
    """Another connection acting as hearth_app (the `db` fixture's kind)."""
    conn = await asyncpg.connect(db_url)
    await conn.execute("SET ROLE hearth_app")
    return conn


@contextlib.asynccontextmanager
async def login_role(superuser: asyncpg.Connection, db_url: str, *member_of: str) -> AsyncIterator[str]:
    """A new login role holding only `member_of`; yields a URL that logs in as it. (A cloned test database
    keeps CONNECT for PUBLIC, so any role may connect.) What it owns in this database goes with it."""
    name = f"hearth_login_{uuid.uuid4().hex[:8]}"
    await superuser.execute(f"CREATE ROLE {name} LOGIN")
    for role in member_of:
        await superuser.execute(f"GRANT {role} TO {name}")
    parts = urlsplit(db_url)
    try:
        yield parts._replace(netloc=f"{name}@{parts.hostname}:{parts.port}").geturl()
    finally:
        await superuser.execute(f"DROP OWNED BY {name} CASCADE")
        await superuser.execute(f"DROP ROLE {name}")


class Notifications:
    """Collects hearth_events doorbells on a connection of its own, and resolves them as the relay does.

    `drain()` sends a unique sentinel NOTIFY from `sender` and returns the frame of every doorbell received
    before it, read with hearth.event_frames. Notifications of all transactions reach listeners in commit
    order, so when the sentinel (committed last) arrives, everything committed before it has arrived
    too: no sleeping, no timing. `doorbells` keeps the raw payloads.
    """

    def __init__(self, listener: asyncpg.Connection, sender: asyncpg.Connection) -> None:
        self._listener = listener
        self._sender = sender
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self.doorbells: list[str] = []

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._queue.put_nowait(payload)

    async def start(self) -> None:
        await self._listener.add_listener(CHANNEL, self._on_notify)

    async def drain(self) -> list[dict[str, Any]]:
        token = f"sentinel-{uuid.uuid4()}"
        await self._sender.execute(f"NOTIFY {CHANNEL}, '{token}'")
        frames: list[dict[str, Any]] = []
        while True:
            # A guard against hanging forever, not a timing assertion.
            payload = await asyncio.wait_for(self._queue.get(), timeout=30)
            if payload == token:
                return frames
            self.doorbells.append(payload)
            stream, seq = payload.split(" ")
            rows = await self._sender.fetch(
                "SELECT seq, frame FROM hearth.event_frames(ARRAY[$1::uuid], ARRAY[$2::bigint], 1)",
                stream,
                int(seq) - 1,
            )
            assert [r["seq"] for r in rows] == [int(seq)], f"doorbell {payload} names no event"
            frames.append(json.loads(rows[0]["frame"]))


@contextlib.asynccontextmanager
async def notifications(db_url: str, sender: asyncpg.Connection) -> AsyncIterator[Notifications]:
    listener = await asyncpg.connect(db_url)
    try:
        collector = Notifications(listener, sender)
        await collector.start()
        yield collector
    finally:
        await listener.close()
