"""Run Alembic migrations from Python (hearth migrate, hearth dev, the test fixtures)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str, *, cron: bool = True) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "db" / "migrations"))
    # -x arguments, as on the command line.
    config.cmd_opts = _XArgs([f"url={url}", f"cron={'on' if cron else 'off'}"])  # type: ignore[assignment]
    return config


class _XArgs:
    def __init__(self, x: list[str]) -> None:
        self.x = x


def upgrade(url: str, revision: str = "head", *, cron: bool = True) -> None:
    command.upgrade(alembic_config(url, cron=cron), revision)


def downgrade(url: str, revision: str, *, cron: bool = True) -> None:
    command.downgrade(alembic_config(url, cron=cron), revision)
