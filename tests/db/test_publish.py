"""hearth.publish: an application's own events from its SQL (a trigger on its table), with the guarantees of
every event, and the role hearth_publisher that may do that and nothing else."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest

from tests.conftest import raises_sqlstate
from tests.db.helpers import (
    db_now,
    display,
    events,
    last_seq,
    leave,
    login_role,
    member,
    minutes,
    notifications,
    post,
    session,
    session_row,
)

PUBLISH = "SELECT hearth.publish($1, $2, $3::jsonb)"

# The application's own table and trigger, as docs/publishing.md shows them.
APP_SCHEMA = [
    "CREATE TABLE tarot.draws (draw_id bigint GENERATED ALWAYS AS IDENTITY, session_id uuid NOT NULL, "
    "card text NOT NULL)",
    """CREATE FUNCTION tarot.publish_draw() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
           PERFORM hearth.publish(NEW.session_id, 'app.card_drawn',
                                  jsonb_build_object('draw_id', NEW.draw_id, 'card', NEW.card));
           RETURN NEW;
       END $$""",
    "CREATE TRIGGER draws_publish AFTER INSERT ON tarot.draws "
    "FOR EACH ROW EXECUTE FUNCTION tarot.publish_draw()",
]


async def _publish(conn: asyncpg.Connection, s: uuid.UUID, kind: str, payload: Any) -> int:
    seq: int = await conn.fetchval(PUBLISH, s, kind, json.dumps(payload))
    return seq


async def _app_table(admin: asyncpg.Connection, owner_url: str) -> None:
    """Schema tarot with the draws table and its publishing trigger, owned by the role of `owner_url`."""
    owner = await asyncpg.connect(owner_url)
    try:
        await admin.execute(
            f"CREATE SCHEMA tarot AUTHORIZATION {await owner.fetchval('SELECT current_user')}"
        )
        for sql in APP_SCHEMA:
            await owner.execute(sql)
    finally:
        await owner.close()


async def test_publish_puts_an_app_event_on_the_stream(db: asyncpg.Connection, db_url: str) -> None:
    s = await session(db)
    pid = await member(db, s)
    head = await last_seq(db, s)
    async with notifications(db_url, db) as heard:
        seq = await _publish(db, s, "app.card_drawn", {"card": "The Star", "position": {"x": 1}})
        frames = await heard.drain()
    assert seq == head + 1
    assert len(frames) == 1
    frame = frames[0]
    assert frame.pop("at")
    assert frame == {
        "type": "app.card_drawn",
        "seq": seq,
        "session_id": str(s),
        "card": "The Star",
        "position": {"x": 1},
    }
    # Replayed on resume like any event, in sequence with the others.
    assert await post(db, pid, {"text": "after"}) == seq + 1
    assert [(e["seq"], e["type"]) for e in await events(db, s, head)] == [
        (seq, "app.card_drawn"),
        (seq + 1, "message"),
    ]


async def test_publish_is_not_activity(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    """Publishing keeps no session from going idle: it is the application's, not a participant's."""
    s = await session(db)
    await member(db, s)
    before = await session_row(admin, s)
    await _publish(db, s, "app.tick", {})
    after = await session_row(admin, s)
    assert before is not None and after is not None
    assert after["last_activity_at"] == before["last_activity_at"]
    assert after["idle_deadline"] == before["idle_deadline"]


async def test_a_trigger_on_an_app_table_publishes(
    db: asyncpg.Connection, admin: asyncpg.Connection, db_url: str
) -> None:
    """The pattern to document: the app's table, written by a role that holds hearth_publisher, whose
    trigger calls hearth.publish in the writer's transaction."""
    s = await session(db)
    await member(db, s)
    head = await last_seq(db, s)
    async with login_role(admin, db_url, "hearth_publisher") as app_url:
        await _app_table(admin, app_url)
        app = await asyncpg.connect(app_url)
        try:
            async with notifications(db_url, db) as heard:
                async with app.transaction():
                    await app.execute("INSERT INTO tarot.draws (session_id, card) VALUES ($1, 'The Star')", s)
                    await app.execute("INSERT INTO tarot.draws (session_id, card) VALUES ($1, 'The Moon')", s)
                frames = await heard.drain()
        finally:
            await app.close()
    assert [(f["type"], f["seq"], f["card"], f["draw_id"]) for f in frames] == [
        ("app.card_drawn", head + 1, "The Star", 1),
        ("app.card_drawn", head + 2, "The Moon", 2),
    ]


