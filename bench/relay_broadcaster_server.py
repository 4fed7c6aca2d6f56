"""The Python peer for bench/relay*.py: encode/broadcaster's Postgres backend behind a minimal
Starlette websocket endpoint, served by uvicorn with Hearth's websocket settings.

Bench-only dependency, not in pyproject: `.venv/bin/pip install broadcaster` (0.3.1 measured).
Run: `python -m bench.relay_broadcaster_server PORT` with BENCH_BROADCAST_URL=postgresql://... .
Every websocket subscribes to the channel `bench_relay`; whatever is NOTIFYed there is sent to every
subscriber as is. A client's {"type":"ping"} is answered with {"type":"pong"}.

One change from broadcaster's own chat example: subscribing and unsubscribing are serialised by a
lock. Without it, many clients subscribing at once run concurrent LISTENs on broadcaster's single
connection and fail with `InterfaceError: another operation is in progress`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from broadcaster import Broadcast
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

CHANNEL = "bench_relay"
broadcast = Broadcast(os.environ["BENCH_BROADCAST_URL"])
subscribe_lock = asyncio.Lock()


async def _receive(websocket: WebSocket) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if '"ping"' in (message.get("text") or ""):
            await websocket.send_text('{"type":"pong"}')


async def _relay(websocket: WebSocket, subscriber: Any) -> None:
    async for event in subscriber:
        await websocket.send_text(event.message)


async def endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    subscription = broadcast.subscribe(CHANNEL)
    async with subscribe_lock:
        subscriber = await subscription.__aenter__()
    try:
        await websocket.send_text('{"type":"hello"}')
        tasks = [asyncio.create_task(_receive(websocket)), asyncio.create_task(_relay(websocket, subscriber))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        async with subscribe_lock:
            await subscription.__aexit__(None, None, None)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    await broadcast.connect()
    try:
        yield
    finally:
        await broadcast.disconnect()


app = Starlette(routes=[WebSocketRoute("/ws", endpoint)], lifespan=lifespan)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), ws="websockets-sansio", ws_max_size=64 * 1024,
                ws_ping_interval=20.0, ws_ping_timeout=60.0, lifespan="on", log_level="warning",
                access_log=False)
