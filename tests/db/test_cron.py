"""pg_cron: the migration's jobs exist with their schedules, in both layouts, and they really run."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import psycopg
import pytest

from app import cron, migrate
from tests.conftest import CRON_DB, JOBS_DB
from tests.pg import PgServer

EXPECTED = {name: schedule for name, schedule, _ in cron.JOBS}


@pytest.fixture
def cron_server(pg: PgServer, template_db: str) -> PgServer:
    if not pg.has_cron:
        pytest.skip("TEST_DATABASE_URL points at a server without pg_cron")
    return pg


def _jobs(pg: PgServer, dbname: str) -> dict[str, tuple[str, str, str]]:
    with psycopg.connect(pg.url("postgres")) as conn:
        rows = conn.execute(
            "SELECT jobname, schedule, command, database FROM cron.job WHERE jobname LIKE %s",
            (f"hearth.{dbname}.%",),
        ).fetchall()
    return {r[0].removeprefix(f"hearth.{dbname}."): (r[1], r[2], r[3]) for r in rows}


def test_jobs_scheduled_from_the_cron_database(cron_server: PgServer) -> None:
    """Hearth's database is not cron.database_name: jobs go in with cron.schedule_in_database."""
    jobs = _jobs(cron_server, CRON_DB)
    assert {name: job[0] for name, job in jobs.items() if name in EXPECTED} == EXPECTED
    assert all(jobs[name][2] == CRON_DB for name in EXPECTED)
    assert jobs["cleanup_inactive_sessions"][1] == "CALL hearth_data.run_cleanup_inactive_sessions()"
    assert jobs["trim_job_run_details"][2] == "postgres"


def test_jobs_scheduled_locally_when_hearth_owns_the_cron_database(cron_server: PgServer) -> None:
    if cron_server.cluster is None:
        pytest.skip("only on the throwaway cluster: this migrates its `postgres` database")
    url = cron_server.url("postgres")
    migrate.upgrade(url)
    try:
        jobs = _jobs(cron_server, "postgres")
        assert {name: job[0] for name, job in jobs.items() if name in EXPECTED} == EXPECTED
        assert {job[2] for job in jobs.values()} == {"postgres"}
    finally:
        migrate.downgrade(url, "base")
    assert _jobs(cron_server, "postgres") == {}


@pytest.mark.cron_wait
def test_every_job_command_runs_under_pg_cron(cron_server: PgServer) -> None:
    """Every job, in a database whose jobs were all rescheduled to run every minute (the cleanup
    procedure commits between batches, which only works outside a function)."""
    names = [cron.job_name(JOBS_DB, name) for name, _, _ in cron.JOBS]
    deadline = time.monotonic() + 100  # pg_cron 1.4 runs on minute boundaries
    with psycopg.connect(cron_server.url("postgres"), autocommit=True) as conn:
        while True:
            rows = conn.execute(
                """SELECT j.jobname, d.status, d.return_message FROM cron.job_run_details d
                     JOIN cron.job j USING (jobid)
                    WHERE j.jobname = ANY(%s) AND d.status IN ('succeeded', 'failed')""",
                (names,),
            ).fetchall()
            if {r[0] for r in rows} == set(names) or time.monotonic() > deadline:
                break
            time.sleep(1)
    assert {r[0] for r in rows} == set(names), (
        f"jobs that never ran within 100 s: {set(names) - {r[0] for r in rows}}"
    )
    failed = [r for r in rows if r[1] != "succeeded"]
    assert failed == []
    assert {message for _, _, message in rows} <= {"SELECT 1", "CALL"}


def test_a_migrator_that_is_not_a_superuser_needs_only_the_documented_grants(cron_server: PgServer) -> None:
    """docs/operations.md, "Roles": the grants a migrating role that is not a superuser needs, with pg_cron
    in another database. It migrates, owns the jobs it scheduled, and downgrades."""
    if cron_server.cluster is None:
        pytest.skip("only on the throwaway cluster: this creates a role and a database")
    role, dbname = "hearth_migrator_check", "hearth_migrator_check"
    admin = cron_server.url("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN CREATEROLE")
        conn.execute(f"CREATE DATABASE {dbname} OWNER {role}")
        conn.execute(f"GRANT pg_read_all_settings TO {role}")
        conn.execute(f"GRANT USAGE ON SCHEMA cron TO {role}")
        conn.execute(f"GRANT EXECUTE ON FUNCTION cron.schedule_in_database TO {role}")
    parts = urlsplit(cron_server.url(dbname))
    url = parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}").geturl()
    try:
        migrate.upgrade(url)
        with psycopg.connect(admin) as conn:
            owners = conn.execute(
                "SELECT DISTINCT username FROM cron.job WHERE jobname LIKE %s", (f"hearth.{dbname}.%",)
            ).fetchall()
        assert owners == [(role,)]
        assert set(_jobs(cron_server, dbname)) == {
            name for name, _, _ in [*cron.JOBS, *cron.MATCH_JOBS, *cron.PARTITION_JOBS, cron.TRIM_JOB]
        }
        with psycopg.connect(url) as conn:  # the migration revoked CONNECT from PUBLIC: it owns the database
            granted = conn.execute(
                "SELECT has_database_privilege('public', current_database(), 'CONNECT')"
            ).fetchone()
        assert granted == (False,)
        migrate.downgrade(url, "base")
        assert _jobs(cron_server, dbname) == {}
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                f"SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname LIKE 'hearth.{dbname}.%'"
            )
            conn.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
            conn.execute(f"REVOKE USAGE ON SCHEMA cron FROM {role}")
            conn.execute(f"REVOKE EXECUTE ON FUNCTION cron.schedule_in_database FROM {role}")
            conn.execute(f"DROP ROLE {role}")
