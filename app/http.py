"""HTTP routes under /v1 plus health, readiness and metrics (SPEC section 5)."""

from __future__ import annotations

import hmac
import uuid
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app import jsonin, tokens
from app.errors import HearthError
from app.state import AppState

MAX_BODY = 64 * 1024


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.hearth
    return state


async def read_body(request: Request, fields: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """The JSON object body, with only `fields`, each of its type. Empty body: {}. 413 past 64 KiB."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise HearthError("HT400", "request body is larger than 64 KiB", http_status=413)
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    body = jsonin.parse(raw, "request body")
    if not isinstance(body, dict):
        raise HearthError("HT400", "request body must be a JSON object")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise HearthError("HT400", f"unknown field(s): {', '.join(unknown)[:200]}")
    for name, value in body.items():
        expected = fields[name]
        if value is None:
            continue
        if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
            raise HearthError("HT400", f"field {name} has the wrong type")
        if isinstance(value, int) and not isinstance(value, bool) and not -(2**31) <= value < 2**31:
            raise HearthError("HT400", f"field {name} is out of range")
    return {k: v for k, v in body.items() if v is not None}


def claims_of(request: Request, *, session: bool = False) -> tokens.Claims:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HearthError("HT401", "missing bearer token")
    claims = tokens.verify(_state(request).settings.secret.reveal(), token.strip())
    if session and not claims.is_session:
        raise HearthError("HT401", "this needs a session token (from joining the session)")
    return claims


def path_uuid(request: Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params[name])
    except ValueError:
        raise HearthError("HT400", f"{name} is not a valid id") from None


def _session_token(request: Request, identity_id: uuid.UUID, session_id: uuid.UUID, pid: uuid.UUID) -> str:
    return tokens.issue(_state(request).settings.secret.reveal(), tokens.Claims(identity_id, session_id, pid))


async def create_identity(request: Request) -> Response:
    body = await read_body(request, {"display_name": str})
    state = _state(request)
    identity_id = await state.db.create_identity(body.get("display_name"))
    token = tokens.issue(state.settings.secret.reveal(), tokens.Claims(identity_id))
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
    row = await _state(request).db.create_session(
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
    state = await _state(request).db.session_state(session_id)
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
    pid = await _state(request).db.join_session(session_id, claims.identity_id, role)
    return {
        "session_id": str(session_id),
        "participant_id": str(pid),
        "token": _session_token(request, claims.identity_id, session_id, pid),
    }


async def join_session(request: Request) -> Response:
    session_id = path_uuid(request, "session_id")
    claims_of(request)
    body = await read_body(request, {"role": str})
    joined = await _join(request, session_id, body.get("role", "member"))
    return JSONResponse({"participant_id": joined["participant_id"], "token": joined["token"]})


async def leave_session(request: Request) -> Response:
    session_id = path_uuid(request, "session_id")
    claims = claims_of(request, session=True)
    if claims.session_id != session_id:
        raise HearthError("HT403", "this session token is for another session")
    await read_body(request, {})
    assert claims.participant_id is not None
    left = await _state(request).db.leave_session(claims.participant_id)
    return JSONResponse({"left": left})


async def stats(request: Request) -> Response:
    state = _state(request)
    expected = state.settings.admin_token.reveal()
    header = request.headers.get("authorization", "")
    given = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HearthError("HT401", "admin token required")
    row = await state.db.session_stats()
    return JSONResponse(dict(row))


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    state = _state(request)
    database = await state.db.ping()
    listener = state.listener.connected
    ready = database and listener
    return JSONResponse(
        {"ready": ready, "database": database, "listener": listener}, status_code=200 if ready else 503
    )


async def metrics(request: Request) -> Response:
    return Response(_state(request).metrics.render(), media_type="text/plain; version=0.0.4")


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
