"""The websocket endpoint `/v1/ws?token=...[&after=SEQ][&after_identity=SEQ]` (SPEC section 6)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from app import db, jsonin, tokens
from app.errors import HearthError
from app.events import Event
from app.frames import FRAMED
from app.hub import OnEvent, Subscriber
from app.ratelimit import RateLimits
from app.resume import resume_points
from app.rooms import Room, encode_entry
from app.state import AppState

log = logging.getLogger("hearth.ws")

CLOSE_BAD_FRAMES = 1008
SEND_TIMEOUT_S = 10.0
# Bad frames tolerated within BAD_FRAME_WINDOW_S before the connection is closed with 1008.
MAX_BAD_FRAMES = 5
BAD_FRAME_WINDOW_S = 10.0
SIGNAL_KINDS = ("offer", "answer", "ice")
# A client's reference on a durable frame, echoed in its ack or error.
MAX_REF_CHARS = 64


def _parse_after(value: str | None, name: str = "after") -> int | None:
    return None if value is None else jsonin.whole_number(value, f"{name} (a sequence number)")


class _Limits:
    def __init__(self, limits: RateLimits) -> None:
        self.frames = limits.frames()
        self.broadcasts = limits.broadcasts()
        self.bad: list[float] = []

    def bad_frame(self) -> bool:
        """Record a bad frame; True when the client keeps sending them."""
        now = time.monotonic()
        self.bad = [t for t in self.bad if now - t < BAD_FRAME_WINDOW_S]
        self.bad.append(now)
        return len(self.bad) > MAX_BAD_FRAMES


def _error_frame(code: str, message: str, ref: str | None = None) -> str:
    frame = {"type": "error", "code": code, "message": message}
    if ref is not None:
        frame["ref"] = ref
    return json.dumps(frame)


async def _writer(websocket: WebSocket, sub: Subscriber) -> None:
    """Everything queued since the last write goes out in one write (frames built by app.frames, most
    of them shared with every other socket of the stream)."""
    with contextlib.suppress(Exception):
        while True:
            frames = await sub.next_frames()
            # A peer that stops reading fills the socket buffers: past this, it is given up on.
            async with asyncio.timeout(SEND_TIMEOUT_S):
                if not frames:
                    await websocket.close(sub.close_code or 1000, sub.close_reason[:120])
                    return
                await websocket.send({"type": "websocket.send", FRAMED: frames})


# What a session socket acts on in its own session's stream (an identity socket acts on nothing).
OWN_STREAM_EVENTS = frozenset({"presence.leave", "session.expired", "session.ended"})


def _watch_own_stream(participant_id: str) -> OnEvent:
    def on_event(sub: Subscriber, event: Event) -> None:
        if event.identity:
            return
        if event.type in ("session.expired", "session.ended"):
            sub.close(4410, "session " + event.type.split(".")[1])
        elif event.type == "presence.leave":
            frame = json.loads(event.text)
            if frame.get("participant_id") == participant_id and frame.get("reason") != "expired":
                if frame.get("reason") == "left":
                    sub.close(1000, "left the session")
                else:
                    sub.close(4404, "participant is no longer present; join again")

    return on_event


async def websocket_endpoint(websocket: WebSocket) -> None:
    """Open the identity stream, then the session's (a session token), then run until either side ends."""
    state: AppState = websocket.app.state.hearth
    await websocket.accept()
    try:
        claims = tokens.verify(state.settings.secret.reveal(), websocket.query_params.get("token"))
        after = _parse_after(websocket.query_params.get("after"))
        after_identity = _parse_after(websocket.query_params.get("after_identity"), "after_identity")
        if after_identity is not None and claims.session_id is None:
            raise HearthError("HT400", "after_identity is for session tokens; an identity token uses after")
        socket_slot = await state.sockets.slot(claims.identity_id)  # max_sockets_per_identity: 4429
    except HearthError as exc:
        await websocket.close(exc.close_code, exc.message)
        return
    pid = str(claims.participant_id) if claims.participant_id else None
    watch = (OWN_STREAM_EVENTS, _watch_own_stream(pid)) if pid else ((), None)
    async with (
        socket_slot,
        state.hub.subscribe(pid, watch=watch[0], on_event=watch[1]) as sub,
        _writing(websocket, sub) as writer,
    ):
        async with contextlib.AsyncExitStack() as presence:
            try:
                sub.follow(str(claims.identity_id))
                if claims.session_id is None:
                    await _open_identity_stream(state, sub, claims, after, presence)
                else:
                    await _open_session_stream(state, sub, claims, (after, after_identity), presence)
                await _run(websocket, state, sub, writer, claims)
            except HearthError as exc:
                sub.close(exc.close_code, exc.message)
            except WebSocketDisconnect:
                pass
            except Exception:
                log.exception("websocket handler failed")
                sub.close(1011, "internal error")


