"""HS256 tokens (SPEC section 5). An identity token has `sub`; a session token adds `sid` and `pid`.

Pure: secret and clock in, token or claims out.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

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

    @property
    def is_session(self) -> bool:
        return self.session_id is not None


def issue(secret: str, claims: Claims, *, now: float | None = None, ttl_s: int | None = None) -> str:
    issued = int(time.time() if now is None else now)
    payload: dict[str, object] = {"sub": str(claims.identity_id), "iat": issued}
    if claims.session_id is not None:
        payload["sid"] = str(claims.session_id)
        payload["pid"] = str(claims.participant_id)
    default_ttl = SESSION_TTL_S if claims.is_session else IDENTITY_TTL_S
    payload["exp"] = issued + (default_ttl if ttl_s is None else ttl_s)
    return jwt.encode(payload, secret, algorithm=_ALGORITHM)


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
        if "sid" in payload:
            return Claims(identity_id, uuid.UUID(payload["sid"]), uuid.UUID(payload["pid"]))
        return Claims(identity_id)
    except jwt.ExpiredSignatureError:
        raise HearthError("HT401", "token expired") from None
    except (jwt.PyJWTError, ValueError, KeyError, TypeError, AttributeError):
        raise HearthError("HT401", "invalid token") from None
