"""Display/controller pairing over HTTP: the lazy lobby (SPEC section 5), and codes as secrets.

A waiting display holds no websocket: it registers (`POST /v1/displays`) and then waits on a
server-sent-events stream (or long-polls with `?wait=SECONDS`) that ends with `paired` or `expired`.
The stream counts as the display's presence, so the display is not swept while it waits.

Every attempt with a code (`POST /v1/pair`, `POST /v1/join`) counts against one per-address limit of
failed guesses, and one address's attempts run one at a time across every instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from app import jsonin, shapes, tokens
from app.api import answer, claims_of, client_address, issue, joined, path_uuid, read_body, state_of
from app.errors import HearthError
from app.events import Event
from app.hub import Subscriber
from app.openapi import ApiRoute, Operation, Stream

KEEPALIVE_S = 15.0
MAX_WAIT_S = 60
# A display's stream starts with its own presence.join, then (once paired) the controller's and
# session.paired; an ended stream ends with session.expired or session.ended. So an answer already
# given is read from one end of the stream, this many events at most.
END_EVENTS = 8
WAITING, PAIRED, OVER = "waiting", "paired", "over"
# What a display's event stream watches in its session's stream: its outcome.
DISPLAY_EVENTS = frozenset({"session.paired", "session.expired", "session.ended"})


class _OneAtATime:
    """Attempts from one client address wait for each other on this instance before they take a
    database connection, so a burst from one address cannot hold the whole pool while it queues for the
    address's lock in the database (app.db serializes them across instances)."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str | None) -> AsyncIterator[None]:
        if key is None:
            yield
            return
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]


_attempts = _OneAtATime()


async def register_display(request: Request) -> Response:
    claims = claims_of(request)
    body = await read_body(request, shapes.NewDisplay)
    ttl = None if body.ttl_s is None else timedelta(seconds=body.ttl_s)
    row = await state_of(request).db.register_display(claims.identity_id, ttl)
    token = issue(request, claims.for_session(row["session_id"], row["participant_id"]))
    return answer(shapes.DisplayRegistered(**row, token=token), 201)


async def pair(request: Request) -> Response:
    claims = claims_of(request)
    body = await read_body(request, shapes.Code)
    client_key = client_address(request)
    async with _attempts.hold(client_key):
        row = await state_of(request).db.pair_controller(body.code, claims.identity_id, client_key)
    return answer(joined(request, claims, row["session_id"], row["participant_id"]))


async def join_by_code(request: Request) -> Response:
    """POST /v1/join: a room's code, as secret as a display's (same limit); a display's code is unknown."""
    claims = claims_of(request)
    body = await read_body(request, shapes.Code)
    client_key = client_address(request)
    async with _attempts.hold(client_key):
        row = await state_of(request).db.join_by_code(body.code, claims.identity_id, client_key)
    return answer(joined(request, claims, row["session_id"], row["participant_id"]))


class _Outcome:
    """A display's answer: `paired` or `expired`, with its event's frame."""

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.name = ""
        self.frame: dict[str, Any] = {}

    def settle(self, name: str, frame: dict[str, Any]) -> None:
        self.name, self.frame = name, frame
        self.done.set()

    def on_event(self, sub: Subscriber, event: Event) -> None:
        if event.identity or self.done.is_set():
            return
        if event.type == "session.paired":
            self.settle("paired", json.loads(event.text))
        elif event.type in ("session.expired", "session.ended"):
            self.settle("expired", json.loads(event.text))


@dataclass(slots=True)
class _Snapshot:
    """What a display's event stream keeps of its session while it waits."""

    seq: int  # the stream's head
    state: str  # WAITING, PAIRED or OVER
    controller: tuple[str, str] | None = None  # (participant id, joined at) when paired


async def _display_snapshot(request: Request, session_id: uuid.UUID) -> _Snapshot:
    """The display's session, checked before a stream starts (so errors are plain HTTP errors)."""
    snapshot = await state_of(request).db.session_state(session_id)
    if snapshot["kind"] != "pairing":
        raise HearthError("HT400", "this is not a display's pairing session")
    if snapshot["expired"]:
        return _Snapshot(snapshot["seq"], OVER)
    if snapshot["status"] != "active":
        return _Snapshot(snapshot["seq"], WAITING)
    found = next((p for p in snapshot["participants"] if p["role"] == "controller"), None)
    controller = (found["participant_id"], found["joined_at"]) if found else None
    return _Snapshot(snapshot["seq"], PAIRED, controller)


async def _settled(
    request: Request, session_id: uuid.UUID, claims: tokens.Claims, snapshot: _Snapshot
) -> _Outcome | None:
    """The answer of a session already paired or over, read from one end of its stream (never the whole
    of it: a paired session's stream grows with everything its two sides send); None while it waits."""
    if snapshot.state == WAITING:
        return None
    stream = str(session_id)
    outcome = _Outcome()
    if snapshot.state == PAIRED:
        events = await _read_events(request, session_id, 0)
        paired = next((e for e in events if e.type == "session.paired"), None)
        if paired is not None:
            outcome.settle("paired", json.loads(paired.text))
        else:
            # The display sent more than END_EVENTS events before it was paired: the frame is rebuilt
            # from the session's state, its seq one the pairing comes after (so resuming after it
            # replays the pairing and what followed).
            controller, joined_at = snapshot.controller or (None, datetime.now(UTC).isoformat())
            outcome.settle(
                "paired",
                {
                    "type": "session.paired",
                    "seq": events[-1].seq if events else 0,
                    "session_id": stream,
                    "at": joined_at,
                    "display_participant_id": str(claims.participant_id),
                    "controller_participant_id": controller,
                },
            )
        return outcome
    events = await _read_events(request, session_id, max(snapshot.seq - END_EVENTS, 0))
    end = next((e for e in reversed(events) if e.type in ("session.expired", "session.ended")), None)
    if end is not None:
        outcome.settle("expired", json.loads(end.text))
    else:
        # Past its TTL, but the expiry job has not run yet.
        frame = {"type": "session.expired", "seq": snapshot.seq, "session_id": stream}
        outcome.settle("expired", {**frame, "at": datetime.now(UTC).isoformat(), "reason": "pairing_timeout"})
    return outcome


