"""The Starlette app: lifespan wiring of pool, listener, hub and heartbeats; routes; error shape."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import WebSocketRoute
from starlette.types import ASGIApp

from app import demo, edge, http, livekit, logs, matching, pairing, sdk
from app.appauth import AppAuth
from app.broadcast import CHANNEL as BROADCAST_CHANNEL
from app.broadcast import Broadcasts, channel_key
from app.config import Settings
from app.cors import Cors
from app.db import Database
from app.errors import HearthError
from app.events import Event, Listener
from app.heartbeat import Heartbeats
from app.hub import PAGE as EVENTS_PAGE
from app.hub import FetchFrames, Hub
from app.limits import SocketLimit
from app.livekit import RoomWorker
from app.loops import Supervisor
from app.maintenance import Maintenance
from app.metrics import Metrics
from app.postbatch import PostBatcher
from app.ratelimit import RateLimits
from app.state import AppState
from app.ws import websocket_endpoint

log = logging.getLogger("hearth")
# HS256 wants a key of at least 256 bits (RFC 7518 section 3.2).
MIN_SECRET_BYTES = 32


def create_app(settings: Settings | None = None, *, heartbeat_flush_s: float = 1.0) -> Starlette:
    settings = settings or Settings.from_env()
    if not settings.secret:
        raise SystemExit("hearth: set HEARTH_SECRET (the key that signs tokens)")
    if len(settings.secret.reveal().encode()) < MIN_SECRET_BYTES:
        raise SystemExit(
            f"hearth: HEARTH_SECRET must be at least {MIN_SECRET_BYTES} bytes (it signs tokens with HS256); "
            "make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    if not settings.database_url:
        raise SystemExit("hearth: set HEARTH_DATABASE_URL")
    if settings.auth_secret and len(settings.auth_secret.reveal().encode()) < MIN_SECRET_BYTES:
        raise SystemExit(f"hearth: HEARTH_AUTH_SECRET must be at least {MIN_SECRET_BYTES} bytes (HS256)")

    metrics = Metrics()

    app = _Hearth(
        settings.cors_origins,
        routes=[
            *http.routes,
            *pairing.routes,
            *matching.routes,
            *livekit.routes,
            *demo.routes,
            *sdk.routes,
            WebSocketRoute("/v1/ws", websocket_endpoint),
        ],
        lifespan=lambda app: _running(app, settings, metrics, heartbeat_flush_s),
        exception_handlers={
            HearthError: _hearth_error,
            ClientDisconnect: _client_gone,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
    app.state.metrics = metrics  # the edge's protocols count what they refuse (uvicorn_config)
    return app


class _Hearth(Starlette):
    """The app, wrapped in its CORS layer outside Starlette's error middleware: internal errors carry the
    CORS headers too."""

    def __init__(self, cors_origins: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cors_origins = cors_origins

    def build_middleware_stack(self) -> ASGIApp:
        return Cors(super().build_middleware_stack(), self.cors_origins)


@contextlib.asynccontextmanager
async def _running(
    app: Starlette, settings: Settings, metrics: Metrics, heartbeat_flush_s: float
) -> AsyncIterator[None]:
    """The lifespan: the pool, the hub and its listener, heartbeats, and every background loop."""
    db = await Database.open(settings.database_url.reveal(), metrics)
    hub = Hub(_frames(db), metrics)
    broadcasts = Broadcasts(db, channel_key(settings.secret.reveal()), metrics)
    matchmaking = matching.Matchmaking(db, grace_s=settings.livekit_grace_s)
    wake_channels = {"hearth_match": matchmaking.wake.set}
    room_worker = _room_worker(settings, db)
    if room_worker is not None:
        await room_worker.open()
        wake_channels["hearth_livekit"] = room_worker.wake.set
    listener = Listener(
        settings.database_url.reveal(),
        hub.notify,
        hub.resync,
        metrics,
        application_name=f"hearth-listener {settings.instance_id}"[:63],
        wake_channels=wake_channels,
    )
    # Broadcasts have a LISTEN connection of their own: a flood of them never delays a doorbell, nor
    # trips the events listener's keepalive (the reply would queue behind megabytes of payloads).
    broadcast_listener = Listener(
        settings.database_url.reveal(),
        broadcasts.on_notify,
        lambda: None,
        None,
        channel=BROADCAST_CHANNEL,
        application_name=f"hearth-broadcast-listener {settings.instance_id}"[:63],
    )
    interval_s = int((await db.heartbeat_interval_s()) or 30)
    heartbeats = Heartbeats(db.touch, metrics, flush_s=heartbeat_flush_s, keepalive_s=interval_s / 2)
    rate_limits = RateLimits(db, refresh_s=settings.settings_refresh_s)
    await rate_limits.refresh()
    loops = Supervisor(metrics)
    sockets = SocketLimit(db.setting_integer)
    app_auth = AppAuth(settings)
    posts = PostBatcher(db.post_messages, db.post_message)
    app.state.hearth = AppState(
        settings, metrics, db, hub, listener, heartbeats, interval_s, loops, rate_limits, broadcasts, sockets,
        app_auth, posts,
    )
    loops.start("listener", listener.run)
    loops.start("dispatcher", hub.run)
    loops.start("heartbeats", heartbeats.run)
    loops.start("rate-limits", rate_limits.run)
    loops.start("broadcasts", broadcasts.run)
    loops.start("broadcast-listener", broadcast_listener.run)
    loops.start("matcher", matchmaking.match_loop)
    loops.start("match-reaper", matchmaking.reap_loop)
    if room_worker is not None:
        loops.start("livekit-rooms", room_worker.work_loop, expected=livekit.service_errors())
        loops.start("livekit-reconciler", room_worker.reconcile_loop, expected=livekit.service_errors())
    maintenance = Maintenance(
        settings.database_url.reveal(),
        settings.maintenance,
        scale=settings.maintenance_scale,
        instance=settings.instance_id,
    )
    loops.start("maintenance", maintenance.run)
    try:
        yield
    finally:
        # uvicorn has already closed the websockets with 1012 by now.
        await loops.stop()
        await heartbeats.close()  # the last touch, once the flusher has stopped
        await posts.close()  # the batches in flight commit before the pool closes
        await hub.stop()
        if room_worker is not None:
            await room_worker.close()
        await db.close()


def _frames(db: Database) -> FetchFrames:
    async def fetch(stream_ids: list[str], after: list[int]) -> list[Event]:
        return [Event.from_row(row) for row in await db.event_frames(stream_ids, after, EVENTS_PAGE)]

    return fetch


def _room_worker(settings: Settings, db: Database) -> RoomWorker | None:
    if not (settings.livekit_url and settings.livekit_api_key):
        return None
    return RoomWorker(
        db,
        settings.livekit_url,
        settings.livekit_api_key,
        settings.livekit_api_secret.reveal(),
        reconcile_s=settings.livekit_reconcile_s,
        timeout_s=settings.livekit_timeout_s,
    )


async def _hearth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HearthError)
    headers = None if exc.retry_after_s is None else {"Retry-After": str(exc.retry_after_s)}
    return JSONResponse(exc.body(), status_code=exc.http_status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    # Errors no SQLSTATE raises (an unknown route, a wrong method) take the code of their status.
    return JSONResponse(
        {"error": {"code": f"HT{exc.status_code}", "message": str(exc.detail)}},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _client_gone(request: Request, exc: Exception) -> Response:
    """A client that hangs up mid-request is not an error: counted, logged at debug, answered to no one."""
    state: AppState = request.app.state.hearth
    state.metrics.client_disconnects.inc()
    log.debug("client went away during %s %s", request.method, request.url.path)
    return Response(status_code=499)  # nginx's "client closed request"; uvicorn sends nothing now


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.exception("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"error": {"code": "HT500", "message": "internal error"}}, status_code=500)


def uvicorn_config(app: Any, settings: Settings) -> dict[str, Any]:
    return {
        **edge.protocols(settings, app.state.metrics),
        "log_config": logs.config(settings.log_level, settings.log_format),
        "app": app,
        "host": settings.host,
        "port": settings.port,
        "ws_max_size": 64 * 1024,
        # Declined: frames are built once for every socket (app.frames), and a compressor per socket
        # would cost its memory and CPU for JSON frames of a few hundred bytes.
        "ws_per_message_deflate": False,
        "ws_ping_interval": 20.0,
        # A pong overdue for three ping intervals closes the connection.
        "ws_ping_timeout": 60.0,
        "timeout_graceful_shutdown": 10,
        "lifespan": "on",
        # The client address is app.api.client_address's alone (HEARTH_TRUSTED_PROXIES): uvicorn would
        # otherwise believe X-Forwarded-For from any loopback peer.
        "proxy_headers": False,
        "log_level": settings.log_level,
        "access_log": False,
    }
