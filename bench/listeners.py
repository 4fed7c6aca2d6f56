"""N listening connections in one process, for bench/primary_limits.py: each LISTENs on a channel the way
a Hearth instance's one listener does (its own autocommit connection) and counts what it receives.

    python -m bench.listeners URL CHANNEL N

Prints {"ev": "ready", "n": N} once every connection listens, then on each "count" line on stdin
{"ev": "count", "received": total}; exits on "quit" or at the end of stdin.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import asyncpg


async def main(url: str, channel: str, n: int) -> None:
    received = 0

    def on_notify(*_args: Any) -> None:
        nonlocal received
        received += 1

    connections = [await asyncpg.connect(url) for _ in range(n)]
    for conn in connections:
        await conn.add_listener(channel, on_notify)
    print(json.dumps({"ev": "ready", "n": n}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        if line == "count":
            print(json.dumps({"ev": "count", "received": received}), flush=True)
        elif line == "quit":
            break
    for conn in connections:
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
