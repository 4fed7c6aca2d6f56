"""What every HTTP route needs: the instance's state, the request's claims, path ids, its JSON body read and
checked, tokens to hand out. Route modules import these; none imports another's."""

from __future__ import annotations

import hmac
import ipaddress
import uuid
from datetime import datetime
from typing import TypeVar

from pydantic import ValidationError
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse

from app import jsonin, shapes, tokens
from app.errors import HearthError
from app.state import AppState

MAX_BODY = 64 * 1024
Shape = TypeVar("Shape", bound=shapes.Request)


def state_of(request: HTTPConnection) -> AppState:
    state: AppState = request.app.state.hearth
    return state


async def read_raw(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body; 413 past `limit` bytes (read no further)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HearthError("HT413", f"request body is larger than {limit // 1024} KiB")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(request: Request, shape: type[Shape]) -> Shape:
    """The JSON object body as `shape` (an empty body is `{}`, a null field is an absent one): HT400
    naming the field that is wrong, HT413 past 64 KiB."""
    raw = await read_raw(request)
    body = jsonin.parse(raw, "request body") if raw.strip() else {}
    if not isinstance(body, dict):
        raise HearthError("HT400", "request body must be a JSON object")
    try:
        return shape.model_validate({k: v for k, v in body.items() if v is not None})
    except ValidationError as exc:
        raise HearthError("HT400", shapes.describe(exc)) from None


def answer(shape: shapes.Answer, status: int = 200) -> JSONResponse:
    return JSONResponse(shape.json_body(), status_code=status)


def bearer_token(request: Request) -> str | None:
    """The `Authorization: Bearer` token, if the request has one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def claims_of(request: Request, *, session: bool = False) -> tokens.Claims:
    token = bearer_token(request)
    if token is None:
        raise HearthError("HT401", "missing bearer token")
    claims = tokens.verify(state_of(request).settings.secret.reveal(), token)
    if session and not claims.is_session:
        raise HearthError("HT401", "this needs a session token (from joining the session)")
    return claims


def session_claims_for(request: Request, session_id: uuid.UUID) -> tokens.Claims:
    """A session token of this very session."""
    claims = claims_of(request, session=True)
    if claims.session_id != session_id:
        raise HearthError("HT403", "this session token is for another session")
    return claims


def is_admin(request: Request) -> bool:
    """Whether the bearer token is HEARTH_ADMIN_TOKEN (never when none is set)."""
    expected = state_of(request).settings.admin_token.reveal()
    header = request.headers.get("authorization", "")
    given = header[7:].strip() if header.lower().startswith("bearer ") else ""
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def require_admin(request: Request) -> None:
    if not is_admin(request):
        raise HearthError("HT401", "admin token required")


def path_uuid(request: Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params[name])
    except ValueError:
        raise HearthError("HT400", f"{name} is not a valid id") from None


def issue(request: Request, claims: tokens.Claims) -> str:
    return tokens.issue(state_of(request).settings.secret.reveal(), claims)


def issue_until(request: Request, claims: tokens.Claims) -> tuple[str, datetime]:
    """A token and when it expires."""
    return tokens.issue_until(state_of(request).settings.secret.reveal(), claims)


def joined(
    request: Request, claims: tokens.Claims, session_id: uuid.UUID, participant_id: uuid.UUID
) -> shapes.Joined:
    """What both join routes (and pairing) answer: the session, the participant, its session token
    (for the caller's identity, under its token's cap)."""
    token = issue(request, claims.for_session(session_id, participant_id))
    return shapes.Joined(session_id=session_id, participant_id=participant_id, token=token)


def client_address(conn: HTTPConnection) -> str | None:
    """The client's address (SPEC section 5): the peer's, unless the peer is a trusted proxy
    (HEARTH_TRUSTED_PROXIES); then X-Forwarded-For is read from the right, trusted proxies skipped, and the
    first address that is not one is the client. Everything left of it could be written by the client, so
    is never believed. uvicorn's own forwarded-header handling is off (app.main), so the peer is the
    socket's. None when there is no peer address (a Unix socket)."""
    peer = conn.client.host if conn.client else None
    trusted = state_of(conn).settings.trusted_proxies
    if peer is None or not _is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for header in conn.headers.getlist("x-forwarded-for") for hop in header.split(",")]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return _valid_address(hop) or peer
    return hops[0] if hops and _valid_address(hops[0]) else peer


def _valid_address(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _is_trusted(address: str, trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
