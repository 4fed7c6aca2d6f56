"""An in-process LiveKit server test double that speaks the real wire protocol.

Hearth's tests drive it with the real `livekit-api` client (and Hearth's app subprocesses reach it with
``LIVEKIT_URL=double.url``). What it serves, and what it was checked against (livekit-server
``pkg/service/{auth,roomservice,roomallocator,localstore,utils}.go``, livekit/protocol ``webhook/``,
livekit-api 1.2 ``twirp_client.py``/``room_service.py``):

* Twirp ``POST /twirp/livekit.RoomService/<Method>`` with ``application/protobuf`` bodies (the classes of
  ``livekit.protocol``); ``application/json`` is accepted as well, as any Twirp server does. Errors are
  Twirp JSON ``{"code": ..., "msg": ...}`` with Twirp's HTTP status (not_found 404, unauthenticated 401,
  resource_exhausted 429, unavailable 503, ...). Unknown method or path -> ``bad_route`` 404.
* Auth like livekit-server: ``Authorization: Bearer <jwt>`` (HS256, ``iss`` = API key, exp/nbf checked
  with the server's 1 minute leeway). A header that is not ``Bearer``, an unparsable token, an unknown
  key or a bad signature/expired token is rejected by the server's middleware with HTTP 401 and a
  *plain-text* body, so the client surfaces ``ServerError(code="unknown", status=401)``. A valid token
  without the grant a method needs is a Twirp ``unauthenticated`` (401) error with msg
  ``"permissions denied"`` -- livekit-server never answers ``permission_denied`` here. Grants:
  CreateRoom/DeleteRoom ``roomCreate``; ListRooms ``roomList``; ListParticipants/GetParticipant/
  RemoveParticipant/UpdateRoomMetadata ``roomAdmin`` with ``room`` equal to the request's room.
* CreateRoom is get-or-create: an existing room keeps its sid and creation time, and non-zero
  ``empty_timeout``/``departure_timeout``/``max_participants``/non-empty ``metadata`` of the request
  overwrite the stored ones (roomallocator.go). New rooms get the server defaults (empty 300 s,
  departure 20 s, max_participants 0 = unlimited), a ``RM_`` sid, creation_time(_ms), and fire
  ``room_started``. DeleteRoom of an unknown room -> ``not_found`` "requested room does not exist";
  otherwise every participant leaves (``participant_left``, reason ROOM_DELETED) then ``room_finished``
  (ROOM_END_API_DELETE). ListParticipants of an unknown room is an empty list (localstore.go).
* Webhooks like ``webhook.ResourceURLNotifier``: body = protojson of ``WebhookEvent`` (``id`` "EV_...",
  ``createdAt`` a string), ``Content-Type: application/webhook+json``, ``Authorization: <bare JWT>`` signed
  with the API key/secret, valid 5 minutes, whose ``sha256`` claim is base64(sha256(body)). One FIFO
  queue per room, served by a background task; 5xx/429/transport errors are retried (so the receiver
  can see one event twice); events older than ``webhook_max_age_s`` in the queue are dropped.
* Participants join through ``await double.join(room, token)``, which checks the token the way the
  server's signal endpoint does (see ``join``) and fires ``participant_joined``; ``leave`` fires
  ``participant_left``.
* Fault injection through ``double.faults`` (see ``Faults``), seeded, so runs are reproducible. Faults
  apply before auth, as a proxy's or overloaded server's would.

``livekit_target()`` yields this double, or a ``RealLiveKit`` description when ``LIVEKIT_URL`` is set in
the environment, so a test can run its wire-level assertions against a real server and skip the
double-only ones (``if not target.is_double: pytest.skip(...)``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import random
import secrets
import string
import time
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import jwt
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from livekit.protocol import models
from livekit.protocol import room as proto_room
from livekit.protocol import webhook as proto_webhook

log = logging.getLogger("tests.livekit_double")

SERVICE = "livekit.RoomService"
PREFIX = f"/twirp/{SERVICE}/"

# livekit-server's room defaults (config.RoomConfig): empty_timeout 300 s, departure_timeout 20 s.
DEFAULT_EMPTY_TIMEOUT = 300
DEFAULT_DEPARTURE_TIMEOUT = 20
# go-jose's default leeway, used by livekit/protocol's auth.APIKeyTokenVerifier.
TOKEN_LEEWAY_S = 60.0

# Twirp error code -> HTTP status (twirp spec, errors.go ServerHTTPStatusFromErrorCode).
TWIRP_STATUS = {
    "canceled": 408,
    "unknown": 500,
    "invalid_argument": 400,
    "malformed": 400,
    "deadline_exceeded": 408,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "unauthenticated": 401,
    "resource_exhausted": 429,
    "failed_precondition": 412,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "dataloss": 500,
}
# Injected failure status -> Twirp code; a status not listed gets a plain-text body, as a proxy would send.
FAULT_CODES = {429: "resource_exhausted", 500: "internal", 501: "unimplemented", 503: "unavailable"}

# RoomService methods the real server has but the double does not model.
UNMODELLED = {
    "MutePublishedTrack",
    "UpdateParticipant",
    "UpdateSubscriptions",
    "SendData",
    "ForwardParticipant",
    "MoveParticipant",
    "PerformRpc",
}

_B62 = string.digits + string.ascii_letters
_M = TypeVar("_M", bound=Message)


def new_guid(prefix: str) -> str:
    """An id shaped like livekit's ``guid.New(prefix)``: prefix + 12 base62 characters."""
    return prefix + "".join(secrets.choice(_B62) for _ in range(12))


