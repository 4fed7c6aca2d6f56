"""app.db, the call layer: statements built from function names, metrics labelled by them, SQLSTATEs of
class HT mapped in one place, and no other module of app/ calling the SQL API."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app import db
from app.db import Database
from app.errors import HearthError
from app.metrics import Metrics

APP_DIR = Path(db.__file__).parent
# The call layer; the pg_cron job list (its commands are SQL by nature); `hearth jobs`, an operator command
# reading what pg_cron and the maintenance leader recorded, over psycopg as the migrator, beside pg_cron's
# own tables; and the SQL API's documentation renderer, whose prose names functions.
MAY_CALL_THE_API = {"db.py", "cron.py", "jobs.py", "sqldoc.py"}


def test_statements_are_built_from_the_function_name() -> None:
    assert db.statement("touch", 1) == "SELECT hearth.touch($1)"
    assert db.statement("session_stats", 0, rows=True) == "SELECT * FROM hearth.session_stats()"
    assert db.statement("join_session", 3) == "SELECT hearth.join_session($1, $2, $3)"
    with pytest.raises(ValueError):
        db.statement("touch(); DROP TABLE x; --", 0)


def test_no_other_module_calls_the_sql_api() -> None:
    calls = re.compile(r"hearth\.[a-z_]+\s*\(")
    found = {
        path.name: calls.findall(path.read_text())
        for path in sorted(APP_DIR.glob("*.py"))
        if path.name not in MAY_CALL_THE_API
    }
    assert {name: hits for name, hits in found.items() if hits} == {}


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    database = await Database.open(db_url, Metrics(), min_size=1, max_size=2)
    yield database
    await database.close()


def _calls(database: Database, function: str) -> float:
    value = database.metrics.registry.get_sample_value("hearth_db_call_seconds_count", {"function": function})
    return value or 0.0


async def test_each_call_is_labelled_with_its_function(database: Database) -> None:
    identity_id = await database.create_identity("ann")
    await database.enqueue_match(identity_id)
    assert await database.identity_state(identity_id) == "waiting"
    assert await database.heartbeat_interval_s() == 30
    assert await database.touch([], [identity_id]) == 0
    for function in ("create_identity", "enqueue_match", "identity_state", "get_setting", "touch"):
        assert _calls(database, function) == 1, function


async def test_ht_sqlstates_become_client_errors(database: Database) -> None:
    with pytest.raises(HearthError) as info:
        await database.create_identity("x" * 101)
    assert (info.value.code, info.value.http_status) == ("HT400", 400)
    assert _calls(database, "create_identity") == 1
    with pytest.raises(HearthError) as info:
        await database.session_state(uuid.uuid4())
    assert (info.value.code, info.value.http_status) == ("HT404", 404)
