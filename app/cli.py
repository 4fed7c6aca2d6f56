"""The `hearth` command: dev, migrate, serve, sql."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from app import migrate
from app.cluster import LocalCluster
from app.config import Settings

DEV_DB = "hearth"


def _dev_secret(path: Path) -> str:
    """A random secret kept under .hearth/, so dev tokens survive restarts."""
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def demo_url(host: str, port: int) -> str:
    """The demo page's URL; a wildcard bind address is reached on loopback."""
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def _dev(args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import create_app, uvicorn_config

    base = Path(args.dir)
    cluster = LocalCluster(base)
    fresh = not cluster.initialized
    cluster.init()
    cluster.start()
    try:
        if fresh:
            import psycopg

            with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {DEV_DB}")
        url = cluster.url(DEV_DB)
        migrate.upgrade(url)
        env = {
            **os.environ,
            "HEARTH_DATABASE_URL": url,
            "HEARTH_SECRET": os.environ.get("HEARTH_SECRET") or _dev_secret(base / "secret"),
            "HEARTH_ADMIN_TOKEN": os.environ.get("HEARTH_ADMIN_TOKEN") or _dev_secret(base / "admin-token"),
        }
        settings = Settings.from_env(env)
        print(f"Hearth dev database: {url}  (psql: HEARTH_DATABASE_URL={url} hearth sql)", flush=True)
        print(f"Hearth dev app: http://{settings.host}:{settings.port}/  (Ctrl-C stops both)", flush=True)
        print(f"Open {demo_url(settings.host, settings.port)} for the demo", flush=True)
        uvicorn.run(**uvicorn_config(create_app(settings), settings))
    finally:
        cluster.stop()
        print("Hearth dev stopped.", flush=True)
    return 0


def _database_url() -> str:
    url = Settings.from_env().database_url.reveal()
    if not url:
        sys.exit("hearth: set HEARTH_DATABASE_URL")
    return url


def _migrate(args: argparse.Namespace) -> int:
    migrate.upgrade(_database_url(), args.revision)
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import create_app, uvicorn_config

    settings = Settings.from_env()
    uvicorn.run(**uvicorn_config(create_app(settings), settings))
    return 0


def _sql(args: argparse.Namespace) -> int:
    os.execvp("psql", ["psql", _database_url(), *args.psql_args])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hearth", description="Postgres-centric realtime sessions")
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="run an embedded PostgreSQL with pg_cron under ./.hearth, migrated")
    dev.add_argument("--dir", default=".hearth", help="where the embedded cluster lives (default ./.hearth)")
    dev.set_defaults(func=_dev)
    mig = sub.add_parser("migrate", help="upgrade HEARTH_DATABASE_URL to head")
    mig.add_argument("revision", nargs="?", default="head")
    mig.set_defaults(func=_migrate)
    serve = sub.add_parser("serve", help="run the app against HEARTH_DATABASE_URL")
    serve.set_defaults(func=_serve)
    sql = sub.add_parser("sql", help="psql into HEARTH_DATABASE_URL")
    sql.add_argument("psql_args", nargs=argparse.REMAINDER)
    sql.set_defaults(func=_sql)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