class TwirpFailure(Exception):
    def __init__(self, code: str, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg


class JoinRefused(Exception):
    """``double.join`` refused the participant. ``reason`` is one of: "unauthorized" (bad/expired token,
    no roomJoin grant, token for another room), "bad_request" (no identity), "not_found" (unknown room
    and auto_create off), "full" (max_participants reached). ``status`` is the HTTP status
    livekit-server's /rtc/validate answers with for the same case."""

    STATUS = {"unauthorized": 401, "bad_request": 400, "not_found": 404, "full": 503}

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"join refused ({reason}): {detail}")
        self.reason = reason
        self.detail = detail
        self.status = self.STATUS[reason]


@dataclass
class Call:
    """One Twirp request the double answered."""

    method: str
    status: int
    code: str | None = None  # Twirp error code, or None on success / plain-text errors
    fault: str | None = None  # "fail" / "delay" when an injected fault applied
    request: Message | None = None
    at: float = field(default_factory=time.time)


@dataclass
class WebhookAttempt:
    """One HTTP POST of a webhook."""

    event: str
    event_id: str
    room: str
    status: int | None  # HTTP status, or None on a transport error
    error: str | None
    duplicate: bool  # a deliberate re-send (duplicate_webhook fault), not a retry
    body: str
    auth: str
    at: float = field(default_factory=time.time)


@dataclass
class WebhookRecord:
    """One webhook event the double produced and what became of it.

    outcome: "no_url" (webhook_url unset when it fired), "queued", "delivered", "failed" (retries
    exhausted), "dropped" (drop fault), "expired" (older than webhook_max_age_s in the queue)."""

    event: proto_webhook.WebhookEvent
    body: str
    outcome: str = "queued"
    attempts: list[WebhookAttempt] = field(default_factory=list)
    duplicated: bool = False
    queued_at: float = field(default_factory=time.monotonic)

    @property
    def name(self) -> str:
        return self.event.event

    @property
    def id(self) -> str:
        return self.event.id


@dataclass
class _Scripted:
    kind: str  # "fail" | "delay"
    count: int
    method: str | None
    status: int = 503
    seconds: float = 0.0
    after: bool = False


