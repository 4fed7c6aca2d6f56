"""The app's own JWTs (SPEC section 5, "Bring your own auth"): an app with its own users signs a token
for one of them, and POST /v1/identities answers that user's Hearth identity (`external_id` = `sub`).

HS256 with HEARTH_AUTH_SECRET, or RS256/ES256 with a key of HEARTH_AUTH_JWKS (a JWKS document: a file
path or a URL). The algorithm a token may use follows from the key that verifies it, never from the token
alone: an HS256 token is checked only against the shared secret, an RS/ES token only against a JWKS key of
that very algorithm (PyJWT refuses a PyJWK whose algorithm differs from the header's), and `none` never.
So a token "signed" with a JWKS public key as an HMAC secret (algorithm confusion) is refused.

The JWKS is read once, then again only when a token names a key id it does not hold (a rotation), at
most once every REREAD_S: a stream of tokens with made-up key ids cannot make Hearth fetch the keys at
their rate. Reading runs in a thread (PyJWKClient fetches synchronously), off the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from app.config import Settings
from app.errors import HearthError

log = logging.getLogger("hearth.appauth")

ASYMMETRIC = ("RS256", "ES256")
LEEWAY_S = 30
REREAD_S = 60.0
FETCH_TIMEOUT_S = 5.0
MAX_NAME = 100
MAX_SUB = 200


@dataclass(frozen=True)
class AppUser:
    """What an app's token says of its user."""

    external_id: str
    name: str | None  # the `name` claim, when it is one Hearth can keep
    expires_at: int  # the token's `exp` (Unix seconds): Hearth's tokens for this user expire no later


class KeySet:
    """The JWKS's keys by key id, read from a file or a URL."""

    def __init__(self, source: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.reads = 0
        self._clock = clock
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK:
        """The key with this id (without an id: the only key); HT401 when there is none, even after
        reading the keys again (at most once every REREAD_S); HT503 when they cannot be read at all."""
        if kid not in self._keys:
            async with self._lock:
                if kid not in self._keys and self._clock() - self._read_at >= REREAD_S:
                    self._read_at = self._clock()
                    self._keys = await asyncio.to_thread(self._read)
        key = self._keys.get(kid)
        if key is None:
            if not self._keys:
                raise HearthError("HT503", "the app's signing keys cannot be read now")
            raise HearthError("HT401", "the app token's key id is not one of the app's keys")
        return key

    def _read(self) -> dict[str | None, jwt.PyJWK]:
        self.reads += 1
        try:
            data = self._fetch()
            keys = [key for key in jwt.PyJWKSet.from_dict(data).keys if key.algorithm_name in ASYMMETRIC]
        except (OSError, ValueError, jwt.PyJWTError) as exc:
            log.warning("HEARTH_AUTH_JWKS could not be read: %s", exc)
            return self._keys  # keep what was read before
        by_id: dict[str | None, jwt.PyJWK] = {key.key_id: key for key in keys}
        if len(keys) == 1:
            by_id[None] = keys[0]  # a token without a key id, when the app has one key
        return by_id

    def _fetch(self) -> dict[str, Any]:
        if self.source.startswith(("https://", "http://")):
            client = jwt.PyJWKClient(self.source, cache_jwk_set=False, timeout=FETCH_TIMEOUT_S)
            fetched: dict[str, Any] = client.fetch_data()
            return fetched
        loaded: dict[str, Any] = json.loads(Path(self.source).read_text())
        return loaded


class AppAuth:
    """Verifies an app's tokens; `enabled` when HEARTH_AUTH_SECRET or HEARTH_AUTH_JWKS is set."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._secret = settings.auth_secret.reveal()
        self._keys = KeySet(settings.auth_jwks, clock=clock) if settings.auth_jwks else None
        self._issuer = settings.auth_issuer or None
        self._audience = settings.auth_audience or None

    @property
    def enabled(self) -> bool:
        return bool(self._secret) or self._keys is not None

    async def verify(self, token: str) -> AppUser:
        """The token's user; HT401 for a token that is malformed, forged, expired (30 s leeway), of another
        issuer or audience (when those are set), or signed in a way this server does not accept."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise HearthError("HT401", "invalid app token") from None
        alg, kid = header.get("alg"), header.get("kid")
        key: jwt.PyJWK | str
        if alg in ASYMMETRIC and self._keys is not None:
            key = await self._keys.key(kid if isinstance(kid, str) else None)
        elif alg == "HS256" and self._secret:
            key = self._secret
        else:
            raise HearthError("HT401", "the app token's algorithm is not accepted here")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                leeway=LEEWAY_S,
                issuer=self._issuer,
                audience=self._audience,
                options={"require": ["sub", "exp"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise HearthError("HT401", "app token expired") from None
        except jwt.PyJWTError:
            raise HearthError("HT401", "invalid app token") from None
        return _user(claims)


def _user(claims: dict[str, Any]) -> AppUser:
    sub, exp, name = claims.get("sub"), claims.get("exp"), claims.get("name")
    if not isinstance(sub, str) or not 1 <= len(sub) <= MAX_SUB:
        raise HearthError("HT401", f"the app token's sub must be 1 to {MAX_SUB} characters")
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
        name = None
    assert isinstance(exp, int | float)  # PyJWT has checked it is a number
    return AppUser(sub, name, int(exp))
