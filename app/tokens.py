"""HS256 tokens (SPEC section 5). An identity token has `sub`; a session token adds `sid` and `pid`.
A token made for an app's own user carries `cap`, the app token's expiry: no token derived from it (a
session token, a refreshed one) expires later.

Pure: secret and clock in, token or claims out.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import jwt

from app.errors import HearthError

IDENTITY_TTL_S = 30 * 24 * 3600
SESSION_TTL_S = 24 * 3600
_ALGORITHM = "HS256"


@dataclass(frozen=True)
class Claims:
    identity_id: uuid.UUID
    session_id: uuid.UUID | None = None
    participant_id: uuid.UUID | None = None
    cap: int | None = None  # no token with these claims expires after this (Unix seconds)

    @property
    def is_session(self) -> bool:
        return self.session_id is not None

    def for_session(self, session_id: uuid.UUID, participant_id: uuid.UUID) -> Claims:
        """A session token's claims for this identity, under the same cap."""
        return replace(self, session_id=session_id, participant_id=participant_id)


def issue(secret: str, claims: Claims, *, now: float | None = None, ttl_s: int | None = None) -> str:
    return issue_until(secret, claims, now=now, ttl_s=ttl_s)[0]


def issue_until(
    secret: str, claims: Claims, *, now: float | None = None, ttl_s: int | None = None
) -> tuple[str, datetime]:
    """A token and when it expires: its lifetime from now, or the claims' cap if that comes first."""
    issued = int(time.time() if now is None else now)
    payload: dict[str, object] = {"sub": str(claims.identity_id), "iat": issued}
    if claims.session_id is not None:
        payload["sid"] = str(claims.session_id)
        payload["pid"] = str(claims.participant_id)
    default_ttl = SESSION_TTL_S if claims.is_session else IDENTITY_TTL_S
    expires = issued + (default_ttl if ttl_s is None else ttl_s)
    if claims.cap is not None:
        payload["cap"] = claims.cap
        expires = min(expires, claims.cap)
    payload["exp"] = expires
    return jwt.encode(payload, secret, algorithm=_ALGORITHM), datetime.fromtimestamp(expires, UTC)


def verify(secret: str, token: str | None) -> Claims:
    """The token's claims; HearthError HT401 for a missing, malformed, forged or expired token."""
    if not token:
        raise HearthError("HT401", "missing token")
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[_ALGORITHM],
            options={"require": ["sub", "exp"], "verify_iat": False},
        )
        identity_id = uuid.UUID(payload["sub"])
        cap = payload.get("cap")
        if cap is not None and (type(cap) is not int):
            raise ValueError("cap")
        if "sid" in payload:
            return Claims(identity_id, uuid.UUID(payload["sid"]), uuid.UUID(payload["pid"]), cap)
        return Claims(identity_id, cap=cap)
    except jwt.ExpiredSignatureError:
        raise HearthError("HT401", "token expired") from None
    except (jwt.PyJWTError, ValueError, KeyError, TypeError, AttributeError):
        raise HearthError("HT401", "invalid token") from None
