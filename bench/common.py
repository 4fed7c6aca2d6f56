"""What every benchmark shares: where the repository and the logs are, how it prints, one percentile."""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = ROOT / "bench" / "node"


def log(message: str = "") -> None:
    print(message, flush=True)


@functools.cache
def log_dir() -> Path:
    """This run's log directory, made on first use (never at import)."""
    return Path(tempfile.mkdtemp(prefix="hearth-relay-bench-"))


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (0 <= q <= 1) of `values`, linearly interpolated between ranks; None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    k = (len(ordered) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def save_json(path: str | None, results: object) -> None:
    """Write a run's figures to `path` (the benchmarks' `--json FILE`), if one was given."""
    if path:
        with open(path, "w") as f:
            json.dump(results, f, indent=2)


def fmt_int(value: float) -> str:
    return f"{value:,.0f}"
