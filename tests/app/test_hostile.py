"""Hostile clients against real `hearth serve` instances: no single client may stall or bloat an instance.

Each attack runs against a real instance on loopback while another client keeps checking that the instance
still answers (`/readyz` and a websocket round trip) and that its RSS stays bounded; the bounds are generous
(seconds, tens of MiB) and the measured figures are printed (`pytest -s`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.app.harness import ROOT


def test_a_short_secret_is_refused_with_a_clear_message(app_db: str, log_dir: Path) -> None:
    # 31 bytes: one short of what HS256 wants (RFC 7518 section 3.2: a key of at least 256 bits).
    env = {"HEARTH_DATABASE_URL": app_db, "HEARTH_SECRET": "x" * 31, "PATH": "/usr/bin:/bin"}
    serve = [sys.executable, "-m", "app.cli", "serve"]
    done = subprocess.run(serve, cwd=ROOT, env=env, capture_output=True, text=True, timeout=20)
    assert done.returncode != 0
    assert "HEARTH_SECRET" in done.stderr and "32 bytes" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
