"""The raw-library ceiling for bench/relay*.py: a bare `websockets` server (asyncio API) that
broadcasts Hearth-shaped message frames with `websockets.broadcast`, one framing per event.

Run: `python -m bench.relay_raw_server PORT [--framed-once]`. Like uvicorn, it runs on uvloop when
that is installed. Each client gets a hello frame on connect. A line
`B <n> <pad> [<ts>]` on stdin broadcasts n frames to every client, each stamped with body.ts = ts
(ms since the epoch: when the command was sent), or the time of broadcast without it. A client's
{"type":"ping"} is answered with {"type":"pong"}.

`--framed-once` is a what-if, not a library mode: each command's frames are serialised once (server
frames are unmasked, so the bytes are the same for every client) and written to each connection's
transport in one write, bypassing the per-connection protocol: one framing per event and one system
call per connection per batch, instead of a framing and a system call per frame per connection.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import time

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.frames import Frame, Opcode
from websockets.protocol import State

SESSION_ID = "5e55e55e-0000-4000-8000-000000000000"
PARTICIPANT_ID = "9a9a9a9a-0000-4000-8000-000000000000"
CLIENTS: set[ServerConnection] = set()


async def handler(ws: ServerConnection) -> None:
    CLIENTS.add(ws)
    try:
        await ws.send('{"type":"hello"}')
        async for message in ws:
            if isinstance(message, str) and '"ping"' in message:
                await ws.send('{"type":"pong"}')
    finally:
        CLIENTS.discard(ws)


def frame(seq: int, pad: str, ts: float | None) -> str:
    return json.dumps({"at": dt.datetime.now(dt.UTC).isoformat(), "seq": seq,
                       "body": {"ts": time.time() * 1000 if ts is None else ts, "pad": pad},
                       "type": "message", "session_id": SESSION_ID, "participant_id": PARTICIPANT_ID})


def write_framed_once(texts: list[str]) -> None:
    blob = b"".join(Frame(Opcode.TEXT, t.encode()).serialize(mask=False) for t in texts)
    for ws in CLIENTS:
        if ws.protocol.state is State.OPEN:
            ws.transport.write(blob)


async def commands(framed_once: bool) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    seq = 0
    while line := await reader.readline():
        parts = line.decode().split()
        if parts and parts[0] == "B":
            n, pad = int(parts[1]), parts[2] if len(parts) > 2 else ""
            ts = float(parts[3]) if len(parts) > 3 else None
            if framed_once:
                write_framed_once([frame(seq + i + 1, pad, ts) for i in range(n)])
                seq += n
                continue
            for _ in range(n):
                seq += 1
                broadcast(CLIENTS, frame(seq, pad, ts))


async def main() -> None:
    port = int(sys.argv[1])
    async with serve(handler, "127.0.0.1", port, max_size=64 * 1024, compression=None,
                     ping_interval=20, ping_timeout=60, backlog=2048):
        print(json.dumps({"ev": "listening", "port": port}), flush=True)
        await commands("--framed-once" in sys.argv)


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
