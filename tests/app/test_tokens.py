"""app.tokens, a pure module: HS256 identity and session tokens (SPEC section 5)."""

from __future__ import annotations

import base64
import json
import time
import uuid
import warnings
from typing import Any

import jwt
import pytest

from app import tokens
from app.errors import HearthError
from app.tokens import Claims

SECRET = "unit-test-secret-0123456789-abcdefghijklmnop"
OTHER = "unit-test-other-secret-0123456789-abcdefghij"
IDENTITY = uuid.UUID("11111111-1111-4111-8111-111111111111")
SESSION = uuid.UUID("22222222-2222-4222-8222-222222222222")
PARTICIPANT = uuid.UUID("33333333-3333-4333-8333-333333333333")
NOW = 1_700_000_000.0


def payload(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def header(token: str) -> dict[str, Any]:
    return jwt.get_unverified_header(token)


def rejected(secret: str, token: str | None) -> str:
    with pytest.raises(HearthError) as info:
        tokens.verify(secret, token)
    assert info.value.code == "HT401"
    assert info.value.http_status == 401
    assert info.value.close_code == 4401
    return info.value.message


def sign(claims: dict[str, Any], secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


# Issue and verify ---------------------------------------------------------------------------------


def test_identity_token_round_trip() -> None:
    token = tokens.issue(SECRET, Claims(IDENTITY))
    claims = tokens.verify(SECRET, token)
    assert claims == Claims(IDENTITY)
    assert claims.session_id is None and claims.participant_id is None
    assert not claims.is_session


def test_session_token_round_trip() -> None:
    token = tokens.issue(SECRET, Claims(IDENTITY, SESSION, PARTICIPANT))
    claims = tokens.verify(SECRET, token)
    assert claims == Claims(IDENTITY, SESSION, PARTICIPANT)
    assert claims.is_session


def test_token_contents() -> None:
    identity = tokens.issue(SECRET, Claims(IDENTITY), now=NOW)
    assert header(identity)["alg"] == "HS256"
    assert payload(identity) == {
        "sub": str(IDENTITY),
        "iat": int(NOW),
        "exp": int(NOW) + tokens.IDENTITY_TTL_S,
    }
    session = tokens.issue(SECRET, Claims(IDENTITY, SESSION, PARTICIPANT), now=NOW)
    assert payload(session) == {
        "sub": str(IDENTITY),
        "sid": str(SESSION),
        "pid": str(PARTICIPANT),
        "iat": int(NOW),
        "exp": int(NOW) + tokens.SESSION_TTL_S,
    }


def test_default_lifetimes() -> None:
    assert tokens.IDENTITY_TTL_S == 30 * 24 * 3600
    assert tokens.SESSION_TTL_S == 24 * 3600


def test_explicit_ttl() -> None:
    token = tokens.issue(SECRET, Claims(IDENTITY, SESSION, PARTICIPANT), now=NOW, ttl_s=10)
    assert payload(token)["exp"] - payload(token)["iat"] == 10


def test_tokens_are_deterministic_for_the_same_input() -> None:
    a = tokens.issue(SECRET, Claims(IDENTITY), now=NOW)
    b = tokens.issue(SECRET, Claims(IDENTITY), now=NOW)
    assert a == b
    assert a != tokens.issue(SECRET, Claims(IDENTITY), now=NOW + 1)
    assert a != tokens.issue(OTHER, Claims(IDENTITY), now=NOW)


def test_claims_are_immutable_values() -> None:
    claims = Claims(IDENTITY)
    with pytest.raises(AttributeError):
        claims.identity_id = SESSION  # type: ignore[misc]
    assert Claims(IDENTITY) == Claims(IDENTITY)
    assert hash(Claims(IDENTITY, SESSION, PARTICIPANT)) == hash(Claims(IDENTITY, SESSION, PARTICIPANT))


# Expiry ------------------------------------------------------------------------------------------


def test_expired_token() -> None:
    token = tokens.issue(SECRET, Claims(IDENTITY), now=time.time() - 100, ttl_s=10)
    assert "expired" in rejected(SECRET, token)


def test_expired_session_token() -> None:
    token = tokens.issue(SECRET, Claims(IDENTITY, SESSION, PARTICIPANT), now=time.time() - 2 * 86400)
    assert "expired" in rejected(SECRET, token)


def test_token_valid_until_exp() -> None:
    token = tokens.issue(SECRET, Claims(IDENTITY), now=time.time() - 100, ttl_s=3600)
    assert tokens.verify(SECRET, token) == Claims(IDENTITY)


def test_zero_and_negative_ttl_are_already_expired() -> None:
    now = time.time()
    rejected(SECRET, tokens.issue(SECRET, Claims(IDENTITY), now=now - 5, ttl_s=0))
    rejected(SECRET, tokens.issue(SECRET, Claims(IDENTITY), now=now, ttl_s=-60))


# Forgery and tampering -----------------------------------------------------------------------------


def test_wrong_secret() -> None:
    token = tokens.issue(OTHER, Claims(IDENTITY))
    message = rejected(SECRET, token)
    assert "expired" not in message


def test_tampered_payload() -> None:
    token = tokens.issue(SECRET, Claims(IDENTITY, SESSION, PARTICIPANT))
    head, _, signature = token.split(".")
    forged = dict(payload(token), sid=str(uuid.uuid4()))
    rejected(SECRET, f"{head}.{b64(forged)}.{signature}")
    # An identity token promoted to a session token by adding claims.
    identity = tokens.issue(SECRET, Claims(IDENTITY))
    head, _, signature = identity.split(".")
    promoted = dict(payload(identity), sid=str(SESSION), pid=str(PARTICIPANT))
    rejected(SECRET, f"{head}.{b64(promoted)}.{signature}")


def test_tampered_signature() -> None:
    token = tokens.issue(SECRET, Claims(IDENTITY))
    head, body, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    rejected(SECRET, f"{head}.{body}.{flipped}")
    rejected(SECRET, f"{head}.{body}.")
    rejected(SECRET, f"{head}.{body}")


def test_algorithm_none_is_refused() -> None:
    unsigned = jwt.encode({"sub": str(IDENTITY), "exp": int(time.time()) + 60}, None, algorithm="none")
    rejected(SECRET, unsigned)
    head = b64({"alg": "none", "typ": "JWT"})
    rejected(SECRET, f"{head}.{b64({'sub': str(IDENTITY), 'exp': int(time.time()) + 60})}.")


def test_other_hmac_algorithms_are_refused() -> None:
    claims = {"sub": str(IDENTITY), "exp": int(time.time()) + 60}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the unit-test key is short for SHA-384/512
        for algorithm in ("HS384", "HS512"):
            rejected(SECRET, sign(claims, algorithm=algorithm))


def test_header_alg_swapped_to_hs512_keeps_hs256_signature() -> None:
    token = tokens.issue(SECRET, Claims(IDENTITY))
    _, body, signature = token.split(".")
    rejected(SECRET, f"{b64({'alg': 'HS512', 'typ': 'JWT'})}.{body}.{signature}")


@pytest.mark.parametrize("token", [None, "", "garbage", "a.b.c", "...", "Bearer x", "e30.e30.e30", "\x00"])
def test_garbage(token: str | None) -> None:
    message = rejected(SECRET, token)
    if not token:
        assert "missing" in message


# Claims that are required or must be ids -----------------------------------------------------------

FUTURE = int(time.time()) + 3600
SUB = str(IDENTITY)


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": FUTURE},
        {"sub": SUB},
        {"sub": "alice", "exp": FUTURE},
        {"sub": 42, "exp": FUTURE},
        {"sub": "", "exp": FUTURE},
        {"sub": None, "exp": FUTURE},
        {"sub": SUB, "exp": "tomorrow"},
        {"sub": SUB, "sid": str(SESSION), "exp": FUTURE},
        {"sub": SUB, "sid": "room-1", "pid": str(PARTICIPANT), "exp": FUTURE},
        {"sub": SUB, "sid": str(SESSION), "pid": "me", "exp": FUTURE},
        {"sub": SUB, "sid": str(SESSION), "pid": None, "exp": FUTURE},
        {"sub": SUB, "sid": 7, "pid": str(PARTICIPANT), "exp": FUTURE},
        {"sub": SUB, "sid": str(SESSION), "pid": 7, "exp": FUTURE},
        {"sub": SUB, "sid": [str(SESSION)], "pid": str(PARTICIPANT), "exp": FUTURE},
        {"sub": SUB, "exp": FUTURE, "aud": "elsewhere"},
    ],
    ids=lambda c: ",".join(f"{k}={v!r}"[:24] for k, v in c.items()),
)
def test_bad_claims(claims: dict[str, Any]) -> None:
    rejected(SECRET, sign(claims))


