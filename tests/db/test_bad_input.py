"""Bad input to every API function gives an HT-class SQLSTATE, never an internal error.

Every case fails (nothing is written), so the cases share one database: one clone for the module.
Arguments named ":session", ":participant", ... are replaced by real ids made once.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import psycopg
import pytest

from tests.conftest import recreate_database
from tests.pg import PgServer

UNKNOWN = uuid.UUID("00000000-0000-4000-8000-000000000000")
BIG_JSON = '{"x": "' + "a" * 70_000 + '"}'


@dataclass
class World:
    app: asyncpg.Connection
    admin: asyncpg.Connection
    ids: dict[str, uuid.UUID]


@pytest.fixture(scope="module")
async def world(pg: PgServer, template_db: str) -> AsyncIterator[World]:
    name = f"hearth_test_bad_{uuid.uuid4().hex[:8]}"
    recreate_database(pg, name, template_db)
    app = await asyncpg.connect(pg.url(name))
    admin = await asyncpg.connect(pg.url(name))
    try:
        await app.execute("SET ROLE hearth_app")
        await admin.execute("SET ROLE hearth_admin")
        ident = await app.fetchval("SELECT hearth.create_identity('bad input')")
        s = await app.fetchval("SELECT session_id FROM hearth.create_session()")
        other = await app.fetchval("SELECT session_id FROM hearth.create_session()")
        participant = await app.fetchval("SELECT hearth.join_session($1, $2)", s, ident)
        peer = await app.fetchval("SELECT hearth.join_session($1, hearth.create_identity())", s)
        stranger = await app.fetchval("SELECT hearth.join_session($1, $2)", other, ident)
        ids = {
            "identity": ident,
            "session": s,
            "participant": participant,
            "peer": peer,
            "stranger": stranger,
        }
        yield World(app, admin, ids)
    finally:
        await app.close()
        await admin.close()
        with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# (sql, args): each must fail with an HT-class SQLSTATE.
CASES: list[tuple[str, list[Any]]] = [
    # create_identity
    ("SELECT hearth.create_identity($1)", [""]),
    ("SELECT hearth.create_identity($1)", ["x" * 101]),
    ("SELECT hearth.create_identity(NULL, $1)", [""]),
    ("SELECT hearth.create_identity(NULL, $1)", ["x" * 201]),
    # create_anonymous_identity
    ("SELECT hearth.create_anonymous_identity($1)", ["x" * 201]),
    ("SELECT hearth.create_anonymous_identity('10.0.0.1', $1)", [""]),
    ("SELECT hearth.create_anonymous_identity('10.0.0.1', $1)", ["x" * 101]),
    ("SELECT hearth.create_anonymous_identity('10.0.0.1', NULL, 'infinity')", []),
    # identity_for_user
    ("SELECT * FROM hearth.identity_for_user(NULL)", []),
    ("SELECT * FROM hearth.identity_for_user($1)", [""]),
    ("SELECT * FROM hearth.identity_for_user($1)", ["x" * 201]),
    ("SELECT * FROM hearth.identity_for_user('user-1', $1)", [""]),
    # create_session
    ("SELECT * FROM hearth.create_session(NULL)", []),
    ("SELECT * FROM hearth.create_session('lobby')", []),
    ("SELECT * FROM hearth.create_session('ROOM')", []),
    ("SELECT * FROM hearth.create_session('room', '')", []),
    ("SELECT * FROM hearth.create_session('room', $1)", ["x" * 201]),
    ("SELECT * FROM hearth.create_session(p_max_participants => 0)", []),
    ("SELECT * FROM hearth.create_session(p_max_participants => -1)", []),
    ("SELECT * FROM hearth.create_session(p_max_participants => 10001)", []),
    ("SELECT * FROM hearth.create_session(p_idle_timeout => '0 seconds')", []),
    ("SELECT * FROM hearth.create_session(p_idle_timeout => '-5 minutes')", []),
    ("SELECT * FROM hearth.create_session(p_idle_timeout => '366 days')", []),
    ("SELECT * FROM hearth.create_session(p_idle_timeout => '1000000 years')", []),
    ("SELECT * FROM hearth.create_session(p_ttl => '0 seconds')", []),
    ("SELECT * FROM hearth.create_session(p_ttl => '-1 second')", []),
    ("SELECT * FROM hearth.create_session(p_ttl => '1000000 years')", []),
    ("SELECT * FROM hearth.create_session(p_metadata => '[]')", []),
    ("SELECT * FROM hearth.create_session(p_metadata => '\"text\"')", []),
    ("SELECT * FROM hearth.create_session(p_metadata => 'null')", []),
    ("SELECT * FROM hearth.create_session(p_metadata => '42')", []),
    ("SELECT * FROM hearth.create_session(p_metadata => $1::jsonb)", [BIG_JSON]),
    # join_session
    ("SELECT hearth.join_session(NULL, $1)", [":identity"]),
    ("SELECT hearth.join_session($1, NULL)", [":session"]),
    ("SELECT hearth.join_session($1, $2, NULL)", [":session", ":identity"]),
    ("SELECT hearth.join_session($1, $2, '')", [":session", ":identity"]),
    ("SELECT hearth.join_session($1, $2, 'Admin')", [":session", ":identity"]),
    ("SELECT hearth.join_session($1, $2, 'a b')", [":session", ":identity"]),
    ("SELECT hearth.join_session($1, $2, $3)", [":session", ":identity", "r" * 33]),
    ("SELECT hearth.join_session($1, $2, 'member', NULL)", [":session", ":identity"]),
    ("SELECT hearth.join_session($1, $2)", [UNKNOWN, ":identity"]),
    ("SELECT hearth.join_session($1, $2)", [":session", UNKNOWN]),
    # leave_session
    ("SELECT hearth.leave_session(NULL)", []),
    ("SELECT hearth.leave_session($1, NULL)", [":participant"]),
    ("SELECT hearth.leave_session($1, 'kicked')", [":participant"]),
    ("SELECT hearth.leave_session($1, 'LEFT')", [":participant"]),
    ("SELECT hearth.leave_session($1, 'left', NULL)", [":participant"]),
    ("SELECT hearth.leave_session($1)", [UNKNOWN]),
    # touch
    ("SELECT hearth.touch(NULL)", []),
    ("SELECT hearth.touch(ARRAY[$1::uuid], NULL)", [":participant"]),
    ("SELECT hearth.touch(array_fill(gen_random_uuid(), ARRAY[10001]))", []),
    # check_session_expiry
    ("SELECT hearth.check_session_expiry(NULL)", []),
    ("SELECT hearth.check_session_expiry($1, NULL)", [":session"]),
    ("SELECT hearth.check_session_expiry($1)", [UNKNOWN]),
    # expire_sessions
    ("SELECT hearth.expire_sessions(NULL)", []),
    # sweep_presence
    ("SELECT hearth.sweep_presence('0 seconds')", []),
    ("SELECT hearth.sweep_presence('-90 seconds')", []),
    ("SELECT hearth.sweep_presence('1000000 years')", []),
    ("SELECT hearth.sweep_presence(NULL, NULL)", []),
    # cleanup_inactive_sessions
    ("SELECT hearth.cleanup_inactive_sessions('0 seconds')", []),
    ("SELECT hearth.cleanup_inactive_sessions('-1 hour')", []),
    ("SELECT hearth.cleanup_inactive_sessions('1000000 years')", []),
    ("SELECT hearth.cleanup_inactive_sessions(NULL, 0)", []),
    ("SELECT hearth.cleanup_inactive_sessions(NULL, -1)", []),
    ("SELECT hearth.cleanup_inactive_sessions(NULL, 100001)", []),
    ("SELECT hearth.cleanup_inactive_sessions(NULL, NULL)", []),
    ("SELECT hearth.cleanup_inactive_sessions(NULL, 1000, NULL)", []),
    # cleanup_inactive_identities
    ("SELECT hearth.cleanup_inactive_identities('0 seconds')", []),
    ("SELECT hearth.cleanup_inactive_identities('-30 minutes')", []),
    ("SELECT hearth.cleanup_inactive_identities('1000000 years')", []),
    ("SELECT hearth.cleanup_inactive_identities(NULL, NULL)", []),
    # prune_events
    ("SELECT hearth.prune_events('0 seconds')", []),
    ("SELECT hearth.prune_events('-1 hour')", []),
    ("SELECT hearth.prune_events('1000000 years')", []),
    ("SELECT hearth.prune_events(NULL, NULL)", []),
    # session_stats
    ("SELECT * FROM hearth.session_stats(NULL)", []),
    # post_message
    ("SELECT hearth.post_message(NULL, '{}')", []),
    ("SELECT hearth.post_message($1, NULL)", [":participant"]),
    ("SELECT hearth.post_message($1, '[]')", [":participant"]),
    ("SELECT hearth.post_message($1, '\"hi\"')", [":participant"]),
    ("SELECT hearth.post_message($1, 'null')", [":participant"]),
    ("SELECT hearth.post_message($1, $2::jsonb)", [":participant", '{"x": "' + "a" * 33_000 + '"}']),
    ("SELECT hearth.post_message($1, '{}')", [UNKNOWN]),
    # post_messages (a bad element is a row, not an error: only bad arrays raise)
    ("SELECT * FROM hearth.post_messages(NULL, ARRAY[$1::uuid], ARRAY['{}'::jsonb])", [":participant"]),
    ("SELECT * FROM hearth.post_messages($1, NULL, ARRAY['{}'::jsonb])", [":session"]),
    ("SELECT * FROM hearth.post_messages($1, ARRAY[$2::uuid], NULL)", [":session", ":participant"]),
    ("SELECT * FROM hearth.post_messages($1, '{}', '{}')", [":session"]),
    (
        "SELECT * FROM hearth.post_messages($1, ARRAY[$2::uuid, $2], ARRAY['{}'::jsonb])",
        [":session", ":participant"],
    ),
    # relay_signal
    ("SELECT hearth.relay_signal(NULL, $1, 'offer', '{}')", [":peer"]),
    ("SELECT hearth.relay_signal($1, NULL, 'offer', '{}')", [":participant"]),
    ("SELECT hearth.relay_signal($1, $2, NULL, '{}')", [":participant", ":peer"]),
    ("SELECT hearth.relay_signal($1, $2, 'hello', '{}')", [":participant", ":peer"]),
    ("SELECT hearth.relay_signal($1, $2, 'OFFER', '{}')", [":participant", ":peer"]),
    ("SELECT hearth.relay_signal($1, $2, 'offer', NULL)", [":participant", ":peer"]),
    ("SELECT hearth.relay_signal($1, $2, 'offer', '[]')", [":participant", ":peer"]),
    ("SELECT hearth.relay_signal($1, $2, 'offer', '\"sdp\"')", [":participant", ":peer"]),
    ("SELECT hearth.relay_signal($1, $2, 'offer', $3::jsonb)", [":participant", ":peer", BIG_JSON]),
    ("SELECT hearth.relay_signal($1, $1, 'offer', '{}')", [":participant"]),
    ("SELECT hearth.relay_signal($1, $2, 'offer', '{}')", [":participant", UNKNOWN]),
    ("SELECT hearth.relay_signal($1, $2, 'offer', '{}')", [":participant", ":stranger"]),
    # events_since
    ("SELECT * FROM hearth.events_since(NULL, 0)", []),
    ("SELECT * FROM hearth.events_since($1, NULL)", [":session"]),
    ("SELECT * FROM hearth.events_since($1, -1)", [":session"]),
    ("SELECT * FROM hearth.events_since($1, 0, 0)", [":session"]),
    ("SELECT * FROM hearth.events_since($1, 0, -5)", [":session"]),
    ("SELECT * FROM hearth.events_since($1, 0, 10001)", [":session"]),
    ("SELECT * FROM hearth.events_since($1, 0, NULL)", [":session"]),
    ("SELECT * FROM hearth.events_since($1, 0)", [UNKNOWN]),
    # event_frames
    ("SELECT * FROM hearth.event_frames(NULL, ARRAY[0::bigint])", []),
    ("SELECT * FROM hearth.event_frames(ARRAY[$1::uuid], NULL)", [":session"]),
    ("SELECT * FROM hearth.event_frames(ARRAY[$1::uuid], ARRAY[0, 1]::bigint[])", [":session"]),
    ("SELECT * FROM hearth.event_frames(ARRAY[$1::uuid], ARRAY[-1::bigint])", [":session"]),
    ("SELECT * FROM hearth.event_frames(ARRAY[$1::uuid], ARRAY[NULL::bigint])", [":session"]),
    ("SELECT * FROM hearth.event_frames(ARRAY[$1::uuid], ARRAY[0::bigint], 0)", [":session"]),
    ("SELECT * FROM hearth.event_frames(ARRAY[$1::uuid], ARRAY[0::bigint], 10001)", [":session"]),
    ("SELECT * FROM hearth.event_frames(ARRAY[$1::uuid], ARRAY[0::bigint], NULL)", [":session"]),
    (
        "SELECT * FROM hearth.event_frames(array_fill($1::uuid, ARRAY[10001]), "
        "array_fill(0::bigint, ARRAY[10001]))",
        [":session"],
    ),
    # publish
    ("SELECT hearth.publish(NULL, 'app.x')", []),
    ("SELECT hearth.publish($1, NULL)", [":session"]),
    ("SELECT hearth.publish($1, 'session.expired')", [":session"]),
    ("SELECT hearth.publish($1, 'app.')", [":session"]),
    ("SELECT hearth.publish($1, 'app.x', NULL)", [":session"]),
    ("SELECT hearth.publish($1, 'app.x', '[]')", [":session"]),
    ("SELECT hearth.publish($1, 'app.x', '{\"seq\": 1}')", [":session"]),
    ("SELECT hearth.publish($1, 'app.x', $2::jsonb)", [":session", BIG_JSON]),
    ("SELECT hearth.publish($1, 'app.x')", [UNKNOWN]),
    # session_history, archived_sessions
    ("SELECT * FROM hearth.session_history(NULL)", []),
    ("SELECT * FROM hearth.session_history($1)", [":session"]),
    ("SELECT * FROM hearth.session_history($1)", [UNKNOWN]),
    ("SELECT * FROM hearth.archived_sessions(NULL, 0)", []),
    ("SELECT * FROM hearth.archived_sessions(NULL, 10001)", []),
    ("SELECT * FROM hearth.archived_sessions(NULL, NULL)", []),
    # livekit_rooms
    ("SELECT * FROM hearth.livekit_rooms(NULL)", []),
    # resume_streams
    ("SELECT * FROM hearth.resume_streams(NULL, ARRAY[0::bigint])", []),
    ("SELECT * FROM hearth.resume_streams(ARRAY[$1::uuid], NULL)", [":session"]),
    ("SELECT * FROM hearth.resume_streams(ARRAY[$1::uuid], ARRAY[0, 1]::bigint[])", [":session"]),
    ("SELECT * FROM hearth.resume_streams(ARRAY[$1::uuid], ARRAY[-1::bigint])", [":session"]),
    ("SELECT * FROM hearth.resume_streams(ARRAY[NULL::uuid], ARRAY[0::bigint])", []),
    ("SELECT * FROM hearth.resume_streams(ARRAY[$1::uuid], ARRAY[0::bigint])", [UNKNOWN]),
    # broadcast
    ("SELECT hearth.broadcast(NULL)", []),
    ("SELECT hearth.broadcast('{}'::text[])", []),
    ("SELECT hearth.broadcast(ARRAY[NULL::text])", []),
    ("SELECT hearth.broadcast(ARRAY[repeat('x', 8000)])", []),
    # get_setting
    ("SELECT hearth.get_setting(NULL)", []),
    ("SELECT hearth.get_setting('')", []),
    ("SELECT hearth.get_setting($1)", ["k" * 10_000]),
    # record_maintenance_run
    ("SELECT hearth.record_maintenance_run(NULL, '1 minute', 'i', now(), true, '')", []),
    ("SELECT hearth.record_maintenance_run($1, '1 minute', 'i', now(), true, '')", ["Expire-Sessions"]),
    ("SELECT hearth.record_maintenance_run($1, '1 minute', 'i', now(), true, '')", ["x" * 101]),
    ("SELECT hearth.record_maintenance_run('job', NULL, 'i', now(), true, '')", []),
    ("SELECT hearth.record_maintenance_run('job', '0 seconds', 'i', now(), true, '')", []),
    ("SELECT hearth.record_maintenance_run('job', '-1 minute', 'i', now(), true, '')", []),
    ("SELECT hearth.record_maintenance_run('job', '1 minute', '', now(), true, '')", []),
    ("SELECT hearth.record_maintenance_run('job', '1 minute', $1, now(), true, '')", ["i" * 201]),
    ("SELECT hearth.record_maintenance_run('job', '1 minute', 'i', NULL, true, '')", []),
    ("SELECT hearth.record_maintenance_run('job', '1 minute', 'i', now() + interval '1 s', true, '')", []),
    ("SELECT hearth.record_maintenance_run('job', '1 minute', 'i', now(), NULL, '')", []),
]

# Every p_now (and every other time) must be a finite time: 'infinity' pinned rows forever (the audit's
# infinity_now.py: a participant never swept, an identity never cleaned).
CLOCK_CALLS: list[tuple[str, list[Any]]] = [
    (
        "SELECT hearth.record_maintenance_run('job', '1 minute', 'i', now(), true, '', "
        "$1::text::timestamptz)",
        [],
    ),
    ("SELECT hearth.record_maintenance_run('job', '1 minute', 'i', $1::text::timestamptz, true, '')", []),
    ("SELECT hearth.check_session_expiry($1, $2::text::timestamptz)", [":session"]),
    ("SELECT hearth.join_session($1, $2, 'member', $3::text::timestamptz)", [":session", ":identity"]),
    ("SELECT hearth.leave_session($1, 'left', $2::text::timestamptz)", [":participant"]),
    ("SELECT hearth.touch(ARRAY[$1::uuid], $2::text::timestamptz)", [":participant"]),
    ("SELECT hearth.expire_sessions($1::text::timestamptz)", []),
    ("SELECT hearth.sweep_presence(NULL, $1::text::timestamptz)", []),
    ("SELECT hearth.cleanup_inactive_sessions(NULL, 1000, $1::text::timestamptz)", []),
    ("SELECT hearth.cleanup_inactive_identities(NULL, $1::text::timestamptz)", []),
    ("SELECT hearth.prune_events(NULL, $1::text::timestamptz)", []),
    ("SELECT * FROM hearth.session_stats($1::text::timestamptz)", []),
    ("SELECT hearth.session_state($1, $2::text::timestamptz)", [":session"]),
    ("SELECT * FROM hearth.pair_controller('ZZZZZZ', $1, NULL, $2::text::timestamptz)", [":identity"]),
    ("SELECT hearth.record_pairing_failure('10.0.0.1', $1::text::timestamptz)", []),
    ("SELECT * FROM hearth.claim_livekit_jobs(10, '30 seconds', $1::text::timestamptz)", []),
    ("SELECT hearth.finish_livekit_job(1, NULL, 6, $1::text::timestamptz)", []),
    ("SELECT hearth.end_abandoned_matches('20 seconds', $1::text::timestamptz)", []),
    ("SELECT hearth.touch_identities(ARRAY[$1::uuid], $2::text::timestamptz)", [":identity"]),
    ("SELECT * FROM hearth.reconcile_livekit_rooms('{}', $1::text::timestamptz)", []),
    ("SELECT hearth.record_livekit_event('ev-inf', 'joined', 'r', 'i', $1::text::timestamptz)", []),
    ("SELECT * FROM hearth.livekit_rooms($1::text::timestamptz)", []),
    ("SELECT * FROM hearth.archived_sessions($1::text::timestamptz)", []),
]
CASES += [(sql, [*args, when]) for sql, args in CLOCK_CALLS for when in ("infinity", "-infinity")]
CASES += [
    ("SELECT * FROM hearth.reconcile_livekit_rooms('{}', now(), '1000000 years')", []),
]

# set_setting is for hearth_admin: these run as that role.
ADMIN_CASES: list[tuple[str, list[Any]]] = [
    ("SELECT hearth.set_setting(NULL, '1 hour')", []),
    ("SELECT hearth.set_setting('presence_timeout', NULL)", []),
    ("SELECT hearth.set_setting('presence_timeout', '')", []),
    ("SELECT hearth.set_setting('presence_timeout', 'soon')", []),
    ("SELECT hearth.set_setting('presence_timeout', '0')", []),
    ("SELECT hearth.set_setting('presence_timeout', '-1 hour')", []),
    ("SELECT hearth.set_setting('presence_timeout', '1000000 years')", []),
    ("SELECT hearth.set_setting('pairing_max_failures', '1 hour')", []),
    ("SELECT hearth.set_setting('pairing_max_failures', '0')", []),
    ("SELECT hearth.set_setting('pairing_max_failures', '99999999999')", []),
    ("SELECT hearth.set_setting('archive_messages', 'sometimes')", []),
    ("SELECT hearth.set_setting('archive_messages', '')", []),
    ("SELECT hearth.set_setting('archive_retention', '0 days')", []),
    ("SELECT hearth.set_setting($1, '1')", ["k" * 10_000]),
]


def _case_ids(cases: list[tuple[str, list[Any]]]) -> list[str]:
    names = [m[1] if (m := re.search(r"hearth\.(\w+)", sql)) else "sql" for sql, _ in cases]
    return [f"{name}-{i:03}" for i, name in enumerate(names)]


def _args(world: World, args: list[Any]) -> list[Any]:
    return [world.ids[a[1:]] if isinstance(a, str) and a.startswith(":") else a for a in args]


async def _assert_ht(conn: asyncpg.Connection, sql: str, args: list[Any]) -> None:
    with pytest.raises(asyncpg.PostgresError) as info:
        await conn.fetch(sql, *args)
    assert info.value.sqlstate.startswith("HT"), f"{info.value.sqlstate}: {info.value}"


@pytest.mark.parametrize(("sql", "args"), CASES, ids=_case_ids(CASES))
async def test_bad_input_is_an_ht_error(world: World, sql: str, args: list[Any]) -> None:
    await _assert_ht(world.app, sql, _args(world, args))


@pytest.mark.parametrize(("sql", "args"), ADMIN_CASES, ids=_case_ids(ADMIN_CASES))
async def test_bad_settings_are_an_ht_error(world: World, sql: str, args: list[Any]) -> None:
    await _assert_ht(world.admin, sql, _args(world, args))


async def test_nothing_was_written(world: World) -> None:
    """The failed calls left no trace: only what the fixture made."""
    counts = await world.admin.fetchrow(
        """SELECT (SELECT count(*) FROM hearth_data.identities) AS identities,
                  (SELECT count(*) FROM hearth_data.sessions) AS sessions,
                  (SELECT count(*) FROM hearth_data.participants WHERE left_at IS NULL) AS present,
                  (SELECT count(*) FROM hearth_data.events) AS events"""
    )
    assert counts is not None
    assert dict(counts) == {"identities": 2, "sessions": 2, "present": 3, "events": 3}


async def test_accepted_times_stay_sane(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    """Whatever the clock functions accept (a time far from now, or an infinite one, which must be
    refused) leaves only finite times behind, within a century of now: the sweep above checked only that
    refusals are HT errors, so it could not see 'infinity' being accepted."""
    far = await db.fetchval("SELECT now() + interval '50 years'")
    ident = await db.fetchval("SELECT hearth.create_identity('sane')")
    s = await db.fetchval("SELECT session_id FROM hearth.create_session()")
    pid = await db.fetchval("SELECT hearth.join_session($1, $2)", s, ident)
    for sql, args in CLOCK_CALLS:
        values = [{":session": s, ":identity": ident, ":participant": pid}.get(a, a) for a in args]
        for when in (far, "infinity", "-infinity"):
            try:
                await db.fetch(sql, *values, str(when))
            except asyncpg.PostgresError as exc:
                assert exc.sqlstate.startswith("HT"), f"{sql}: {exc.sqlstate} {exc}"
    columns = await admin.fetch(
        """SELECT c.table_name, c.column_name FROM information_schema.columns c
            WHERE c.table_schema = 'hearth_data' AND c.data_type = 'timestamp with time zone'"""
    )
    assert len(columns) > 20
    for column in columns:
        bad = await admin.fetchval(
            f"SELECT count(*) FROM hearth_data.{column['table_name']} "
            f"WHERE NOT isfinite({column['column_name']}) OR {column['column_name']} "
            "NOT BETWEEN now() - interval '100 years' AND now() + interval '100 years'"
        )
        assert bad == 0, f"{column['table_name']}.{column['column_name']}"
