"""Matchmaking and LiveKit over HTTP: the queue, the match, room tokens, LiveKit's webhooks."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app import livekit
from app.errors import HearthError
from app.http import claims_of, path_uuid, read_body
from app.state import AppState

MAX_WEBHOOK_BODY = 1024 * 1024


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.hearth
    return state


async def enqueue(request: Request) -> Response:
    claims = claims_of(request)
    await read_body(request, {})
    state = await _state(request).db.enqueue_match(claims.identity_id)
    return JSONResponse({"state": state})


async def leave_queue(request: Request) -> Response:
    claims = claims_of(request)
    state = await _state(request).db.leave_queue(claims.identity_id)
    return JSONResponse({"state": state})


async def match_status(request: Request) -> Response:
    claims = claims_of(request)
    status = await _state(request).db.match_status(claims.identity_id)
    return JSONResponse(status)


async def _end(request: Request, action: str) -> Response:
    session_id = path_uuid(request, "session_id")
    claims = claims_of(request)
    await read_body(request, {})
    db = _state(request).db
    await db.end_match(session_id, claims.identity_id, action)
    state = await db.identity_state(claims.identity_id)
    return JSONResponse({"state": state})


async def skip(request: Request) -> Response:
    return await _end(request, "skip")


async def end(request: Request) -> Response:
    return await _end(request, "end")


async def livekit_token(request: Request) -> Response:
    session_id = path_uuid(request, "session_id")
    claims = claims_of(request, session=True)
    if claims.session_id != session_id:
        raise HearthError("HT403", "this session token is for another session")
    settings = _state(request).settings
    livekit.require_configured(settings.livekit_url, settings.livekit_api_key)
    assert claims.participant_id is not None
    room = await _state(request).db.livekit_room(session_id, claims.participant_id)
    token = livekit.room_token(
        settings.livekit_api_key,
        settings.livekit_api_secret.reveal(),
        str(claims.identity_id),
        room,
        now=livekit.now(),
    )
    return JSONResponse({"url": settings.livekit_url, "room": room, "token": token})


async def webhook(request: Request) -> Response:
    from livekit import api

    settings = _state(request).settings
    livekit.require_configured(settings.livekit_url, settings.livekit_api_key)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_WEBHOOK_BODY:
            raise HearthError("HT400", "webhook body is too large", http_status=413)
    receiver = api.WebhookReceiver(
        api.TokenVerifier(settings.livekit_webhook_key, settings.livekit_api_secret.reveal())
    )
    try:
        event = receiver.receive(body.decode("utf-8", "replace"), request.headers.get("authorization", ""))
    except Exception:
        raise HearthError("HT401", "webhook signature does not verify") from None
    if not event.id or not event.event:
        raise HearthError("HT400", "webhook event without id or type")
    fresh = await _state(request).db.record_livekit_participant_event(
        event.id,
        event.event,
        event.room.name or None,
        event.participant.identity or None,
        event.participant.sid or None,
        livekit.created_at(event.created_at),
    )
    return JSONResponse({"recorded": fresh})


routes = [
    Route("/v1/match/queue", enqueue, methods=["POST"]),
    Route("/v1/match/queue", leave_queue, methods=["DELETE"]),
    Route("/v1/match", match_status, methods=["GET"]),
    Route("/v1/matches/{session_id}/skip", skip, methods=["POST"]),
    Route("/v1/matches/{session_id}/end", end, methods=["POST"]),
    Route("/v1/sessions/{session_id}/livekit-token", livekit_token, methods=["GET"]),
    Route("/v1/livekit/webhook", webhook, methods=["POST"]),
]