def test_pid_without_sid_is_an_identity_token() -> None:
    """Only `sid` makes a session token; a stray `pid` grants nothing."""
    token = sign({"sub": SUB, "pid": str(PARTICIPANT), "exp": FUTURE})
    assert tokens.verify(SECRET, token) == Claims(IDENTITY)


def test_unknown_claims_are_ignored() -> None:
    token = sign({"sub": SUB, "exp": FUTURE, "role": "admin"})
    assert tokens.verify(SECRET, token) == Claims(IDENTITY)


def test_a_cap_bounds_the_token_and_everything_derived_from_it() -> None:
    cap = int(NOW) + 600
    identity = tokens.issue(SECRET, Claims(IDENTITY, cap=cap), now=NOW)
    assert payload(identity)["exp"] == cap
    assert payload(identity)["cap"] == cap
    claims = tokens.verify(SECRET, tokens.issue(SECRET, Claims(IDENTITY, cap=int(time.time()) + 600)))
    session = claims.for_session(SESSION, PARTICIPANT)
    assert session == Claims(IDENTITY, SESSION, PARTICIPANT, claims.cap)
    token, expires_at = tokens.issue_until(SECRET, session, now=NOW)
    assert (
        payload(token)["exp"]
        == int(expires_at.timestamp())
        == min(int(NOW) + tokens.SESSION_TTL_S, session.cap or 0)
    )


def test_without_a_cap_the_lifetime_is_the_default() -> None:
    token, expires_at = tokens.issue_until(SECRET, Claims(IDENTITY), now=NOW)
    assert "cap" not in payload(token)
    assert int(expires_at.timestamp()) == int(NOW) + tokens.IDENTITY_TTL_S


def test_a_cap_that_is_not_a_whole_number_is_refused() -> None:
    forged = jwt.encode({"sub": str(IDENTITY), "exp": int(time.time()) + 60, "cap": "soon"}, SECRET, "HS256")
    rejected(SECRET, forged)
