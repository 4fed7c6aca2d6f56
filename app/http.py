"""HTTP routes under /v1 plus health, readiness and metrics (SPEC section 5)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app import tokens
from app.api import claims_of, issue, path_uuid, read_body, require_admin, session_claims_for, state_of
from app.errors import HearthError


async def create_identity(request: Request) -> Response:
    body = await read_body(request, {"display_name": str})
    state = state_of(request)
    identity_id = await state.db.create_identity(body.get("display_name"))
    token = issue(request, tokens.Claims(identity_id))
    return JSONResponse({"identity_id": str(identity_id), "token": token}, status_code=201)


async def create_session(request: Request) -> Response:
    claims_of(request)
    body = await read_body(
        request,
        {"name": str, "max_participants": int, "idle_timeout_s": int, "ttl_s": int, "metadata": dict},
    )
    for key in ("idle_timeout_s", "ttl_s"):
        if key in body and body[key] <= 0:
            raise HearthError("HT400", f"{key} must be positive")
    row = await state_of(request).db.create_session(
        name=body.get("name"),
        max_participants=body.get("max_participants"),
        idle_timeout=timedelta(seconds=body["idle_timeout_s"]) if "idle_timeout_s" in body else None,
        ttl=timedelta(seconds=body["ttl_s"]) if "ttl_s" in body else None,
        metadata=body.get("metadata", {}),
    )
    expires_at = row["expires_at"]
    return JSONResponse(
        {
            "session_id": str(row["session_id"]),
            "code": row["code"],
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
        status_code=201,
    )


async def get_session(request: Request) -> Response:
    claims_of(request)
    session_id = path_uuid(request, "session_id")
    state = await state_of(request).db.session_state(session_id)
    keys = (
        "session_id",
        "kind",
        "name",
        "status",
        "code",
        "expired",
        "expires_at",
        "metadata",
        "participants",
    )
    return JSONResponse({k: state[k] for k in keys})


async def _join(request: Request, session_id: uuid.UUID, role: str) -> dict[str, str]:
    claims = claims_of(request)
    pid = await state_of(request).db.join_session(session_id, claims.identity_id, role)
    return {
        "session_id": str(session_id),
        "participant_id": str(pid),
        "token": issue(request, tokens.Claims(claims.identity_id, session_id, pid)),
    }


async def join_session(request: Request) -> Response:
    session_id = path_uuid(request, "session_id")
    claims_of(request)
    body = await read_body(request, {"role": str})
    joined = await _join(request, session_id, body.get("role", "member"))
    return JSONResponse({"participant_id": joined["participant_id"], "token": joined["token"]})


async def leave_session(request: Request) -> Response:
    claims = session_claims_for(request, path_uuid(request, "session_id"))
    await read_body(request, {})
    assert claims.participant_id is not None
    left = await state_of(request).db.leave_session(claims.participant_id)
    return JSONResponse({"left": left})


async def stats(request: Request) -> Response:
    require_admin(request)
    row = await state_of(request).db.session_stats()
    return JSONResponse(dict(row))


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    state = state_of(request)
    database = await state.db.ping()
    listener = state.listener.connected
    ready = database and listener
    return JSONResponse(
        {"ready": ready, "database": database, "listener": listener}, status_code=200 if ready else 503
    )


async def metrics(request: Request) -> Response:
    return Response(state_of(request).metrics.render(), media_type="text/plain; version=0.0.4")


routes = [
    Route("/v1/identities", create_identity, methods=["POST"]),
    Route("/v1/sessions", create_session, methods=["POST"]),
    Route("/v1/sessions/{session_id}", get_session, methods=["GET"]),
    Route("/v1/sessions/{session_id}/join", join_session, methods=["POST"]),
    Route("/v1/sessions/{session_id}/leave", leave_session, methods=["POST"]),
    Route("/v1/stats", stats, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