class Faults:
    """Fault injection. Rates are fractions in [0, 1] drawn from ``rng`` (seeded by the double), so a run
    with the same seed and call sequence sees the same faults.

    Twirp calls (only those whose method is in ``methods``, all when None):
      fail_rate      -- fraction answered with ``fail_status`` before any processing: 503 (Twirp
                        "unavailable"), 429 ("resource_exhausted"), 500 ("internal"); other statuses get
                        a plain-text body as a proxy's would (client code "unknown").
      delay_s        -- sleep before processing. The request is still handled afterwards even if the
                        caller gave up meanwhile, as a slow server would (the change lands late).
      reply_delay_s  -- process, then sleep before answering (the change is applied at once but the
                        caller may time out: the get-or-create retry case).
    NB livekit-api 1.2.2 never applies LiveKitAPI(timeout=...) to RoomService calls (TwirpClient passes
    timeout=None to aiohttp, i.e. no limit), so only a caller-side deadline (asyncio.timeout) fires.
    Webhooks:
      drop_webhook_rate       -- fraction of events never sent (outcome "dropped").
      duplicate_webhook_rate  -- fraction of events sent twice with the same id/body/signature.
    Deterministic helpers: ``fail_next``, ``delay_next``, ``drop_next_webhooks``,
    ``duplicate_next_webhooks``; scripted faults are used before the rates are drawn.
    """

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.reset()

    def reset(self) -> None:
        self.fail_rate = 0.0
        self.fail_status = 503
        self.delay_s = 0.0
        self.reply_delay_s = 0.0
        self.methods: set[str] | None = None
        self.drop_webhook_rate = 0.0
        self.duplicate_webhook_rate = 0.0
        self._scripted: list[_Scripted] = []
        self._drop_next: list[tuple[int, str | None]] = []
        self._dup_next: list[tuple[int, str | None]] = []

    def fail_next(self, n: int = 1, status: int = 503, method: str | None = None) -> None:
        """The next ``n`` calls (of ``method``, or any) answer ``status`` without being processed."""
        self._scripted.append(_Scripted("fail", n, method, status=status))

    def delay_next(self, n: int, seconds: float, method: str | None = None, after: bool = False) -> None:
        """Delay the next ``n`` calls by ``seconds``: before processing, or (after=True) after it."""
        self._scripted.append(_Scripted("delay", n, method, seconds=seconds, after=after))

    def drop_next_webhooks(self, n: int = 1, event: str | None = None) -> None:
        """Never send the next ``n`` webhook events (of type ``event``, or any)."""
        self._drop_next.append((n, event))

    def duplicate_next_webhooks(self, n: int = 1, event: str | None = None) -> None:
        """Send the next ``n`` webhook events (of type ``event``, or any) twice."""
        self._dup_next.append((n, event))

    # -- used by the double -------------------------------------------------------------------------
    def _take(self, kind: str, method: str) -> _Scripted | None:
        for s in self._scripted:
            if s.kind == kind and s.count > 0 and (s.method is None or s.method == method):
                s.count -= 1
                if s.count == 0:
                    self._scripted.remove(s)
                return s
        return None

    def _applies(self, method: str) -> bool:
        return self.methods is None or method in self.methods

    def call_fault(self, method: str) -> tuple[int | None, float, float]:
        """(failure status or None, delay before, delay after) for one call."""
        status: int | None = None
        before = after = 0.0
        delay = self._take("delay", method)
        if delay is not None:
            if delay.after:
                after = delay.seconds
            else:
                before = delay.seconds
        fail = self._take("fail", method)
        if fail is not None:
            status = fail.status
        elif self._applies(method):
            if self.fail_rate > 0 and self.rng.random() < self.fail_rate:
                status = self.fail_status
        if self._applies(method):
            before += self.delay_s
            after += self.reply_delay_s
        return status, before, after

    @staticmethod
    def _take_webhook(queue: list[tuple[int, str | None]], event: str) -> bool:
        for i, (n, ev) in enumerate(queue):
            if ev is None or ev == event:
                if n <= 1:
                    del queue[i]
                else:
                    queue[i] = (n - 1, ev)
                return True
        return False

    def webhook_fault(self, event: str) -> tuple[bool, bool]:
        """(drop, duplicate) for one webhook event."""
        if self._take_webhook(self._drop_next, event):
            return True, False
        if self.drop_webhook_rate > 0 and self.rng.random() < self.drop_webhook_rate:
            return True, False
        dup = self._take_webhook(self._dup_next, event)
        if not dup and self.duplicate_webhook_rate > 0:
            dup = self.rng.random() < self.duplicate_webhook_rate
        return False, dup