@contextlib.asynccontextmanager
async def _writing(websocket: WebSocket, sub: Subscriber) -> AsyncIterator[asyncio.Task[None]]:
    """The socket's one writer, for the block's duration; at its end the socket closes once what is
    queued is sent (the writer gets a few seconds for it)."""
    writer = asyncio.create_task(_writer(websocket, sub))
    try:
        yield writer
    finally:
        sub.close(sub.close_code or 1000)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer, 5)


async def _open_identity_stream(
    state: AppState,
    sub: Subscriber,
    claims: tokens.Claims,
    after: int | None,
    presence: contextlib.AsyncExitStack,
) -> None:
    """An identity token: its welcome (recovered: whether `after` replays in full), then its stream."""
    identity = str(claims.identity_id)
    (point,) = await resume_points(state.db, [(claims.identity_id, after)])
    welcome = {"type": "welcome", "identity_id": identity, "seq": point.head}
    sub.push(
        json.dumps(
            {**welcome, "heartbeat_interval_s": state.heartbeat_interval_s, "recovered": point.recovered}
        )
    )
    state.heartbeats.identity_connected(claims.identity_id)
    presence.callback(state.heartbeats.identity_disconnected, claims.identity_id)
    await sub.go_live(identity, point.after)


async def _open_session_stream(
    state: AppState,
    sub: Subscriber,
    claims: tokens.Claims,
    afters: tuple[int | None, int | None],
    presence: contextlib.AsyncExitStack,
) -> None:
    """A session token: the participant must still be in a live session; its welcome (with who is
    present and whether both streams replay in full), then the session's stream from `after` and the
    identity's from `after_identity` (each from its head without one)."""
    assert claims.session_id is not None and claims.participant_id is not None
    session, participant_id = str(claims.session_id), claims.participant_id
    sub.follow(session)
    # Read before the snapshot, so a resume point is never above the snapshot's seq.
    session_point, identity_point = await resume_points(
        state.db, [(claims.session_id, afters[0]), (claims.identity_id, afters[1])]
    )
    room = await presence.enter_async_context(state.rooms.hold(claims.session_id))
    resume_after = None if afters[0] is None else session_point.after
    if await _room_serves(state, room, str(participant_id), resume_after):
        seq, present = room.seq, room.presence()  # no await since the room was checked
    else:  # in doubt: the database's snapshot
        seq, present = await _snapshot(state, claims.session_id, str(participant_id))
    recovered = session_point.recovered and identity_point.recovered
    sub.push(_session_welcome(state, claims, present, seq, identity_point.head, recovered))
    state.broadcasts.add(session, sub)
    presence.callback(state.broadcasts.remove, session, sub)
    state.heartbeats.connected(participant_id)
    presence.callback(state.heartbeats.disconnected, participant_id)
    # Without after, live from the snapshot the presence list was read at.
    await sub.go_live(session, seq if resume_after is None else resume_after)
    await sub.go_live(str(claims.identity_id), identity_point.after)


async def _room_serves(state: AppState, room: Room, participant_id: str, after: int | None) -> bool:
    """Whether the instance's cached room can give this welcome (app.rooms says when it cannot)."""
    if not (room.live and room.present(participant_id)) or (after is not None and after > room.seq):
        return False
    if not await state.rooms.not_due(room):
        return False
    return room.live and room.present(participant_id) and (after is None or after <= room.seq)


async def _snapshot(state: AppState, session_id: uuid.UUID, participant_id: str) -> tuple[int, str]:
    """(seq, presence list as JSON text) from the database; HT410 / HT404 when the socket may not open."""
    snapshot = await state.db.session_state(session_id)
    if snapshot["expired"]:
        raise HearthError("HT410", "session is expired or ended")
    if all(p["participant_id"] != participant_id for p in snapshot["participants"]):
        raise HearthError("HT404", "participant is no longer in the session; join again")
    return snapshot["seq"], "[" + ", ".join(map(encode_entry, snapshot["participants"])) + "]"


def _session_welcome(
    state: AppState, claims: tokens.Claims, present: str, seq: int, identity_seq: int, recovered: bool
) -> str:
    """The welcome's text around the presence list's (shared by the welcomes at one room state)."""
    head = json.dumps(
        {
            "type": "welcome",
            "session_id": str(claims.session_id),
            "participant_id": str(claims.participant_id),
            "identity_id": str(claims.identity_id),
        }
    )
    tail = json.dumps(
        {
            "seq": seq,
            "identity_seq": identity_seq,
            "heartbeat_interval_s": state.heartbeat_interval_s,
            "recovered": recovered,
        }
    )
    return f'{head[:-1]}, "presence": {present}, {tail[1:]}'