async def test_a_security_definer_trigger_owned_by_a_publisher(
    db: asyncpg.Connection, admin: asyncpg.Connection, db_url: str
) -> None:
    """The other pattern: the writer holds no Hearth grant; the trigger function is SECURITY DEFINER, owned by
    a role that holds hearth_publisher."""
    s = await session(db)
    async with (
        login_role(admin, db_url, "hearth_publisher") as owner_url,
        login_role(admin, db_url) as writer_url,
    ):
        await _app_table(admin, owner_url)
        owner = await asyncpg.connect(owner_url)
        writer = await asyncpg.connect(writer_url)
        try:
            writer_role = await writer.fetchval("SELECT current_user")
            await owner.execute(
                "ALTER FUNCTION tarot.publish_draw() SECURITY DEFINER SET search_path = pg_catalog, pg_temp"
            )
            await owner.execute(f"GRANT USAGE ON SCHEMA tarot TO {writer_role}")
            await owner.execute(f"GRANT INSERT ON tarot.draws TO {writer_role}")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await _publish(writer, s, "app.card_drawn", {"card": "forged"})
            await writer.execute("INSERT INTO tarot.draws (session_id, card) VALUES ($1, 'The Sun')", s)
        finally:
            await owner.close()
            await writer.close()
    assert [(e["type"], e["payload"]["card"]) for e in await events(db, s)] == [("app.card_drawn", "The Sun")]


async def test_a_rolled_back_change_publishes_nothing(
    db: asyncpg.Connection, admin: asyncpg.Connection, db_url: str
) -> None:
    s = await session(db)
    await member(db, s)
    head = await last_seq(db, s)
    async with login_role(admin, db_url, "hearth_publisher") as app_url:
        await _app_table(admin, app_url)
        app = await asyncpg.connect(app_url)
        try:
            async with notifications(db_url, db) as heard:
                transaction = app.transaction()
                await transaction.start()
                await app.execute("INSERT INTO tarot.draws (session_id, card) VALUES ($1, 'The Tower')", s)
                await transaction.rollback()
                assert await heard.drain() == []
                assert heard.doorbells == []
            assert await last_seq(db, s) == head
            # Its sequence number was not used up either: the next event takes it.
            await app.execute("INSERT INTO tarot.draws (session_id, card) VALUES ($1, 'The World')", s)
        finally:
            await app.close()
    assert [(e["seq"], e["payload"]["card"]) for e in await events(db, s, head)] == [(head + 1, "The World")]


@pytest.mark.parametrize(
    "kind",
    [
        "session.expired",
        "session.ended",
        "message",
        "signal",
        "presence.join",
        "match.found",
        "app",
        "app.",
        "APP.x",
        "application.x",
        " app.x",
        "app.x y",
        "app.x\n",
        "app.é",
        "app." + "x" * 101,
        "",
    ],
)
async def test_system_types_cannot_be_forged(db: asyncpg.Connection, kind: str) -> None:
    s = await session(db)
    await member(db, s)
    head = await last_seq(db, s)
    async with raises_sqlstate("HT400"):
        await _publish(db, s, kind, {"reason": "idle"})
    assert await last_seq(db, s) == head


@pytest.mark.parametrize("kind", ["app.x", "app.card_drawn", "app.Game-1:score.v2", "app." + "x" * 100])
async def test_app_type_names(db: asyncpg.Connection, kind: str) -> None:
    s = await session(db)
    assert await _publish(db, s, kind, {}) == 1


