"""What every HTTP route needs: the instance's state, the request's claims, path ids, its JSON body read and
checked, tokens to hand out. Route modules import these; none imports another's."""

from __future__ import annotations

import hmac
import uuid
from typing import Any

from starlette.requests import Request

from app import jsonin, tokens
from app.errors import HearthError
from app.state import AppState

MAX_BODY = 64 * 1024


def state_of(request: Request) -> AppState:
    state: AppState = request.app.state.hearth
    return state


async def read_raw(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body; 413 past `limit` bytes (read no further)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HearthError("HT400", f"request body is larger than {limit // 1024} KiB", http_status=413)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(request: Request, fields: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """The JSON object body, with only `fields`, each of its type. Empty body: {}. 413 past 64 KiB."""
    raw = await read_raw(request)
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
    claims = tokens.verify(state_of(request).settings.secret.reveal(), token.strip())
    if session and not claims.is_session:
        raise HearthError("HT401", "this needs a session token (from joining the session)")
    return claims


def session_claims_for(request: Request, session_id: uuid.UUID) -> tokens.Claims:
    """A session token of this very session."""
    claims = claims_of(request, session=True)
    if claims.session_id != session_id:
        raise HearthError("HT403", "this session token is for another session")
    return claims


def require_admin(request: Request) -> None:
    expected = state_of(request).settings.admin_token.reveal()
    header = request.headers.get("authorization", "")
    given = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HearthError("HT401", "admin token required")


def path_uuid(request: Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params[name])
    except ValueError:
        raise HearthError("HT400", f"{name} is not a valid id") from None


def issue(request: Request, claims: tokens.Claims) -> str:
    return tokens.issue(state_of(request).settings.secret.reveal(), claims)


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None
