"""The `hearth` command: dev, migrate, serve, sql, jobs."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import secrets
import shlex
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

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
        print(f"Hearth dev database: {url}", flush=True)
        print("To reach it from another shell (hearth sql, hearth jobs), run there:", flush=True)
        print(f"  export HEARTH_DATABASE_URL={shlex.quote(url)}", flush=True)
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
    if args.sql:
        migrate.render_sql(args.revision, cron=os.environ.get("HEARTH_CRON", "on") != "off")
    else:
        migrate.upgrade(_database_url(), args.revision)
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import create_app, uvicorn_config

    settings = Settings.from_env()
    uvicorn.run(**uvicorn_config(create_app(settings), settings))
    return 0


def _jobs(args: argparse.Namespace) -> int:
    from app import jobs

    print(jobs.report(_database_url()), end="")
    return 0


def psql_command(url: str, psql_args: list[str]) -> tuple[list[str], dict[str, str]]:
    """psql's argv and environment for `url`: the password travels in PGPASSWORD, never on a command
    line (where `ps` shows it)."""
    parts = urlsplit(url)
    env = dict(os.environ)
    if parts.password is not None:
        env["PGPASSWORD"] = unquote(parts.password)
        host = parts.netloc.rpartition("@")[2]
        user = parts.netloc.rpartition("@")[0].partition(":")[0]
        parts = parts._replace(netloc=f"{user}@{host}")
    args = psql_args[1:] if psql_args[:1] == ["--"] else psql_args
    return ["psql", "--dbname", urlunsplit(parts), *args], env


def _sql(psql_args: list[str]) -> int:
    argv, env = psql_command(_database_url(), psql_args)
    try:
        os.execvpe("psql", argv, env)
    except FileNotFoundError:
        sys.exit("hearth sql: psql is not installed (Debian: apt-get install postgresql-client)")
    return 1  # not reached: exec replaced this process


def version() -> str:
    try:
        return importlib.metadata.version("hearth")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sql"]:
        # Everything after `sql` is psql's, options included (argparse would take them for its own).
        return _sql(argv[1:])
    parser = argparse.ArgumentParser(prog="hearth", description="Postgres-centric realtime sessions")
    parser.add_argument("--version", action="version", version=f"hearth {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="run an embedded PostgreSQL with pg_cron under ./.hearth, migrated")
    dev.add_argument("--dir", default=".hearth", help="where the embedded cluster lives (default ./.hearth)")
    dev.set_defaults(func=_dev)
    mig = sub.add_parser("migrate", help="upgrade HEARTH_DATABASE_URL to head")
    mig.add_argument(
        "revision", nargs="?", default="head", help="head (default), a revision, or FROM:TO with --sql"
    )
    mig.add_argument(
        "--sql",
        action="store_true",
        help="print the upgrade as SQL for review instead of running it (no database needed)",
    )
    mig.set_defaults(func=_migrate)
    serve = sub.add_parser("serve", help="run the app against HEARTH_DATABASE_URL")
    serve.set_defaults(func=_serve)
    jobs = sub.add_parser(
        "jobs", help="Hearth's scheduled jobs (pg_cron's, or the app's own): schedule, last run, last result"
    )
    jobs.set_defaults(func=_jobs)
    # Listed for --help only: main() hands `sql` and what follows it to psql before parsing.
    sub.add_parser("sql", help="psql into HEARTH_DATABASE_URL; the arguments after `sql` go to psql")
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
