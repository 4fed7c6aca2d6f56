"""Run Alembic migrations from Python (hearth migrate, hearth dev, the test fixtures).

The configuration is built here, not read from alembic.ini: the migrations are found in the installed
package (app.sqlfiles), so `hearth migrate` works from any directory. alembic.ini serves `alembic upgrade
head` run in a checkout.
"""

from __future__ import annotations

from typing import TextIO

from alembic import command
from alembic.config import Config

from app import sqlfiles


def alembic_config(url: str | None, *, cron: bool = True, output: TextIO | None = None) -> Config:
    """`url` None: only for rendering SQL (offline), where no database is reached."""
    config = Config() if output is None else Config(output_buffer=output)
    # Values are interpolated by ConfigParser: a literal % is written %%.
    config.set_main_option("script_location", str(sqlfiles.MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    # -x arguments, as on the command line (the URL travels here, never through ConfigParser).
    x = [f"cron={'on' if cron else 'off'}", *([f"url={url}"] if url else [])]
    config.cmd_opts = _XArgs(x)  # type: ignore[assignment]
    return config


class _XArgs:
    def __init__(self, x: list[str]) -> None:
        self.x = x


def upgrade(url: str, revision: str = "head", *, cron: bool = True) -> None:
    command.upgrade(alembic_config(url, cron=cron), revision)


def downgrade(url: str, revision: str, *, cron: bool = True) -> None:
    command.downgrade(alembic_config(url, cron=cron), revision)


def render_sql(revision: str = "head", *, output: TextIO | None = None, cron: bool = True) -> None:
    """The upgrade to `revision` as SQL, for review (`alembic upgrade head --sql`): from the start, or
    `FROM:TO` (e.g. 0003:head) for the statements of an upgrade from FROM."""
    command.upgrade(alembic_config(None, cron=cron, output=output), revision, sql=True)
