"""The Dockerfile's steps without Docker: build the wheel from what the image copies, install it (no
dependencies) into a fresh virtualenv, and run the image's command from an empty directory against a
fresh database. So a package that forgets its SQL, or a command that needs a checkout, fails here.

The fresh virtualenv takes its dependencies from the test environment (a .pth file naming this
environment's site-packages), so nothing is downloaded.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from websockets.sync.client import connect

from app.cluster import free_port
from tests.pg import PgServer

ROOT = Path(__file__).resolve().parents[1]
SECRET = "install-test-secret-0123456789abcdef"


def _dockerfile() -> tuple[list[str], str]:
    """What the Dockerfile's build stage copies into the image's build, and the command the image runs."""
    _, build, final = re.split(r"^FROM ", (ROOT / "Dockerfile").read_text(), flags=re.M)
    copied = []
    for line in build.splitlines():
        if line.startswith("COPY "):
            *sources, _dest = line.split()[1:]
            copied += sources
    found = re.search(r"^CMD (\[.*\])$", final, re.M)
    assert found is not None, "the Dockerfile has no CMD"
    command = json.loads(found.group(1))
    assert command[:2] == ["sh", "-c"], command
    return copied, command[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel installed; returns its bin/ directory."""
    base = tmp_path_factory.mktemp("install")
    src = base / "src"
    src.mkdir()
    copied, _ = _dockerfile()
    for name in copied:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, src / name)
    wheels = base / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    # No build isolation: setuptools comes from this environment (the dev extras), not from an index.
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", wheels, src], check=True)
    [wheel] = wheels.glob("hearth-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    subprocess.run([*pip, "--python", python, "install", "-q", "--no-deps", "--no-index", wheel], check=True)
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # A path line in a .pth file only extends sys.path (the .pth files over there are not run, so this
    # environment's editable install of the checkout stays out).
    (Path(site) / "hearth_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin"


@pytest.fixture
def empty_dir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    return work


@pytest.fixture
def fresh_db(pg: PgServer) -> Iterator[str]:
    name = f"hearth_install_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg.url(name)
    with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
        if pg.has_cron:  # the migration scheduled jobs for this database: they go with it
            conn.execute(
                "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname LIKE %s", (f"hearth.{name}.%",)
            )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _env(bin_dir: Path, **extra: str) -> dict[str, str]:
    """A clean environment: the virtualenv's commands first, nothing of this checkout on any path."""
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "LANG": "C.UTF-8", **extra}


def _run(bin_dir: Path, cwd: Path, *args: str, **env: str) -> str:
    result = subprocess.run(
        args, cwd=cwd, env=_env(bin_dir, **env), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{shlex.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_the_wheel_carries_its_sql_and_imports_from_itself(installed: Path, empty_dir: Path) -> None:
    found = _run(
        installed,
        empty_dir,
        "python",
        "-c",
        "import app, app.sqlfiles as s; print(app.__file__); print(s.DB_DIR); "
        "print(len(s.function_files())); print(' '.join(s.revisions()))",
    ).splitlines()
    venv = installed.parent
    assert Path(found[0]).is_relative_to(venv), found
    assert Path(found[1]) == Path(found[0]).parent / "sql", found
    assert int(found[2]) == len(list((ROOT / "db" / "functions").rglob("*.sql")))
    versions = ROOT / "db" / "migrations" / "versions"
    assert found[3].split() == sorted(
        p.name for p in versions.iterdir() if p.is_dir() and p.name[:4].isdigit()
    )
    site = Path(found[0]).parent.parent
    assert not (site / "db").exists(), "db/ must be installed inside the app package, not at the top level"
    assert _run(installed, empty_dir, "hearth", "--version").strip() == "hearth 0.1.0"


def test_migrate_sql_renders_the_upgrade_without_a_database(installed: Path, empty_dir: Path) -> None:
    sql = _run(installed, empty_dir, "hearth", "migrate", "--sql")
    assert sql.startswith("CREATE SCHEMA IF NOT EXISTS hearth_migrations;")
    assert "CREATE TABLE hearth_data.sessions" in sql
    assert "CREATE OR REPLACE FUNCTION hearth.touch(" in sql
    assert "cron.schedule(" in sql
    versions = sorted(p.stem for p in (ROOT / "db" / "migrations" / "versions").glob("*.py"))
    assert sql.count("INSERT INTO hearth_migrations.alembic_version") == 1
    assert sql.count("UPDATE hearth_migrations.alembic_version") == len(versions) - 1
    assert sql.rstrip().endswith("COMMIT;")
    # From a revision on: only what comes after it.
    later = _run(installed, empty_dir, "hearth", "migrate", "--sql", f"{versions[-2][:4]}:head")
    assert "CREATE TABLE hearth_data.sessions" not in later
    assert later.count("UPDATE hearth_migrations.alembic_version") == 1
    assert list(empty_dir.iterdir()) == [], "rendering SQL wrote files"


def test_the_image_command_migrates_and_serves_from_an_empty_directory(
    installed: Path, empty_dir: Path, fresh_db: str
) -> None:
    _, command = _dockerfile()
    port = free_port()
    env = _env(
        installed,
        HEARTH_DATABASE_URL=fresh_db,
        HEARTH_SECRET=SECRET,
        HEARTH_HOST="127.0.0.1",  # the image listens on 0.0.0.0; a test stays on loopback
        HEARTH_PORT=str(port),
    )
    log = empty_dir.parent / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(["sh", "-c", command], cwd=empty_dir, env=env, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=10) as http:
            identity = http.post("/v1/identities", json={"display_name": "installed"}).json()
            auth = {"Authorization": f"Bearer {identity['token']}"}
            session = http.post("/v1/sessions", json={}, headers=auth).json()
            joined = http.post(f"/v1/sessions/{session['session_id']}/join", json={}, headers=auth).json()
            assert http.get("/").status_code == 200  # the demo page's files came along
            client = http.get("/v1/hearth-client.js")
            assert client.status_code == 200
            assert client.headers["content-type"] == "text/javascript; charset=utf-8"
            assert client.content == (ROOT / "clients" / "js" / "hearth-client.js").read_bytes()
        with connect(f"ws://127.0.0.1:{port}/v1/ws?token={joined['token']}", open_timeout=10) as ws:
            welcome = json.loads(ws.recv(timeout=10))
            assert welcome["type"] == "welcome"
            ws.send(json.dumps({"type": "message", "body": {"text": "round trip"}}))
            while (frame := json.loads(ws.recv(timeout=10)))["type"] != "message":
                pass
            assert frame["body"] == {"text": "round trip"}
            assert frame["participant_id"] == joined["participant_id"]
    finally:
        proc.terminate()
        proc.wait(20)
    assert list(empty_dir.iterdir()) == [], "the app wrote files into its working directory"
    # psql through `hearth sql`, its arguments passed as they are.
    out = _run(installed, empty_dir, "hearth", "sql", "-tA", "-c", "select 1", HEARTH_DATABASE_URL=fresh_db)
    assert out.strip() == "1"
    # A second migrate is a no-op.
    _run(installed, empty_dir, "hearth", "migrate", HEARTH_DATABASE_URL=fresh_db)