async def _run(
    websocket: WebSocket,
    state: AppState,
    sub: Subscriber,
    writer: asyncio.Task[None],
    claims: tokens.Claims,
) -> None:
    """Whichever ends first ends the connection: the client went away, or the writer closed it (or gave
    up on a peer that stopped reading)."""
    state.metrics.connections.inc()
    reader = asyncio.create_task(_read_loop(websocket, state, sub, claims.session_id, claims.participant_id))
    try:
        done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        if reader in done:
            reader.result()
    finally:
        reader.cancel()
        state.metrics.connections.dec()


async def _read_loop(
    websocket: WebSocket,
    state: AppState,
    sub: Subscriber,
    session_id: uuid.UUID | None,
    participant_id: uuid.UUID | None,
) -> None:
    limits = _Limits(state.rate_limits)
    while sub.close_code is None:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if participant_id is not None:
            state.heartbeats.activity(participant_id)
        ref: str | None = None
        try:
            frame = _parse_frame(message.get("text"))
            if frame["type"] == "broadcast":
                _broadcast(state, limits, session_id, participant_id, frame)
                continue
            if not limits.frames.take():
                sub.close(4429, "too many frames")
                return
            ref = _ref(frame)
            reply = await _handle_frame(state, session_id, participant_id, frame, ref)
        except db.UNAVAILABLE:
            sub.push(_error_frame("HT503", "the database is unavailable; try again", ref))
            continue
        except HearthError as exc:
            sub.push(_error_frame(exc.code, exc.message, ref))
            if exc.code == "HT400" and limits.bad_frame():
                sub.close(CLOSE_BAD_FRAMES, "too many bad frames")
                return
            continue
        if reply is not None:
            sub.push(reply)


def _broadcast(
    state: AppState,
    limits: _Limits,
    session_id: uuid.UUID | None,
    participant_id: uuid.UUID | None,
    frame: dict[str, Any],
) -> None:
    if session_id is None or participant_id is None:
        raise HearthError("HT403", "an identity token cannot broadcast to a session; join it first")
    if not limits.broadcasts.take():
        state.metrics.broadcasts_dropped.labels("rate").inc()
        raise HearthError("HT429", "too many broadcasts: this one was dropped")
    state.broadcasts.send(str(session_id), str(participant_id), frame)


def _parse_frame(text: str | None) -> dict[str, Any]:
    if text is None:
        raise HearthError("HT400", "frames are JSON text")
    frame = jsonin.parse(text, "frame")
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise HearthError("HT400", "a frame is a JSON object with a string 'type'")
    return frame


def _ref(frame: dict[str, Any]) -> str | None:
    """The client's reference for a durable frame's answer (ack or error); HT400 when malformed."""
    if "ref" not in frame:
        return None
    ref = frame["ref"]
    if not isinstance(ref, str) or len(ref) > MAX_REF_CHARS:
        raise HearthError("HT400", f"ref must be a string of at most {MAX_REF_CHARS} characters")
    if frame["type"] not in ("message", "signal"):
        raise HearthError("HT400", "ref is for message and signal frames")
    return ref


async def _handle_frame(
    state: AppState,
    session_id: uuid.UUID | None,
    participant_id: uuid.UUID | None,
    frame: dict[str, Any],
    ref: str | None,
) -> str | None:
    """What to answer: a pong, an ack for a frame with a ref, or nothing."""
    kind = frame["type"]
    if kind == "ping":
        return '{"type":"pong"}'
    if kind not in ("message", "signal"):
        raise HearthError("HT400", f"unknown frame type {kind[:40]!r}")
    if participant_id is None or session_id is None:
        raise HearthError("HT403", "an identity token cannot send to a session; join it first")
    if kind == "message":
        body = frame.get("body")
        if not isinstance(body, dict) or set(frame) - {"type", "body", "ref"}:
            raise HearthError("HT400", "message frames are {type, body: object, ref?}")
        # Group commit with the session's other frames that reach this instance meanwhile (app.postbatch).
        return _ack_frame(ref, await state.posts.post(session_id, participant_id, body))
    to, signal_kind, data = frame.get("to"), frame.get("kind"), frame.get("data")
    if (
        set(frame) - {"type", "to", "kind", "data", "ref"}
        or signal_kind not in SIGNAL_KINDS
        or not isinstance(data, dict)
    ):
        raise HearthError("HT400", "signal frames are {type, to, kind: offer|answer|ice, data: object, ref?}")
    try:
        target = uuid.UUID(str(to))
    except ValueError:
        raise HearthError("HT400", "signal 'to' must be a participant id") from None
    return _ack_frame(ref, await state.db.relay_signal(participant_id, target, signal_kind, data))


def _ack_frame(ref: str | None, seq: int) -> str | None:
    """Sent once the frame's event has committed (the call returned its seq)."""
    return None if ref is None else json.dumps({"type": "ack", "ref": ref, "seq": seq})
