"""The app's access to PostgreSQL: a pool acting as hearth_app, calling hearth.* functions only."""

from __future__ import annotations

import json
import time
from typing import Any

import asyncpg

from app.errors import HearthError, from_postgres
from app.metrics import Metrics


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    # Log in as hearth_app, or as a member of it (the dev superuser): act as hearth_app either way.
    await conn.execute(
        """DO $$ BEGIN
             IF current_user <> 'hearth_app' AND pg_has_role('hearth_app', 'MEMBER') THEN
               SET ROLE hearth_app;
             END IF;
           END $$"""
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool release without asyncpg's default reset query (a server round trip per call): pooled
    connections only run single auto-commit calls of hearth.* functions; they never LISTEN, keep a
    transaction open, or change settings after _init_connection."""


async def connect(url: str) -> asyncpg.Connection:
    """A single connection set up like the pool's (the listener uses one)."""
    conn: asyncpg.Connection = await asyncpg.connect(url)
    await _init_connection(conn)
    return conn


class Database:
    def __init__(self, pool: asyncpg.Pool, metrics: Metrics) -> None:
        self.pool = pool
        self.metrics = metrics

    @classmethod
    async def open(cls, url: str, metrics: Metrics, *, min_size: int = 2, max_size: int = 10) -> Database:
        pool = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            reset=_keep_session,
            command_timeout=30,
        )
        assert pool is not None
        return cls(pool, metrics)

    async def close(self) -> None:
        await self.pool.close()

    async def _call(self, method: str, function: str, sql: str, args: tuple[Any, ...]) -> Any:
        start = time.perf_counter()
        try:
            async with self.pool.acquire() as conn:
                return await getattr(conn, method)(sql, *args)
        except asyncpg.PostgresError as exc:
            error = from_postgres(exc)
            if error is None:
                raise
            raise error from None
        finally:
            self.metrics.db_call.labels(function).observe(time.perf_counter() - start)

    async def fetchval(self, function: str, sql: str, *args: Any) -> Any:
        return await self._call("fetchval", function, sql, args)

    async def fetchrow(self, function: str, sql: str, *args: Any) -> asyncpg.Record | None:
        return await self._call("fetchrow", function, sql, args)

    async def fetch(self, function: str, sql: str, *args: Any) -> list[asyncpg.Record]:
        result: list[asyncpg.Record] = await self._call("fetch", function, sql, args)
        return result

    async def ping(self) -> bool:
        try:
            async with self.pool.acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1", timeout=2)
            return True
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            return False


def require(condition: bool, message: str) -> None:
    if not condition:
        raise HearthError("HT400", message)