@pytest.mark.parametrize(
    "payload",
    [
        [1, 2],
        "text",
        None,
        42,
        {"type": "session.expired"},
        {"seq": 1},
        {"session_id": "x"},
        {"at": "2020-01-01"},
    ],
)
async def test_bad_payloads(db: asyncpg.Connection, payload: Any) -> None:
    s = await session(db)
    async with raises_sqlstate("HT400"):
        await _publish(db, s, "app.x", payload)
    async with raises_sqlstate("HT400"):
        await db.fetchval("SELECT hearth.publish($1, 'app.x', NULL)", s)
    assert await last_seq(db, s) == 0


async def test_payload_up_to_64_kib(db: asyncpg.Connection) -> None:
    s = await session(db)
    wrapper = len(json.dumps({"blob": ""}, separators=(", ", ": ")))
    fits = {"blob": "a" * (65536 - wrapper)}
    assert await db.fetchval("SELECT octet_length($1::jsonb::text)", json.dumps(fits)) == 65536
    assert await _publish(db, s, "app.big", fits) == 1
    async with raises_sqlstate("HT400"):
        await _publish(db, s, "app.big", {"blob": "a" * (65537 - wrapper)})
    stored = await events(db, s)
    assert stored[0]["payload"] == fits


async def test_default_payload_is_an_empty_object(db: asyncpg.Connection) -> None:
    s = await session(db)
    assert await db.fetchval("SELECT hearth.publish($1, 'app.ping')", s) == 1
    assert (await events(db, s))[0]["payload"] == {}


