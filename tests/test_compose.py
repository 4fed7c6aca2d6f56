"""docker-compose.yml cannot rot unseen (no Docker engine here): every variable it names is one the app
reads, every command it runs exists, and what it builds is there."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"


def _services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def _app_variables() -> set[str]:
    """The variables app/config.py (the one reader of the environment) reads."""
    return set(re.findall(r'"((?:HEARTH|LIVEKIT)_[A-Z_]+)"', (ROOT / "app" / "config.py").read_text()))


def test_every_variable_named_is_one_the_app_reads() -> None:
    known = _app_variables()
    assert {"HEARTH_DATABASE_URL", "HEARTH_SECRET", "LIVEKIT_URL"} <= known
    # Anywhere in the file, the commented LiveKit settings included.
    named = set(re.findall(r"\b((?:HEARTH|LIVEKIT)_[A-Z_]+)\b", COMPOSE.read_text()))
    assert named - known == set()
    for name, service in _services().items():
        if service.get("build") == ".":
            assert set(service.get("environment", {})) <= known, name


def test_every_app_command_exists() -> None:
    commands = [s["command"] for s in _services().values() if s.get("build") == "."]
    assert ["hearth", "migrate"] in commands and commands.count(["hearth", "serve"]) == 2
    for command in commands:
        assert command[0] == "hearth"
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", *command[1:], "--help"], capture_output=True, text=True
        )
        assert done.returncode == 0, (command, done.stderr)


def test_postgres_is_15_with_pg_cron_loaded() -> None:
    postgres = _services()["postgres"]
    dockerfile = (ROOT / postgres["build"] / "Dockerfile").read_text()
    assert re.search(r"^FROM postgres:15$", dockerfile, re.M)
    assert "postgresql-15-cron" in dockerfile
    command = postgres["command"]
    settings = dict(arg.split("=", 1) for flag, arg in itertools.pairwise(command) if flag == "-c")
    assert postgres["command"][0] == "postgres"
    assert settings["shared_preload_libraries"] == "pg_cron"
    assert settings["cron.database_name"] == "postgres"
    assert postgres["healthcheck"]["test"][1] == "pg_isready"


def test_the_instances_wait_for_the_migration_and_share_one_database() -> None:
    services = _services()
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    urls = set()
    ports = []
    for name in ("hearth-1", "hearth-2"):
        service = services[name]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        urls.add(service["environment"]["HEARTH_DATABASE_URL"])
        ports += [p.split(":")[0] for p in service["ports"]]
    assert urls == {services["migrate"]["environment"]["HEARTH_DATABASE_URL"]}
    assert len(set(ports)) == 2
    assert "livekit-server" in COMPOSE.read_text() and "--dev" in COMPOSE.read_text()
