"""A private PostgreSQL cluster with pg_cron, for `hearth dev` and the test suite.

initdb and postgres refuse to run as root, so when we are root every server command runs as the
`postgres` user (runuser) in a directory that user owns.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

DEFAULT_PG_BIN = Path(os.environ.get("HEARTH_PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "postgres"


class ClusterError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pg_cron_available(pg_bin: Path = DEFAULT_PG_BIN) -> bool:
    libdir = pg_bin.parent / "lib"
    return (libdir / "pg_cron.so").exists()


class LocalCluster:
    """One PostgreSQL cluster in `base_dir`: data/, run/ (socket), postgres.log."""

    def __init__(
        self,
        base_dir: Path,
        *,
        port: int | None = None,
        durable: bool = True,
        pg_bin: Path = DEFAULT_PG_BIN,
    ) -> None:
        self.base_dir = base_dir.resolve()
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "run"
        self.log_file = self.base_dir / "postgres.log"
        self.port_file = self.base_dir / "port"
        self.durable = durable
        self.pg_bin = pg_bin
        self.port = port or self._remembered_port() or free_port()
        self._as_postgres = os.geteuid() == 0

    def _remembered_port(self) -> int | None:
        try:
            return int(self.port_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self._as_postgres:
            cmd = ["runuser", "-u", SUPERUSER, "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=self.base_dir)
        if check and result.returncode != 0:
            raise ClusterError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        """Create the cluster once; a no-op when it already exists."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if self._as_postgres:
            shutil.chown(self.base_dir, SUPERUSER, SUPERUSER)
            shutil.chown(self.socket_dir, SUPERUSER, SUPERUSER)
        if self.initialized:
            return
        self._run(
            str(self.pg_bin / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "max_connections": "400",
            "max_worker_processes": "32",
            "shared_buffers": "'256MB'",
            "log_min_messages": "warning",
            "log_min_error_statement": "panic",
        }
        if pg_cron_available(self.pg_bin):
            settings |= {
                "shared_preload_libraries": "'pg_cron'",
                "cron.database_name": "'postgres'",
                "cron.use_background_workers": "on",
                "cron.max_running_jobs": "8",
            }
        if not self.durable:
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        conf = self.data_dir / "postgresql.conf"
        lines = "".join(f"{k} = {v}\n" for k, v in settings.items())
        self._run("sh", "-c", f"cat >> '{conf}' <<'EOF'\n# added by hearth\n{lines}EOF")

    @property
    def running(self) -> bool:
        result = self._run(str(self.pg_bin / "pg_ctl"), "-D", str(self.data_dir), "status", check=False)
        return result.returncode == 0

    def start(self) -> None:
        if self.running:
            return
        if self._remembered_port() != self.port and not _port_free(self.port):
            self.port = free_port()
        self._run(
            str(self.pg_bin / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            f"-p {self.port}",
            "-w",
            "-t",
            "60",
            "start",
        )
        self.port_file.write_text(f"{self.port}\n")

    def stop(self, mode: str = "fast") -> None:
        if self.initialized and self.running:
            self._run(str(self.pg_bin / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5):
                return
            time.sleep(0.1)
        raise ClusterError(f"PostgreSQL did not accept connections on port {self.port}")

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base_dir, ignore_errors=True)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
