"""Every HTTP endpoint of SPEC section 5 against a real `hearth serve`, and bad input: the error shape and
status of SPEC section 2, never a 5xx."""

from __future__ import annotations

import json
import re
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import jwt
import pytest

from app import tokens
from tests.app.harness import ADMIN_TOKEN, SECRET, Api, Instance, bearer

CODE_RE = re.compile(r"^[2-9A-HJKMNP-Z]{6}$")
OTHER_SECRET = "another-secret-that-is-long-enough-0123456789"


@pytest.fixture
async def api(pair: list[Instance]) -> AsyncIterator[Api]:
    """A client of instance 0 that fails the test if any response was a 5xx."""
    client = Api(pair[0])
    statuses: list[tuple[str, int]] = []

    async def record(response: httpx.Response) -> None:
        statuses.append((f"{response.request.method} {response.request.url.path}", response.status_code))

    client.http.event_hooks = {"response": [record]}
    yield client
    await client.close()
    assert statuses, "the test made no request"
    assert [s for s in statuses if s[1] >= 500] == []


pytestmark = pytest.mark.usefixtures("no_server_tracebacks")


@pytest.fixture(autouse=True)
async def no_failed_guesses(superuser: asyncpg.Connection) -> AsyncIterator[None]:
    """Every client here is 127.0.0.1, and wrong codes on /v1/join and /v1/pair count against that
    address: one test's guesses must not rate-limit another's."""
    await superuser.execute("DELETE FROM hearth_data.pairing_failures")
    yield
    await superuser.execute("DELETE FROM hearth_data.pairing_failures")


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    """The SPEC error shape with this status and code; returns the message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    message = body["error"]["message"]
    assert isinstance(message, str) and message
    return message


async def expire_ttl_sessions(superuser: asyncpg.Connection) -> int:
    """Expires the sessions whose TTL (1 s in these tests) has run out within a minute from now; leaves
    sessions with the default idle timeout alone."""
    count: int = await superuser.fetchval("SELECT hearth.expire_sessions(now() + interval '1 minute')")
    return count


# Identities -----------------------------------------------------------------------------------------


async def test_create_identity_returns_a_usable_identity_token(api: Api) -> None:
    r = await api.http.post("/v1/identities", json={"display_name": "ann"})
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {"identity_id", "token", "expires_at"}  # SPEC section 5
    claims = tokens.verify(SECRET, body["token"])
    assert claims == tokens.Claims(uuid.UUID(body["identity_id"]))
    assert not claims.is_session

    created = await api.http.post("/v1/sessions", json={}, headers=bearer(body["token"]))
    assert created.status_code == 201
    joined = await api.http.post(
        f"/v1/sessions/{created.json()['session_id']}/join", headers=bearer(body["token"])
    )
    assert joined.status_code == 200
    state = await api.http.get(f"/v1/sessions/{created.json()['session_id']}", headers=bearer(body["token"]))
    [participant] = state.json()["participants"]
    assert participant["identity_id"] == body["identity_id"]
    assert participant["display_name"] == "ann"


@pytest.mark.parametrize("content", [b"", b"{}", b'{"display_name": null}', b"  \n"])
async def test_create_identity_without_a_name(api: Api, content: bytes) -> None:
    r = await api.http.post("/v1/identities", content=content)
    assert r.status_code == 201, r.text
    assert tokens.verify(SECRET, r.json()["token"]).identity_id == uuid.UUID(r.json()["identity_id"])


async def test_each_identity_is_new(api: Api) -> None:
    first, _ = await api.identity("same")
    second, _ = await api.identity("same")
    assert first != second


# Sessions ------------------------------------------------------------------------------------------


async def test_create_session_shape(api: Api) -> None:
    _, token = await api.identity()
    r = await api.http.post("/v1/sessions", json={"name": "room"}, headers=bearer(token))
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {"session_id", "code", "expires_at"}
    uuid.UUID(body["session_id"])
    assert CODE_RE.match(body["code"]), body["code"]
    assert body["expires_at"] is None


async def test_create_session_ttl_and_idle_timeout(api: Api, superuser: asyncpg.Connection) -> None:
    _, token = await api.identity()
    before = datetime.now().astimezone()
    body = await api.session(token, ttl_s=600, idle_timeout_s=120, max_participants=3, metadata={"a": [1]})
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert expires_at.tzinfo is not None
    assert expires_at > before + timedelta(seconds=500)
    row = await superuser.fetchrow(
        "SELECT expires_at, created_at, idle_timeout, max_participants FROM hearth_data.sessions"
        " WHERE session_id = $1",
        uuid.UUID(body["session_id"]),
    )
    assert row is not None
    assert row["expires_at"] == expires_at
    assert row["expires_at"] - row["created_at"] == timedelta(seconds=600)
    assert row["idle_timeout"] == timedelta(seconds=120)
    assert row["max_participants"] == 3

    state = (await api.http.get(f"/v1/sessions/{body['session_id']}", headers=bearer(token))).json()
    assert state["metadata"] == {"a": [1]}
    assert datetime.fromisoformat(state["expires_at"]) == expires_at


async def test_session_codes_are_distinct(api: Api) -> None:
    _, token = await api.identity()
    codes = {(await api.session(token))["code"] for _ in range(20)}
    assert len(codes) == 20


async def test_get_session_shape_before_and_after_joins(api: Api) -> None:
    alice, alice_token = await api.identity("alice")
    bob, bob_token = await api.identity("bob")
    created = await api.session(alice_token, name="lobby")
    sid = created["session_id"]

    r = await api.http.get(f"/v1/sessions/{sid}", headers=bearer(bob_token))
    assert r.status_code == 200
    state = r.json()
    assert {"session_id", "kind", "status", "code", "expired", "participants"} <= set(state)
    assert state["session_id"] == sid
    assert state["kind"] == "room"
    assert state["status"] == "waiting"
    assert state["code"] == created["code"]
    assert state["expired"] is False
    assert state["participants"] == []
    assert state["name"] == "lobby"

    alice_pid, _ = await api.join(sid, alice_token)
    r = await api.http.post(f"/v1/sessions/{sid}/join", json={"role": "viewer"}, headers=bearer(bob_token))
    assert r.status_code == 200
    bob_pid = r.json()["participant_id"]

    state = (await api.http.get(f"/v1/sessions/{sid}", headers=bearer(alice_token))).json()
    assert state["status"] == "active"
    assert state["expired"] is False
    participants = state["participants"]
    assert [p["participant_id"] for p in participants] == [alice_pid, bob_pid]
    for p in participants:
        assert set(p) >= {"participant_id", "identity_id", "role", "display_name", "joined_at"}
        datetime.fromisoformat(p["joined_at"])
    assert [(p["identity_id"], p["role"], p["display_name"]) for p in participants] == [
        (alice, "member", "alice"),
        (bob, "viewer", "bob"),
    ]


# Joining ------------------------------------------------------------------------------------------


async def test_join_returns_a_session_token(api: Api) -> None:
    identity, token = await api.identity()
    sid = (await api.session(token))["session_id"]
    r = await api.http.post(f"/v1/sessions/{sid}/join", headers=bearer(token))
    assert r.status_code == 200
    body = r.json()
    # Both join routes answer the same shape (SPEC section 5).
    assert set(body) == {"session_id", "participant_id", "token"} and body["session_id"] == sid
    claims = tokens.verify(SECRET, body["token"])
    assert claims == tokens.Claims(uuid.UUID(identity), uuid.UUID(sid), uuid.UUID(body["participant_id"]))
    assert claims.is_session


async def test_joining_twice_returns_the_same_participant(api: Api) -> None:
    _, token = await api.identity()
    sid = (await api.session(token))["session_id"]
    first, _ = await api.join(sid, token)
    second, _ = await api.join(sid, token)
    assert first == second
    state = (await api.http.get(f"/v1/sessions/{sid}", headers=bearer(token))).json()
    assert [p["participant_id"] for p in state["participants"]] == [first]


async def test_a_session_token_also_authenticates_as_its_identity(api: Api) -> None:
    _, token = await api.identity()
    sid = (await api.session(token))["session_id"]
    pid, session_token = await api.join(sid, token)
    again, _ = await api.join(sid, session_token)
    assert again == pid


@pytest.mark.parametrize("role", ["Admin", "", "has space", "x" * 40, "9lives"])
async def test_join_with_a_bad_role(api: Api, role: str) -> None:
    _, token = await api.identity()
    sid = (await api.session(token))["session_id"]
    r = await api.http.post(f"/v1/sessions/{sid}/join", json={"role": role}, headers=bearer(token))
    assert_error(r, 400, "HT400")


async def test_join_by_code_any_case(api: Api) -> None:
    _, owner_token = await api.identity()
    created = await api.session(owner_token)
    for variant in (created["code"], created["code"].lower(), f"  {created['code'].lower()} "):
        identity, token = await api.identity()
        r = await api.http.post("/v1/join", json={"code": variant}, headers=bearer(token))
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"session_id", "participant_id", "token"}
        assert body["session_id"] == created["session_id"]
        claims = tokens.verify(SECRET, body["token"])
        assert claims == tokens.Claims(
            uuid.UUID(identity), uuid.UUID(created["session_id"]), uuid.UUID(body["participant_id"])
        )
        # The same identity by code again: the same participant.
        again = await api.http.post("/v1/join", json={"code": variant}, headers=bearer(token))
        assert again.json()["participant_id"] == body["participant_id"]


async def test_join_by_unknown_code(api: Api) -> None:
    _, token = await api.identity()
    codes = {(await api.session(token))["code"]}
    unknown = next(c for c in ("ZZZZZZ", "YYYYYY", "XXXXXX") if c not in codes)
    r = await api.http.post("/v1/join", json={"code": unknown}, headers=bearer(token))
    assert_error(r, 404, "HT404")


@pytest.mark.parametrize("code", ["", "ABC", "ABCDEFG", "OOOOOO", "111111", "ab-cd!", "ÄÄÄÄÄÄ"])
async def test_join_by_malformed_code(api: Api, code: str) -> None:
    _, token = await api.identity()
    r = await api.http.post("/v1/join", json={"code": code}, headers=bearer(token))
    assert_error(r, 400, "HT400")


async def test_join_by_code_needs_a_code(api: Api) -> None:
    _, token = await api.identity()
    assert_error(await api.http.post("/v1/join", json={}, headers=bearer(token)), 400, "HT400")
    assert_error(await api.http.post("/v1/join", headers=bearer(token)), 400, "HT400")


# Leaving ------------------------------------------------------------------------------------------


async def test_leave(api: Api) -> None:
    _, token = await api.identity()
    sid = (await api.session(token))["session_id"]
    pid, session_token = await api.join(sid, token)

    r = await api.http.post(f"/v1/sessions/{sid}/leave", headers=bearer(session_token))
    assert r.status_code == 200
    assert r.json() == {"left": True}
    state = (await api.http.get(f"/v1/sessions/{sid}", headers=bearer(token))).json()
    assert state["participants"] == []

    r = await api.http.post(f"/v1/sessions/{sid}/leave", headers=bearer(session_token))
    assert r.status_code == 200
    assert r.json() == {"left": False}

    # Joining again after leaving: a new participant.
    new_pid, _ = await api.join(sid, token)
    assert new_pid != pid


async def test_leave_with_another_sessions_token(api: Api) -> None:
    _, token = await api.identity()
    first = (await api.session(token))["session_id"]
    second = (await api.session(token))["session_id"]
    _, first_token = await api.join(first, token)
    pid_second, _ = await api.join(second, token)
    r = await api.http.post(f"/v1/sessions/{second}/leave", headers=bearer(first_token))
    assert_error(r, 403, "HT403")
    state = (await api.http.get(f"/v1/sessions/{second}", headers=bearer(token))).json()
    assert [p["participant_id"] for p in state["participants"]] == [pid_second]


async def test_leave_needs_a_session_token(api: Api) -> None:
    _, token = await api.identity()
    sid = (await api.session(token))["session_id"]
    await api.join(sid, token)
    r = await api.http.post(f"/v1/sessions/{sid}/leave", headers=bearer(token))
    assert_error(r, 401, "HT401")
    state = (await api.http.get(f"/v1/sessions/{sid}", headers=bearer(token))).json()
    assert len(state["participants"]) == 1


# Stats, health, metrics ----------------------------------------------------------------------------


async def test_stats_needs_the_admin_token(api: Api) -> None:
    _, identity_token = await api.identity()
    for headers in (
        {},
        bearer("wrong-admin-token"),
        bearer(identity_token),
        {"Authorization": ADMIN_TOKEN},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
        bearer(ADMIN_TOKEN + "x"),
        bearer(ADMIN_TOKEN[:-1]),
    ):
        assert_error(await api.http.get("/v1/stats", headers=headers), 401, "HT401")


async def test_stats(api: Api) -> None:
    _, token = await api.identity()
    sid = (await api.session(token))["session_id"]
    await api.join(sid, token)
    r = await api.http.get("/v1/stats", headers=bearer(ADMIN_TOKEN))
    assert r.status_code == 200
    stats = r.json()
    assert set(stats) == {
        "total_sessions",
        "active_sessions",
        "waiting_sessions",
        "inactive_sessions",
        "online_participants",
    }
    assert all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in stats.values()), stats
    assert stats["total_sessions"] >= 1
    assert stats["active_sessions"] >= 1
    assert stats["online_participants"] >= 1

    await api.session(token)
    after = (await api.http.get("/v1/stats", headers=bearer(ADMIN_TOKEN))).json()
    assert after["total_sessions"] == stats["total_sessions"] + 1
    assert after["waiting_sessions"] == stats["waiting_sessions"] + 1


# Session history ---------------------------------------------------------------------------------


async def test_session_history(api: Api, superuser: asyncpg.Connection) -> None:
    """A deleted session's archive: for those who took part (identity or session token) and the admin
    token; 403 for anyone else, 404 while the session lives or when it was never archived."""
    display_identity, display_token = await api.identity("screen")
    controller_identity, controller_token = await api.identity("phone")
    _, stranger_token = await api.identity("eve")
    r = await api.http.post("/v1/displays", json={}, headers=bearer(display_token))
    assert r.status_code == 201, r.text
    display = r.json()
    sid = display["session_id"]
    r = await api.http.post("/v1/pair", json={"code": display["code"]}, headers=bearer(controller_token))
    assert r.status_code == 200, r.text
    controller_session_token = r.json()["token"]
    path = f"/v1/sessions/{sid}/history"
    assert_error(await api.http.get(path, headers=bearer(ADMIN_TOKEN)), 404, "HT404")  # still live

    for token in (controller_session_token, display["token"]):
        r = await api.http.post(f"/v1/sessions/{sid}/leave", headers=bearer(token))
        assert r.status_code == 200 and r.json() == {"left": True}, r.text
    assert await superuser.fetchval("SELECT hearth.cleanup_inactive_sessions()") >= 1

    r = await api.http.get(path, headers=bearer(display_token))
    assert r.status_code == 200, r.text
    history = r.json()
    assert set(history) == {
        "session_id",
        "kind",
        "name",
        "created_at",
        "ended_at",
        "end_reason",
        "participants",
        "message_count",
        "event_count",
        "messages",
    }
    assert (history["session_id"], history["kind"], history["end_reason"]) == (sid, "pairing", "empty")
    assert datetime.fromisoformat(history["ended_at"]) >= datetime.fromisoformat(history["created_at"])
    assert [
        (p["identity_id"], p["display_name"], p["role"], p["leave_reason"]) for p in history["participants"]
    ] == [
        (display_identity, "screen", "display", "left"),
        (controller_identity, "phone", "controller", "left"),
    ]
    assert history["messages"] is None
    for headers in (bearer(controller_session_token), bearer(controller_token), bearer(ADMIN_TOKEN)):
        r = await api.http.get(path, headers=headers)
        assert r.status_code == 200 and r.json() == history, r.text

    assert_error(await api.http.get(path, headers=bearer(stranger_token)), 403, "HT403")
    for headers in ({}, bearer("not-a-token"), bearer(ADMIN_TOKEN + "x")):
        assert_error(await api.http.get(path, headers=headers), 401, "HT401")
    unknown = f"/v1/sessions/{uuid.uuid4()}/history"
    assert_error(await api.http.get(unknown, headers=bearer(ADMIN_TOKEN)), 404, "HT404")
    assert_error(await api.http.get(unknown, headers=bearer(display_token)), 404, "HT404")
    assert_error(await api.http.get("/v1/sessions/nope/history", headers=bearer(ADMIN_TOKEN)), 400, "HT400")


async def test_admin_rooms_needs_the_admin_token(api: Api) -> None:
    _, identity_token = await api.identity()
    for headers in ({}, bearer(identity_token), bearer(ADMIN_TOKEN + "x")):
        assert_error(await api.http.get("/v1/admin/rooms", headers=headers), 401, "HT401")
    r = await api.http.get("/v1/admin/rooms", headers=bearer(ADMIN_TOKEN))
    assert r.status_code == 200 and r.json() == {"rooms": []}, r.text


async def test_healthz_and_readyz(api: Api) -> None:
    r = await api.http.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    r = await api.http.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"ready": True, "database": True, "listener": True}
    assert (await api.http.head("/healthz")).status_code == 200


async def test_metrics(api: Api) -> None:
    await api.identity()
    r = await api.http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert re.search(r"^hearth_ws_connections \d", text, re.M), text[:2000]
    call_count = r'^hearth_db_call_seconds_count\{function="create_anonymous_identity"\} [1-9]'
    assert re.search(call_count, text, re.M)
    assert "# TYPE hearth_db_call_seconds histogram" in text
    assert re.search(r"^hearth_listener_up 1\.0$", text, re.M)


# Bad bodies ----------------------------------------------------------------------------------------


async def _endpoints(api: Api) -> dict[str, tuple[str, dict[str, str]]]:
    """A body-taking endpoint of each kind, with auth that would be accepted."""
    _, token = await api.identity()
    created = await api.session(token)
    sid = created["session_id"]
    _, session_token = await api.join(sid, token)
    return {
        "identities": ("/v1/identities", {}),
        "sessions": ("/v1/sessions", bearer(token)),
        "join": (f"/v1/sessions/{sid}/join", bearer(token)),
        "join_code": ("/v1/join", bearer(token)),
        "leave": (f"/v1/sessions/{sid}/leave", bearer(session_token)),
    }


UNKNOWN_FIELDS = {
    "identities": {"display_name": "x", "nickname": "y"},
    "sessions": {"name": "x", "kind": "match"},
    "join": {"role": "member", "participant_id": str(uuid.uuid4())},
    "join_code": {"code": "ABCDEF", "role": "admin"},
    "leave": {"reason": "bored"},
}


async def test_unknown_fields(api: Api) -> None:
    endpoints = await _endpoints(api)
    for name, body in UNKNOWN_FIELDS.items():
        path, headers = endpoints[name]
        message = assert_error(await api.http.post(path, json=body, headers=headers), 400, "HT400")
        assert "unknown" in message


WRONG_TYPES = [
    ("identities", {"display_name": 5}),
    ("identities", {"display_name": ["ann"]}),
    ("sessions", {"max_participants": "2"}),
    ("sessions", {"max_participants": True}),
    ("sessions", {"max_participants": 2.5}),
    ("sessions", {"ttl_s": True}),
    ("sessions", {"ttl_s": "60"}),
    ("sessions", {"idle_timeout_s": 1.5}),
    ("sessions", {"name": 7}),
    ("sessions", {"metadata": "x"}),
    ("sessions", {"metadata": [1, 2]}),
    ("join", {"role": 1}),
    ("join", {"role": {"name": "member"}}),
    ("join_code", {"code": 123456}),
    ("join_code", {"code": ["ABCDEF"]}),
]


async def test_wrong_types(api: Api) -> None:
    endpoints = await _endpoints(api)
    for name, body in WRONG_TYPES:
        path, headers = endpoints[name]
        message = assert_error(await api.http.post(path, json=body, headers=headers), 400, "HT400")
        assert "type" in message, (name, body, message)


BAD_VALUES = [
    {"max_participants": 0},
    {"max_participants": -1},
    {"max_participants": 10001},
    {"max_participants": 2**31},
    {"max_participants": 10**30},
    {"ttl_s": 0},
    {"ttl_s": -5},
    {"ttl_s": 400 * 86400},
    {"ttl_s": 10**20},
    {"idle_timeout_s": 0},
    {"idle_timeout_s": 10**15},
    {"name": ""},
    {"name": "n" * 201},
    {"metadata": {"blob": "x" * 20000}},
]


@pytest.mark.parametrize("body", BAD_VALUES, ids=lambda b: json.dumps(b)[:40])
async def test_out_of_range_values(api: Api, body: dict[str, Any]) -> None:
    _, token = await api.identity()
    r = await api.http.post("/v1/sessions", json=body, headers=bearer(token))
    assert_error(r, 400, "HT400")


# What SQL would refuse with a message naming its parameter (p_display_name, p_role, ...), refused where the
# request is read, naming the request's own field.
FIELD_LIMITS = [
    ("identities", {"display_name": "x" * 10_000}, "display_name"),
    ("identities", {"display_name": ""}, "display_name"),
    ("sessions", {"name": "n" * 201}, "name"),
    ("sessions", {"max_participants": 10_001}, "max_participants"),
    ("sessions", {"idle_timeout_s": 10**15}, "idle_timeout_s"),
    ("sessions", {"ttl_s": 0}, "ttl_s"),
    ("sessions", {"metadata": {"blob": "x" * 20_000}}, "metadata"),
    ("join", {"role": "Admin"}, "role"),
]


async def test_messages_name_the_request_fields_never_sql_parameters(api: Api) -> None:
    endpoints = await _endpoints(api)
    for name, body, field in FIELD_LIMITS:
        path, headers = endpoints[name]
        message = assert_error(await api.http.post(path, json=body, headers=headers), 400, "HT400")
        assert message.startswith(field) and "p_" not in message, (body, message)
    _, token = await api.identity()
    r = await api.http.post("/v1/displays", json={"ttl_s": 86_401}, headers=bearer(token))
    assert assert_error(r, 400, "HT400").startswith("ttl_s")
    r = await api.http.post("/v1/pair", json={}, headers=bearer(token))
    assert "code is required" in assert_error(r, 400, "HT400")


async def test_both_joins_answer_the_same_shape(api: Api) -> None:
    _, owner = await api.identity()
    room = await api.session(owner)
    _, token = await api.identity()
    by_id = await api.http.post(f"/v1/sessions/{room['session_id']}/join", headers=bearer(token))
    _, other = await api.identity()
    by_code = await api.http.post("/v1/join", json={"code": room["code"]}, headers=bearer(other))
    assert by_id.status_code == by_code.status_code == 200
    assert set(by_id.json()) == set(by_code.json()) == {"session_id", "participant_id", "token"}
    assert by_id.json()["session_id"] == by_code.json()["session_id"] == room["session_id"]


# Strings PostgreSQL cannot store, numbers JSON does not have, nesting past any sane depth.
HOSTILE_BODIES = [
    ("identities", b'{"display_name": "nul\\u0000byte"}'),
    ("identities", b'{"display_name": "lone \\ud800 surrogate"}'),
    ("sessions", b'{"name": "nul\\u0000"}'),
    ("sessions", b'{"metadata": {"k": "nul\\u0000"}}'),
    ("sessions", b'{"metadata": {"nul\\u0000key": 1}}'),
    ("sessions", b'{"metadata": {"k": "\\udfff"}}'),
    ("sessions", b'{"metadata": {"k": NaN}}'),
    ("sessions", b'{"metadata": {"k": Infinity}}'),
    ("sessions", b'{"metadata": {"k": -Infinity}}'),
    ("sessions", b'{"metadata": {"k": 1e400}}'),
    ("sessions", b'{"metadata": {"k": -1e400}}'),
    ("sessions", b'{"ttl_s": NaN}'),
    ("sessions", b'{"metadata": ' + b'{"a": ' * 100 + b"1" + b"}" * 101),
    ("sessions", b'{"metadata": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001),
    ("sessions", b"[" * 30000 + b"]" * 30000),
    ("join", b'{"role": "member\\u0000"}'),
    ("join_code", b'{"code": "ABC\\u0000EF"}'),
    ("join_code", b'{"code": "\\ud83d"}'),
]


@pytest.mark.parametrize(("name", "content"), HOSTILE_BODIES, ids=lambda v: str(v)[:40])
async def test_hostile_values(api: Api, name: str, content: bytes) -> None:
    path, headers = (await _endpoints(api))[name]
    r = await api.http.post(path, content=content, headers=headers)
    assert_error(r, 400, "HT400")


NOT_OBJECTS = [b"[]", b'[{"display_name": "x"}]', b'"text"', b"42", b"null", b"true", b"1.5"]


async def test_non_object_json(api: Api) -> None:
    endpoints = await _endpoints(api)
    for path, headers in endpoints.values():
        for content in NOT_OBJECTS:
            message = assert_error(await api.http.post(path, content=content, headers=headers), 400, "HT400")
            assert "object" in message


INVALID_JSON = [b"{", b"{'display_name': 'x'}", b'{"display_name": "x",}', b"\xff\xfe{}", b"{}{}", b"nope"]


async def test_invalid_json(api: Api) -> None:
    endpoints = await _endpoints(api)
    for path, headers in endpoints.values():
        for content in INVALID_JSON:
            message = assert_error(await api.http.post(path, content=content, headers=headers), 400, "HT400")
            assert "JSON" in message


async def test_oversize_bodies(api: Api) -> None:
    endpoints = await _endpoints(api)
    limit = 64 * 1024
    for path, headers in endpoints.values():
        big_json = json.dumps({"display_name": "x" * limit}).encode()
        assert_error(await api.http.post(path, content=big_json, headers=headers), 413, "HT413")
        assert_error(await api.http.post(path, content=b" " * (limit + 1), headers=headers), 413, "HT413")

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(40):
                yield b" " * 4096

        # Streamed without a Content-Length.
        assert_error(await api.http.post(path, content=chunks(), headers=headers), 413, "HT413")
    # Exactly 64 KiB is allowed: the body is read (and then judged on its content).
    exact = b"{}" + b" " * (limit - 2)
    assert (await api.http.post("/v1/identities", content=exact)).status_code == 201


# Bad tokens ----------------------------------------------------------------------------------------


def _forged_tokens(identity_id: str) -> dict[str, dict[str, str]]:
    claims = tokens.Claims(uuid.UUID(identity_id))
    now = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the key is short for SHA-512; that is beside the point here
        hs512 = jwt.encode({"sub": identity_id, "exp": int(now) + 60}, SECRET, algorithm="HS512")
    return {
        "missing": {},
        "empty bearer": {"Authorization": "Bearer"},
        "wrong scheme": {"Authorization": "Basic " + tokens.issue(SECRET, claims)},
        "no scheme": {"Authorization": tokens.issue(SECRET, claims)},
        "garbage": bearer("garbage"),
        "three dots": bearer("a.b.c"),
        "expired": bearer(tokens.issue(SECRET, claims, now=now - 100, ttl_s=10)),
        "other secret": bearer(tokens.issue(OTHER_SECRET, claims)),
        "alg none": bearer(jwt.encode({"sub": identity_id, "exp": int(now) + 60}, None, algorithm="none")),
        "HS512": bearer(hs512),
        "no exp": bearer(jwt.encode({"sub": identity_id}, SECRET, algorithm="HS256")),
        "sub not a uuid": bearer(
            jwt.encode({"sub": "alice", "exp": int(now) + 60}, SECRET, algorithm="HS256")
        ),
        "sid a number": bearer(
            jwt.encode(
                {"sub": identity_id, "sid": 7, "pid": 8, "exp": int(now) + 60}, SECRET, algorithm="HS256"
            )
        ),
        "sid without pid": bearer(
            jwt.encode(
                {"sub": identity_id, "sid": str(uuid.uuid4()), "exp": int(now) + 60},
                SECRET,
                algorithm="HS256",
            )
        ),
    }


async def test_bad_tokens_get_401_everywhere(api: Api) -> None:
    identity, token = await api.identity()
    sid = (await api.session(token))["session_id"]
    requests = [
        ("POST", "/v1/sessions", {}),
        ("GET", f"/v1/sessions/{sid}", None),
        ("POST", f"/v1/sessions/{sid}/join", {}),
        ("POST", "/v1/join", {"code": "ABCDEF"}),
        ("POST", f"/v1/sessions/{sid}/leave", None),
    ]
    for label, headers in _forged_tokens(identity).items():
        for method, path, body in requests:
            r = await api.http.request(method, path, json=body, headers=headers)
            message = assert_error(r, 401, "HT401")
            if label == "expired":
                assert "expired" in message
    state = (await api.http.get(f"/v1/sessions/{sid}", headers=bearer(token))).json()
    assert state["participants"] == []


# Bad ids, unknown sessions, conflicts --------------------------------------------------------------


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "123", "0" * 33, "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"])
async def test_malformed_session_ids(api: Api, bad_id: str) -> None:
    _, token = await api.identity()
    sid = (await api.session(token))["session_id"]
    _, session_token = await api.join(sid, token)
    assert_error(await api.http.get(f"/v1/sessions/{bad_id}", headers=bearer(token)), 400, "HT400")
    assert_error(await api.http.post(f"/v1/sessions/{bad_id}/join", headers=bearer(token)), 400, "HT400")
    assert_error(
        await api.http.post(f"/v1/sessions/{bad_id}/leave", headers=bearer(session_token)), 400, "HT400"
    )


async def test_unknown_session(api: Api) -> None:
    _, token = await api.identity()
    unknown = uuid.uuid4()
    assert_error(await api.http.get(f"/v1/sessions/{unknown}", headers=bearer(token)), 404, "HT404")
    assert_error(await api.http.post(f"/v1/sessions/{unknown}/join", headers=bearer(token)), 404, "HT404")


async def test_unknown_identity_cannot_join(api: Api) -> None:
    _, token = await api.identity()
    sid = (await api.session(token))["session_id"]
    ghost = tokens.issue(SECRET, tokens.Claims(uuid.uuid4()))
    assert_error(await api.http.post(f"/v1/sessions/{sid}/join", headers=bearer(ghost)), 404, "HT404")


async def test_full_session(api: Api) -> None:
    _, first_token = await api.identity()
    _, second_token = await api.identity()
    created = await api.session(first_token, max_participants=1)
    sid = created["session_id"]
    pid, session_token = await api.join(sid, first_token)
    assert_error(await api.http.post(f"/v1/sessions/{sid}/join", headers=bearer(second_token)), 409, "HT409")
    assert_error(
        await api.http.post("/v1/join", json={"code": created["code"]}, headers=bearer(second_token)),
        409,
        "HT409",
    )
    # The one inside can still re-join (same participant), and a seat frees up when it leaves.
    assert (await api.join(sid, first_token))[0] == pid
    await api.http.post(f"/v1/sessions/{sid}/leave", headers=bearer(session_token))
    other_pid, _ = await api.join(sid, second_token)
    assert other_pid != pid


async def test_expired_session(api: Api, superuser: asyncpg.Connection) -> None:
    _, token = await api.identity()
    created = await api.session(token, ttl_s=1)
    sid = created["session_id"]
    _, session_token = await api.join(sid, token)
    assert await expire_ttl_sessions(superuser) >= 1

    _, late_token = await api.identity()
    assert_error(await api.http.post(f"/v1/sessions/{sid}/join", headers=bearer(late_token)), 410, "HT410")
    assert_error(await api.http.post(f"/v1/sessions/{sid}/join", headers=bearer(token)), 410, "HT410")
    # Codes belong to open sessions only.
    r = await api.http.post("/v1/join", json={"code": created["code"]}, headers=bearer(late_token))
    assert_error(r, 404, "HT404")
    state = await api.http.get(f"/v1/sessions/{sid}", headers=bearer(token))
    assert state.status_code == 200
    assert state.json()["expired"] is True
    assert state.json()["status"] == "expired"
    assert state.json()["participants"] == []
    # Expiry removed the participant: leaving is a no-op, not an error.
    left = await api.http.post(f"/v1/sessions/{sid}/leave", headers=bearer(session_token))
    assert left.status_code == 200
    assert left.json() == {"left": False}


# Routing -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/nope", "/nope", "/v1", "/v1/sessions/x/y/z", "/v1/identities/extra"])
async def test_unknown_route(api: Api, path: str) -> None:
    assert_error(await api.http.get(path), 404, "HT404")
    assert_error(await api.http.post(path, json={}), 404, "HT404")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v1/identities", "POST"),
        ("DELETE", "/v1/sessions", "POST"),
        ("PUT", f"/v1/sessions/{uuid.uuid4()}", "GET"),
        ("GET", f"/v1/sessions/{uuid.uuid4()}/join", "POST"),
        ("GET", "/v1/join", "POST"),
        ("POST", "/v1/stats", "GET"),
        ("POST", "/healthz", "GET"),
        ("DELETE", "/metrics", "GET"),
        ("GET", "/v1/displays", "POST"),
        ("GET", "/v1/pair", "POST"),
        ("POST", f"/v1/displays/{uuid.uuid4()}/events", "GET"),
    ],
)
async def test_wrong_method(api: Api, method: str, path: str, allowed: str) -> None:
    r = await api.http.request(method, path)
    assert_error(r, 405, "HT405")
    assert allowed in r.headers["allow"]


async def test_plain_http_to_the_websocket_path(api: Api) -> None:
    assert_error(await api.http.get("/v1/ws"), 404, "HT404")


# Pairing endpoints: their bad input (the pairing flow itself is tested with pairing) ----------------


async def test_register_display_input(api: Api) -> None:
    _, token = await api.identity("tv")
    r = await api.http.post("/v1/displays", json={"ttl_s": 120}, headers=bearer(token))
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {"session_id", "code", "participant_id", "token", "expires_at"}
    assert CODE_RE.match(body["code"])
    assert tokens.verify(SECRET, body["token"]).participant_id == uuid.UUID(body["participant_id"])
    datetime.fromisoformat(body["expires_at"])

    for bad in (
        {"ttl_s": 0},
        {"ttl_s": 86401},
        {"ttl_s": 10**20},
        {"ttl_s": "60"},
        {"ttl_s": True},
        {"x": 1},
    ):
        assert_error(await api.http.post("/v1/displays", json=bad, headers=bearer(token)), 400, "HT400")
    assert_error(await api.http.post("/v1/displays", content=b"[1]", headers=bearer(token)), 400, "HT400")
    assert_error(await api.http.post("/v1/displays", json={}), 401, "HT401")
    expired = tokens.issue(SECRET, tokens.Claims(uuid.uuid4()), now=time.time() - 100, ttl_s=10)
    assert_error(await api.http.post("/v1/displays", json={}, headers=bearer(expired)), 401, "HT401")


async def test_pair_input(api: Api, superuser: asyncpg.Connection) -> None:
    _, token = await api.identity("phone")
    try:
        for bad in ({"code": 123456}, {"code": ["ABCDEF"]}, {"code": "ABCDEF", "x": 1}, {}):
            assert_error(await api.http.post("/v1/pair", json=bad, headers=bearer(token)), 400, "HT400")
        for content in (b'{"code": "AB\\u0000CDE"}', b'{"code": "\\udfff"}', b"{", b'"ABCDEF"'):
            r = await api.http.post("/v1/pair", content=content, headers=bearer(token))
            assert_error(r, 400, "HT400")
        assert_error(await api.http.post("/v1/pair", json={"code": "ABCDEF"}), 401, "HT401")
        # Wrong guesses: a malformed code and an unknown one.
        assert_error(
            await api.http.post("/v1/pair", json={"code": "0O1IL"}, headers=bearer(token)), 400, "HT400"
        )
        r = await api.http.post("/v1/pair", json={"code": "ZZZZZZ"}, headers=bearer(token))
        assert r.status_code in (404, 409)  # 409 only if a display happened to draw ZZZZZZ
    finally:
        await superuser.execute("DELETE FROM hearth_data.pairing_failures")


async def test_display_events_input(api: Api) -> None:
    _, tv_token = await api.identity("tv")
    display = (await api.http.post("/v1/displays", json={}, headers=bearer(tv_token))).json()
    other = (await api.http.post("/v1/displays", json={}, headers=bearer(tv_token))).json()
    path = f"/v1/displays/{display['session_id']}/events"

    r = await api.http.get(path, params={"token": display["token"], "wait": "0"})
    assert r.status_code == 200
    assert r.json() == {"event": None}
    r = await api.http.get(path, params={"wait": "0"}, headers=bearer(display["token"]))
    assert r.json() == {"event": None}

    for wait in ("abc", "-1", "61", "1.5", ""):
        r = await api.http.get(path, params={"token": display["token"], "wait": wait})
        assert_error(r, 400, "HT400")
    assert_error(await api.http.get(path, params={"token": other["token"], "wait": "0"}), 403, "HT403")
    assert_error(await api.http.get(path, params={"token": tv_token, "wait": "0"}), 401, "HT401")
    assert_error(await api.http.get(path, params={"token": "garbage", "wait": "0"}), 401, "HT401")
    assert_error(await api.http.get(path, params={"wait": "0"}), 401, "HT401")
    r = await api.http.get("/v1/displays/not-a-uuid/events", params={"token": display["token"]})
    assert_error(r, 400, "HT400")
