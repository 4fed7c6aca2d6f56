"""Migrations: they build the declared schema; up, down, up; offline SQL; nothing in public."""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from app import migrate, sqlfiles
from app.cluster import DEFAULT_PG_BIN as PG_BIN
from tests.pg import PgServer

ROOT = Path(__file__).resolve().parents[2]


def _api_snapshot(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid)
                 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE n.nspname IN ('hearth', 'hearth_data')"""
        ).fetchall()
    return dict(rows)


@pytest.fixture
def empty_db(pg: PgServer) -> str:
    name = "hearth_migration_test"
    with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return pg.url(name)


def _fresh(pg: PgServer, name: str) -> str:
    with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return pg.url(name)


def _drop(pg: PgServer, name: str) -> None:
    with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _dump(url: str, *args: str) -> str:
    result = subprocess.run(
        [str(PG_BIN / "pg_dump"), "--no-sync", *args, url], capture_output=True, text=True, check=True
    )
    # pg_dump's \restrict lines carry a random key per dump.
    return "".join(line for line in result.stdout.splitlines(keepends=True) if "restrict " not in line)


def _schema(url: str) -> str:
    """pg_dump's view of a database (owners, grants, comments included), its settings rows, and what
    each role may do on the database itself (pg_dump leaves that out)."""
    schema = _dump(url, "--schema-only", "--exclude-schema=hearth_migrations")
    settings = _dump(url, "--data-only", "--table=hearth_data.settings")
    with psycopg.connect(url) as conn:
        row = conn.execute(
            """SELECT string_agg(format('%s %s %s', a.grantee::regrole, a.privilege_type, a.grantor::regrole),
                                 E'\\n' ORDER BY 1)
                 FROM pg_database d, aclexplode(COALESCE(d.datacl, acldefault('d', d.datdba))) a
                WHERE d.datname = current_database()"""
        ).fetchone()
    return f"{schema}{settings}-- database privileges\n{row[0] if row else ''}\n"


def test_migrations_build_the_declared_schema(pg: PgServer) -> None:
    """procrastinate's check: a database migrated to head equals one built from db/schema.sql and the
    function files as they are now. A function file changed without a revision that carries its new
    text, or a revision without the same change in db/schema.sql, fails here."""
    migrated, declared = "hearth_schema_migrated", "hearth_schema_declared"
    try:
        migrate.upgrade(_fresh(pg, migrated), cron=False)
        with psycopg.connect(_fresh(pg, declared), autocommit=True) as conn:
            conn.execute("SET check_function_bodies = off")
            conn.execute(sqlfiles.SCHEMA_FILE.read_text())  # type: ignore[arg-type]
            conn.execute("SET ROLE hearth_owner")
            for path in sqlfiles.function_files():
                conn.execute(path.read_text())  # type: ignore[arg-type]
        got, want = _schema(pg.url(migrated)), _schema(pg.url(declared))
        diff = "".join(
            difflib.unified_diff(
                want.splitlines(keepends=True), got.splitlines(keepends=True), "declared", "migrated", n=2
            )
        )
        assert not diff, (
            "the migrated database differs from db/schema.sql + db/functions (a function changed without "
            "`python -m app.sqlfiles freeze NNNN_name`, or a revision without its db/schema.sql change):\n"
            + diff[:6000]
        )
    finally:
        _drop(pg, migrated)
        _drop(pg, declared)


def test_upgrade_downgrade_upgrade(empty_db: str, pg: PgServer) -> None:
    migrate.upgrade(empty_db)
    installed = _api_snapshot(empty_db)
    assert "hearth.touch(uuid[],timestamp with time zone)" in installed

    migrate.downgrade(empty_db, "base")
    with psycopg.connect(empty_db) as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'hearth%'")
        schemas = {r[0] for r in rows}
        assert schemas == {"hearth_migrations"}
    if pg.has_cron:
        with psycopg.connect(pg.url("postgres")) as conn:
            jobs = conn.execute(
                "SELECT count(*) FROM cron.job WHERE jobname LIKE 'hearth.hearth\\_migration\\_test.%'"
            ).fetchone()
            assert jobs == (0,)

    migrate.upgrade(empty_db)
    migrate.upgrade(empty_db)  # a second upgrade is a no-op
    assert _api_snapshot(empty_db) == installed


def test_nothing_in_public(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        objects = conn.execute(
            """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'public'
               UNION ALL
               SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE n.nspname = 'public'"""
        ).fetchall()
    assert objects == []


def test_offline_sql_renders_for_review() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head", "--sql"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        check=True,
    )
    sql = result.stdout
    assert "CREATE TABLE hearth_data.sessions" in sql
    assert "CREATE OR REPLACE FUNCTION hearth.expire_sessions" in sql
    assert "cron.schedule(" in sql
    assert sql.rstrip().endswith("COMMIT;")
