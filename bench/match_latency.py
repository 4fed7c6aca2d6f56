"""Time from the second `enqueue` to both clients holding `match.found` and a usable LiveKit token.

Two `hearth serve` instances on one database, the LiveKit test double in this process (the real
livekit-api client in the app talks Twirp to it). For each pair: A (on instance 1) and B (on instance 2)
hold identity websockets; A enqueues, then B; the clock starts just before B's enqueue. Each side waits
for `match.found`, joins the match session (HTTP) and asks for its LiveKit token. A token is usable when
the double accepts it for the match room (checked after the clock stops, once the room worker has
created the room). Pairs run `--concurrency` at a time; then they share the queue, so A and B may each
be matched with someone of another pair, and the figure is from B's enqueue to both holding theirs.

    .venv/bin/python -m bench.match_latency [--pairs 200] [--concurrency 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import httpx
from websockets.asyncio.client import connect

from bench._db import bench_cluster, create_database
from bench.common import percentile
from bench.processes import hearth_server
from tests.app.harness import Instance
from tests.livekit_double import LiveKitDouble

LK_KEY, LK_SECRET = "devkey", "bench-livekit-secret-0123456789abcdef"


def _instance(url: str, double: LiveKitDouble, name: str) -> Instance:
    return hearth_server(
        url, name, {"LIVEKIT_URL": double.url, "LIVEKIT_API_KEY": LK_KEY, "LIVEKIT_API_SECRET": LK_SECRET}
    )


async def _side(http: httpx.AsyncClient, base: str, token: str, ws: Any) -> tuple[float, str, str]:
    while True:
        frame = json.loads(await ws.recv())
        if frame["type"] == "match.found":
            break
    session_id = frame["match_session_id"]
    auth = {"Authorization": f"Bearer {token}"}
    joined = (await http.post(f"{base}/v1/sessions/{session_id}/join", headers=auth)).json()
    grant = (
        await http.get(
            f"{base}/v1/sessions/{session_id}/livekit-token",
            headers={"Authorization": f"Bearer {joined['token']}"},
        )
    ).json()
    return time.perf_counter(), grant["room"], grant["token"]


async def _pair(
    http: httpx.AsyncClient, a: Instance, b: Instance, double: LiveKitDouble
) -> tuple[float, float]:
    sides = []
    for inst in (a, b):
        ident = (await http.post(f"{inst.base_url}/v1/identities", json={})).json()
        ws = await connect(f"ws://127.0.0.1:{inst.port}/v1/ws?token={ident['token']}")
        json.loads(await ws.recv())  # welcome
        sides.append((inst, ident["token"], ws))
    (ia, ta, wa), (ib, tb, wb) = sides
    await http.post(f"{ia.base_url}/v1/match/queue", headers={"Authorization": f"Bearer {ta}"})
    start = time.perf_counter()
    await http.post(f"{ib.base_url}/v1/match/queue", headers={"Authorization": f"Bearer {tb}"})
    # With --concurrency > 1 the queue is shared, so A and B may each be matched with someone else.
    (ta_done, room_a, token_a), (tb_done, room_b, token_b) = await asyncio.gather(
        _side(http, ia.base_url, ta, wa), _side(http, ib.base_url, tb, wb)
    )
    elapsed = max(ta_done, tb_done) - start
    # Usable: the double (checking signature, key, roomJoin for this room) admits both once the room exists.
    for _ in range(200):
        if room_a in double.rooms and room_b in double.rooms:
            break
        await asyncio.sleep(0.01)
    room_ready = time.perf_counter() - start
    await double.join(room_a, token_a)
    await double.join(room_b, token_b)
    for ws in (wa, wb):
        await ws.close()
    return elapsed, room_ready


def _ms(values: list[float], q: float) -> float:
    value = percentile(values, q)
    assert value is not None
    return value * 1000


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    with bench_cluster() as cluster:
        url = await create_database(cluster, "match_latency")
        async with LiveKitDouble(api_key=LK_KEY, api_secret=LK_SECRET) as double:
            a, b = _instance(url, double, "a"), _instance(url, double, "b")
            try:
                await a.ready()
                await b.ready()
                double.webhook_url = a.base_url + "/v1/livekit/webhook"
                async with httpx.AsyncClient(timeout=10) as http:
                    for _ in range(5):  # warm-up
                        await _pair(http, a, b, double)
                    results: list[tuple[float, float]] = []
                    started = time.perf_counter()
                    for first in range(0, args.pairs, args.concurrency):
                        batch = min(args.concurrency, args.pairs - first)
                        results += await asyncio.gather(*(_pair(http, a, b, double) for _ in range(batch)))
                    wall = time.perf_counter() - started
            finally:
                await a.stop()
                await b.stop()
    tokens = [r[0] for r in results]
    rooms = [r[1] for r in results]
    rate = len(results) / wall
    print(f"pairs={len(results)} concurrency={args.concurrency} wall={wall:.1f}s ({rate:.0f} pairs/s)")
    print(
        f"second enqueue -> both match.found + token: p50 {_ms(tokens, 0.5):.1f} ms, "
        f"p99 {_ms(tokens, 0.99):.1f} ms, mean {statistics.mean(tokens) * 1000:.1f} ms"
    )
    print(
        f"second enqueue -> LiveKit room created: p50 {_ms(rooms, 0.5):.1f} ms, p99 {_ms(rooms, 0.99):.1f} ms"
    )
    print("every token was accepted by the LiveKit double for its room")


if __name__ == "__main__":
    asyncio.run(main())
