"""Roles and privileges: hearth_app runs the API and nothing else; the API is SECURITY DEFINER, documented."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from tests.conftest import raises_sqlstate
from tests.db.helpers import identity, session

TABLES = [
    "settings",
    "identities",
    "sessions",
    "participants",
    "presence",
    "events",
    "session_archive",
    "archive_pending_messages",
]
ADMIN_ONLY = {"set_setting"}


async def _functions(admin: asyncpg.Connection, schema: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await admin.fetch(
        """SELECT p.oid, p.proname, p.oid::regprocedure::text AS signature, p.prokind::text AS prokind,
                  p.prosecdef, p.proconfig, p.proacl, obj_description(p.oid, 'pg_proc') AS comment
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = $1
            ORDER BY p.proname""",
        schema,
    )
    return rows


@pytest.mark.parametrize("table", TABLES)
async def test_hearth_app_cannot_touch_the_tables(db: asyncpg.Connection, table: str) -> None:
    statements = [
        f"SELECT * FROM hearth_data.{table}",
        f"INSERT INTO hearth_data.{table} DEFAULT VALUES",
        f"UPDATE hearth_data.{table} SET {'key' if table == 'settings' else 'created_at'} = NULL",
        f"DELETE FROM hearth_data.{table}",
        f"TRUNCATE hearth_data.{table}",
    ]
    for sql in statements:
        async with raises_sqlstate("42501"):
            await db.execute(sql)


async def test_hearth_app_cannot_call_private_helpers(db: asyncpg.Connection) -> None:
    s = await session(db)
    calls = [
        "SELECT hearth_data.require(true, 'x')",
        "SELECT hearth_data.new_code()",
        "SELECT hearth_data.setting_interval('presence_timeout')",
        f"SELECT hearth_data.emit_event('session', '{s}', 'message', '{{}}', now())",
        f"SELECT hearth_data.close_session('{s}', 'ended', 'x', now())",
        "SELECT hearth_data.cleanup_sessions_batch(NULL, 10, now())",
        "CALL hearth_data.run_cleanup_inactive_sessions()",
    ]
    for sql in calls:
        async with raises_sqlstate("42501"):
            await db.execute(sql)


async def test_hearth_app_cannot_set_settings(db: asyncpg.Connection) -> None:
    async with raises_sqlstate("42501"):
        await db.fetchval("SELECT hearth.set_setting('presence_timeout', '1 hour')")
    assert await db.fetchval("SELECT hearth.get_setting('presence_timeout')") == "90 seconds"


async def test_hearth_app_executes_the_api(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    functions = await _functions(admin, "hearth")
    assert {"create_identity", "join_session", "touch", "events_since", "cleanup_inactive_sessions"} <= {
        f["proname"] for f in functions
    }
    for f in functions:
        allowed = await admin.fetchval(
            "SELECT has_function_privilege('hearth_app', $1::oid, 'EXECUTE')", f["oid"]
        )
        assert allowed is (f["proname"] not in ADMIN_ONLY), f["signature"]
    # And really does, through the definer's rights.
    assert isinstance(await identity(db), uuid.UUID)


async def test_hearth_admin_reads_tables_and_sets_settings(admin: asyncpg.Connection) -> None:
    await admin.execute("SET ROLE hearth_admin")
    for table in TABLES:
        await admin.fetch(f"SELECT * FROM hearth_data.{table} LIMIT 1")
    assert await admin.fetchval("SELECT hearth.set_setting('heartbeat_interval', '20 seconds')") == "00:00:20"
    assert await admin.fetchval("SELECT hearth.get_setting('heartbeat_interval')") == "00:00:20"
    async with raises_sqlstate("42501"):
        await admin.execute("DELETE FROM hearth_data.events")
    async with raises_sqlstate("42501"):
        await admin.execute("UPDATE hearth_data.settings SET value = '1' WHERE key = 'pairing_max_failures'")


async def test_public_cannot_execute_anything(admin: asyncpg.Connection) -> None:
    for schema in ("hearth", "hearth_data"):
        functions = await _functions(admin, schema)
        assert functions, schema
        for f in functions:
            # A NULL ACL means the default privileges, which include EXECUTE for PUBLIC.
            assert f["proacl"] is not None, f["signature"]
            public = await admin.fetchval(
                "SELECT count(*) FROM aclexplode($1::aclitem[]) a WHERE a.grantee = 0", f["proacl"]
            )
            assert public == 0, f["signature"]


async def test_a_role_without_grants_gets_nothing(admin: asyncpg.Connection) -> None:
    role = f"hearth_probe_{uuid.uuid4().hex[:8]}"
    await admin.execute(f"CREATE ROLE {role}")
    try:
        await admin.execute(f"SET ROLE {role}")
        async with raises_sqlstate("42501"):
            await admin.fetchval("SELECT hearth.get_setting('presence_timeout')")
        async with raises_sqlstate("42501"):
            await admin.fetchval("SELECT hearth.create_identity()")
        async with raises_sqlstate("42501"):
            await admin.fetch("SELECT * FROM hearth_data.settings")
    finally:
        await admin.execute("RESET ROLE")
        await admin.execute(f"DROP ROLE {role}")


async def test_api_functions_are_security_definer_with_a_safe_search_path_and_documented(
    admin: asyncpg.Connection,
) -> None:
    functions = await _functions(admin, "hearth")
    for f in functions:
        assert f["prokind"] == "f", f["signature"]
        assert f["prosecdef"] is True, f["signature"]
        assert f["proconfig"][0] == "search_path=pg_catalog, pg_temp", f["signature"]
        assert f["comment"] and len(f["comment"]) > 20, f["signature"]


async def test_private_helpers_are_documented_and_not_security_definer(admin: asyncpg.Connection) -> None:
    for f in await _functions(admin, "hearth_data"):
        assert f["prosecdef"] is False, f["signature"]
        assert f["comment"], f["signature"]


async def test_hearth_schema_holds_only_the_api(admin: asyncpg.Connection) -> None:
    relations = await admin.fetch(
        """SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'hearth' AND c.relkind <> 'v'"""
    )
    assert relations == []
    privileges = await admin.fetchrow(
        """SELECT has_schema_privilege('hearth_app', 'hearth', 'USAGE') AS api_usage,
                  has_schema_privilege('hearth_app', 'hearth', 'CREATE') AS api_create,
                  has_schema_privilege('hearth_app', 'hearth_data', 'USAGE') AS data_usage,
                  has_schema_privilege('hearth_admin', 'hearth_data', 'USAGE') AS admin_data_usage"""
    )
    assert privileges is not None
    assert dict(privileges) == {
        "api_usage": True,
        "api_create": False,
        "data_usage": False,
        "admin_data_usage": True,
    }
