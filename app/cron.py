"""pg_cron jobs for Hearth's periodic functions.

pg_cron lives in one database per cluster (`cron.database_name`). When that is Hearth's database the
jobs are scheduled locally; otherwise they are scheduled from the cron database with
`cron.schedule_in_database` (managed Postgres works the same way). Without pg_cron nothing is scheduled
and the migration says so.
"""

from __future__ import annotations

import os
from typing import Any

Job = tuple[str, str, str]  # name, schedule, command (run in Hearth's database)

# Revision 0001: the session and presence rules.
JOBS: list[Job] = [
    ("expire_sessions", "* * * * *", "SELECT hearth.expire_sessions()"),
    ("sweep_presence", "* * * * *", "SELECT hearth.sweep_presence()"),
    ("cleanup_inactive_sessions", "*/15 * * * *", "CALL hearth_data.run_cleanup_inactive_sessions()"),
    ("cleanup_inactive_identities", "*/15 * * * *", "SELECT hearth.cleanup_inactive_identities()"),
    ("prune_events", "*/15 * * * *", "SELECT hearth.prune_events()"),
]
# Revision 0003: the safety net behind the app's own matchers and reapers.
MATCH_JOBS: list[Job] = [
    ("match_waiting", "* * * * *", "SELECT hearth.match_waiting(1000)"),
    ("end_abandoned_matches", "* * * * *", "SELECT hearth.end_abandoned_matches()"),
]
# Revision 0009: the events table's partitions, made ahead of time (prune_events drops them).
PARTITION_JOBS: list[Job] = [
    ("create_event_partitions", "* * * * *", "SELECT hearth.create_event_partitions()"),
]
# Where the app runs a job itself (app.maintenance, where pg_cron does not run), the command it runs
# instead, and why. Only one differs: the cleanup job CALLs a procedure that commits after every batch; a
# procedure that COMMITs cannot be SECURITY DEFINER, so it runs with its caller's rights on hearth_data,
# which hearth_app (what the app acts as) does not have. The app calls the API function instead: the
# same batches, in one transaction.
APP_COMMANDS: dict[str, str] = {
    "cleanup_inactive_sessions": "SELECT hearth.cleanup_inactive_sessions()",
}
# Runs in the cron database: keeps a week of run history for Hearth's jobs.
TRIM_JOB = (
    "trim_job_run_details",
    "7 * * * *",
    "DELETE FROM cron.job_run_details WHERE end_time < now() - interval '7 days' "
    "AND jobid IN (SELECT jobid FROM cron.job WHERE jobname LIKE 'hearth.%')",
)


# The database pg_cron lives in (NULL without pg_cron), for any role: cron.database_name can be read only by
# superusers and members of pg_read_all_settings; other roles find pg_cron's scheduler in pg_stat_activity.
DATABASE_SQL = """SELECT CASE
    WHEN (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)
         OR pg_catalog.pg_has_role('pg_read_all_settings', 'USAGE')
    THEN pg_catalog.current_setting('cron.database_name', true)
    ELSE (SELECT datname FROM pg_catalog.pg_stat_activity
           WHERE application_name = 'pg_cron scheduler' LIMIT 1)
END"""


def period_s(schedule: str) -> float:
    """The period of a schedule of the forms used here, every minute or every N minutes: `* * * * *`,
    `*/N * * * *`."""
    minute, *rest = schedule.split()
    if rest != ["*"] * 4 or not (minute == "*" or (minute.startswith("*/") and minute[2:].isdigit())):
        raise ValueError(f"not an every-N-minutes schedule: {schedule!r}")
    return 60.0 * (1 if minute == "*" else int(minute[2:]))


def app_schedule() -> list[tuple[str, str, float]]:
    """The jobs as the app runs them where pg_cron does not: (name, command, period in seconds)."""
    jobs = JOBS + MATCH_JOBS + PARTITION_JOBS
    return [(name, APP_COMMANDS.get(name, command), period_s(schedule)) for name, schedule, command in jobs]