class LiveKitDouble:
    """An in-process LiveKit server double. Use as ``async with LiveKitDouble(...) as double:``."""

    is_double = True

    def __init__(
        self,
        api_key: str = "devkey",
        api_secret: str = "secret",
        webhook_url: str | None = None,
        *,
        seed: int = 0,
        auto_create: bool = False,
        webhook_max_retries: int = 3,
        webhook_retry_wait_s: float = 0.05,
        webhook_timeout_s: float = 5.0,
        webhook_max_age_s: float | None = None,
        token_leeway_s: float = TOKEN_LEEWAY_S,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.webhook_url = webhook_url
        # livekit-server's default is room.auto_create: true (a join creates the room); Hearth creates
        # rooms explicitly, so the double refuses joins to unknown rooms unless this is set.
        self.auto_create = auto_create
        self.webhook_max_retries = webhook_max_retries
        self.webhook_retry_wait_s = webhook_retry_wait_s
        self.webhook_timeout_s = webhook_timeout_s
        self.webhook_max_age_s = webhook_max_age_s
        self.token_leeway_s = token_leeway_s
        self.faults = Faults(seed)

        self.rooms: dict[str, models.Room] = {}
        self.participants: dict[str, dict[str, models.ParticipantInfo]] = {}
        self.calls: list[Call] = []
        self.webhooks: list[WebhookRecord] = []
        self.webhook_attempts: list[WebhookAttempt] = []

        self.url = ""
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._queues: dict[str, asyncio.Queue[WebhookRecord]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------------------------------
    async def __aenter__(self) -> LiveKitDouble:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.webhook_timeout_s))

    async def stop(self) -> None:
        self._closing.set()
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        for task in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- inspection helpers -------------------------------------------------------------------------
    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def events(self, name: str | None = None, room: str | None = None) -> list[WebhookRecord]:
        """Webhook records in the order the events fired, optionally filtered."""
        return [
            w
            for w in self.webhooks
            if (name is None or w.name == name) and (room is None or w.event.room.name == room)
        ]

    async def drain_webhooks(self, timeout: float = 10.0) -> None:
        """Wait until every queued webhook is delivered, dropped or given up on."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    # -- participants (the signal side of the server) -----------------------------------------------
    def _verify(self, token: str) -> dict[str, Any]:
        """Claims of an API/join token, verified like auth.APIKeyTokenVerifier; raises ValueError."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)  # "secret" is the dev key
            return self._verify_quietly(token)

    def _verify_quietly(self, token: str) -> dict[str, Any]:
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as e:
            raise ValueError("invalid authorization token") from e
        if unverified.get("iss") != self.api_key:
            raise ValueError(f"invalid API key: {unverified.get('iss')}")
        try:
            return jwt.decode(
                token,
                self.api_secret,
                algorithms=["HS256"],
                issuer=self.api_key,
                leeway=self.token_leeway_s,
                options={"verify_aud": False},
            )
        except jwt.PyJWTError as e:
            raise ValueError(f"invalid token: {e}") from e

    async def join(self, room_name: str, token: str, *, name: str | None = None) -> models.ParticipantInfo:
        """Connect a participant with an access token, as a client SDK would.

        Checked as livekit-server's ValidateConnectRequest does: HS256 signature with the secret of the
        token's ``iss`` (must be this double's API key), exp/nbf with leeway, ``video.roomJoin`` true,
        ``video.room`` equal to ``room_name``, a non-empty identity (``sub``). The room must exist (or
        ``auto_create``), and must have room left (``max_participants``; 0 = unlimited). Joining with an
        identity already in the room replaces that participant (participant_left, DUPLICATE_IDENTITY).
        Raises JoinRefused."""
        try:
            claims = self._verify(token)
        except ValueError as e:
            raise JoinRefused("unauthorized", str(e)) from e
        video = claims.get("video") or {}
        if not video.get("roomJoin"):
            raise JoinRefused("unauthorized", "permissions denied: token has no roomJoin grant")
        token_room = video.get("room") or ""
        if token_room != room_name:
            raise JoinRefused("unauthorized", f"token is for room {token_room!r}, not {room_name!r}")
        identity = claims.get("sub") or ""
        if not identity:
            raise JoinRefused("bad_request", "identity cannot be empty")
        room = self.rooms.get(room_name)
        if room is None:
            if not self.auto_create:
                raise JoinRefused("not_found", "requested room does not exist")
            room = self._create_room(proto_room.CreateRoomRequest(name=room_name))[0]
        members = self.participants.setdefault(room_name, {})
        others = [i for i in members if i != identity]
        if room.max_participants and len(others) >= room.max_participants:
            raise JoinRefused("full", f"room has exceeded its max participants ({room.max_participants})")
        if identity in members:
            self._remove(room_name, identity, models.DisconnectReason.DUPLICATE_IDENTITY)
        now = time.time()
        permission = models.ParticipantPermission(
            can_publish=video.get("canPublish", True),
            can_subscribe=video.get("canSubscribe", True),
            can_publish_data=video.get("canPublishData", True),
            hidden=bool(video.get("hidden", False)),
        )
        info = models.ParticipantInfo(
            sid=new_guid("PA_"),
            identity=identity,
            name=name if name is not None else claims.get("name", ""),
            metadata=claims.get("metadata", ""),
            state=models.ParticipantInfo.State.ACTIVE,
            joined_at=int(now),
            joined_at_ms=int(now * 1000),
            permission=permission,
            attributes=claims.get("attributes") or {},
        )
        kind = (claims.get("kind") or "standard").upper()
        if kind in models.ParticipantInfo.Kind.keys():
            info.kind = models.ParticipantInfo.Kind.Value(kind)
        members[identity] = info
        room.num_participants = len(members)
        self._emit("participant_joined", room_name, participant=info)
        return _copy(info)

    async def leave(
        self,
        room_name: str,
        identity: str,
        reason: int = models.DisconnectReason.CLIENT_INITIATED,
    ) -> models.ParticipantInfo:
        """Disconnect a participant (participant_left). Raises LookupError if it is not in the room."""
        if identity not in self.participants.get(room_name, {}):
            raise LookupError(f"{identity!r} is not in room {room_name!r}")
        return _copy(self._remove(room_name, identity, reason))

    async def finish_room(
        self, room_name: str, reason: int = models.RoomEndReason.ROOM_END_IDLE_TIMEOUT
    ) -> None:
        """Close a room as the server does on its own (empty/departure timeout): everyone left is
        disconnected (ROOM_CLOSED), then room_finished. Raises LookupError for an unknown room."""
        if room_name not in self.rooms:
            raise LookupError(f"no room {room_name!r}")
        self._close_room(room_name, models.DisconnectReason.ROOM_CLOSED, reason)

    # -- state changes ------------------------------------------------------------------------------
    def _create_room(self, req: proto_room.CreateRoomRequest) -> tuple[models.Room, bool]:
        room = self.rooms.get(req.name)
        created = room is None
        if room is None:
            now = time.time()
            room = models.Room(
                sid=new_guid("RM_"),
                name=req.name,
                creation_time=int(now),
                creation_time_ms=int(now * 1000),
                turn_password=secrets.token_urlsafe(16),
                empty_timeout=DEFAULT_EMPTY_TIMEOUT,
                departure_timeout=DEFAULT_DEPARTURE_TIMEOUT,
                max_participants=0,
            )
        if req.empty_timeout > 0:
            room.empty_timeout = req.empty_timeout
        if req.departure_timeout > 0:
            room.departure_timeout = req.departure_timeout
        if req.max_participants > 0:
            room.max_participants = req.max_participants
        if req.metadata:
            room.metadata = req.metadata
        if created:
            self.rooms[req.name] = room
            self.participants[req.name] = {}
            self._emit("room_started", req.name)
        return room, created

    def _remove(self, room_name: str, identity: str, reason: int) -> models.ParticipantInfo:
        members = self.participants[room_name]
        info = members.pop(identity)
        info.state = models.ParticipantInfo.State.DISCONNECTED
        info.disconnect_reason = reason  # type: ignore[assignment]
        room = self.rooms.get(room_name)
        if room is not None:
            room.num_participants = len(members)
        self._emit("participant_left", room_name, participant=info)
        return info

    def _close_room(self, room_name: str, disconnect: int, end_reason: int) -> None:
        for identity in list(self.participants.get(room_name, {})):
            self._remove(room_name, identity, disconnect)
        self._emit("room_finished", room_name, room_end_reason=end_reason)
        del self.rooms[room_name]
        self.participants.pop(room_name, None)

    # -- webhooks -----------------------------------------------------------------------------------
    def _emit(
        self,
        name: str,
        room_name: str,
        participant: models.ParticipantInfo | None = None,
        room_end_reason: int = 0,
    ) -> None:
        event = proto_webhook.WebhookEvent(
            event=name, id=new_guid("EV_"), created_at=int(time.time()), room_end_reason=room_end_reason
        )
        room = self.rooms.get(room_name)
        event.room.CopyFrom(room if room is not None else models.Room(name=room_name))
        event.room.ClearField("turn_password")
        if participant is not None:
            event.participant.CopyFrom(participant)
        body = json_format.MessageToJson(event, indent=None)
        record = WebhookRecord(event=event, body=body)
        self.webhooks.append(record)
        if not self.webhook_url:
            record.outcome = "no_url"
            return
        drop, dup = self.faults.webhook_fault(name)
        if drop:
            record.outcome = "dropped"
            return
        record.duplicated = dup
        self._pending += 1
        self._idle.clear()
        queue = self._queues.get(room_name)
        if queue is None:
            queue = self._queues[room_name] = asyncio.Queue()
        queue.put_nowait(record)
        task = self._workers.get(room_name)
        if task is None or task.done():
            self._workers[room_name] = asyncio.get_running_loop().create_task(self._deliver_loop(queue))

    def _sign(self, body: bytes) -> str:
        now = int(time.time())
        claims = {
            "iss": self.api_key,
            "nbf": now,
            "exp": now + 300,
            "sha256": base64.b64encode(hashlib.sha256(body).digest()).decode(),
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
            return jwt.encode(claims, self.api_secret, algorithm="HS256")

    async def _deliver_loop(self, queue: asyncio.Queue[WebhookRecord]) -> None:
        while True:
            record = await queue.get()
            try:
                await self._deliver(record)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one event kill the room's queue
                log.exception("webhook delivery crashed")
                record.outcome = "failed"
            finally:
                self._pending -= 1
                if self._pending == 0:
                    self._idle.set()

    async def _deliver(self, record: WebhookRecord) -> None:
        age = time.monotonic() - record.queued_at
        if self.webhook_max_age_s is not None and age > self.webhook_max_age_s:
            record.outcome = "expired"
            return
        body = record.body.encode()
        auth = self._sign(body)
        ok = await self._post(record, body, auth, duplicate=False)
        record.outcome = "delivered" if ok else "failed"
        if ok and record.duplicated:
            await self._post(record, body, auth, duplicate=True)

    async def _post(self, record: WebhookRecord, body: bytes, auth: str, duplicate: bool) -> bool:
        """POST with retries on transport errors, 429 and 5xx except 501 (go-retryablehttp's policy)."""
        assert self._session is not None
        for attempt in range(self.webhook_max_retries + 1):
            url = self.webhook_url
            if not url:
                return False
            status: int | None = None
            error: str | None = None
            try:
                async with self._session.post(
                    url,
                    data=body,
                    headers={"Authorization": auth, "Content-Type": "application/webhook+json"},
                ) as resp:
                    status = resp.status
                    await resp.read()
            except (aiohttp.ClientError, TimeoutError) as e:
                error = f"{type(e).__name__}: {e}"
            attempt_rec = WebhookAttempt(
                event=record.name,
                event_id=record.id,
                room=record.event.room.name,
                status=status,
                error=error,
                duplicate=duplicate,
                body=record.body,
                auth=auth,
            )
            record.attempts.append(attempt_rec)
            self.webhook_attempts.append(attempt_rec)
            retry = status is None or status == 429 or (status >= 500 and status != 501)
            if not retry:
                return True  # retryablehttp hands any other status back as a completed request
            if attempt < self.webhook_max_retries:
                await asyncio.sleep(self.webhook_retry_wait_s * (2**attempt))
        return False

    # -- Twirp --------------------------------------------------------------------------------------
    async def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), seconds)

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path
        method = path[len(PREFIX) :] if path.startswith(PREFIX) else ""
        if request.method != "POST":
            return self._twirp_error(
                Call(method or path, 0), "bad_route", f"unsupported method {request.method} (only POST)"
            )
        if not method or "/" in method or not (hasattr(self, f"_rpc_{method}") or method in UNMODELLED):
            return self._twirp_error(Call(method or path, 0), "bad_route", f"no handler for path {path!r}")
        call = Call(method, 0)
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype not in ("application/protobuf", "application/json"):
            return self._twirp_error(call, "bad_route", f"unexpected Content-Type: {ctype!r}")

        raw = await request.read()  # read first: a delayed request is still handled after the caller left
        fail_status, before, after = self.faults.call_fault(method)
        if before:
            call.fault = "delay"
            await self._sleep(before)
            if self._closing.is_set():
                return web.Response(status=503, text="shutting down")
        if fail_status is not None:
            call.fault = "fail"
            fault_code = FAULT_CODES.get(fail_status)
            if fault_code is None:
                return self._plain_error(call, fail_status, f"injected fault: HTTP {fail_status}")
            call.code = fault_code
            call.status = fail_status
            self.calls.append(call)
            return _json_response(fail_status, {"code": fault_code, "msg": "injected fault"})

        # livekit-server's APIKeyAuthMiddleware: a bad token never reaches the Twirp handler.
        grants: dict[str, Any] | None = None
        header = request.headers.get("Authorization", "")
        if header:
            if not header.startswith("Bearer "):
                return self._plain_error(call, 401, "invalid authorization header. Must start with Bearer ")
            try:
                grants = self._verify(header[len("Bearer ") :])
            except ValueError as e:
                return self._plain_error(call, 401, str(e))

        if method in UNMODELLED:
            return self._twirp_error(call, "unimplemented", f"{method} is not modelled by LiveKitDouble")
        handler = getattr(self, f"_rpc_{method}")
        req_cls = _REQUEST_TYPES[method]
        try:
            if ctype == "application/json":
                req = json_format.Parse(raw.decode() or "{}", req_cls(), ignore_unknown_fields=True)
            else:
                req = req_cls.FromString(raw)
        except (DecodeError, json_format.ParseError, UnicodeDecodeError) as e:
            return self._twirp_error(call, "malformed", f"the request could not be decoded: {e}")
        call.request = req
        try:
            resp = handler(req, (grants or {}).get("video") or {})
        except TwirpFailure as e:
            return self._twirp_error(call, e.code, e.msg)
        call.status = 200
        self.calls.append(call)
        if after:
            call.fault = call.fault or "delay"
            await self._sleep(after)
        if ctype == "application/json":
            text = json_format.MessageToJson(resp, preserving_proto_field_name=True, indent=None)
            return web.Response(status=200, body=text.encode(), content_type="application/json")
        return web.Response(status=200, body=resp.SerializeToString(), content_type="application/protobuf")

    def _twirp_error(self, call: Call, code: str, msg: str) -> web.Response:
        call.status = TWIRP_STATUS[code]
        call.code = code
        self.calls.append(call)
        return _json_response(call.status, {"code": code, "msg": msg})

    def _plain_error(self, call: Call, status: int, msg: str) -> web.Response:
        call.status = status
        self.calls.append(call)
        return web.Response(status=status, text=msg)

    # grant checks (auth.go); failures are twirpAuthError -> "unauthenticated"
    @staticmethod
    def _need(video: dict[str, Any], grant: str, room: str | None = None) -> None:
        if not video.get(grant) or (room is not None and video.get("room", "") != room):
            raise TwirpFailure("unauthenticated", "permissions denied")

    def _room_or_404(self, name: str) -> models.Room:
        room = self.rooms.get(name)
        if room is None:
            raise TwirpFailure("not_found", "requested room does not exist")
        return room

    def _rpc_CreateRoom(self, req: proto_room.CreateRoomRequest, video: dict[str, Any]) -> Message:
        self._need(video, "roomCreate")
        if not req.name:
            raise TwirpFailure("invalid_argument", "no room name")
        room, _ = self._create_room(req)
        return _copy(room)

    def _rpc_ListRooms(self, req: proto_room.ListRoomsRequest, video: dict[str, Any]) -> Message:
        self._need(video, "roomList")
        names = set(req.names)
        rooms = [_copy(r) for n, r in self.rooms.items() if not names or n in names]
        return proto_room.ListRoomsResponse(rooms=rooms)

    def _rpc_DeleteRoom(self, req: proto_room.DeleteRoomRequest, video: dict[str, Any]) -> Message:
        self._need(video, "roomCreate")
        self._room_or_404(req.room)
        self._close_room(
            req.room, models.DisconnectReason.ROOM_DELETED, models.RoomEndReason.ROOM_END_API_DELETE
        )
        return proto_room.DeleteRoomResponse()

    def _rpc_ListParticipants(
        self, req: proto_room.ListParticipantsRequest, video: dict[str, Any]
    ) -> Message:
        self._need(video, "roomAdmin", req.room)
        members = self.participants.get(req.room, {})
        return proto_room.ListParticipantsResponse(participants=[_copy(p) for p in members.values()])

    def _rpc_GetParticipant(self, req: proto_room.RoomParticipantIdentity, video: dict[str, Any]) -> Message:
        self._need(video, "roomAdmin", req.room)
        info = self.participants.get(req.room, {}).get(req.identity)
        if info is None:
            raise TwirpFailure("not_found", "participant does not exist")
        return _copy(info)

    def _rpc_RemoveParticipant(
        self, req: proto_room.RoomParticipantIdentity, video: dict[str, Any]
    ) -> Message:
        self._need(video, "roomAdmin", req.room)
        if req.identity not in self.participants.get(req.room, {}):
            raise TwirpFailure("not_found", "participant not found")
        self._remove(req.room, req.identity, models.DisconnectReason.PARTICIPANT_REMOVED)
        return proto_room.RemoveParticipantResponse()

    def _rpc_UpdateRoomMetadata(
        self, req: proto_room.UpdateRoomMetadataRequest, video: dict[str, Any]
    ) -> Message:
        self._need(video, "roomAdmin", req.room)
        room = self._room_or_404(req.room)
        room.metadata = req.metadata
        return _copy(room)


