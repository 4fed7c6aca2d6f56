"""`hearth jobs`: Hearth's scheduled jobs, each with its schedule, last run and last result.

pg_cron keeps its jobs and their runs in one database per cluster (`cron.database_name`), which may not be
Hearth's: the jobs are read there, named `hearth.<database>.<job>`. pg_cron's row security shows each role
only the jobs it scheduled (superusers see all), so this reads as the connecting role and says which: run it
as the role that ran `hearth migrate`. Where the app runs the jobs itself (HEARTH_MAINTENANCE, when pg_cron
is absent), the leading instance records each run in the database (`hearth.maintenance_runs()`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from app import cron, maintenance

RESULT_WIDTH = 72


@dataclass
class JobLine:
    job: str
    schedule: str
    last_run: str
    took: str
    result: str


def report(url: str) -> str:
    """The text `hearth jobs` prints for the database at `url`."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(f"SELECT current_database(), current_user, ({cron.DATABASE_SQL})").fetchone()
        assert row is not None
        dbname, user, cron_db = row
        sections = []
        if cron_db is not None:
            sections.append(_cron_section(conn, url, dbname, cron_db, user))
        runs, problem = _maintenance_runs(conn)
        if cron_db is None or runs or problem:
            sections.append(_maintenance_section(runs, problem, cron_loaded=cron_db is not None))
    return "\n\n".join(sections) + "\n"


def _cron_section(conn: psycopg.Connection[Any], url: str, dbname: str, cron_db: str, user: str) -> str:
    prefix = cron.job_name(dbname, "")
    head = (
        f"pg_cron (in database {cron_db}): jobs {prefix}<job>, as role {user} sees them "
        "(pg_cron shows each role only the jobs it scheduled: run this as the role that ran `hearth migrate`)"
    )
    query = """
        SELECT j.jobname, j.schedule, j.active, d.status, d.return_message, d.start_time, d.end_time
          FROM cron.job j
          LEFT JOIN LATERAL (SELECT * FROM cron.job_run_details r WHERE r.jobid = j.jobid
                              ORDER BY r.runid DESC LIMIT 1) d ON true
         WHERE left(j.jobname, length(%(prefix)s)) = %(prefix)s
         ORDER BY j.jobname"""
    try:
        if cron_db == dbname:
            rows = conn.execute(query, {"prefix": prefix}).fetchall()
        else:
            with psycopg.connect(make_conninfo(url, dbname=cron_db), autocommit=True) as cron_conn:
                rows = cron_conn.execute(query, {"prefix": prefix}).fetchall()
    except psycopg.Error as exc:
        return (
            f"{head}\n  cannot read pg_cron's jobs: {_first_line(str(exc))}. Run this as the role that ran "
            f"`hearth migrate` (or grant {user} CONNECT on database {cron_db} and USAGE on its schema cron)"
        )
    if not rows:
        return (
            f"{head}\n  no Hearth job visible. `hearth migrate` schedules them (not with HEARTH_CRON=off); "
            f"a role that did not schedule them sees none."
        )
    lines = []
    for name, schedule, active, status, message, start, end in rows:
        if status is None:
            result = "never run" + ("" if active else " (inactive)")
        else:
            result = f"{status}: {message or ''}".rstrip(": ")
        lines.append(
            JobLine(name.removeprefix(prefix), schedule, _when(start), _took(start, end), _cut(result))
        )
    return f"{head}\n{_table(lines)}"


def _maintenance_runs(conn: psycopg.Connection[Any]) -> tuple[dict[str, tuple[Any, ...]], str]:
    try:
        rows = conn.execute(
            "SELECT job, every, instance, last_started_at, last_finished_at, last_succeeded, last_result, "
            "runs, failures FROM hearth.maintenance_runs()"
        ).fetchall()
    except psycopg.errors.UndefinedFunction:
        return {}, "hearth.maintenance_runs() is missing: migrate the database to head (hearth migrate)"
    except psycopg.Error as exc:
        return {}, f"cannot read hearth.maintenance_runs(): {_first_line(str(exc))}"
    return {row[0]: row for row in rows}, ""


def _maintenance_section(runs: dict[str, tuple[Any, ...]], problem: str, *, cron_loaded: bool) -> str:
    if cron_loaded:
        head = "The app's own maintenance (HEARTH_MAINTENANCE=on): runs recorded by its leading instance"
    else:
        head = (
            "pg_cron is not loaded: the app runs these jobs itself, one instance at a time "
            "(HEARTH_MAINTENANCE=auto or on), and records each run"
        )
    if problem:
        return f"{head}\n  {problem}"
    lines = []
    for job, _, period in maintenance.SCHEDULE:
        run = runs.pop(job, None)
        if run is None:
            lines.append(JobLine(job, _every(timedelta(seconds=period)), "-", "-", "never run"))
            continue
        _, every, instance, started, finished, succeeded, result, count, failures = run
        outcome = f"{'succeeded' if succeeded else 'failed'}: {result}".rstrip(": ")
        lines.append(
            JobLine(
                job,
                _every(every),
                _when(started),
                _took(started, finished),
                _cut(f"{outcome} ({count} runs, {failures} failed, by {instance})"),
            )
        )
    for job, run in sorted(runs.items()):  # recorded by an app whose schedule had other jobs
        lines.append(JobLine(job, _every(run[1]), _when(run[3]), _took(run[3], run[4]), _cut(str(run[6]))))
    return f"{head}\n{_table(lines)}"


def _table(lines: list[JobLine]) -> str:
    header = JobLine("job", "schedule", "last run (UTC)", "took", "last result")
    rows = [header, *lines]
    widths = [max(len(getattr(r, f)) for r in rows) for f in ("job", "schedule", "last_run", "took")]
    out = []
    for r in rows:
        cells = [r.job, r.schedule, r.last_run, r.took]
        out.append("  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + "  " + r.result)
    return "\n".join(line.rstrip() for line in out)


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _took(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "-"
    return f"{(end - start).total_seconds():.3f} s"


def _every(period: timedelta) -> str:
    seconds = period.total_seconds()
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return "every minute" if minutes == 1 else f"every {minutes} minutes"
    return f"every {seconds:g} s"


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= RESULT_WIDTH else text[: RESULT_WIDTH - 1] + "…"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text
