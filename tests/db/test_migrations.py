"""Migrations: upgrade, downgrade, re-upgrade; recorded file hashes; offline SQL; nothing in public."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from alembic.script import ScriptDirectory

from app import migrate, sqlfiles
from tests.pg import PgServer

ROOT = Path(__file__).resolve().parents[2]


def _revisions_oldest_first() -> list[object]:
    script = ScriptDirectory.from_config(migrate.alembic_config("postgresql://unused"))
    return list(reversed(list(script.walk_revisions())))


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


def test_every_function_file_is_loaded_with_its_current_hash() -> None:
    latest: dict[str, str] = {}
    for revision in _revisions_oldest_first():
        latest.update(getattr(revision.module, "FUNCTION_FILES", {}))  # type: ignore[attr-defined]
    files = {
        str(path.relative_to(sqlfiles.DB_DIR)): sqlfiles.sha256_of(path) for path in sqlfiles.function_files()
    }
    assert set(files) - set(latest) == set(), "function files that no revision loads"
    stale = sorted(rel for rel, digest in files.items() if latest.get(rel) != digest)
    assert stale == [], (
        "these files changed since the last revision that loads them; add a revision that reloads them: "
        f"{stale}"
    )


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


def test_installed_functions_match_the_files(db_url: str) -> None:
    """Re-running every function file over a database at head changes no definition."""
    before = _api_snapshot(db_url)
    with psycopg.connect(db_url) as conn:
        conn.execute("SET check_function_bodies = off")
        for path in sqlfiles.function_files():
            conn.execute(path.read_text())  # type: ignore[arg-type]
        conn.commit()
    assert _api_snapshot(db_url) == before


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