_REQUEST_TYPES: dict[str, type[Message]] = {
    "CreateRoom": proto_room.CreateRoomRequest,
    "ListRooms": proto_room.ListRoomsRequest,
    "DeleteRoom": proto_room.DeleteRoomRequest,
    "ListParticipants": proto_room.ListParticipantsRequest,
    "GetParticipant": proto_room.RoomParticipantIdentity,
    "RemoveParticipant": proto_room.RoomParticipantIdentity,
    "UpdateRoomMetadata": proto_room.UpdateRoomMetadataRequest,
}


def _copy(msg: _M) -> _M:
    out = type(msg)()
    out.CopyFrom(msg)
    return out


def _json_response(status: int, payload: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=json.dumps(payload).encode(), content_type="application/json")


@dataclass
class RealLiveKit:
    """A real LiveKit server given by LIVEKIT_URL / LIVEKIT_API_KEY / LIVEKIT_API_SECRET. It has none of
    the double's inspection or fault-injection API: tests skip double-only assertions on
    ``not target.is_double``."""

    url: str
    api_key: str
    api_secret: str
    webhook_url: str | None = None
    is_double: bool = False


@contextlib.asynccontextmanager
async def livekit_target(**kwargs: Any) -> AsyncIterator[LiveKitDouble | RealLiveKit]:
    """The LiveKit server for a test: a fresh ``LiveKitDouble(**kwargs)``, or, when ``LIVEKIT_URL`` is
    set, a ``RealLiveKit`` for that server (keys from LIVEKIT_API_KEY/LIVEKIT_API_SECRET, default
    devkey/secret as ``livekit-server --dev``). Webhooks from a real server go wherever its own config
    says, so webhook assertions are double-only too."""
    url = os.environ.get("LIVEKIT_URL")
    if url:
        yield RealLiveKit(
            url=url,
            api_key=os.environ.get("LIVEKIT_API_KEY", "devkey"),
            api_secret=os.environ.get("LIVEKIT_API_SECRET", "secret"),
        )
        return
    async with LiveKitDouble(**kwargs) as double:
        yield double
