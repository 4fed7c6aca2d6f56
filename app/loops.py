"""Background loops: what they share."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("hearth.loops")


async def every(seconds: float, wake: asyncio.Event | None, action: Callable[[], Awaitable[Any]]) -> None:
    """Run `action` every `seconds`, or sooner when `wake` is set; survive its failures."""
    while True:
        try:
            await action()
        except Exception as exc:
            log.warning("%s failed: %s", getattr(action, "__name__", "task"), exc)
        if wake is None:
            await asyncio.sleep(seconds)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), seconds)
            wake.clear()
