"""LiveKit: room tokens (pure), the room worker (outbox), the reconciler, and the routes about LiveKit (a
participant's room token, LiveKit's webhooks, and room health for the admin).

Rooms are never created inline with a match: the match writes a `create_room` job in its own
transaction, and workers in every instance claim due jobs (SKIP LOCKED, with a lease) and call LiveKit
through `livekit-api`. Failures go back to the database, which schedules the retry (exponential
backoff with jitter) or, past the budget, rolls the match back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import jwt
from starlette.requests import Request
from starlette.responses import Response

from app import shapes
from app.api import answer, path_uuid, read_raw, require_admin, session_claims_for, state_of
from app.db import Database
from app.errors import HearthError
from app.loops import every
from app.openapi import ApiRoute, Operation

log = logging.getLogger("hearth.livekit")

ROOM_TOKEN_TTL_S = 600
EMPTY_TIMEOUT_S = 60  # nobody ever joined: LiveKit closes the room
DEPARTURE_TIMEOUT_S = 20  # everybody left
CALL_TIMEOUT_S = 5.0
MAX_ATTEMPTS = 6
MAX_WEBHOOK_BODY = 1024 * 1024
# Twirp codes worth another try; anything else (bad request, permission) will not get better.
RETRYABLE = {"unavailable", "internal", "resource_exhausted", "deadline_exceeded", "unknown", "aborted"}


def room_token(
    api_key: str, api_secret: str, identity: str, room: str, *, now: float, ttl_s: int = ROOM_TOKEN_TTL_S
) -> str:
    """A LiveKit access token allowing `identity` to join `room` alone, valid for ttl_s from now."""
    claims = {
        "iss": api_key,
        "sub": identity,
        "nbf": int(now),
        "exp": int(now) + ttl_s,
        "video": {"roomJoin": True, "room": room},
    }
    return jwt.encode(claims, api_secret, algorithm="HS256")


def _retryable(exc: BaseException) -> bool:
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        # LiveKit answers a bad key or a missing grant with 401 (code "unknown" or "unauthenticated").
        return status == 429 or status >= 500 or (status < 400 and getattr(exc, "code", "") in RETRYABLE)
    return isinstance(exc, aiohttp.ClientError | TimeoutError | OSError)


async def _call(awaitable: Awaitable[Any], timeout_s: float) -> Any:
    # livekit-api 1.2 hands aiohttp no timeout for RoomService calls, whatever LiveKitAPI was given.
    return await asyncio.wait_for(awaitable, timeout_s)


class RoomWorker:
    """Creates and deletes LiveKit rooms from the outbox, and reconciles LiveKit with Hearth."""

    def __init__(
        self,
        db: Database,
        url: str,
        api_key: str,
        api_secret: str,
        *,
        reconcile_s: float = 30.0,
        timeout_s: float = CALL_TIMEOUT_S,
        batch: int = 20,
    ) -> None:
        self._timeout_s = timeout_s
        self._db = db
        self._url = url
        self._api_key = api_key
        self._api_secret = api_secret
        self._reconcile_s = reconcile_s
        self._batch = batch
        self.wake = asyncio.Event()
        self._api: Any = None

    async def open(self) -> None:
        """LiveKitAPI owns an aiohttp session: it is made inside the running event loop, before the two
        loops that share it start."""
        from livekit import api

        self._api = api.LiveKitAPI(
            self._url,
            self._api_key,
            self._api_secret,
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            failover=False,
        )

    async def close(self) -> None:
        if self._api is not None:
            await self._api.aclose()

    async def work_loop(self) -> None:
        await every(1.0, self.wake, self.work)

    async def reconcile_loop(self) -> None:
        await every(self._reconcile_s, None, self.reconcile)

    async def work(self) -> None:
        while True:
            jobs = await self._db.claim_livekit_jobs(self._batch)
            if not jobs:
                return
            await asyncio.gather(*(self._run_job(job) for job in jobs))

    async def _run_job(self, job: Any) -> None:
        from livekit import api

        try:
            if job["kind"] == "create_room":
                await _call(
                    self._api.room.create_room(
                        api.CreateRoomRequest(
                            name=job["room"],
                            max_participants=2,
                            empty_timeout=EMPTY_TIMEOUT_S,
                            departure_timeout=DEPARTURE_TIMEOUT_S,
                        )
                    ),
                    self._timeout_s,
                )
            else:
                try:
                    await _call(
                        self._api.room.delete_room(api.DeleteRoomRequest(room=job["room"])), self._timeout_s
                    )
                except api.TwirpError as exc:
                    if exc.code != "not_found":  # already gone is what we wanted
                        raise
        except Exception as exc:
            attempts = MAX_ATTEMPTS if _retryable(exc) else 1
            error = f"{type(exc).__name__}: {exc}"[:500]
            outcome = await self._db.finish_livekit_job(job["job_id"], error, attempts)
            log.warning("LiveKit %s %s failed (%s): %s", job["kind"], job["room"], outcome, exc)
            return
        await self._db.finish_livekit_job(job["job_id"])

    async def reconcile(self) -> None:
        from livekit import api

        listed_at = datetime.now(UTC)
        response = await _call(self._api.room.list_rooms(api.ListRoomsRequest()), self._timeout_s)
        names = [room.name for room in response.rooms]
        stale = await self._db.reconcile_livekit_rooms(names, listed_at)
        for room in stale:
            with contextlib.suppress(api.TwirpError, TimeoutError):
                await _call(self._api.room.delete_room(api.DeleteRoomRequest(room=room)), self._timeout_s)
        if stale:
            log.info("reconciler deleted %d stale rooms", len(stale))


def created_at(seconds: int) -> datetime | None:
    return datetime.fromtimestamp(seconds, tz=UTC) if seconds else None


def service_errors() -> tuple[type[Exception], ...]:
    """LiveKit away or refusing: its loops log a line for these, not a traceback."""
    from livekit import api

    return (api.TwirpError,)


def require_configured(url: str, api_key: str) -> None:
    if not url or not api_key:
        raise HearthError("HT503", "LiveKit is not configured on this server")


def now() -> float:
    return time.time()


async def livekit_token(request: Request) -> Response:
    session_id = path_uuid(request, "session_id")
    claims = session_claims_for(request, session_id)
    settings = state_of(request).settings
    require_configured(settings.livekit_url, settings.livekit_api_key)
    assert claims.participant_id is not None
    room = await state_of(request).db.livekit_room(session_id, claims.participant_id)
    token = room_token(
        settings.livekit_api_key,
        settings.livekit_api_secret.reveal(),
        str(claims.identity_id),
        room,
        now=now(),
    )
    return answer(shapes.LiveKitToken(url=settings.livekit_url, room=room, token=token))


async def webhook(request: Request) -> Response:
    settings = state_of(request).settings
    require_configured(settings.livekit_url, settings.livekit_api_key)
    body = await read_raw(request, MAX_WEBHOOK_BODY)
    from livekit import api as lkapi

    receiver = lkapi.WebhookReceiver(
        lkapi.TokenVerifier(settings.livekit_webhook_key, settings.livekit_api_secret.reveal())
    )
    try:
        event = receiver.receive(body.decode("utf-8", "replace"), request.headers.get("authorization", ""))
    except Exception:
        raise HearthError("HT401", "webhook signature does not verify") from None
    if not event.id or not event.event:
        raise HearthError("HT400", "webhook event without id or type")
    fresh = await state_of(request).db.record_livekit_participant_event(
        event.id,
        event.event,
        event.room.name or None,
        event.participant.identity or None,
        event.participant.sid or None,
        created_at(event.created_at),
    )
    return answer(shapes.WebhookRecorded(recorded=fresh))


async def admin_rooms(request: Request) -> Response:
    require_admin(request)
    rooms = await state_of(request).db.livekit_rooms()
    return answer(shapes.Rooms(rooms=[shapes.Room(**row) for row in rooms]))


routes = [
    ApiRoute(
        "/v1/sessions/{session_id}/livekit-token",
        livekit_token,
        "GET",
        Operation(
            "A LiveKit token for this session's room",
            {200: shapes.LiveKitToken},
            "session",
            errors=(404, 410, 503),
        ),
    ),
    ApiRoute(
        "/v1/livekit/webhook",
        webhook,
        "POST",
        Operation(
            "LiveKit's participant webhooks",
            {200: shapes.WebhookRecorded},
            "livekit",
            raw_body="application/webhook+json",
            errors=(503,),
        ),
    ),
    ApiRoute(
        "/v1/admin/rooms",
        admin_rooms,
        "GET",
        Operation("Room health: every LiveKit room Hearth knows", {200: shapes.Rooms}, "admin"),
    ),
]
