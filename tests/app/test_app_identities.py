"""POST /v1/identities with the app's own JWT, against a real server (SPEC section 5): an app-signed RS256
token from a JWKS served on loopback creates its user's identity once and answers it again; forged, expired
and `alg: none` tokens are refused; such calls are not counted against identity_rate_limit (the default
here); with HEARTH_ANONYMOUS=off an anonymous call is refused."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from app import tokens
from tests.app.conftest import clone_database, start_instances
from tests.app.harness import SECRET, Instance, bearer
from tests.app.jwks_server import JwksServer, public_jwk, rsa_key
from tests.pg import PgServer

ISSUER = "https://auth.example.test/"
AUDIENCE = "hearth"


@pytest.fixture(scope="module")
def app_key() -> rsa.RSAPrivateKey:
    return rsa_key()


@pytest.fixture(scope="module")
def served(
    pg: PgServer, template_db: str, log_dir: Path, app_key: rsa.RSAPrivateKey
) -> Iterator[tuple[Instance, str]]:
    url = clone_database(pg, template_db, raise_limits=False)
    with JwksServer() as jwks:
        jwks.keys = [public_jwk(app_key, "app-1")]
        env = {
            "HEARTH_AUTH_JWKS": jwks.url,
            "HEARTH_AUTH_ISSUER": ISSUER,
            "HEARTH_AUTH_AUDIENCE": AUDIENCE,
            "HEARTH_ANONYMOUS": "off",
        }
        [instance] = start_instances(url, log_dir, 1, env)
        yield instance, url
        instance.terminate()


@pytest.fixture
async def http(served: tuple[Instance, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served[0].base_url, timeout=10) as client:
        yield client


def app_token(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    payload = {"sub": "user-42", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 900, **claims}
    return jwt.encode(payload, key, "RS256", headers={"kid": "app-1"})


async def test_an_app_user_gets_one_identity(
    http: httpx.AsyncClient, app_key: rsa.RSAPrivateKey, served: tuple[Instance, str]
) -> None:
    exp = int(time.time()) + 900
    first = await http.post("/v1/identities", headers=bearer(app_token(app_key, exp=exp, name="Ann")))
    assert first.status_code == 201, first.text
    again = await http.post(
        "/v1/identities", json={"display_name": "Ann B."}, headers=bearer(app_token(app_key, exp=exp))
    )
    assert again.status_code == 200, again.text
    assert again.json()["identity_id"] == first.json()["identity_id"]
    # The Hearth token expires with the app's token, and says so.
    claims = tokens.verify(SECRET, again.json()["token"])
    assert claims.cap == exp
    assert int(datetime.fromisoformat(again.json()["expires_at"]).timestamp()) == exp
    conn = await asyncpg.connect(served[1])
    try:
        row = await conn.fetchrow(
            "SELECT external_id, display_name FROM hearth_data.identities WHERE identity_id = $1",
            first.json()["identity_id"],
        )
    finally:
        await conn.close()
    assert (row["external_id"], row["display_name"]) == ("user-42", "Ann B.")  # the body's name wins
    # The token works like any identity token.
    created = await http.post("/v1/sessions", json={}, headers=bearer(again.json()["token"]))
    assert created.status_code == 201


async def test_forged_expired_and_unsigned_tokens_are_refused(
    http: httpx.AsyncClient, app_key: rsa.RSAPrivateKey
) -> None:
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": "app-1"}).encode()).rstrip(b"=")
    body = {"sub": "user-42", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 900}
    payload = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=")
    refused = {
        "forged": app_token(rsa_key()),
        "expired": app_token(app_key, exp=int(time.time()) - 60),
        "alg none": f"{header.decode()}.{payload.decode()}.",
        "wrong issuer": app_token(app_key, iss="https://elsewhere.test/"),
        "wrong audience": app_token(app_key, aud="another"),
    }
    for name, token in refused.items():
        r = await http.post("/v1/identities", headers=bearer(token))
        assert (r.status_code, r.json()["error"]["code"]) == (401, "HT401"), name


async def test_app_users_are_not_counted_against_the_identity_rate_limit(
    http: httpx.AsyncClient, app_key: rsa.RSAPrivateKey
) -> None:
    for n in range(35):  # the default limit is 30 a minute per address
        r = await http.post("/v1/identities", headers=bearer(app_token(app_key, sub=f"flood-{n}")))
        assert r.status_code == 201, (n, r.text)


async def test_anonymous_identities_are_refused_when_off(http: httpx.AsyncClient) -> None:
    r = await http.post("/v1/identities", json={})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "HT403")
