"""Who is present in a session, cached per instance, for the welcomes of its websockets (SPEC section 6).

A welcome carries the session's whole presence list. Read from the database and encoded for every
connect, seating a room of n costs n^2; here a session with sockets on this instance has one `Room`: its
snapshot is read once (`hearth.session_state`), then kept current from the session's own stream by a
subscriber of the hub that asks for no frames and watches the events that change presence. Each
participant's entry is encoded once, and the list's text once per room state: every welcome at that state
shares it. A room lives while a socket of its session does (`Rooms.hold`).

The room's state is that of the events up to `Room.seq` (the next its subscriber needs, minus one), so a
welcome built from it is one at that seq, and the socket goes live from it as from a database snapshot.
What a connect still asks the database, and when:
- the participant must be present: one missing from the room may have joined after `seq` (its event not
  relayed yet), so the connect reads the snapshot from the database instead;
- the session must not be over: `session.expired` / `session.ended` mark the room, but a session also
  becomes due with no event (idle past its timeout, or past its TTL) until expire_sessions runs. So the
  room holds a time before which it is known not due (`hearth.check_session_expiry` at now +
  NOT_DUE_FOR_S, one call per room per period, shared by the connects meanwhile); heartbeats only move an
  idle deadline later, so that time is a lower bound. Past it, or when in doubt, it is asked again;
- a client resuming from an `after` beyond the room's seq (the room lags the database) gets a snapshot
  from the database, so that its welcome is never older than what it has seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from app.db import Database
from app.events import Event
from app.hub import Hub, Subscriber

# How far ahead a room checks that its session is not due; a connect past that asks again.
NOT_DUE_FOR_S = 5.0
PRESENCE_EVENTS = frozenset({"presence.join", "presence.leave", "session.expired", "session.ended"})
# The welcome's presence entry, in this key order (SPEC section 6).
ENTRY_KEYS = ("participant_id", "identity_id", "role", "display_name", "joined_at")


def encode_entry(entry: dict[str, Any]) -> str:
    """One participant of a welcome's presence list, as JSON text."""
    return json.dumps({key: entry[key] for key in ENTRY_KEYS})


def _order(entry: dict[str, Any]) -> tuple[dt.datetime, str]:
    """session_state's order: oldest join first, then participant id."""
    return dt.datetime.fromisoformat(entry["joined_at"]), entry["participant_id"]


class Room:
    """One session's presence as of `seq`, encoded once per entry and once per list."""

    __slots__ = ("_entries", "_presence", "expired", "holders", "not_due_until", "session_id", "sub")

    def __init__(self, session_id: str, snapshot: dict[str, Any]) -> None:
        self.session_id = session_id
        self.sub: Subscriber | None = None
        self.expired: bool = snapshot["expired"]
        self.not_due_until = float("-inf")  # monotonic time
        self.holders = 0
        # participant id -> (order key, encoded entry), in session_state's order
        self._entries: dict[str, tuple[tuple[dt.datetime, str], str]] = {
            p["participant_id"]: (_order(p), encode_entry(p)) for p in snapshot["participants"]
        }
        self._presence: str | None = None

    @property
    def seq(self) -> int:
        """The last event of the session this state reflects."""
        assert self.sub is not None
        return self.sub.next_seq[self.session_id] - 1

    @property
    def live(self) -> bool:
        """Kept current: false once its subscriber gave up (a catch-up failed); the next holder after
        the last one reloads it."""
        return self.sub is not None and self.sub.close_code is None

    def present(self, participant_id: str) -> bool:
        return participant_id in self._entries

    def presence(self) -> str:
        """The welcome's presence list as JSON text, built once per room state."""
        if self._presence is None:
            self._presence = "[" + ", ".join(text for _, text in self._entries.values()) + "]"
        return self._presence

    def on_event(self, _sub: Subscriber, event: Event) -> None:
        """An event of the session's stream that changes presence, in order (the hub's subscriber)."""
        if event.identity:
            return
        if event.type in ("session.expired", "session.ended"):
            self.expired = True
            return
        frame = json.loads(event.text)
        participant_id = frame.get("participant_id")
        if event.type == "presence.leave":
            if self._entries.pop(participant_id, None) is not None:
                self._presence = None
            return
        # presence.join: the event's time is the participant's joined_at (both are its p_now).
        entry = {**frame, "joined_at": frame["at"]}
        key = _order(entry)
        self._entries[participant_id] = (key, encode_entry(entry))
        if len(self._entries) > 1 and key < max(k for k, _ in self._entries.values()):
            self._entries = dict(sorted(self._entries.items(), key=lambda item: item[1][0]))
        self._presence = None


class Rooms:
    """The rooms of the sessions this instance has sockets in."""

    def __init__(self, hub: Hub, db: Database) -> None:
        self._hub = hub
        self._db = db
        self._rooms: dict[str, asyncio.Future[Room]] = {}
        self._due_checks: dict[str, asyncio.Future[bool]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, session_id: uuid.UUID) -> AsyncIterator[Room]:
        """The session's room, kept current while the block runs (loaded by the first holder)."""
        key = str(session_id)
        loading = self._rooms.get(key)
        if loading is not None and loading.done() and not loading.cancelled() and not loading.exception():
            if not loading.result().live:
                loading = None  # it gave up: a fresh one for the next sockets, the old goes with its holders
        if loading is None:
            loading = asyncio.get_running_loop().create_future()
            self._rooms[key] = loading
            try:
                loading.set_result(await self._load(key, session_id))
            except BaseException as exc:
                del self._rooms[key]
                _fail(loading, exc)
                raise
        room = await asyncio.shield(loading)
        room.holders += 1
        try:
            yield room
        finally:
            room.holders -= 1
            if not room.holders:
                if self._rooms.get(key) is loading:
                    del self._rooms[key]
                assert room.sub is not None
                room.sub.close(1000)
                self._hub.leave(room.sub)

    async def _load(self, key: str, session_id: uuid.UUID) -> Room:
        snapshot = await self._db.session_state(session_id)
        room = Room(key, snapshot)
        sub = Subscriber(self._hub, None, watch=PRESENCE_EVENTS, on_event=room.on_event, send=False)
        room.sub = sub
        sub.follow(key)
        try:
            await sub.go_live(key, snapshot["seq"])
        except BaseException:
            self._hub.leave(sub)
            raise
        return room

    async def not_due(self, room: Room) -> bool:
        """True when the session is known not to be due now; False: ask the database's snapshot."""
        if room.expired:
            return False
        if time.monotonic() < room.not_due_until:
            return True
        check = self._due_checks.get(room.session_id)
        if check is None:
            check = asyncio.get_running_loop().create_future()
            self._due_checks[room.session_id] = check
            try:
                started = time.monotonic()
                at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=NOT_DUE_FOR_S)
                due = await self._db.check_session_expiry(uuid.UUID(room.session_id), at)
                if not due:
                    room.not_due_until = started + NOT_DUE_FOR_S
                check.set_result(not due)
            except BaseException as exc:
                _fail(check, exc)
                raise
            finally:
                del self._due_checks[room.session_id]
        return await asyncio.shield(check)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    """The others waiting on `future` get what stopped the one doing the work."""
    if isinstance(exc, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(exc)
        future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
