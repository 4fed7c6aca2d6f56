"""What one instance limits by itself: websockets per identity (max_sockets_per_identity, SPEC section 2).

The limits that hold across instances are counted in the database (identity_rate_limit in
hearth.create_anonymous_identity, max_open_sessions_per_identity in hearth.create_session); this one is per
instance by definition, so it is a count in memory. Its setting lives in the database like every other and
is re-read at most every SETTING_TTL_S, so a change reaches running instances within seconds without a
round trip per connection.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from app.errors import HearthError

SETTING_TTL_S = 5.0
# Used until the database has answered once (SPEC's default).
DEFAULT_MAX_SOCKETS = 10
ReadSetting = Callable[[str], Awaitable[int]]


class SocketLimit:
    def __init__(self, read_setting: ReadSetting) -> None:
        self._read = read_setting
        self._limit = DEFAULT_MAX_SOCKETS
        self._read_at = float("-inf")
        self._open: dict[uuid.UUID, int] = {}

    async def limit(self) -> int:
        """max_sockets_per_identity, at most SETTING_TTL_S old (the last value known when the database
        cannot be read: a socket is not refused for that)."""
        now = time.monotonic()
        if now - self._read_at >= SETTING_TTL_S:
            self._read_at = now
            with contextlib.suppress(Exception):
                self._limit = await self._read("max_sockets_per_identity")
        return self._limit

    async def slot(self, identity_id: uuid.UUID) -> contextlib.AbstractAsyncContextManager[None]:
        """One of the identity's sockets, taken now (HT429 when it holds its limit) and given back when
        the returned context ends."""
        limit = await self.limit()
        held = self._open.get(identity_id, 0)
        if held >= limit:
            raise HearthError("HT429", f"this identity already holds {limit} websockets on this server")
        self._open[identity_id] = held + 1
        return self._release(identity_id)

    def held(self, identity_id: uuid.UUID) -> int:
        return self._open.get(identity_id, 0)

    @contextlib.asynccontextmanager
    async def _release(self, identity_id: uuid.UUID) -> AsyncIterator[None]:
        try:
            yield
        finally:
            left = self._open[identity_id] - 1
            if left:
                self._open[identity_id] = left
            else:
                del self._open[identity_id]
