"""The app's one way to PostgreSQL: a pool acting as hearth_app, and one method per `hearth.*` function the
app calls (procrastinate's manager is the model). Nothing else in app/ holds SQL that calls the API.

Each method's statement is built from the function's name, so the `hearth_db_call_seconds{function}`
label is that name and cannot drift from it; SQLSTATEs of class HT become HearthError here, in one place
(app.errors holds the table). What a caller gets back is a value, a row or rows, as the function returns.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from app.errors import from_postgres
from app.metrics import Metrics

# What a call raises when the database cannot be reached or answered in time (not a client's fault).
# InternalClientError: a connection whose server went away mid-exchange ("cannot switch to state 12;
# another operation (2) is in progress"), seen while PostgreSQL restarts.
UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)
# Errors of a failed guess at a code: counted against the client's address.
_GUESS_ERRORS = ("HT400", "HT404", "HT410")
# Advisory lock key (hashed) of one client address's code attempts.
_LOCK_PREFIX = "hearth.code-attempts:"


# For the maintenance leader's own connection (not the pool): a job's run, recorded as started at the
# database's clock less the run's duration, so the app's clock never enters the record.
RECORD_MAINTENANCE_RUN = "SELECT hearth.record_maintenance_run($1, $2, $3, now() - $4::interval, $5, $6)"


@functools.cache
def statement(function: str, arity: int, *, rows: bool = False) -> str:
    """`SELECT hearth.f($1, ...)`, or `SELECT * FROM hearth.f(...)` for a function returning a table."""
    if not function.isidentifier():
        raise ValueError(f"not a function name: {function!r}")
    params = ", ".join(f"${n}" for n in range(1, arity + 1))
    call = f"hearth.{function}({params})"
    return f"SELECT * FROM {call}" if rows else f"SELECT {call}"


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    # Log in as hearth_app, or as a member of it (the dev superuser): act as hearth_app either way.
    await conn.execute(
        """DO $$ BEGIN
             IF current_user <> 'hearth_app' AND pg_has_role('hearth_app', 'MEMBER') THEN
               SET ROLE hearth_app;
             END IF;
           END $$"""
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool release without asyncpg's default reset query (a server round trip per call): pooled
    connections only run single auto-commit calls of hearth.* functions (or one code attempt's
    transaction); they never LISTEN, keep a transaction open, or change settings after _init_connection."""


def _raise_as_client_error(exc: asyncpg.PostgresError) -> None:
    error = from_postgres(exc)
    if error is None:
        raise exc
    raise error from None


