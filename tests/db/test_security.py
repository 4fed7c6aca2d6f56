"""Privilege escalation through pg_temp, the owner role, and what a migration does to the database's
own privileges (TEMP, CONNECT)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import asyncpg
import psycopg
import pytest

from app import migrate, sqlfiles
from tests.pg import PgServer

SEARCH_PATH = ["search_path=pg_catalog, pg_temp"]
# A procedure that COMMITs cannot carry a SET clause (nor be SECURITY DEFINER): it runs as its caller,
# the pg_cron job's owner, and only calls functions that have the search_path.
COMMITTING_PROCEDURES = {"hearth_data.run_cleanup_inactive_sessions(integer)"}


def _as(url: str, user: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=f"{user}@{parts.hostname}:{parts.port}").geturl()


@contextlib.contextmanager
def _login(url: str, *member_of: str) -> Iterator[str]:
    """A new login role that is a member of `member_of` only; yields its name."""
    name = f"hearth_login_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN")
        for role in member_of:
            conn.execute(f"GRANT {role} TO {name}")
    try:
        yield name
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {name}")
            conn.execute(f"DROP ROLE {name}")


@contextlib.asynccontextmanager
async def _connect(url: str, user: str) -> AsyncIterator[tuple[asyncpg.Connection, list[str]]]:
    conn = await asyncpg.connect(_as(url, user))
    notices: list[str] = []
    conn.add_log_listener(lambda _conn, message: notices.append(message.message))
    try:
        yield conn, notices
    finally:
        await conn.close()


ESCALATION = [
    # A function and a domain named uuid in the caller's own temporary schema...
    """CREATE FUNCTION pg_temp.pwn(v pg_catalog.uuid) RETURNS boolean LANGUAGE plpgsql AS $f$
       BEGIN
           RAISE NOTICE 'pwn runs as %', current_user;
           IF current_user <> session_user THEN
               EXECUTE pg_catalog.format('ALTER ROLE %I SUPERUSER', session_user);
           END IF;
           RETURN true;
       END $f$""",
    "CREATE DOMAIN pg_temp.uuid AS pg_catalog.uuid CHECK (pg_temp.pwn(VALUE))",
]
# ...then definer functions that declare uuid variables.
CALLS = [
    "SELECT hearth.create_identity('x')",
    "SELECT hearth.identity_state(hearth.create_identity('y'))",
    "SELECT session_id FROM hearth.create_session()",
]


async def test_a_hearth_app_login_cannot_escalate_through_pg_temp(db_url: str) -> None:
    """The audit's sec_pgtemp_escalation.sql, as a login that is only a member of hearth_app, on a
    database where TEMP is still granted to PUBLIC (a clone: CREATE DATABASE does not copy the ACL)."""
    with _login(db_url, "hearth_app") as login:
        async with _connect(db_url, login) as (conn, notices):
            await conn.execute("SET ROLE hearth_app")
            for sql in ESCALATION:
                await conn.execute(sql)
            for sql in CALLS:
                with contextlib.suppress(asyncpg.PostgresError):  # what it raises does not matter here
                    await conn.execute(sql)
            assert not [n for n in notices if n.startswith("pwn runs as")], notices
            assert await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = session_user") is False
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch("SELECT * FROM hearth_data.identities")


async def test_every_function_has_a_safe_search_path_and_the_owner_role(admin: asyncpg.Connection) -> None:
    rows = await admin.fetch(
        """SELECT p.oid::regprocedure::text AS signature, p.proconfig, p.prokind::text AS kind,
                  p.prosecdef, pg_get_userbyid(p.proowner) AS owner
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname IN ('hearth', 'hearth_data')"""
    )
    assert len(rows) >= 50
    for row in rows:
        assert row["owner"] == "hearth_owner", row["signature"]
        if row["signature"] in COMMITTING_PROCEDURES:
            assert row["kind"] == "p" and row["proconfig"] is None and not row["prosecdef"]
        else:
            # touch also pins its scan (planner settings only): see touch.sql. The two that lock the
            # events table to make or drop its partitions bound their wait (lock_timeout).
            assert row["proconfig"][:1] == SEARCH_PATH, row["signature"]
            partitions = row["signature"] in {"hearth.create_event_partitions()",
                                              "hearth.prune_events(interval,timestamp with time zone)"}
            assert all(c.startswith("enable_") or (partitions and c == "lock_timeout=200ms")
                       for c in row["proconfig"][1:]), row["signature"]
    owners = await admin.fetch(
        """SELECT n.nspname, pg_get_userbyid(n.nspowner) AS owner FROM pg_namespace n
            WHERE n.nspname IN ('hearth', 'hearth_data')
           UNION ALL
           SELECT c.oid::regclass::text, pg_get_userbyid(c.relowner) FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname IN ('hearth', 'hearth_data') AND c.relkind IN ('r', 'S', 'v', 'p')"""
    )
    assert len(owners) > 10
    assert {r["owner"] for r in owners} == {"hearth_owner"}, owners


async def test_the_owner_role_holds_no_privilege_beyond_hearth(admin: asyncpg.Connection) -> None:
    role = await admin.fetchrow("SELECT * FROM pg_roles WHERE rolname = 'hearth_owner'")
    assert role is not None
    attributes = ("rolsuper", "rolcanlogin", "rolcreaterole", "rolcreatedb", "rolreplication", "rolbypassrls")
    assert not any(role[k] for k in attributes)
    member_of = await admin.fetch(
        "SELECT roleid::regrole::text FROM pg_auth_members WHERE member = 'hearth_owner'::regrole"
    )
    assert member_of == []


@pytest.fixture
def migrated_fresh(pg: PgServer) -> Iterator[str]:
    """A database migrated from scratch (a clone would not have the database-level revokes)."""
    name = f"hearth_fresh_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        migrate.upgrade(pg.url(name), cron=False)
        yield pg.url(name)
    finally:
        with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_the_migration_revokes_temp_from_public(migrated_fresh: str) -> None:
    with _login(migrated_fresh, "hearth_app") as login:
        async with _connect(migrated_fresh, login) as (conn, _):
            assert await conn.fetchval("SELECT has_database_privilege(current_database(), 'TEMP')") is False
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(ESCALATION[0])


async def test_a_migrating_role_that_does_not_own_the_database_is_told_what_to_run(db_url: str) -> None:
    """The database step, run by a role that neither owns the database nor is a superuser (a managed
    service's migration user, say): nothing changes, and a NOTICE gives the exact statements."""
    step = sqlfiles.read("0004_audit_fixes/database.sql")
    with _login(db_url) as login:
        async with _connect(db_url, login) as (conn, notices):
            await conn.execute(step)
    assert len(notices) == 1, notices
    db = urlsplit(db_url).path.lstrip("/")
    assert (
        f"REVOKE TEMPORARY, CONNECT ON DATABASE {db} FROM PUBLIC; "
        f"GRANT CONNECT ON DATABASE {db} TO hearth_app, hearth_admin;"
    ) in notices[0]


async def test_only_hearth_roles_may_connect_to_a_migrated_database(migrated_fresh: str) -> None:
    """A role with no Hearth grant cannot connect, so it cannot LISTEN to (or NOTIFY) Hearth's channels."""
    with _login(migrated_fresh) as outsider:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await asyncpg.connect(_as(migrated_fresh, outsider))
    for role in ("hearth_app", "hearth_admin"):
        with _login(migrated_fresh, role) as login:
            async with _connect(migrated_fresh, login) as (conn, _):
                assert await conn.fetchval("SELECT 1") == 1
