"""Measurement: CPU per process group over a window (and the machine's other work), RSS, py-spy
profiles, write system calls, Prometheus metrics and PostgreSQL's function call counts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx

from app.cluster import LocalCluster
from bench.common import log_dir
from bench.processes import cluster_pids


async def function_calls(url: str, schema: str, name: str) -> int:
    """pg_stat_user_functions.calls of one function (needs track_functions = all)."""
    conn = await asyncpg.connect(url)
    try:
        calls = await conn.fetchval(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions"
            " WHERE schemaname = $1 AND funcname = $2", schema, name)
    finally:
        await conn.close()
    return int(calls)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parse_prometheus(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.match(r"^(\S+?)(\{[^}]*\})?\s+(\S+)$", line)
        if match:
            values[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return values


async def server_metrics(base_url: str) -> dict[str, float]:
    """A server's /metrics, parsed."""
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(base_url + "/metrics")).text
    return parse_prometheus(text)


def machine_busy_s() -> float:
    """CPU seconds spent busy, all cores, since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU used over a window by given processes, by everything ours, and by the rest of the machine
    (other work sharing it: it makes figures noisier)."""

    def __init__(self, groups: dict[str, list[int]], cluster: LocalCluster | None) -> None:
        self.groups = groups
        self.cluster = cluster

    def _ours(self) -> dict[int, float]:
        pids = {os.getpid(), *(p for g in self.groups.values() for p in g)}
        if self.cluster is not None:
            pids.update(cluster_pids(self.cluster))
        found = {}
        for pid in pids:
            with contextlib.suppress(OSError, ValueError, IndexError):
                found[pid] = self.cpu_seconds(pid)
        return found

    def cpu_seconds(self, pid: int) -> float:
        return cpu_seconds(pid)

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._busy0 = machine_busy_s()
        self._ours0 = self._ours()

    def stop(self) -> dict[str, float]:
        elapsed = time.monotonic() - self._t0
        ours1 = self._ours()
        used = {pid: ours1[pid] - self._ours0.get(pid, 0.0) for pid in ours1}
        result = {name: sum(used.get(p, 0.0) for p in pids) / elapsed for name, pids in self.groups.items()}
        result["ours"] = sum(used.values()) / elapsed
        result["machine"] = (machine_busy_s() - self._busy0) / elapsed
        result["others"] = max(0.0, result["machine"] - result["ours"])
        return result


class Profiler:
    """py-spy record of a Python process (raw collapsed stacks), when py-spy is installed."""

    def __init__(self, pid: int, seconds: float, name: str) -> None:
        exe = Path(sys.executable).parent / "py-spy"
        self.out = log_dir() / f"{name}-pyspy.txt"
        self.proc = None
        if exe.exists():
            self.proc = subprocess.Popen(
                [str(exe), "record", "-p", str(pid), "-d", str(max(1, round(seconds))), "-r", "250",
                 "-f", "raw", "-o", str(self.out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def wait(self) -> Path | None:
        if self.proc is None:
            return None
        await asyncio.to_thread(self.proc.wait)
        return self.out


class SyscallCounter:
    """`perf stat` of write-type system calls made by some processes (when perf can trace them)."""

    EVENTS = ("syscalls:sys_enter_write", "syscalls:sys_enter_writev", "syscalls:sys_enter_sendto",
              "syscalls:sys_enter_sendmsg")

    def __init__(self, pids: list[int], name: str) -> None:
        self.out = log_dir() / f"{name}-perf.csv"
        self.proc = None
        if shutil.which("perf"):
            self.proc = subprocess.Popen(
                ["perf", "stat", "-x", ",", "-o", str(self.out), "-e", ",".join(self.EVENTS),
                 "-p", ",".join(map(str, pids))], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def stop(self) -> int | None:
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGINT)
        await asyncio.to_thread(self.proc.wait)
        total = 0
        with contextlib.suppress(OSError):
            for line in self.out.read_text().splitlines():
                fields = line.split(",")
                if len(fields) > 2 and fields[2] in self.EVENTS and fields[0].isdigit():
                    total += int(fields[0])
        return total or None