class Database:
    def __init__(self, pool: asyncpg.Pool, metrics: Metrics) -> None:
        self.pool = pool
        self.metrics = metrics

    @classmethod
    async def open(cls, url: str, metrics: Metrics, *, min_size: int = 2, max_size: int = 10) -> Database:
        pool = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            reset=_keep_session,
            command_timeout=30,
        )
        assert pool is not None
        return cls(pool, metrics)

    async def close(self) -> None:
        await self.pool.close()

    async def _run(self, function: str, method: str, sql: str, args: Sequence[Any]) -> Any:
        start = time.perf_counter()
        try:
            async with self.pool.acquire() as conn:
                return await getattr(conn, method)(sql, *args)
        except asyncpg.PostgresError as exc:
            _raise_as_client_error(exc)
        finally:
            self.metrics.db_call.labels(function).observe(time.perf_counter() - start)

    async def _value(self, function: str, *args: Any) -> Any:
        return await self._run(function, "fetchval", statement(function, len(args)), args)

    async def _row(self, function: str, *args: Any) -> asyncpg.Record:
        row: asyncpg.Record | None = await self._run(
            function, "fetchrow", statement(function, len(args), rows=True), args
        )
        assert row is not None, f"hearth.{function} returned no row"
        return row

    async def _rows(self, function: str, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._run(
            function, "fetch", statement(function, len(args), rows=True), args
        )
        return rows

    async def ping(self) -> bool:
        try:
            async with self.pool.acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1", timeout=2)
            return True
        except UNAVAILABLE:
            return False

    # Identities, sessions, settings
    async def create_identity(self, display_name: str | None) -> uuid.UUID:
        identity_id: uuid.UUID = await self._value("create_identity", display_name)
        return identity_id

    async def identity_for_user(self, external_id: str, display_name: str | None) -> tuple[uuid.UUID, bool]:
        """An app user's identity, and whether it was created now."""
        row = await self._row("identity_for_user", external_id, display_name)
        return row["identity_id"], row["created"]

    async def create_anonymous_identity(self, client_key: str | None, display_name: str | None) -> uuid.UUID:
        """An anonymous identity, counted against identity_rate_limit for `client_key` (HT429 with
        retry_after_s past it)."""
        identity_id: uuid.UUID = await self._value("create_anonymous_identity", client_key, display_name)
        return identity_id

    async def create_session(
        self,
        *,
        name: str | None,
        max_participants: int | None,
        idle_timeout: timedelta | None,
        ttl: timedelta | None,
        metadata: dict[str, Any],
        created_by: uuid.UUID,
    ) -> asyncpg.Record:
        """A room `created_by` an identity (counted against max_open_sessions_per_identity):
        (session_id, code, expires_at)."""
        return await self._row(
            "create_session", "room", name, max_participants, idle_timeout, ttl, metadata, created_by
        )

    async def session_state(self, session_id: uuid.UUID) -> dict[str, Any]:
        state: dict[str, Any] = await self._value("session_state", session_id)
        return state

    async def check_session_expiry(self, session_id: uuid.UUID, at: datetime) -> bool:
        """Whether the session is over or due at `at`."""
        due: bool = await self._value("check_session_expiry", session_id, at)
        return due

    async def join_session(self, session_id: uuid.UUID, identity_id: uuid.UUID, role: str) -> uuid.UUID:
        participant_id: uuid.UUID = await self._value("join_session", session_id, identity_id, role)
        return participant_id

    async def leave_session(self, participant_id: uuid.UUID) -> bool:
        left: bool = await self._value("leave_session", participant_id)
        return left

    async def session_stats(self) -> asyncpg.Record:
        return await self._row("session_stats")

    async def session_history(self, session_id: uuid.UUID) -> asyncpg.Record:
        """The archive of a deleted session (HT404 when there is none)."""
        return await self._row("session_history", session_id)

    async def identity_seq(self, identity_id: uuid.UUID) -> int:
        seq: int = await self._value("identity_seq", identity_id)
        return seq

    async def resume_streams(
        self, stream_ids: Sequence[uuid.UUID], after: Sequence[int | None]
    ) -> list[asyncpg.Record]:
        """Per stream, in order: (head, resume_after, recovered) for the client's last seq or None."""
        return await self._rows("resume_streams", list(stream_ids), list(after))
    async def setting_integer(self, key: str) -> int:
        value: str = await self._value("get_setting", key)
        return int(value)

    async def heartbeat_interval_s(self) -> float | None:
        sql = "SELECT extract(epoch FROM hearth.get_setting($1)::interval)::float8"
        seconds: float | None = await self._run("get_setting", "fetchval", sql, ("heartbeat_interval",))
        return seconds

    async def rate_limits(self) -> asyncpg.Record:
        """(frame, broadcast): the settings frame_rate_limit and broadcast_rate_limit, per second."""
        sql = (
            "SELECT hearth.get_setting('frame_rate_limit')::float8 AS frame,"
            " hearth.get_setting('broadcast_rate_limit')::float8 AS broadcast"
        )
        row: asyncpg.Record | None = await self._run("get_setting", "fetchrow", sql, ())
        assert row is not None
        return row

    # Events and presence
    async def event_frames(
        self, stream_ids: Sequence[str | uuid.UUID], after: Sequence[int], limit: int
    ) -> list[asyncpg.Record]:
        return await self._rows("event_frames", list(stream_ids), list(after), limit)

    async def post_message(self, participant_id: uuid.UUID, body: dict[str, Any]) -> int:
        seq: int = await self._value("post_message", participant_id, body)
        return seq

    async def post_messages(
        self, session_id: uuid.UUID, participant_ids: Sequence[uuid.UUID], bodies: Sequence[dict[str, Any]]
    ) -> list[tuple[int | None, str | None, str | None]]:
        """One transaction for the batch; per element its seq, or the HT code and message it failed with."""
        rows = await self._rows("post_messages", session_id, list(participant_ids), list(bodies))
        return [(r["seq"], r["error_code"], r["error_message"]) for r in rows]

    async def relay_signal(
        self, sender: uuid.UUID, recipient: uuid.UUID, kind: str, data: dict[str, Any]
    ) -> int:
        seq: int = await self._value("relay_signal", sender, recipient, kind, data)
        return seq

    async def broadcast(self, payloads: list[str]) -> int:
        """NOTIFY each payload on hearth_broadcast, in one transaction committed without a WAL-flush wait."""
        return int(await self._value("broadcast", payloads))

    async def touch(self, participants: list[uuid.UUID], identities: list[uuid.UUID]) -> int:
        """One round trip: touch the participants (and keep the identities active); how many were present."""
        if not identities:
            return int(await self._value("touch", participants))
        sql = "SELECT hearth.touch($1), hearth.touch_identities($2)"
        return int(await self._run("touch", "fetchval", sql, (participants, identities)))

    # Pairing and codes
    async def register_display(self, identity_id: uuid.UUID, ttl: timedelta | None) -> asyncpg.Record:
        """(session_id, code, participant_id, expires_at)."""
        return await self._row("register_display", identity_id, ttl)

    async def pair_controller(
        self, code: str, identity_id: uuid.UUID, client_key: str | None
    ) -> asyncpg.Record:
        """(session_id, participant_id); a failed guess is counted against `client_key`."""
        return await self._code_attempt("pair_controller", code, identity_id, client_key)

    async def join_by_code(self, code: str, identity_id: uuid.UUID, client_key: str | None) -> asyncpg.Record:
        """(session_id, participant_id); a failed guess is counted against `client_key`."""
        return await self._code_attempt("join_by_code", code, identity_id, client_key)

    async def _code_attempt(
        self, function: str, code: str, identity_id: uuid.UUID, client_key: str | None
    ) -> asyncpg.Record:
        """One attempt with a code from `client_key`, serialized with that key's other attempts on every
        instance: a transaction-level advisory lock on the key is held around the attempt (in a savepoint)
        and, when it fails as a guess, around recording the failure in the same transaction. So each attempt
        sees every failure recorded before it, and the limit holds however many arrive at once. (The
        function's own writes roll back with its error: it cannot count its failure itself.)"""
        start = time.perf_counter()
        failed: asyncpg.PostgresError | None = None
        row: asyncpg.Record | None = None
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                if client_key is not None:
                    lock = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"
                    await conn.execute(lock, _LOCK_PREFIX + client_key)
                try:
                    async with conn.transaction():
                        sql = statement(function, 3, rows=True)
                        row = await conn.fetchrow(sql, code, identity_id, client_key)
                except asyncpg.PostgresError as exc:
                    failed = exc
                    if client_key is not None and exc.sqlstate in _GUESS_ERRORS:
                        await conn.fetchval(statement("record_pairing_failure", 1), client_key)
        except asyncpg.PostgresError as exc:
            failed = exc
        finally:
            self.metrics.db_call.labels(function).observe(time.perf_counter() - start)
        if failed is not None:
            _raise_as_client_error(failed)
        assert row is not None
        return row

    # Matchmaking
    async def enqueue_match(self, identity_id: uuid.UUID) -> str:
        state: str = await self._value("enqueue_match", identity_id)
        return state

    async def leave_queue(self, identity_id: uuid.UUID) -> str:
        state: str = await self._value("leave_queue", identity_id)
        return state

    async def match_status(self, identity_id: uuid.UUID) -> dict[str, Any]:
        status: dict[str, Any] = await self._value("match_status", identity_id)
        return status

    async def end_match(self, session_id: uuid.UUID, by: uuid.UUID, action: str) -> None:
        await self._value("end_match", session_id, by, action)

    async def identity_state(self, identity_id: uuid.UUID) -> str:
        state: str = await self._value("identity_state", identity_id)
        return state

    async def match_waiting(self, limit: int) -> int:
        return int(await self._value("match_waiting", limit))

    async def end_abandoned_matches(self, grace: timedelta) -> int:
        return int(await self._value("end_abandoned_matches", grace))

    # LiveKit
    async def livekit_room(self, session_id: uuid.UUID, participant_id: uuid.UUID) -> str:
        room: str = await self._value("livekit_room", session_id, participant_id)
        return room

    async def record_livekit_participant_event(
        self,
        event_id: str,
        event: str,
        room: str | None,
        identity: str | None,
        participant_sid: str | None,
        created_at: datetime | None,
    ) -> bool:
        fresh: bool = await self._value(
            "record_livekit_participant_event", event_id, event, room, identity, participant_sid, created_at
        )
        return fresh

    async def claim_livekit_jobs(self, batch: int) -> list[asyncpg.Record]:
        """Due jobs, leased to this caller: (job_id, kind, room, session_id, attempts)."""
        return await self._rows("claim_livekit_jobs", batch)

    async def finish_livekit_job(self, job_id: int, error: str | None = None, max_attempts: int = 6) -> str:
        """Report a claimed job: done (no error), or failed (retried until `max_attempts`); the outcome."""
        if error is None:
            return str(await self._value("finish_livekit_job", job_id))
        return str(await self._value("finish_livekit_job", job_id, error, max_attempts))

    async def livekit_rooms(self) -> list[asyncpg.Record]:
        """Room health: every room Hearth knows, with its match, participants, last webhook and problem."""
        return await self._rows("livekit_rooms")

    async def reconcile_livekit_rooms(self, names: list[str], listed_at: datetime) -> list[str]:
        """LiveKit's rooms as listed at `listed_at`: the ones Hearth no longer wants."""
        return [row["room"] for row in await self._rows("reconcile_livekit_rooms", names, listed_at)]
