"""What the edge's limits cost (issue 9). Run: `.venv/bin/python -m bench.edge` (about 2 minutes).

Three HTTP protocols serve the same app (`create_app` and `uvicorn_config`, only uvicorn's `http` setting
differs), started in turn and interleaved over `--rounds` rounds in one run:
- `hearth`: app/edge.py's protocol (httptools with the head capped as its bytes arrive, read deadlines,
  the connection cap): what `hearth serve` runs;
- `httptools`: uvicorn's own httptools protocol, no limits (what ran before);
- `h11`: uvicorn's h11 protocol with `h11_max_incomplete_event_size` at the same head cap (the other way
  to cap headers).

1. Throughput: `--load-procs` client processes each keep `--connections` keep-alive connections busy
   with `GET /healthz` (no database work, so the HTTP layer shows) carrying the headers a browser's API
   call carries (about 700 bytes with a bearer token); requests per second and server CPU per request
   over `--measure-s` after `--warmup-s`, from /proc.
2. One long header: a request whose one header grows to `--long-mib` MiB, sent as fast as loopback
   takes it: how long until the server answers, and the server CPU it spent.

Everything on 127.0.0.1, a throwaway durable cluster (the app needs its database to start).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from app.cluster import free_port
from bench._db import machine_facts
from bench.common import log, log_dir
from bench.load import SECRET, bench_cluster, create_database
from bench.measure import CpuMeter, cpu_seconds
from bench.processes import Proc, wait_http

VARIANTS = ("hearth", "httptools", "h11")
HEALTHZ = (
    "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0"
    " Safari/537.36\r\nAccept: application/json, text/plain, */*\r\nAccept-Language: en-US,en;q=0.9\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\nOrigin: http://127.0.0.1:8000\r\n"
    "Referer: http://127.0.0.1:8000/\r\nAuthorization: Bearer " + "x" * 300 + "\r\n"
    "Sec-Fetch-Mode: cors\r\nSec-Fetch-Site: same-origin\r\nConnection: keep-alive\r\n\r\n"
).encode()


def serve(variant: str) -> None:
    """The server process: Hearth's app and uvicorn settings, with `variant`'s HTTP protocol."""
    import uvicorn

    from app.config import Settings
    from app.main import create_app, uvicorn_config

    settings = Settings.from_env()
    config = uvicorn_config(create_app(settings), settings)
    if variant == "httptools":
        config["http"] = "httptools"
    elif variant == "h11":
        config["http"] = "h11"
        config["h11_max_incomplete_event_size"] = settings.max_header_bytes
    uvicorn.run(**config)


async def load(spec: dict[str, Any]) -> dict[str, Any]:
    """A client process: `connections` keep-alive connections, each sending the next request as soon as
    the answer to the last is read; answers counted over the measuring window."""
    start, end = spec["start"] + spec["warmup_s"], spec["start"] + spec["warmup_s"] + spec["measure_s"]
    counted = errors = 0

    async def connection() -> None:
        nonlocal counted, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", spec["port"])
        try:
            while time.time() < end:
                writer.write(HEALTHZ)
                head = await reader.readuntil(b"\r\n\r\n")
                at = head.lower().index(b"content-length:") + 15
                await reader.readexactly(int(head[at : head.index(b"\r\n", at)]))
                if head[9:12] != b"200":
                    errors += 1
                elif start <= time.time() < end:
                    counted += 1
        finally:
            writer.close()

    await asyncio.sleep(max(0.0, spec["start"] - time.time()))
    await asyncio.gather(*(connection() for _ in range(spec["connections"])))
    return {"requests": counted, "errors": errors}


class Server:
    def __init__(self, url: str, variant: str) -> None:
        self.port = free_port()
        self.variant = variant
        self.proc = Proc(
            f"edge-{variant}-{self.port}",
            [sys.executable, "-m", "bench.edge", "--serve", variant],
            env={"HEARTH_DATABASE_URL": url, "HEARTH_SECRET": SECRET, "HEARTH_PORT": str(self.port)},
        )

    async def ready(self) -> Server:
        await wait_http(f"http://127.0.0.1:{self.port}/readyz", self.proc)
        return self


async def throughput(server: Server, args: argparse.Namespace, cluster: Any) -> dict[str, Any]:
    start = time.time() + 2.0
    procs = []
    for n in range(args.load_procs):
        spec = {
            "port": server.port,
            "start": start,
            "warmup_s": args.warmup_s,
            "measure_s": args.measure_s,
            "connections": args.connections,
        }
        path = log_dir() / f"edge-load-{server.variant}-{n}.json"
        path.write_text(json.dumps(spec))
        command = [sys.executable, "-m", "bench.edge", "--load", str(path)]
        procs.append(Proc(path.stem, command, json_stdout=True))
    await asyncio.sleep(max(0.0, start + args.warmup_s - time.time()))
    meter = CpuMeter({"server": [server.proc.pid], "clients": [p.pid for p in procs]}, cluster)
    meter.start()
    await asyncio.sleep(max(0.0, start + args.warmup_s + args.measure_s - time.time()))
    cpu = meter.stop()
    results = [await p.expect("result", 60) for p in procs]
    for p in procs:
        await p.stop()
    requests = sum(r["requests"] for r in results)
    per_s = requests / args.measure_s
    return {
        "requests_per_s": per_s,
        "errors": sum(r["errors"] for r in results),
        "server_cpu_us_per_request": cpu["server"] / per_s * 1e6 if per_s else None,
        "cpu_server": cpu["server"],
        "cpu_clients": cpu["clients"],
        "cpu_others": cpu["others"],
    }


async def long_header(server: Server, mib: int) -> dict[str, Any]:
    """Time until a request whose one header grows to `mib` MiB is answered, and the server CPU spent."""
    cpu0 = cpu_seconds(server.proc.pid)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    chunk = b"a" * 65536
    started = time.monotonic()

    async def send() -> None:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: ")
        for _ in range(mib * 16):
            writer.write(chunk)
            await writer.drain()
        writer.write(b"\r\n\r\n")
        await writer.drain()

    sending = asyncio.create_task(send())
    try:
        answer = await asyncio.wait_for(reader.read(4096), 120)
        status = answer[9:12].decode() or "closed"
    except (TimeoutError, OSError) as exc:
        status = type(exc).__name__
    elapsed = time.monotonic() - started
    sending.cancel()
    with contextlib.suppress(BaseException):
        await sending
    writer.close()
    await asyncio.sleep(0.5)
    return {"status": status, "seconds": elapsed, "server_cpu_s": cpu_seconds(server.proc.pid) - cpu0}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine_facts(), "rounds": []}
    with bench_cluster() as cluster:
        url = await create_database(cluster, "edge")
        log(
            f"Edge benchmark (logs in {log_dir()}): {args.load_procs} client processes x {args.connections}"
            f" keep-alive connections, GET /healthz with {len(HEALTHZ)} bytes of head"
        )
        for round_no in range(1, args.rounds + 1):
            order = VARIANTS if round_no % 2 else tuple(reversed(VARIANTS))
            for variant in order:
                server = await Server(url, variant).ready()
                try:
                    row = {"round": round_no, "variant": variant, **await throughput(server, args, cluster)}
                finally:
                    await server.proc.stop()
                results["rounds"].append(row)
                log(
                    f"  round {round_no} {variant:<10} {row['requests_per_s']:7.0f} requests/s,"
                    f" server {row['server_cpu_us_per_request']:.0f} CPU-us per request"
                    f" ({row['errors']} errors; CPU cores: server {row['cpu_server']:.2f},"
                    f" clients {row['cpu_clients']:.2f}, other work {row['cpu_others']:.2f})"
                )
        summary = {}
        for variant in VARIANTS:
            rows = [r for r in results["rounds"] if r["variant"] == variant]
            summary[variant] = {
                "requests_per_s": statistics.median(r["requests_per_s"] for r in rows),
                "server_cpu_us_per_request": statistics.median(r["server_cpu_us_per_request"] for r in rows),
            }
        base = summary["httptools"]
        log("Medians (ratio to uvicorn's httptools protocol in the same run):")
        for variant, row in summary.items():
            log(
                f"  {variant:<10} {row['requests_per_s']:7.0f} requests/s"
                f" ({row['requests_per_s'] / base['requests_per_s']:.2f}x),"
                f" {row['server_cpu_us_per_request']:.0f} server CPU-us per request"
                f" ({row['server_cpu_us_per_request'] / base['server_cpu_us_per_request']:.2f}x)"
            )
        results["summary"] = summary
        log(f"One header of {args.long_mib} MiB:")
        results["long_header"] = {}
        for variant in VARIANTS:
            server = await Server(url, variant).ready()
            try:
                row = await long_header(server, args.long_mib)
            finally:
                await server.proc.stop()
            results["long_header"][variant] = row
            log(
                f"  {variant:<10} answered {row['status']} after {row['seconds']:.2f} s,"
                f" server CPU {row['server_cpu_s']:.2f} s"
            )
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--load-procs", type=int, default=2)
    p.add_argument("--connections", type=int, default=16, help="keep-alive connections per client process")
    p.add_argument("--warmup-s", type=float, default=2.0)
    p.add_argument("--measure-s", type=float, default=6.0)
    p.add_argument("--long-mib", type=int, default=32)
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--serve", choices=VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--load", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if args.load:
        result = asyncio.run(load(json.loads(Path(args.load).read_text())))
        print(json.dumps({"ev": "result", **result}), flush=True)
        return
    results = asyncio.run(run(args))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
