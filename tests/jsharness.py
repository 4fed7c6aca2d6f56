"""The server side of the JavaScript client's tests: `python -m tests.jsharness` starts one throwaway
PostgreSQL cluster with a migrated template, prints `{"control": URL}` on a line, and then, over loopback
HTTP, starts what each test file asks for: a database cloned from the template with `hearth serve`
instances on it (and a LiveKit double), signals to them, SQL on that database. It stops everything when
its stdin closes (clients/js/test/run.mjs holds it open while `node --test` runs)."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
from aiohttp import web

from app import migrate
from app.cluster import free_port
from tests.app.conftest import clone_database
from tests.app.harness import Instance
from tests.livekit_double import LiveKitDouble
from tests.pg import PgServer, pg_server

TEMPLATE = "hearth_js_template"
LIVEKIT_KEY = "devkey"
LIVEKIT_SECRET = "devsecret-for-hearth-js-tests-0123456789abcdef"


class Setup:
    """One test file's database, its instances and its LiveKit double."""

    def __init__(self, database_url: str, env: dict[str, str], log_dir: Path) -> None:
        self.database_url = database_url
        self.env = env
        self.log_dir = log_dir
        self.instances: list[Instance] = []
        self.livekit: LiveKitDouble | None = None

    async def start_instance(self) -> dict[str, Any]:
        name = f"js{len(self.instances)}-{uuid.uuid4().hex[:6]}"
        instance = Instance(self.database_url, name, self.log_dir, self.env)
        self.instances.append(instance)
        await instance.ready()
        return {"index": len(self.instances) - 1, "url": instance.base_url, "pid": instance.pid}

    async def stop(self) -> None:
        await asyncio.gather(*(instance.stop() for instance in self.instances))
        if self.livekit is not None:
            await self.livekit.stop()


class Harness:
    def __init__(self, pg: PgServer) -> None:
        self.pg = pg
        self.setups: dict[str, Setup] = {}
        self.log_dir = Path(tempfile.mkdtemp(prefix="hearth-js-logs-"))

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/start", self.start),
            web.post("/instance", self.instance),
            web.post("/signal", self.signal),
            web.post("/sql", self.sql),
            web.post("/stop", self.stop),
        ]

    async def start(self, request: web.Request) -> web.Response:
        body = await request.json()
        database_url = await asyncio.to_thread(clone_database, self.pg, TEMPLATE)
        env = dict(body.get("env", {}))
        setup = Setup(database_url, env, self.log_dir)
        if body.get("livekit"):
            setup.livekit = LiveKitDouble(api_key=LIVEKIT_KEY, api_secret=LIVEKIT_SECRET)
            await setup.livekit.start()
            setup.env |= {
                "LIVEKIT_URL": setup.livekit.url,
                "LIVEKIT_API_KEY": LIVEKIT_KEY,
                "LIVEKIT_API_SECRET": LIVEKIT_SECRET,
                "HEARTH_LIVEKIT_RECONCILE_S": "3600",
                "HEARTH_LIVEKIT_GRACE_S": "600",
            }
        setup_id = uuid.uuid4().hex[:8]
        self.setups[setup_id] = setup
        conn = await asyncpg.connect(database_url)
        try:
            for key, value in body.get("settings", {}).items():
                await conn.execute("SELECT hearth.set_setting($1, $2)", key, str(value))
        finally:
            await conn.close()
        instances = await asyncio.gather(*(setup.start_instance() for _ in range(body.get("instances", 1))))
        return web.json_response(
            {
                "id": setup_id,
                "instances": instances,
                "livekit": setup.livekit.url if setup.livekit else None,
            }
        )

    def _setup(self, body: dict[str, Any]) -> Setup:
        return self.setups[body["id"]]

    async def instance(self, request: web.Request) -> web.Response:
        return web.json_response(await self._setup(await request.json()).start_instance())

    async def signal(self, request: web.Request) -> web.Response:
        body = await request.json()
        instance = self._setup(body).instances[body["index"]]
        instance.proc.send_signal(getattr(signal, "SIG" + body.get("signal", "KILL")))
        code = await asyncio.to_thread(instance.proc.wait, 30)
        return web.json_response({"exit": code})

    async def sql(self, request: web.Request) -> web.Response:
        body = await request.json()
        conn = await asyncpg.connect(self._setup(body).database_url)
        try:
            rows = await conn.fetch(body["sql"], *body.get("args", []))
        finally:
            await conn.close()
        return web.json_response([dict(row) for row in rows], dumps=lambda v: json.dumps(v, default=str))

    async def stop(self, request: web.Request) -> web.Response:
        setup = self.setups.pop((await request.json())["id"], None)
        if setup is not None:
            await setup.stop()
        return web.json_response({})

    async def close(self) -> None:
        await asyncio.gather(*(setup.stop() for setup in self.setups.values()))


async def serve(pg: PgServer) -> None:
    harness = Harness(pg)
    app = web.Application()
    app.add_routes(harness.routes())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(json.dumps({"control": f"http://127.0.0.1:{port}", "logs": str(harness.log_dir)}), flush=True)
    try:
        await _until_stdin_closes_or_signalled()
    finally:
        try:
            await harness.close()
        finally:
            await runner.cleanup()


async def _until_stdin_closes_or_signalled() -> None:
    """Until the test runner closes our stdin (or exits, which closes it too), or a SIGTERM / SIGHUP / SIGINT
    comes: each ends in the same clean-up, so no instance or cluster outlives the run."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def finish() -> None:
        if not done.done():
            done.set_result(None)

    def read_stdin() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(finish)

    # A daemon thread, not the loop's executor: shutting the loop down must not wait for a blocked read.
    threading.Thread(target=read_stdin, daemon=True).start()
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        loop.add_signal_handler(signum, finish)
    await done


def main() -> None:
    with pg_server() as pg:
        with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
        migrate.upgrade(pg.url(TEMPLATE), cron=False)
        asyncio.run(serve(pg))


if __name__ == "__main__":
    main()
