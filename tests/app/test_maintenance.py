"""Without pg_cron doing it, the app runs the periodic functions itself: one leader per database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from app import cron, maintenance
from tests.app.conftest import clone_database, start_instances
from tests.app.harness import Api, Instance, Ws, bearer
from tests.pg import PgServer


@pytest.fixture
def maintained(pg: PgServer, template_db: str, log_dir: Path) -> Iterator[tuple[str, list[Instance]]]:
    url = clone_database(pg, template_db)  # its own database: the leader's expiry must not touch other tests'
    env = {"HEARTH_MAINTENANCE": "on", "HEARTH_MAINTENANCE_SCALE": str(1 / 60)}  # "every minute" = 1 s
    instances = start_instances(url, log_dir, 2, env)
    yield url, instances
    for instance in instances:
        instance.terminate()


async def test_one_instance_leads_and_expiry_reaches_clients(maintained: tuple[str, list[Instance]]) -> None:
    url, instances = maintained
    conn = await asyncpg.connect(url)
    try:
        leaders = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        assert leaders == 1
    finally:
        await conn.close()

    api = Api(instances[1])
    _, token = await api.identity("sleepy")
    r = await api.http.post("/v1/sessions", json={"idle_timeout_s": 2}, headers=bearer(token))
    session_id = r.json()["session_id"]
    _, session_token = await api.join(session_id, token)
    ws = await Ws.open(instances[1], session_token)
    await ws.until_type("welcome")
    # Nobody posts anything: the leader's expire_sessions (every second here) expires the session.
    assert await ws.closed(timeout=20) == 4410
    assert ws.frames[-1]["type"] == "session.expired" and ws.frames[-1]["reason"] == "idle"
    await api.close()


def test_the_app_runs_pg_crons_jobs_on_pg_crons_schedule() -> None:
    """One list of jobs (app.cron): the app's schedule is derived from it, command for command, but where
    app.cron says why one differs."""
    schedule = {name: (command, period) for name, command, period in maintenance.SCHEDULE}
    jobs = cron.JOBS + cron.MATCH_JOBS + cron.PARTITION_JOBS
    assert set(schedule) == {name for name, _, _ in jobs}
    for name, cron_schedule, command in jobs:
        app_command, period = schedule[name]
        assert period == {"* * * * *": 60, "*/15 * * * *": 900}[cron_schedule], name
        assert app_command == cron.APP_COMMANDS.get(name, command), name
    assert cron.APP_COMMANDS == {"cleanup_inactive_sessions": "SELECT hearth.cleanup_inactive_sessions()"}


@pytest.mark.parametrize("schedule", ["0 * * * *", "*/x * * * *", "* * * *", "*/15 1 * * *"])
def test_a_schedule_the_app_cannot_follow_is_refused(schedule: str) -> None:
    with pytest.raises(ValueError):
        cron.period_s(schedule)
