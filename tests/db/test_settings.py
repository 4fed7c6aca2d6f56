"""get_setting and set_setting, and the settings the periodic functions follow."""

from __future__ import annotations

import asyncpg
import pytest

from tests.conftest import raises_sqlstate
from tests.db.helpers import db_now, identity, member, minutes, seconds, session, session_row

DEFAULTS = {
    "session_idle_timeout": "01:00:00",
    "presence_timeout": "00:01:30",
    "heartbeat_interval": "00:00:30",
    "identity_idle_timeout": "00:30:00",
    "pairing_ttl": "00:10:00",
    "event_retention": "01:00:00",
    "pairing_max_failures": "10",
    "rematch_cooldown": "00:10:00",
    "frame_rate_limit": "50",
    "broadcast_rate_limit": "120",
}


async def _as_hearth_admin(admin: asyncpg.Connection) -> None:
    await admin.execute("SET ROLE hearth_admin")


@pytest.mark.parametrize(("key", "value"), DEFAULTS.items())
async def test_get_setting_defaults(db: asyncpg.Connection, key: str, value: str) -> None:
    stored = await db.fetchval("SELECT hearth.get_setting($1)", key)
    # Stored as written in the migration ('1 hour', '90 seconds', ...): compare as the type it is.
    if value.isdigit():
        assert stored == value
    else:
        assert await db.fetchval("SELECT $1::text::interval = $2::text::interval", stored, value)


async def test_get_setting_unknown_is_ht404(db: asyncpg.Connection) -> None:
    async with raises_sqlstate("HT404"):
        await db.fetchval("SELECT hearth.get_setting('no_such_setting')")


async def test_set_setting_returns_the_normalised_value(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    await _as_hearth_admin(admin)
    assert await admin.fetchval("SELECT hearth.set_setting('presence_timeout', '2 minutes')") == "00:02:00"
    assert await admin.fetchval("SELECT hearth.set_setting('pairing_max_failures', ' 25 ')") == "25"
    # Every connection sees the new values at once.
    assert await db.fetchval("SELECT hearth.get_setting('presence_timeout')") == "00:02:00"
    assert await db.fetchval("SELECT hearth.get_setting('pairing_max_failures')") == "25"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("presence_timeout", "soon"),
        ("presence_timeout", "0 seconds"),
        ("presence_timeout", "-1 minute"),
        ("presence_timeout", "400 days"),
        ("pairing_max_failures", "ten"),
        ("pairing_max_failures", "0"),
        ("pairing_max_failures", "-3"),
        ("pairing_max_failures", "1.5"),
        ("pairing_max_failures", "99999999999"),
    ],
)
async def test_set_setting_bad_value_is_ht400(admin: asyncpg.Connection, key: str, value: str) -> None:
    await _as_hearth_admin(admin)
    before = await admin.fetchval("SELECT hearth.get_setting($1)", key)
    async with raises_sqlstate("HT400"):
        await admin.fetchval("SELECT hearth.set_setting($1, $2)", key, value)
    assert await admin.fetchval("SELECT hearth.get_setting($1)", key) == before


async def test_set_setting_unknown_key_is_ht404(admin: asyncpg.Connection) -> None:
    await _as_hearth_admin(admin)
    async with raises_sqlstate("HT404"):
        await admin.fetchval("SELECT hearth.set_setting('no_such_setting', '1')")


async def test_session_idle_timeout_moves_open_sessions(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    t0 = await db_now(db)
    follows = await session(db)
    await member(db, follows, now=t0)
    own = await session(db, idle_timeout=minutes(30))
    await member(db, own, now=t0)
    await _as_hearth_admin(admin)
    await admin.fetchval("SELECT hearth.set_setting('session_idle_timeout', '2 hours')")
    check = "SELECT hearth.check_session_expiry($1, $2)"
    assert await db.fetchval(check, follows, t0 + minutes(61)) is False
    assert await db.fetchval(check, follows, t0 + minutes(121)) is True
    # A session with its own idle timeout keeps it.
    assert await db.fetchval(check, own, t0 + minutes(31)) is True
    # New sessions follow the new default too.
    fresh = await session(db)
    stored = await session_row(admin, fresh)
    assert stored is not None and stored["idle_deadline"] - stored["last_activity_at"] == minutes(120)
    assert await db.fetchval("SELECT hearth.expire_sessions($1)", t0 + minutes(61)) == 1  # `own` only


async def test_presence_timeout_drives_sweep_presence(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    s = await session(db)
    t0 = await db_now(db)
    await member(db, s, now=t0)
    await _as_hearth_admin(admin)
    await admin.fetchval("SELECT hearth.set_setting('presence_timeout', '3 minutes')")
    assert await db.fetchval("SELECT hearth.sweep_presence(NULL, $1)", t0 + seconds(91)) == 0
    assert await db.fetchval("SELECT hearth.sweep_presence(NULL, $1)", t0 + seconds(181)) == 1


async def test_identity_idle_timeout_drives_cleanup(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    t0 = await db_now(db)
    await identity(db)
    await _as_hearth_admin(admin)
    await admin.fetchval("SELECT hearth.set_setting('identity_idle_timeout', '2 hours')")
    cleanup = "SELECT hearth.cleanup_inactive_identities(NULL, $1)"
    assert await db.fetchval(cleanup, t0 + minutes(31)) == 0
    assert await db.fetchval(cleanup, t0 + minutes(121)) == 1


async def test_event_retention_drives_prune_events(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    s = await session(db)
    t0 = await db_now(db)
    await member(db, s, now=t0)
    await _as_hearth_admin(admin)
    await admin.fetchval("SELECT hearth.set_setting('event_retention', '1 day')")
    assert await db.fetchval("SELECT hearth.prune_events(NULL, $1)", t0 + minutes(120)) == 0
    assert await db.fetchval("SELECT hearth.prune_events(NULL, $1)", t0 + minutes(60 * 25)) == 1


async def test_archive_settings(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    retention = await db.fetchval("SELECT hearth.get_setting('archive_retention')::interval")
    assert retention == minutes(60 * 24 * 30)
    assert await db.fetchval("SELECT hearth.get_setting('archive_messages')") == "false"
    await _as_hearth_admin(admin)
    # A boolean setting takes PostgreSQL's spellings and is stored as true or false.
    spellings = [("on", "true"), ("NO", "false"), ("1", "true"), (" false ", "false"), ("yes", "true")]
    for value, stored in spellings:
        assert await admin.fetchval("SELECT hearth.set_setting('archive_messages', $1)", value) == stored
    assert await db.fetchval("SELECT hearth.get_setting('archive_messages')") == "true"
    for value in ("2", "maybe", "1 day"):
        async with raises_sqlstate("HT400"):
            await admin.fetchval("SELECT hearth.set_setting('archive_messages', $1)", value)
    assert await admin.fetchval("SELECT hearth.set_setting('archive_retention', '7 days')") == "7 days"
    async with raises_sqlstate("HT400"):
        await admin.fetchval("SELECT hearth.set_setting('archive_retention', 'true')")
