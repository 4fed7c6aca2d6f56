"""POST /v1/tokens/refresh (SPEC section 5), against real servers: a fresh token with the same claims
while the old one is valid; a session token only while its participant is present (HT404) in a session
that is not over (HT410); never past the token's cap."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime

import jwt

from app import tokens
from tests.app.harness import SECRET, Api, bearer


async def _refresh(api: Api, token: str) -> tuple[int, dict[str, object]]:
    r = await api.http.post("/v1/tokens/refresh", headers=bearer(token))
    return r.status_code, r.json()


async def test_an_identity_token_is_refreshed_with_the_same_claims(api_a: Api) -> None:
    identity_id, token = await api_a.identity("refresher")
    status, body = await _refresh(api_a, token)
    assert status == 200, body
    fresh = str(body["token"])
    assert tokens.verify(SECRET, fresh) == tokens.Claims(uuid.UUID(identity_id))
    assert jwt.decode(fresh, options={"verify_signature": False})["exp"] == int(
        datetime.fromisoformat(str(body["expires_at"])).timestamp()
    )
    # The fresh token works where the old one did.
    assert (await api_a.session(fresh))["session_id"]


async def test_a_session_token_is_refreshed_while_its_participant_is_present(api_a: Api) -> None:
    _, token = await api_a.identity("member")
    session = await api_a.session(token)
    participant_id, session_token = await api_a.join(session["session_id"], token)
    status, body = await _refresh(api_a, session_token)
    assert status == 200, body
    claims = tokens.verify(SECRET, str(body["token"]))
    assert (str(claims.session_id), str(claims.participant_id)) == (session["session_id"], participant_id)
    left = await api_a.http.post(f"/v1/sessions/{session['session_id']}/leave", headers=bearer(session_token))
    assert left.status_code == 200
    status, body = await _refresh(api_a, session_token)
    assert (status, body["error"]["code"]) == (404, "HT404")  # type: ignore[index]


async def test_a_session_that_is_over_is_not_refreshed(api_a: Api) -> None:
    _, token = await api_a.identity("late")
    session = await api_a.session(token, ttl_s=1)
    _, session_token = await api_a.join(session["session_id"], token)
    await asyncio.sleep(1.2)
    status, body = await _refresh(api_a, session_token)
    assert (status, body["error"]["code"]) == (410, "HT410")  # type: ignore[index]


async def test_an_expired_or_forged_token_is_not_refreshed(api_a: Api) -> None:
    identity_id, _ = await api_a.identity("old")
    claims = tokens.Claims(uuid.UUID(identity_id))
    expired = tokens.issue(SECRET, claims, now=time.time() - 100, ttl_s=10)
    forged = tokens.issue("another-secret-of-at-least-32-bytes-long!", claims)
    for token in (expired, forged):
        status, _ = await _refresh(api_a, token)
        assert status == 401


async def test_refresh_never_goes_past_the_cap(api_a: Api) -> None:
    identity_id, _ = await api_a.identity("capped")
    cap = int(time.time()) + 120
    capped = tokens.issue(SECRET, tokens.Claims(uuid.UUID(identity_id), cap=cap))
    status, body = await _refresh(api_a, capped)
    assert status == 200, body
    fresh = jwt.decode(str(body["token"]), options={"verify_signature": False})
    assert fresh["exp"] == cap and fresh["cap"] == cap
    # A session token made from it is under the same cap, and so is its refresh.
    session = await api_a.session(capped)
    _, session_token = await api_a.join(session["session_id"], capped)
    assert jwt.decode(session_token, options={"verify_signature": False})["exp"] == cap
    status, body = await _refresh(api_a, session_token)
    assert jwt.decode(str(body["token"]), options={"verify_signature": False})["exp"] == cap
