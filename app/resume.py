"""Where a websocket's streams pick up (SPEC section 6: `after`, `after_identity`, `recovered`).

The database decides, in one `hearth.resume_streams` call for every stream of the socket: each stream's
head, the seq to replay after, and whether that replay is complete. A stream the client does not resume
(no `after` for it) starts at its head and counts as recovered; the welcome's `recovered` is true only
when every stream the client asked to resume is replayed in full. On false the client refetches what it
derives from events: either events after its number were pruned (the replay starts at the oldest kept)
or its number is beyond the head (it holds state the server no longer has).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from app.db import Database


@dataclass(frozen=True, slots=True)
class ResumePoint:
    head: int  # the stream's last seq
    after: int  # replay the events after this one
    recovered: bool  # that replay holds every event after what the client asked from


async def resume_points(db: Database, streams: list[tuple[uuid.UUID, int | None]]) -> list[ResumePoint]:
    """One point per (stream id, the client's last seq or None), in order."""
    rows = await db.resume_streams([stream for stream, _ in streams], [after for _, after in streams])
    return [ResumePoint(row["head"], row["resume_after"], row["recovered"]) for row in rows]