async def _read_events(request: Request, session_id: uuid.UUID, after: int) -> list[Event]:
    rows = await state_of(request).db.event_frames([session_id], [after], END_EVENTS)
    return [Event.from_row(row) for row in rows]


@contextlib.asynccontextmanager
async def _outcome_of(
    request: Request, session_id: uuid.UUID, claims: tokens.Claims, snapshot: _Snapshot
) -> AsyncIterator[_Outcome]:
    """The display's outcome: already settled, or settling while the block runs, its session followed
    from the head (what came after the snapshot is read first) and left when the block ends."""
    outcome = await _settled(request, session_id, claims, snapshot)
    if outcome is not None:
        yield outcome
        return
    outcome = _Outcome()
    subscription = state_of(request).hub.subscribe(
        str(claims.participant_id), watch=DISPLAY_EVENTS, on_event=outcome.on_event, send=False
    )
    async with subscription as sub:
        stream = str(session_id)
        sub.follow(stream)
        await sub.go_live(stream, snapshot.seq)
        yield outcome


def _display_claims(request: Request, session_id: uuid.UUID) -> tokens.Claims:
    token = request.query_params.get("token")
    if token is None:
        claims = claims_of(request, session=True)
    else:
        claims = tokens.verify(state_of(request).settings.secret.reveal(), token)
    if not claims.is_session:
        raise HearthError("HT401", "this needs the display's session token")
    if claims.session_id != session_id:
        raise HearthError("HT403", "this token is for another session")
    return claims


async def display_events(request: Request) -> Response:
    session_id = path_uuid(request, "session_id")
    claims = _display_claims(request, session_id)
    wait_text = request.query_params.get("wait")
    wait = None if wait_text is None else jsonin.whole_number(wait_text, "wait")
    if wait is not None and wait > MAX_WAIT_S:
        raise HearthError("HT400", f"wait must be 0 to {MAX_WAIT_S} seconds")
    snapshot = await _display_snapshot(request, session_id)
    if wait is not None:
        return await _long_poll(request, session_id, claims, snapshot, wait)
    return StreamingResponse(
        _sse(request, session_id, claims, snapshot),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _until_done(outcome: _Outcome, seconds: float) -> None:
    # asyncio.timeout, not wait_for: no task of its own per wait (it shows in memory per stream).
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await outcome.done.wait()


async def _sse(
    request: Request, session_id: uuid.UUID, claims: tokens.Claims, snapshot: _Snapshot
) -> AsyncIterator[str]:
    state = state_of(request)
    assert claims.participant_id is not None
    state.heartbeats.connected(claims.participant_id)
    try:
        # Followed only once the response runs: a client gone before that leaves nothing behind.
        async with _outcome_of(request, session_id, claims, snapshot) as outcome:
            yield ": waiting for a controller\n\n"
            while not outcome.done.is_set():
                await _until_done(outcome, KEEPALIVE_S)
                if not outcome.done.is_set():
                    yield ": keep-alive\n\n"
        yield f"event: {outcome.name}\ndata: {json.dumps(outcome.frame)}\n\n"
    finally:
        state.heartbeats.disconnected(claims.participant_id)


async def _long_poll(
    request: Request, session_id: uuid.UUID, claims: tokens.Claims, snapshot: _Snapshot, wait: int
) -> Response:
    assert claims.participant_id is not None
    state_of(request).heartbeats.activity(claims.participant_id)
    async with _outcome_of(request, session_id, claims, snapshot) as outcome:
        await _until_done(outcome, wait)
    if not outcome.done.is_set():
        return answer(shapes.DisplayOutcome(event=None))
    return answer(shapes.DisplayOutcome.model_validate({"event": outcome.name, "data": outcome.frame}))


routes = [
    ApiRoute(
        "/v1/displays",
        register_display,
        "POST",
        Operation(
            "Register a display: a pairing code",
            {201: shapes.DisplayRegistered},
            body=shapes.NewDisplay,
            errors=(404, 429),
        ),
    ),
    ApiRoute(
        "/v1/displays/{session_id}/events",
        display_events,
        "GET",
        Operation(
            "The display's outcome: an event stream, or with ?wait= a long poll",
            {200: (Stream("text/event-stream", shapes.DisplayEvent), shapes.DisplayOutcome)},
            "display",
            query={
                "wait": {"type": "integer", "minimum": 0, "maximum": MAX_WAIT_S, "description": "Seconds."}
            },
        ),
    ),
    ApiRoute(
        "/v1/pair",
        pair,
        "POST",
        Operation(
            "Pair with a display by its code",
            {200: shapes.Joined},
            body=shapes.Code,
            errors=(404, 409, 410, 429),
        ),
    ),
    ApiRoute(
        "/v1/join",
        join_by_code,
        "POST",
        Operation(
            "Join a room by its code",
            {200: shapes.Joined},
            body=shapes.Code,
            errors=(403, 404, 409, 410, 429),
        ),
    ),
]
