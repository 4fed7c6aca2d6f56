"""app.ratelimit in-process: the token buckets, and the refresh loop through a database outage."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from app.ratelimit import RateLimits, TokenBucket


class _FakeDb:
    def __init__(self) -> None:
        self.row: dict[str, float] | None = {"frame": 10.0, "broadcast": 30.0}
        self.calls = 0

    async def rate_limits(self) -> dict[str, float]:
        self.calls += 1
        if self.row is None:
            raise OSError("connection refused")
        return self.row


def test_a_bucket_holds_its_burst_then_follows_the_current_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]  # the bucket's clock stands still unless the test moves it
    monkeypatch.setattr("app.ratelimit.time.monotonic", lambda: clock[0])
    rate = [5.0]
    bucket = TokenBucket(lambda: rate[0], 4)
    assert sum(bucket.take() for _ in range(50)) == 20  # the burst, at once
    rate[0] = 1000.0  # a raised limit refills the open socket's bucket at the new rate
    clock[0] += 0.1
    assert sum(bucket.take() for _ in range(200)) == 100


async def _until(condition: Any) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met within 5 s")


async def test_refresh_keeps_the_last_values_while_the_database_is_away(
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = _FakeDb()
    limits = RateLimits(db, refresh_s=0.01)  # type: ignore[arg-type]
    await limits.refresh()
    assert (limits.frame_per_s, limits.broadcast_per_s) == (10.0, 30.0)
    task = asyncio.create_task(limits.run())
    try:
        with caplog.at_level(logging.WARNING, "hearth.ratelimit"):
            db.row = None
            calls = db.calls
            await _until(lambda: db.calls >= calls + 5)
            assert (limits.frame_per_s, limits.broadcast_per_s) == (10.0, 30.0)
            assert len([r for r in caplog.records if "keeping the last ones" in r.message]) == 1
            db.row = {"frame": 20.0, "broadcast": 60.0}
            await _until(lambda: limits.frame_per_s == 20.0)
            assert limits.broadcast_per_s == 60.0
    finally:
        task.cancel()
