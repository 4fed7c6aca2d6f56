"""The app's own JWTs (app.appauth, SPEC section 5), in-process: keys generated here (HS256, RS256, ES256),
a JWKS from a file and from a local HTTP server, a rotated key, and the tokens that must be refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from app.appauth import REREAD_S, AppAuth, AppUser
from app.config import Secret, Settings
from app.errors import HearthError
from tests.app.jwks_server import JwksServer, ec_key, public_jwk, rsa_key

SHARED = "the-app-and-hearth-share-this-secret-0123456789"
ISSUER = "https://auth.example.test/"
AUDIENCE = "hearth"


def settings(**auth: Any) -> Settings:
    return Settings(Secret(""), Secret(""), Secret(""), **auth)


def claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "user-42", "exp": int(time.time()) + 600, "name": "Ann", **extra}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def refused(auth: AppAuth, token: str) -> str:
    with pytest.raises(HearthError) as info:
        await auth.verify(token)
    assert info.value.code == "HT401", info.value.message
    return info.value.message


async def test_hs256_with_the_shared_secret() -> None:
    auth = AppAuth(settings(auth_secret=Secret(SHARED)))
    payload = claims()
    user = await auth.verify(jwt.encode(payload, SHARED, "HS256"))
    assert user == AppUser("user-42", "Ann", payload["exp"])
    await refused(auth, jwt.encode(payload, "another-secret-of-the-same-length-0123456789", "HS256"))


async def test_rs256_and_es256_from_a_jwks_url() -> None:
    rsa, ec = rsa_key(), ec_key()
    with JwksServer() as server:
        server.keys = [public_jwk(rsa, "r1"), public_jwk(ec, "e1")]
        auth = AppAuth(settings(auth_jwks=server.url))
        by_rsa = await auth.verify(jwt.encode(claims(), rsa, "RS256", headers={"kid": "r1"}))
        by_ec = await auth.verify(jwt.encode(claims(sub="u7"), ec, "ES256", headers={"kid": "e1"}))
        assert (by_rsa.external_id, by_ec.external_id) == ("user-42", "u7")
        assert server.fetches == 1  # the keys are kept
        # A key of another app, under a known key id: a forged signature.
        await refused(auth, jwt.encode(claims(), rsa_key(), "RS256", headers={"kid": "r1"}))
        # The RSA key's id on an ES256 token: the key decides the algorithm.
        await refused(auth, jwt.encode(claims(), ec, "ES256", headers={"kid": "r1"}))


async def test_a_jwks_file_and_a_token_without_a_key_id(tmp_path: Path) -> None:
    key = rsa_key()
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [public_jwk(key, "only")]}))
    auth = AppAuth(settings(auth_jwks=str(path)))
    assert (await auth.verify(jwt.encode(claims(), key, "RS256"))).external_id == "user-42"


async def test_a_rotated_key_is_picked_up_but_unknown_ids_are_not_fetched_at_their_rate() -> None:
    old, new = rsa_key(), rsa_key()
    clock = Clock()
    with JwksServer() as server:
        server.keys = [public_jwk(old, "2026-11")]
        auth = AppAuth(settings(auth_jwks=server.url), clock=clock)
        await auth.verify(jwt.encode(claims(), old, "RS256", headers={"kid": "2026-11"}))
        # The app rotates: the new key id makes Hearth read the keys again (a minute after the last read).
        server.keys = [public_jwk(old, "2026-11"), public_jwk(new, "2026-12")]
        clock.now += REREAD_S
        await auth.verify(jwt.encode(claims(), new, "RS256", headers={"kid": "2026-12"}))
        assert server.fetches == 2
        # Made-up key ids: at most one read a minute.
        for n in range(20):
            await refused(auth, jwt.encode(claims(), new, "RS256", headers={"kid": f"made-up-{n}"}))
        assert server.fetches == 2
        clock.now += REREAD_S
        await refused(auth, jwt.encode(claims(), new, "RS256", headers={"kid": "made-up-again"}))
        assert server.fetches == 3


async def test_expired_wrong_issuer_and_wrong_audience_are_refused() -> None:
    auth = AppAuth(settings(auth_secret=Secret(SHARED), auth_issuer=ISSUER, auth_audience=AUDIENCE))
    good = claims(iss=ISSUER, aud=AUDIENCE)
    await auth.verify(jwt.encode(good, SHARED, "HS256"))
    # 30 s of leeway for the clocks of two machines, not more.
    await auth.verify(jwt.encode({**good, "exp": int(time.time()) - 20}, SHARED, "HS256"))
    assert await refused(auth, jwt.encode({**good, "exp": int(time.time()) - 40}, SHARED, "HS256")) == (
        "app token expired"
    )
    await refused(auth, jwt.encode({**good, "iss": "https://elsewhere.test/"}, SHARED, "HS256"))
    await refused(auth, jwt.encode({**good, "aud": "another-service"}, SHARED, "HS256"))
    await refused(auth, jwt.encode({k: v for k, v in good.items() if k != "exp"}, SHARED, "HS256"))
    await refused(auth, jwt.encode({k: v for k, v in good.items() if k != "sub"}, SHARED, "HS256"))


async def test_without_an_audience_set_a_token_s_audience_is_not_checked() -> None:
    auth = AppAuth(settings(auth_secret=Secret(SHARED)))
    await auth.verify(jwt.encode(claims(aud="authenticated"), SHARED, "HS256"))


def _unsigned(payload: dict[str, Any], header: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(payload)}."


async def test_alg_none_is_refused() -> None:
    key = rsa_key()
    with JwksServer() as server:
        server.keys = [public_jwk(key, "k")]
        auth = AppAuth(settings(auth_secret=Secret(SHARED), auth_jwks=server.url))
        for alg in ("none", "None", "NONE"):
            await refused(auth, _unsigned(claims(), {"alg": alg, "typ": "JWT", "kid": "k"}))


async def test_algorithm_confusion_is_refused() -> None:
    """An HS256 token whose HMAC key is the JWKS's public key (public, so anyone can sign with it)."""
    key = rsa_key()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": "k"}
    signing_input = _unsigned(claims(), header)[:-1].encode()
    mac = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
    signature = base64.urlsafe_b64encode(mac).rstrip(b"=")
    forged = (signing_input + b"." + signature).decode()
    with JwksServer() as server:
        server.keys = [public_jwk(key, "k")]
        # Without a shared secret, HS256 is not accepted at all.
        await refused(AppAuth(settings(auth_jwks=server.url)), forged)
        # With one, the token is checked against that secret only, never a JWKS key.
        await refused(AppAuth(settings(auth_secret=Secret(SHARED), auth_jwks=server.url)), forged)


async def test_keys_that_cannot_be_read_answer_503_not_401(tmp_path: Path) -> None:
    auth = AppAuth(settings(auth_jwks=str(tmp_path / "missing.json")))
    with pytest.raises(HearthError) as info:
        await auth.verify(jwt.encode(claims(), rsa_key(), "RS256", headers={"kid": "k"}))
    assert info.value.code == "HT503"
