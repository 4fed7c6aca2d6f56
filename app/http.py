"""HTTP routes under /v1 plus health, readiness and metrics (SPEC section 5)."""

from __future__ import annotations

from datetime import timedelta
from importlib.metadata import version

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app import openapi, shapes, tokens
from app.api import (
    answer,
    bearer_token,
    claims_of,
    client_address,
    is_admin,
    issue_until,
    joined,
    path_uuid,
    read_body,
    require_admin,
    session_claims_for,
    state_of,
)
from app.errors import HearthError
from app.openapi import ApiRoute, Operation


async def create_identity(request: Request) -> Response:
    """An app's user (its own JWT in Authorization, when the server accepts them): that user's identity,
    201 when new, 200 when it existed, its token capped at the app token's expiry. Otherwise an anonymous
    identity, counted against identity_rate_limit for the client's address (403 with HEARTH_ANONYMOUS=off)."""
    state = state_of(request)
    body = await read_body(request, shapes.NewIdentity)
    app_token = bearer_token(request) if state.app_auth.enabled else None
    if app_token is not None:
        user = await state.app_auth.verify(app_token)
        display_name = body.display_name or user.name
        identity_id, created = await state.db.identity_for_user(user.external_id, display_name)
        claims = tokens.Claims(identity_id, cap=user.expires_at)
    elif not state.settings.anonymous:
        raise HearthError("HT403", "this server creates identities only for the app's users (its own token)")
    else:
        identity_id = await state.db.create_anonymous_identity(client_address(request), body.display_name)
        created, claims = True, tokens.Claims(identity_id)
    token, expires_at = issue_until(request, claims)
    created_shape = shapes.IdentityCreated(identity_id=identity_id, token=token, expires_at=expires_at)
    return answer(created_shape, 201 if created else 200)


async def refresh_token(request: Request) -> Response:
    """A fresh token with the same claims (and cap) while the old one is valid: an identity that is still
    there; a participant still present in a session that is not over."""
    claims = claims_of(request)
    await read_body(request, shapes.Empty)
    db = state_of(request).db
    if claims.session_id is None:
        await db.identity_state(claims.identity_id)  # HT404 once the identity is gone
    else:
        snapshot = await db.session_state(claims.session_id)
        if snapshot["expired"]:
            raise HearthError("HT410", "session is expired or ended")
        if all(p["participant_id"] != str(claims.participant_id) for p in snapshot["participants"]):
            raise HearthError("HT404", "participant is no longer in the session; join again")
    token, expires_at = issue_until(request, claims)
    return answer(shapes.TokenRefreshed(token=token, expires_at=expires_at))


async def create_session(request: Request) -> Response:
    claims = claims_of(request)
    body = await read_body(request, shapes.NewSession)
    row = await state_of(request).db.create_session(
        name=body.name,
        max_participants=body.max_participants,
        idle_timeout=None if body.idle_timeout_s is None else timedelta(seconds=body.idle_timeout_s),
        ttl=None if body.ttl_s is None else timedelta(seconds=body.ttl_s),
        metadata=body.metadata or {},
        created_by=claims.identity_id,
    )
    return answer(shapes.SessionCreated(**row), 201)


async def get_session(request: Request) -> Response:
    claims_of(request)
    state = await state_of(request).db.session_state(path_uuid(request, "session_id"))
    return answer(shapes.SessionView(**{name: state[name] for name in shapes.SessionView.model_fields}))


async def join_session(request: Request) -> Response:
    session_id = path_uuid(request, "session_id")
    claims = claims_of(request)
    body = await read_body(request, shapes.JoinSession)
    participant_id = await state_of(request).db.join_session(session_id, claims.identity_id, body.role)
    return answer(joined(request, claims, session_id, participant_id))


async def leave_session(request: Request) -> Response:
    claims = session_claims_for(request, path_uuid(request, "session_id"))
    await read_body(request, shapes.Empty)
    assert claims.participant_id is not None
    return answer(shapes.Left(left=await state_of(request).db.leave_session(claims.participant_id)))


async def stats(request: Request) -> Response:
    require_admin(request)
    return answer(shapes.Stats(**await state_of(request).db.session_stats()))


