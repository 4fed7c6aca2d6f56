"""Alembic environment: the database URL comes from `-x url=...`, else HEARTH_DATABASE_URL.

Migrations run through psycopg (SQL files go to the server as they are). The version table lives in
its own schema, hearth_migrations, so nothing goes into public. `-x cron=off` skips pg_cron jobs.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool, text

VERSION_SCHEMA = "hearth_migrations"


def database_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("HEARTH_DATABASE_URL")
    if not url:
        if context.is_offline_mode():
            return "postgresql+psycopg://"
        raise SystemExit("set HEARTH_DATABASE_URL (or pass -x url=postgresql://...)")
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def run_offline() -> None:
    context.configure(
        url=database_url(),
        literal_binds=True,
        version_table_schema=VERSION_SCHEMA,
        transaction_per_migration=True,
    )
    context.get_context().impl.static_output(
        f"CREATE SCHEMA IF NOT EXISTS {VERSION_SCHEMA};\nSET check_function_bodies = off;\n"
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {VERSION_SCHEMA}"))
        # Function bodies may name objects a later file creates; pg_dump loads with the same setting.
        connection.execute(text("SET check_function_bodies = off"))
        connection.commit()
        context.configure(
            connection=connection,
            version_table_schema=VERSION_SCHEMA,
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
