"""Per-socket frame limits, from settings every instance reads from the database (SPEC section 2).

- `frame_rate_limit`: durable frames (`message`, `signal`; pings and every other frame but `broadcast`
  count too) per second per socket, bursts of 4x; past it the socket is closed with 4429.
- `broadcast_rate_limit`: `broadcast` frames per second per socket, bursts of 2x; past it the frame is
  dropped with an error frame and the socket stays open.

`RateLimits` holds the instance's current values: read once at start, then every `refresh_s` (5 s;
`HEARTH_SETTINGS_REFRESH_S`): a change by `hearth.set_setting` reaches every instance within that time,
for one small query per instance per period. While the database is unreachable the last values stay
in force (anything else escapes to the loop's supervisor, app.loops). Each socket's buckets read the
current rate at every refill, so a change applies to open sockets too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from app.db import UNAVAILABLE, Database

log = logging.getLogger("hearth.ratelimit")

FRAME_BURST = 4.0
BROADCAST_BURST = 2.0
DEFAULT_FRAME_RATE = 50.0
DEFAULT_BROADCAST_RATE = 120.0


class RateLimits:
    """The instance's current limits, kept fresh from the settings table."""

    def __init__(self, db: Database, *, refresh_s: float = 5.0) -> None:
        self._db = db
        self.refresh_s = refresh_s
        self.frame_per_s = DEFAULT_FRAME_RATE
        self.broadcast_per_s = DEFAULT_BROADCAST_RATE
        self._failing = False

    async def refresh(self) -> None:
        row = await self._db.rate_limits()
        if (row["frame"], row["broadcast"]) != (self.frame_per_s, self.broadcast_per_s):
            log.info("rate limits: %g frames/s, %g broadcasts/s per socket", row["frame"], row["broadcast"])
        self.frame_per_s, self.broadcast_per_s = row["frame"], row["broadcast"]

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
                self._failing = False
            except UNAVAILABLE as exc:
                if not self._failing:  # once per outage, not every period
                    log.warning("could not read the rate limits, keeping the last ones: %s", exc)
                self._failing = True

    def frames(self) -> TokenBucket:
        return TokenBucket(lambda: self.frame_per_s, FRAME_BURST)

    def broadcasts(self) -> TokenBucket:
        return TokenBucket(lambda: self.broadcast_per_s, BROADCAST_BURST)


class TokenBucket:
    """`rate()` tokens a second, at most `burst` times that in hand; starts full."""

    def __init__(self, rate: Callable[[], float], burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = rate() * burst
        self._stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        rate = self._rate()
        self._tokens = min(rate * self._burst, self._tokens + (now - self._stamp) * rate)
        self._stamp = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
