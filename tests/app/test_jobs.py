"""The operator commands: `hearth jobs` wherever the jobs run (pg_cron in another database, or the app's
own maintenance), as the role that owns them or not; `hearth dev` and what it tells the operator to export;
`hearth sql`; `hearth --version`."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from app import cron, maintenance
from app.cluster import free_port, pg_cron_available
from tests.app.conftest import clone_database, start_instances
from tests.app.harness import ROOT, Instance
from tests.conftest import JOBS_DB
from tests.pg import PgServer

CRON_JOBS = [name for name, _, _ in [*cron.JOBS, *cron.MATCH_JOBS, *cron.PARTITION_JOBS, cron.TRIM_JOB]]


def hearth(*args: str, url: str | None = None, timeout: float = 60) -> str:
    env = {**os.environ, "HEARTH_DATABASE_URL": url or ""}
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"hearth {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout


def _job_lines(report: str) -> dict[str, str]:
    """The table rows of a report: job name -> its whole line."""
    return {
        m.group(1): m.group(0) for m in re.finditer(r"^  ([a-z_]+)  .*$", report, re.M) if m.group(1) != "job"
    }


@pytest.fixture
def cron_server(pg: PgServer, template_db: str) -> PgServer:
    if not pg.has_cron:
        pytest.skip("TEST_DATABASE_URL points at a server without pg_cron")
    return pg


@pytest.mark.cron_wait
def test_jobs_shows_each_pg_cron_job_with_its_last_run(cron_server: PgServer) -> None:
    """pg_cron lives in `postgres`, Hearth in another database (as with `hearth dev`); every job of that
    database was rescheduled to run every minute (tests/conftest.py)."""
    url = cron_server.url(JOBS_DB)
    deadline = time.monotonic() + 100  # pg_cron 1.4 runs on minute boundaries
    while True:
        report = hearth("jobs", url=url)
        lines = _job_lines(report)
        ran = {job for job, line in lines.items() if "succeeded" in line}
        if ran == set(CRON_JOBS) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert (
        f"pg_cron (in database postgres): jobs hearth.{JOBS_DB}.<job>, as role postgres sees them" in report
    )
    assert set(lines) == set(CRON_JOBS), report
    assert ran == set(CRON_JOBS), report
    assert "succeeded: SELECT 1" in lines["expire_sessions"]
    assert "succeeded: CALL" in lines["cleanup_inactive_sessions"]
    assert re.search(r"\* \* \* \* \*  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  \d+\.\d{3} s", lines["prune_events"])
    # No app runs maintenance for this database: no section for it.
    assert "app's own maintenance" not in report


def test_jobs_as_a_role_that_did_not_schedule_them_says_so(cron_server: PgServer) -> None:
    role = f"hearth_reader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(cron_server.url("postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN IN ROLE hearth_admin")  # CONNECT to Hearth's databases
    try:
        url = urlsplit(cron_server.url(JOBS_DB))
        as_reader = url._replace(netloc=f"{role}@{url.hostname}:{url.port}").geturl()
        report = hearth("jobs", url=as_reader)
        assert f"as role {role} sees them" in report  # found pg_cron without reading cron.database_name
        assert "cannot read pg_cron's jobs: permission denied for schema cron" in report
        with psycopg.connect(cron_server.url("postgres"), autocommit=True) as conn:
            conn.execute(f"GRANT USAGE ON SCHEMA cron TO {role}")
        report = hearth("jobs", url=as_reader)
        assert "no Hearth job visible" in report  # pg_cron's row security: not the jobs' owner
        assert "a role that did not schedule them sees none" in report
    finally:
        with psycopg.connect(cron_server.url("postgres"), autocommit=True) as conn:
            conn.execute(f"REVOKE USAGE ON SCHEMA cron FROM {role}")
            conn.execute(f"DROP ROLE {role}")


@pytest.fixture
def maintained(pg: PgServer, template_db: str, log_dir: Path) -> Iterator[tuple[str, Instance]]:
    """An app running its own maintenance on a database pg_cron has no jobs for; 1/200 of the schedule:
    every minute is 0.3 s, every 15 minutes 4.5 s."""
    url = clone_database(pg, template_db)
    env = {"HEARTH_MAINTENANCE": "on", "HEARTH_MAINTENANCE_SCALE": "0.005"}
    [instance] = start_instances(url, log_dir, 1, env)
    yield url, instance
    instance.terminate()


def test_jobs_shows_the_apps_own_maintenance_runs(maintained: tuple[str, Instance]) -> None:
    url, instance = maintained
    expected = [job for job, _, _ in maintenance.SCHEDULE]
    deadline = time.monotonic() + 30
    while True:
        report = hearth("jobs", url=url)
        section = report.partition("The app's own maintenance")[2]
        lines = _job_lines(section)
        if all("succeeded" in lines.get(job, "") for job in expected) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "(HEARTH_MAINTENANCE=on): runs recorded by its leading instance" in report, report
    assert set(lines) == set(expected), report
    for job in expected:
        assert re.search(rf"succeeded: \d+ \(\d+ runs, 0 failed, by {instance.name}\)", lines[job]), report
    assert "every 0.3 s" in lines["expire_sessions"] and "every 4.5 s" in lines["prune_events"]
    if "pg_cron (in database" in report:  # the test server has pg_cron: none of its jobs are this database's
        assert "no Hearth job visible" in report


def test_version() -> None:
    assert re.fullmatch(r"hearth \d+\.\d+\.\d+\n", hearth("--version"))


def test_sql_passes_its_arguments_to_psql(db_url: str, tmp_path: Path) -> None:
    url = db_url
    # Exactly as an operator types it: psql's own table, with the 1 on its own line.
    table = [line.strip() for line in hearth("sql", "-c", "select 1", url=url).splitlines()]
    assert table[:4] == ["?column?", "----------", "1", "(1 row)"], table
    assert hearth("sql", "-c", "select 1", "-tA", url=url) == "1\n"
    script = tmp_path / "script.sql"
    script.write_text("select hearth.get_setting('presence_timeout');\n")
    assert hearth("sql", "-tA", "-f", str(script), url=url) == "90 seconds\n"
    assert hearth("sql", "--", "-tAc", "select 2", url=url) == "2\n"


def test_sql_without_a_database_url_says_what_to_set() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "sql", "-c", "select 1"],
        env={**os.environ, "HEARTH_DATABASE_URL": ""},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert "HEARTH_DATABASE_URL" in done.stderr


@pytest.mark.skipif(not pg_cron_available(), reason="hearth dev needs PostgreSQL 15 with pg_cron installed")
def test_dev_prints_the_line_to_export_and_that_line_reaches_its_database() -> None:
    # Not under pytest's tmp_path: as root, the cluster runs as `postgres`, which must reach its directory.
    work = Path(tempfile.mkdtemp(prefix="hearth-dev-test-"))
    work.chmod(0o755)
    try:
        _dev_in(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _dev_in(work: Path) -> None:
    port = str(free_port())
    env = {**os.environ, "HEARTH_PORT": port}
    for name in ("HEARTH_DATABASE_URL", "HEARTH_SECRET", "HEARTH_ADMIN_TOKEN"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "dev"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        export = None
        seen = []
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        while export is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "".join(seen)
            seen.append(line)
            if line.startswith("  export HEARTH_DATABASE_URL="):
                export = line.strip()
        assert export is not None, "".join(seen)
        # The line works as printed, in another shell.
        shell = f"{export} && {sys.executable} -m app.cli sql -tAc 'select current_database()'"
        out = subprocess.run(
            ["sh", "-c", shell],
            env={**env, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.stdout == "hearth\n", out.stderr
        url = export.removeprefix("export HEARTH_DATABASE_URL=").strip("'")
        report = hearth("jobs", url=url)
        assert "pg_cron (in database postgres): jobs hearth.hearth.<job>" in report, report
        assert set(_job_lines(report)) == set(CRON_JOBS), report
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C stops the app, then the cluster
        try:
            rest = proc.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            rest = proc.communicate()[0]
    assert "Hearth dev stopped." in rest
