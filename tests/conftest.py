"""The database for the tests: one server per run, one migrated template, one clone per test."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import psycopg
import pytest

from app import cron, migrate
from tests.pg import PgServer, pg_server

TEMPLATE_DB = "hearth_template"
CRON_DB = "hearth_cron_check"
JOBS_DB = "hearth_jobs_check"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests that wait for pg_cron's next minute run last, when that minute has most likely passed.
    items.sort(key=lambda item: item.get_closest_marker("cron_wait") is not None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cron_wait: waits for a pg_cron run (sorted to the end)")


def recreate_database(server: PgServer, name: str, template: str | None = None) -> None:
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        suffix = f' TEMPLATE "{template}"' if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{suffix}')


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    with pg_server() as server:
        yield server


@pytest.fixture(scope="session")
def template_db(pg: PgServer) -> str:
    """The migrated template. Its pg_cron jobs are not installed: a job connecting to a template would
    make cloning it fail."""
    recreate_database(pg, TEMPLATE_DB)
    migrate.upgrade(pg.url(TEMPLATE_DB), cron=False)
    if pg.has_cron:
        # A database with real jobs, migrated early so that pg_cron has run them by the time the
        # cron tests (sorted last) look.
        recreate_database(pg, CRON_DB)
        migrate.upgrade(pg.url(CRON_DB))
        # The same jobs, all of them every minute, so one test run sees every job run under pg_cron.
        recreate_database(pg, JOBS_DB)
        migrate.upgrade(pg.url(JOBS_DB))
        with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
            conn.execute(
                "SELECT cron.alter_job(jobid, schedule => '* * * * *') FROM cron.job "
                "WHERE left(jobname, length(%(prefix)s)) = %(prefix)s",
                {"prefix": cron.job_name(JOBS_DB, "")},
            )
    return TEMPLATE_DB


@pytest.fixture
def db_url(pg: PgServer, template_db: str) -> Iterator[str]:
    name = f"hearth_test_{uuid.uuid4().hex[:12]}"
    recreate_database(pg, name, template_db)
    yield pg.url(name)
    with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def admin(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection to the test's database (reads hearth_data directly)."""
    conn = await asyncpg.connect(db_url)
    yield conn
    await conn.close()


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection acting as hearth_app, as the app does."""
    conn = await asyncpg.connect(db_url)
    await conn.execute("SET ROLE hearth_app")
    yield conn
    await conn.close()


@contextlib.asynccontextmanager
async def raises_sqlstate(code: str) -> AsyncIterator[Any]:
    with pytest.raises(asyncpg.PostgresError) as info:
        yield info
    assert info.value.sqlstate == code, f"expected {code}, got {info.value.sqlstate}: {info.value}"