def job_name(dbname: str, name: str) -> str:
    return f"hearth.{dbname}.{name}"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def local_install_sql(jobs: list[Job] | None = None) -> str:
    """SQL that schedules the jobs when pg_cron lives in the current database, and otherwise explains.

    Used as is for `alembic upgrade head --sql`; the online migration handles the remote case itself.
    """
    schedules = "\n".join(
        f"        PERFORM cron.schedule('hearth.' || current_database() || '.{name}', {_quote(sched)}, "
        f"{_quote(cmd)});"
        for name, sched, cmd in ([*JOBS, TRIM_JOB] if jobs is None else jobs)
    )
    return f"""DO $hearth_cron$
BEGIN
    IF current_setting('cron.database_name', true) IS NULL THEN
        RAISE NOTICE 'pg_cron is not loaded: Hearth jobs are not scheduled (the app can run them itself)';
    ELSIF current_setting('cron.database_name') = current_database() THEN
        CREATE EXTENSION IF NOT EXISTS pg_cron;
{schedules}
    ELSE
        RAISE NOTICE 'pg_cron lives in database %: schedule Hearth jobs there with cron.schedule_in_database '
                     '(hearth migrate does this)', current_setting('cron.database_name');
    END IF;
END
$hearth_cron$;
"""


def install(conn: Any, url_for_db: Any, jobs: list[Job] | None = None) -> str:
    """Schedule jobs (default: revision 0001's, with the trim job) for the database `conn` (a psycopg
    connection) is on. Returns what it did.

    `url_for_db(name)` gives a connection URL for another database of the same server.
    """
    with_trim = jobs is None
    jobs = JOBS if jobs is None else jobs
    dbname, cron_db = conn.execute(
        "SELECT current_database(), current_setting('cron.database_name', true)"
    ).fetchone()
    if cron_db is None:
        return "pg_cron is not loaded: jobs not scheduled"
    count = len(jobs) + (1 if with_trim else 0)
    if cron_db == dbname:
        conn.execute(local_install_sql([*jobs, TRIM_JOB] if with_trim else jobs))
        return f"scheduled {count} jobs in {dbname}"
    import psycopg

    with psycopg.connect(url_for_db(cron_db), autocommit=True) as cron_conn:
        cron_conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        for name, sched, cmd in jobs:
            cron_conn.execute(
                "SELECT cron.schedule_in_database(%s, %s, %s, %s)",
                (job_name(dbname, name), sched, cmd, dbname),
            )
        if with_trim:
            name, sched, cmd = TRIM_JOB
            cron_conn.execute("SELECT cron.schedule(%s, %s, %s)", (job_name(dbname, name), sched, cmd))
    return f"scheduled {count} jobs for {dbname} from {cron_db}"


def uninstall(conn: Any, url_for_db: Any, jobs: list[Job] | None = None) -> None:
    dbname, cron_db = conn.execute(
        "SELECT current_database(), current_setting('cron.database_name', true)"
    ).fetchone()
    if cron_db is None:
        return
    names = [job_name(dbname, name) for name, _, _ in ([*JOBS, TRIM_JOB] if jobs is None else jobs)]
    sql = "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = ANY(%s)"
    if cron_db == dbname:
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'").fetchone():
            conn.execute(sql, (names,))
        return
    import psycopg

    with psycopg.connect(url_for_db(cron_db), autocommit=True) as cron_conn:
        if cron_conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'").fetchone():
            cron_conn.execute(sql, (names,))


def _url_for_db(op: Any) -> Any:
    def url_for_db(name: str) -> str:
        url = op.get_bind().engine.url.set(drivername="postgresql", database=name)
        rendered: str = url.render_as_string(hide_password=False)
        return rendered

    return url_for_db


def _enabled() -> bool:
    from alembic import context

    flag = context.get_x_argument(as_dictionary=True).get("cron") or os.environ.get("HEARTH_CRON", "on")
    return flag != "off"


def migration_install(op: Any, jobs: list[Job] | None = None) -> None:
    """From a revision's upgrade(): schedule `jobs` (default: 0001's), unless `-x cron=off`. Offline
    (--sql) it renders the local-database case for review."""
    if not _enabled():
        return
    if op.get_context().as_sql:
        op.get_context().impl.static_output(local_install_sql([*JOBS, TRIM_JOB] if jobs is None else jobs))
    else:
        print(install(op.get_bind().connection.driver_connection, _url_for_db(op), jobs))


def migration_uninstall(op: Any, jobs: list[Job] | None = None) -> None:
    """From a revision's downgrade(): unschedule `jobs` (default: 0001's)."""
    if not op.get_context().as_sql:
        uninstall(op.get_bind().connection.driver_connection, _url_for_db(op), jobs)