async def test_no_session_or_session_over(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    async with raises_sqlstate("HT404"):
        await _publish(db, uuid.uuid4(), "app.x", {})
    async with raises_sqlstate("HT400"):
        await db.fetchval("SELECT hearth.publish(NULL, 'app.x')")

    ended, display_pid, _ = await display(db)
    assert await leave(db, display_pid)  # the last participant leaves a pairing session: it ends
    async with raises_sqlstate("HT410"):
        await _publish(db, ended, "app.x", {})

    t0 = await db_now(db)
    expired = await session(db, idle_timeout=minutes(1))
    await member(db, expired, now=t0)
    assert await db.fetchval("SELECT hearth.expire_sessions($1)", t0 + minutes(2)) == 1
    async with raises_sqlstate("HT410"):
        await _publish(db, expired, "app.x", {})

    due = await session(db, idle_timeout=minutes(1))
    # Idle past its timeout, not expired by the job yet.
    await admin.execute(
        "UPDATE hearth_data.sessions SET last_activity_at = $2 WHERE session_id = $1", due, t0 - minutes(5)
    )
    async with raises_sqlstate("HT410"):
        await _publish(db, due, "app.x", {})


async def test_hearth_publisher_may_publish_and_nothing_else(
    db: asyncpg.Connection, admin: asyncpg.Connection, db_url: str
) -> None:
    s = await session(db)
    executable = await admin.fetch(
        """SELECT p.oid::regprocedure::text AS signature FROM pg_proc p
             JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname IN ('hearth', 'hearth_data')
              AND has_function_privilege('hearth_publisher', p.oid, 'EXECUTE')"""
    )
    assert [r["signature"] for r in executable] == ["hearth.publish(uuid,text,jsonb)"]
    schemas = await admin.fetchrow(
        """SELECT has_schema_privilege('hearth_publisher', 'hearth', 'USAGE') AS api,
                  has_schema_privilege('hearth_publisher', 'hearth', 'CREATE') AS api_create,
                  has_schema_privilege('hearth_publisher', 'hearth_data', 'USAGE') AS data"""
    )
    assert schemas is not None and dict(schemas) == {"api": True, "api_create": False, "data": False}

    async with login_role(admin, db_url, "hearth_publisher") as url:
        publisher = await asyncpg.connect(url)
        try:
            assert await _publish(publisher, s, "app.hello", {}) == 1
            for sql in (
                "SELECT hearth.create_identity('x')",
                f"SELECT * FROM hearth.events_since('{s}', 0)",
                f"SELECT * FROM hearth.event_frames(ARRAY['{s}'::uuid], ARRAY[0::bigint])",
                "SELECT hearth.get_setting('event_retention')",
                f"SELECT hearth_data.emit_event('session', '{s}', 'session.expired', '{{}}', now())",
                "SELECT * FROM hearth_data.events",
                "INSERT INTO hearth_data.events (stream_id, seq, scope, type, payload, created_at, "
                f"emitted_at) VALUES ('{s}', 99, 'session', 'session.expired', '{{}}', now(), now())",
                "SET ROLE hearth_app",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await publisher.execute(sql)
        finally:
            await publisher.close()
    assert [e["type"] for e in await events(db, s)] == ["app.hello"]


async def test_a_publisher_login_cannot_ring_a_deliverable_doorbell(
    db: asyncpg.Connection, admin: asyncpg.Connection, db_url: str
) -> None:
    """LISTEN/NOTIFY has no privileges: a hearth_publisher login can NOTIFY hearth_events. The relay
    resolves a doorbell against the events table, so one naming no row delivers nothing."""
    s = await session(db)
    await member(db, s)
    head = await last_seq(db, s)
    async with login_role(admin, db_url, "hearth_publisher") as url:
        publisher = await asyncpg.connect(url)
        try:
            forged = json.dumps(
                {"type": "session.expired", "seq": head + 1, "session_id": str(s), "reason": "idle"}
            )
            for payload in (f"{s} {head + 1}", forged):
                await publisher.execute("SELECT pg_notify('hearth_events', $1)", payload)
        finally:
            await publisher.close()
    resolved = await db.fetch(
        "SELECT * FROM hearth.event_frames(ARRAY[$1::uuid], ARRAY[$2::bigint])", s, head
    )
    assert resolved == []
    # The genuine next event takes the number the forgery named, and is the only one delivered.
    assert await _publish(db, s, "app.genuine", {}) == head + 1
    resolved = await db.fetch(
        "SELECT type FROM hearth.event_frames(ARRAY[$1::uuid], ARRAY[$2::bigint])", s, head
    )
    assert [r["type"] for r in resolved] == ["app.genuine"]


async def test_a_trigger_may_let_the_change_through_when_the_session_is_over(
    db: asyncpg.Connection, admin: asyncpg.Connection, db_url: str
) -> None:
    """docs/publishing.md: a trigger that catches HT410/HT404 keeps the application's write when there is
    nobody left to tell."""
    ended, display_pid, _ = await display(db)
    assert await leave(db, display_pid)
    async with login_role(admin, db_url, "hearth_publisher") as app_url:
        await _app_table(admin, app_url)
        app = await asyncpg.connect(app_url)
        try:
            with pytest.raises(asyncpg.PostgresError) as raised:
                await app.execute("INSERT INTO tarot.draws (session_id, card) VALUES ($1, 'The Fool')", ended)
            assert raised.value.sqlstate == "HT410"
            await app.execute(
                """CREATE OR REPLACE FUNCTION tarot.publish_draw() RETURNS trigger LANGUAGE plpgsql AS $$
                   BEGIN
                       BEGIN
                           PERFORM hearth.publish(NEW.session_id, 'app.card_drawn',
                                                  jsonb_build_object('card', NEW.card));
                       EXCEPTION WHEN SQLSTATE 'HT410' OR SQLSTATE 'HT404' THEN
                           NULL;
                       END;
                       RETURN NEW;
                   END $$"""
            )
            await app.execute("INSERT INTO tarot.draws (session_id, card) VALUES ($1, 'The Fool')", ended)
            nowhere = uuid.uuid4()
            await app.execute("INSERT INTO tarot.draws (session_id, card) VALUES ($1, 'The Fool')", nowhere)
            assert await app.fetchval("SELECT count(*) FROM tarot.draws") == 2
        finally:
            await app.close()
    assert not [e for e in await events(db, ended) if e["type"].startswith("app.")]