async def session_history(request: Request) -> Response:
    """A deleted session's archive, for the admin token or an identity that took part in it."""
    identity_id = None if is_admin(request) else claims_of(request).identity_id
    row = await state_of(request).db.session_history(path_uuid(request, "session_id"))
    history = shapes.SessionHistory(**row)
    if identity_id is not None and all(p.identity_id != identity_id for p in history.participants):
        raise HearthError("HT403", "only those who took part in the session may read its history")
    return answer(history)


async def healthz(request: Request) -> Response:
    return answer(shapes.Health(status="ok"))


async def readyz(request: Request) -> Response:
    state = state_of(request)
    database = await state.db.ping()
    listener = state.listener.connected
    # The relay's own loops; LiveKit's and matchmaking's loops never make an instance unready.
    ready = database and listener and state.loops.up("dispatcher") and state.loops.up("heartbeats")
    return answer(shapes.Readiness(ready=ready, database=database, listener=listener), 200 if ready else 503)


async def metrics(request: Request) -> Response:
    return Response(state_of(request).metrics.render(), media_type="text/plain; version=0.0.4")


async def openapi_json(request: Request) -> Response:
    """The document is built once per app, from the app's own routes."""
    app_state = request.app.state
    if not hasattr(app_state, "openapi"):
        app_state.openapi = openapi.document(request.app.routes, version("hearth"))
    return JSONResponse(app_state.openapi)


routes = [
    ApiRoute(
        "/v1/identities",
        create_identity,
        "POST",
        Operation(
            "Create an anonymous identity, or with the app's own JWT answer its user's identity",
            {201: shapes.IdentityCreated, 200: shapes.IdentityCreated},
            "app",
            shapes.NewIdentity,
            errors=(401, 403, 429, 503),
        ),
    ),
    ApiRoute(
        "/v1/sessions",
        create_session,
        "POST",
        Operation(
            "Create a session (a room)",
            {201: shapes.SessionCreated},
            body=shapes.NewSession,
            errors=(409, 429),
        ),
    ),
    ApiRoute(
        "/v1/sessions/{session_id}",
        get_session,
        "GET",
        Operation("A session's state and present participants", {200: shapes.SessionView}, errors=(404,)),
    ),
    ApiRoute(
        "/v1/sessions/{session_id}/join",
        join_session,
        "POST",
        Operation(
            "Join a session", {200: shapes.Joined}, body=shapes.JoinSession, errors=(403, 404, 409, 410)
        ),
    ),
    ApiRoute(
        "/v1/sessions/{session_id}/leave",
        leave_session,
        "POST",
        Operation("Leave the session", {200: shapes.Left}, "session", shapes.Empty, errors=(404,)),
    ),
    ApiRoute(
        "/v1/sessions/{session_id}/history",
        session_history,
        "GET",
        Operation(
            "A deleted session's archive: for those who took part, or the admin",
            {200: shapes.SessionHistory},
            "identity_or_admin",
            errors=(403, 404),
        ),
    ),
    ApiRoute(
        "/v1/tokens/refresh",
        refresh_token,
        "POST",
        Operation(
            "A fresh token with the same claims (identity or session token)",
            {200: shapes.TokenRefreshed},
            body=shapes.Empty,
            errors=(404, 410),
        ),
    ),
    ApiRoute("/v1/stats", stats, "GET", Operation("Session statistics", {200: shapes.Stats}, "admin")),
    ApiRoute(
        "/v1/openapi.json",
        openapi_json,
        "GET",
        Operation("This document", {200: "application/json"}, "none"),
    ),
    ApiRoute("/healthz", healthz, "GET", Operation("Liveness", {200: shapes.Health}, "none")),
    ApiRoute(
        "/readyz",
        readyz,
        "GET",
        Operation(
            "Readiness: the database and the listener are up",
            {200: shapes.Readiness, 503: shapes.Readiness},
            "none",
        ),
    ),
    ApiRoute("/metrics", metrics, "GET", Operation("Prometheus metrics", {200: "text/plain"}, "none")),
]
