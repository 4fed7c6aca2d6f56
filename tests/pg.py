"""Where the test suite's PostgreSQL comes from.

TEST_DATABASE_URL (a superuser URL) wins; else a Docker engine, if one answers, runs a container with
pg_cron; else (the default) a throwaway local cluster is started with pg_cron preloaded.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from app.cluster import LocalCluster


@dataclass
class PgServer:
    base_url: str
    cluster: LocalCluster | None = None

    def url(self, dbname: str) -> str:
        return urlsplit(self.base_url)._replace(path="/" + dbname).geturl()

    @property
    def has_cron(self) -> bool:
        with psycopg.connect(self.base_url) as conn:
            row = conn.execute("SELECT current_setting('cron.database_name', true)").fetchone()
            return row is not None and row[0] is not None


def _docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@contextlib.contextmanager
def _container_server() -> Iterator[PgServer]:
    from testcontainers.core.container import DockerContainer  # type: ignore[import-untyped]

    image = os.environ.get("HEARTH_TEST_PG_IMAGE", "postgres:15")
    command = (
        "bash -c 'apt-get update -qq && apt-get install -y -qq postgresql-15-cron >/dev/null; "
        "exec docker-entrypoint.sh postgres -c shared_preload_libraries=pg_cron "
        "-c cron.database_name=postgres -c cron.use_background_workers=on -c max_worker_processes=32 "
        "-c max_connections=400 -c fsync=off'"
    )
    container = (
        DockerContainer(image)
        .with_env("POSTGRES_HOST_AUTH_METHOD", "trust")
        .with_exposed_ports(5432)
        .with_command(command)
    )
    with container:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(5432)
        url = f"postgresql://postgres@{host}:{port}/postgres"
        deadline = time.monotonic() + 180
        while True:
            try:
                with psycopg.connect(url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield PgServer(url)


@contextlib.contextmanager
def _local_server() -> Iterator[PgServer]:
    base = Path(tempfile.mkdtemp(prefix="hearth-test-pg-"))
    cluster = LocalCluster(base, durable=False)
    try:
        cluster.init()
        cluster.start()
        yield PgServer(cluster.url(), cluster)
    finally:
        cluster.destroy()


@contextlib.contextmanager
def pg_server() -> Iterator[PgServer]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield PgServer(url)
    elif _docker_answers():
        with _container_server() as server:
            yield server
    else:
        with _local_server() as server:
            yield server
