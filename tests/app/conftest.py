"""App fixtures: a database per module and real `hearth serve` processes on loopback."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import psycopg
import pytest

from tests.app.harness import Api, Instance
from tests.pg import PgServer

# The app tests create many identities, sessions and sockets from one address and identity: their
# databases raise the limits (SPEC section 2) far out of the way; the tests of the limits use a clone with
# the defaults (`raise_limits=False`).
RAISED_LIMITS = {
    "identity_rate_limit": "100000",
    "max_open_sessions_per_identity": "100000",
    "max_sockets_per_identity": "100000",
}


def clone_database(pg: PgServer, template: str, *, raise_limits: bool = True) -> str:
    name = f"hearth_app_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    if raise_limits:
        with psycopg.connect(pg.url(name), autocommit=True) as conn:
            for key, value in RAISED_LIMITS.items():
                conn.execute("SELECT hearth.set_setting(%s, %s)", (key, value))
    return pg.url(name)


@pytest.fixture(scope="module")
def app_db(pg: PgServer, template_db: str) -> str:
    return clone_database(pg, template_db)


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The instances' logs: under pytest's base temporary directory, which keeps the last few runs' for
    reading after a failure and removes older ones (a directory per module per run otherwise piles up)."""
    return tmp_path_factory.mktemp("app-logs")


def start_instances(
    database_url: str, log_dir: Path, count: int, env: dict[str, str] | None = None
) -> list[Instance]:
    instances = [Instance(database_url, f"i{n}-{uuid.uuid4().hex[:6]}", log_dir, env) for n in range(count)]
    try:
        for instance in instances:
            instance.wait_ready()
    except BaseException:
        # No fixture owns them yet: an instance that was slow to start would outlive the test run.
        for instance in instances:
            instance.terminate()
        raise
    return instances


@pytest.fixture(scope="module")
def pair(app_db: str, log_dir: Path) -> Iterator[list[Instance]]:
    """Two instances sharing one database, for the whole module."""
    instances = start_instances(app_db, log_dir, 2)
    yield instances
    for instance in instances:
        instance.terminate()


@pytest.fixture
async def api_a(pair: list[Instance]) -> AsyncIterator[Api]:
    api = Api(pair[0])
    yield api
    await api.close()


@pytest.fixture
async def api_b(pair: list[Instance]) -> AsyncIterator[Api]:
    api = Api(pair[1])
    yield api
    await api.close()


@pytest.fixture
def no_server_tracebacks(pair: list[Instance]) -> Iterator[None]:
    """Fails a test after which either instance logged a traceback (an error that was not handled)."""
    before = [len(instance.log()) for instance in pair]
    yield
    for instance, start in zip(pair, before, strict=True):
        assert "Traceback" not in instance.log()[start:], instance.log()[start:][-3000:]


@pytest.fixture
async def superuser(app_db: str) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection to the module's database."""
    conn = await asyncpg.connect(app_db)
    yield conn
    await conn.close()


@pytest.fixture
async def sql(superuser: asyncpg.Connection) -> asyncpg.Connection:
    return superuser
