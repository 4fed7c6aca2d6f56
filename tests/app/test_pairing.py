"""Pairing over HTTP against two real instances: a display registers and waits on its event stream
(SSE, or long-poll), a controller pairs on the other instance, and then the two signal each other over
websockets. Failed code guesses are rate limited per client address.

All clients of the suite connect from loopback. The rate-limit tests give each client its own
address (127.0.0.2, ...: Linux routes all of 127/8 to lo), and every test here starts and ends with
an empty pairing_failures table, so failed guesses of one test never limit another.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from app import tokens
from app.errors import HearthError
from tests.app.harness import SECRET, Api, Instance, Ws, bearer

CODE_RE = re.compile(r"^[2-9A-HJKMNP-Z]{6}$")
GUARD_S = 15.0  # how long a read may block before the test fails instead of hanging (not a timing check)


pytestmark = pytest.mark.usefixtures("no_server_tracebacks")


@pytest.fixture(autouse=True)
async def no_failed_guesses(superuser: asyncpg.Connection) -> AsyncIterator[None]:
    """Failed guesses of other tests (all from loopback) must not rate-limit this one, nor its others."""
    await superuser.execute("DELETE FROM hearth_data.pairing_failures")
    yield
    await superuser.execute("DELETE FROM hearth_data.pairing_failures")


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


async def register(api: Api, token: str, **body: Any) -> dict[str, Any]:
    r = await api.http.post("/v1/displays", json=body, headers=bearer(token))
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


async def display(api: Api, name: str = "tv", **body: Any) -> dict[str, Any]:
    """A new identity registered as a waiting display."""
    _, token = await api.identity(name)
    return await register(api, token, **body)


async def controller_token(api: Api, name: str = "phone") -> str:
    _, token = await api.identity(name)
    return token


async def pair_code(api: Api, token: str, code: str) -> httpx.Response:
    return await api.http.post("/v1/pair", json={"code": code}, headers=bearer(token))


class Sse:
    """A display's event stream, read item by item (an item ends at a blank line)."""

    def __init__(
        self, instance: Instance, session_id: str, token: str | None, headers: dict[str, str] | None = None
    ):
        self.client = httpx.AsyncClient(base_url=instance.base_url, timeout=httpx.Timeout(10, read=None))
        params = {"token": token} if token is not None else {}
        self._stream = self.client.stream(
            "GET", f"/v1/displays/{session_id}/events", params=params, headers=headers or {}
        )
        self.response: httpx.Response | None = None
        self._lines: Any = None

    async def open(self) -> Sse:
        self.response = await self._stream.__aenter__()
        assert self.response.status_code == 200, (await self.response.aread()).decode()
        assert self.response.headers["content-type"].startswith("text/event-stream")
        self._lines = self.response.aiter_lines()
        return self

    async def next(self) -> dict[str, Any] | None:
        """The next item as {"comments": [...], "event": name, "data": parsed}; None at the end."""
        item: dict[str, Any] = {"comments": [], "event": None, "data": None}
        seen = False
        while True:
            try:
                line = await asyncio.wait_for(anext(self._lines), GUARD_S)
            except StopAsyncIteration:
                return item if seen else None
            if line == "":
                if seen:
                    return item
                continue
            seen = True
            if line.startswith(":"):
                item["comments"].append(line[1:].strip())
            elif line.startswith("event:"):
                item["event"] = line[6:].strip()
            elif line.startswith("data:"):
                item["data"] = json.loads(line[5:].strip())

    async def event(self) -> dict[str, Any]:
        """The next item that is an event (keep-alive comments are skipped)."""
        while True:
            item = await self.next()
            assert item is not None, "the stream ended without an event"
            if item["event"] is not None:
                return item

    async def close(self) -> None:
        await self._stream.__aexit__(None, None, None)
        await self.client.aclose()


async def sse(instance: Instance, d: dict[str, Any]) -> Sse:
    """The display's stream, past its opening comment."""
    stream = await Sse(instance, d["session_id"], d["token"]).open()
    first = await stream.next()
    assert first is not None and first["comments"] and first["event"] is None, first
    return stream


async def from_address(instance: Instance, address: str) -> Api:
    """A client of `instance` whose connections come from another loopback address."""
    api = Api(instance)
    await api.http.aclose()
    api.http = httpx.AsyncClient(
        base_url=instance.base_url, timeout=10, transport=httpx.AsyncHTTPTransport(local_address=address)
    )
    return api


async def failures(superuser: asyncpg.Connection, key: str) -> int:
    value: int = await superuser.fetchval(
        "SELECT count(*) FROM hearth_data.pairing_failures WHERE client_key = $1", key
    )
    return value


# --- POST /v1/displays -----------------------------------------------------------------------------


async def test_register_display(api_a: Api, superuser: asyncpg.Connection) -> None:
    identity_id, token = await api_a.identity("tv")
    r = await api_a.http.post("/v1/displays", json={}, headers=bearer(token))
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"session_id", "code", "participant_id", "token", "expires_at"}
    assert CODE_RE.match(body["code"])
    claims = tokens.verify(SECRET, body["token"])
    assert claims == tokens.Claims(
        uuid.UUID(identity_id), uuid.UUID(body["session_id"]), uuid.UUID(body["participant_id"])
    )
    row = await superuser.fetchrow(
        "SELECT kind, status, code, created_at, expires_at FROM hearth_data.sessions WHERE session_id = $1",
        uuid.UUID(body["session_id"]),
    )
    assert row is not None
    assert (row["kind"], row["status"], row["code"]) == ("pairing", "waiting", body["code"])
    assert datetime.fromisoformat(body["expires_at"]) == row["expires_at"]
    assert row["expires_at"] - row["created_at"] == timedelta(minutes=10)
    role = await superuser.fetchval(
        "SELECT role FROM hearth_data.participants WHERE participant_id = $1",
        uuid.UUID(body["participant_id"]),
    )
    assert role == "display"


async def test_register_display_ttl_bounds(api_a: Api, superuser: asyncpg.Connection) -> None:
    _, token = await api_a.identity("tv")
    for ttl_s in (1, 30, 86400):
        body = await register(api_a, token, ttl_s=ttl_s)
        row = await superuser.fetchrow(
            "SELECT created_at, expires_at FROM hearth_data.sessions WHERE session_id = $1",
            uuid.UUID(body["session_id"]),
        )
        assert row is not None and row["expires_at"] - row["created_at"] == timedelta(seconds=ttl_s)
    for bad in (0, -1, 86401, 10**9, "600", 1.5, True):
        r = await api_a.http.post("/v1/displays", json={"ttl_s": bad}, headers=bearer(token))
        assert_error(r, 400, "HT400")
    assert_error(await api_a.http.post("/v1/displays", json={}), 401, "HT401")


# --- the display's event stream ------------------------------------------------------------------


async def test_sse_ends_with_paired_when_a_controller_pairs_on_the_other_instance(
    pair: list[Instance], api_a: Api, api_b: Api, superuser: asyncpg.Connection
) -> None:
    d = await display(api_a)
    stream = await sse(pair[0], d)
    try:
        controller_identity, token = await api_b.identity("phone")
        r = await pair_code(api_b, token, d["code"])
        assert r.status_code == 200, r.text
        paired = r.json()
        assert set(paired) == {"session_id", "participant_id", "token"}
        assert paired["session_id"] == d["session_id"]
        assert tokens.verify(SECRET, paired["token"]) == tokens.Claims(
            uuid.UUID(controller_identity), uuid.UUID(d["session_id"]), uuid.UUID(paired["participant_id"])
        )

        item = await stream.event()
        assert item["event"] == "paired"
        data = item["data"]
        assert data["type"] == "session.paired"
        assert data["session_id"] == d["session_id"]
        assert data["display_participant_id"] == d["participant_id"]
        assert data["controller_participant_id"] == paired["participant_id"]
        stored = await superuser.fetchrow(
            "SELECT seq FROM hearth_data.events WHERE stream_id = $1 AND type = 'session.paired'",
            uuid.UUID(d["session_id"]),
        )
        assert stored is not None and data["seq"] == stored["seq"]
        datetime.fromisoformat(data["at"])
        assert await stream.next() is None, "the stream ends after its event"
    finally:
        await stream.close()
    status = await superuser.fetchval(
        "SELECT status FROM hearth_data.sessions WHERE session_id = $1", uuid.UUID(d["session_id"])
    )
    assert status == "active"


async def test_sse_of_one_display_is_not_ended_by_another_pairing(
    pair: list[Instance], api_a: Api, api_b: Api
) -> None:
    first, second = await display(api_a, "tv 1"), await display(api_a, "tv 2")
    s1, s2 = await sse(pair[0], first), await sse(pair[0], second)
    try:
        assert (await pair_code(api_b, await controller_token(api_b), second["code"])).status_code == 200
        assert (await s2.event())["data"]["display_participant_id"] == second["participant_id"]
        assert (await pair_code(api_b, await controller_token(api_b), first["code"])).status_code == 200
        item = await s1.event()
        assert item["event"] == "paired"
        assert item["data"]["display_participant_id"] == first["participant_id"]
    finally:
        await s1.close()
        await s2.close()


async def test_sse_ends_with_expired_when_the_code_expires(
    pair: list[Instance], api_a: Api, superuser: asyncpg.Connection
) -> None:
    d = await display(api_a)
    stream = await sse(pair[0], d)
    try:
        assert await superuser.fetchval("SELECT hearth.expire_sessions(now() + interval '1 hour')") >= 1
        item = await stream.event()
        assert item["event"] == "expired"
        assert item["data"]["type"] == "session.expired"
        assert item["data"]["session_id"] == d["session_id"]
        assert item["data"]["reason"] == "pairing_timeout"
        assert await stream.next() is None
    finally:
        await stream.close()
    # Opened after the fact, the stream answers at once; so does a long poll; the code is gone.
    late = await Sse(pair[1], d["session_id"], d["token"]).open()
    try:
        item = await late.event()
        assert item["event"] == "expired" and item["data"]["reason"] == "pairing_timeout"
        assert await late.next() is None
    finally:
        await late.close()
    r = await api_a.http.get(
        f"/v1/displays/{d['session_id']}/events", params={"token": d["token"], "wait": "5"}
    )
    assert r.status_code == 200 and r.json()["event"] == "expired"
    assert_error(await pair_code(api_a, await controller_token(api_a), d["code"]), 410, "HT410")


async def test_sse_ends_when_the_display_leaves(pair: list[Instance], api_a: Api, api_b: Api) -> None:
    d = await display(api_a)
    stream = await sse(pair[1], d)
    try:
        r = await api_a.http.post(f"/v1/sessions/{d['session_id']}/leave", headers=bearer(d["token"]))
        assert r.json() == {"left": True}
        item = await stream.event()
        assert item["event"] == "expired"
        assert item["data"]["type"] == "session.ended"
        assert await stream.next() is None
    finally:
        await stream.close()
    assert_error(await pair_code(api_b, await controller_token(api_b), d["code"]), 410, "HT410")


async def test_sse_takes_the_token_from_the_authorization_header_too(
    pair: list[Instance], api_a: Api
) -> None:
    d = await display(api_a)
    stream = await Sse(pair[0], d["session_id"], None, headers=bearer(d["token"])).open()
    try:
        first = await stream.next()
        assert first is not None and first["comments"]
        assert (await pair_code(api_a, await controller_token(api_a), d["code"])).status_code == 200
        assert (await stream.event())["event"] == "paired"
    finally:
        await stream.close()


async def test_sse_auth(api_a: Api) -> None:
    d = await display(api_a)
    other = await display(api_a, "another tv")
    identity_id, identity_token = await api_a.identity("someone")
    path = f"/v1/displays/{d['session_id']}/events"
    assert_error(await api_a.http.get(path, params={"token": other["token"]}), 403, "HT403")
    assert_error(await api_a.http.get(path, params={"token": identity_token}), 401, "HT401")
    assert_error(await api_a.http.get(path), 401, "HT401")
    assert_error(await api_a.http.get(path, params={"token": "not-a-token"}), 401, "HT401")
    forged = tokens.issue(
        "another-secret-that-is-long-enough-0123456789",
        tokens.Claims(uuid.UUID(identity_id), uuid.UUID(d["session_id"]), uuid.UUID(d["participant_id"])),
    )
    assert_error(await api_a.http.get(path, params={"token": forged}), 401, "HT401")
    unknown = uuid.uuid4()
    token = tokens.issue(SECRET, tokens.Claims(uuid.UUID(identity_id), unknown, uuid.uuid4()))
    assert_error(
        await api_a.http.get(f"/v1/displays/{unknown}/events", params={"token": token}), 404, "HT404"
    )


# --- long poll -------------------------------------------------------------------------------------


async def test_long_poll_returns_paired_when_pairing_happens_during_the_wait(api_a: Api, api_b: Api) -> None:
    d = await display(api_a)
    path = f"/v1/displays/{d['session_id']}/events"
    # The poll answers as soon as the pairing is seen; a long wait only keeps a loaded machine from
    # turning this into a race.
    poll = asyncio.create_task(api_a.http.get(path, params={"token": d["token"], "wait": "10"}))
    await asyncio.sleep(0.3)  # let the poll start waiting (if it has not, it finds the event anyway)
    r = await pair_code(api_b, await controller_token(api_b), d["code"])
    assert r.status_code == 200
    answer = await poll
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"event", "data"}
    assert body["event"] == "paired"
    assert body["data"]["type"] == "session.paired"
    assert body["data"]["controller_participant_id"] == r.json()["participant_id"]
    assert body["data"]["display_participant_id"] == d["participant_id"]
    # Asked again later, the answer is the same.
    again = await api_b.http.get(path, params={"token": d["token"], "wait": "2"})
    assert again.json() == body


async def test_long_poll_returns_null_when_nothing_happens(api_a: Api, superuser: asyncpg.Connection) -> None:
    d = await display(api_a)
    path = f"/v1/displays/{d['session_id']}/events"
    r = await api_a.http.get(path, params={"token": d["token"], "wait": "2"})
    assert r.status_code == 200
    assert r.json() == {"event": None}
    r = await api_a.http.get(path, params={"token": d["token"], "wait": "0"})
    assert r.json() == {"event": None}
    status = await superuser.fetchval(
        "SELECT status FROM hearth_data.sessions WHERE session_id = $1", uuid.UUID(d["session_id"])
    )
    assert status == "waiting"


async def test_a_display_that_talked_before_its_pairing_gets_a_resume_point_before_it(
    pair: list[Instance], api_a: Api, superuser: asyncpg.Connection
) -> None:
    # The answer of a paired session is looked for among the first events of its stream only: past them
    # (here, 10 messages the display sent while it waited), it is rebuilt from the session's state.
    d = await display(api_a)
    await superuser.execute(
        "SELECT hearth.post_message($1, '{\"n\": 1}'::jsonb) FROM generate_series(1, 10)",
        uuid.UUID(d["participant_id"]),
    )
    r = await pair_code(api_a, await controller_token(api_a), d["code"])
    assert r.status_code == 200, r.text
    paired_seq = await superuser.fetchval(
        "SELECT seq FROM hearth_data.events WHERE stream_id = $1 AND type = 'session.paired'",
        uuid.UUID(d["session_id"]),
    )
    path = f"/v1/displays/{d['session_id']}/events"
    body = (await api_a.http.get(path, params={"token": d["token"], "wait": "0"})).json()
    assert body["event"] == "paired"
    data = body["data"]
    assert data["type"] == "session.paired" and data["session_id"] == d["session_id"]
    assert data["display_participant_id"] == d["participant_id"]
    assert data["controller_participant_id"] == r.json()["participant_id"]
    datetime.fromisoformat(data["at"])
    assert data["seq"] < paired_seq
    # Resuming after it, the display's socket gets the pairing itself.
    ws = await Ws.open(pair[0], d["token"], after=data["seq"])
    try:
        assert (await ws.next())["type"] == "welcome"
        assert (await ws.until_type("session.paired"))["seq"] == paired_seq
    finally:
        await ws.close()


async def test_long_poll_wait_bad_values(api_a: Api) -> None:
    d = await display(api_a)
    path = f"/v1/displays/{d['session_id']}/events"
    for wait in ("-1", "61", "abc", "1.5", "", "1e3", " 5", "99999999999999999999"):
        assert_error(await api_a.http.get(path, params={"token": d["token"], "wait": wait}), 400, "HT400")
    other = await display(api_a)
    assert_error(await api_a.http.get(path, params={"token": other["token"], "wait": "1"}), 403, "HT403")


# --- POST /v1/pair -----------------------------------------------------------------------------------


async def test_pair_errors(api_a: Api, api_b: Api, superuser: asyncpg.Connection) -> None:
    d = await display(api_a)
    token = await controller_token(api_b)
    for malformed in ("", "ABC", "ABCDEFG", "ABC-DE", "ABC DEF", "ÄBCDEF"):
        assert_error(await pair_code(api_b, token, malformed), 400, "HT400")
    await superuser.execute("DELETE FROM hearth_data.pairing_failures")
    for lookalike in ("O", "0", "I", "1", "L", "o", "i", "l"):
        assert_error(await pair_code(api_b, token, d["code"][:5] + lookalike), 400, "HT400")
    await superuser.execute("DELETE FROM hearth_data.pairing_failures")
    unknown = next(c for c in ("ZZZZZZ", "YYYYYY", "XXXXXX") if c != d["code"])
    assert_error(await pair_code(api_b, token, unknown), 404, "HT404")
    # A lower-case, blank-padded code pairs; a second controller then gets 409.
    r = await pair_code(api_b, token, f"  {d['code'].lower()} ")
    assert r.status_code == 200 and r.json()["session_id"] == d["session_id"]
    assert_error(await pair_code(api_a, await controller_token(api_a), d["code"]), 409, "HT409")
    assert_error(await pair_code(api_b, token, d["code"]), 409, "HT409")


async def test_controllers_racing_for_one_code_on_two_instances_one_wins(
    pair: list[Instance], api_a: Api, api_b: Api, superuser: asyncpg.Connection
) -> None:
    d = await display(api_a)
    stream = await sse(pair[0], d)
    try:
        racers = [(api_a if n % 2 else api_b, await controller_token(api_a, f"racer {n}")) for n in range(20)]
        answers = await asyncio.gather(*(pair_code(api, token, d["code"]) for api, token in racers))
        assert sorted(r.status_code for r in answers) == [200] + [409] * 19
        for r in answers:
            if r.status_code == 409:
                assert_error(r, 409, "HT409")
        [winner] = [r.json() for r in answers if r.status_code == 200]
        item = await stream.event()
        assert item["event"] == "paired"
        assert item["data"]["controller_participant_id"] == winner["participant_id"]
    finally:
        await stream.close()
    assert await failures(superuser, "127.0.0.1") == 0, "losing a race is not a failed guess"


async def test_eleventh_attempt_after_ten_failures_is_429_even_with_a_valid_code(
    pair: list[Instance], superuser: asyncpg.Connection
) -> None:
    guesser = await from_address(pair[0], "127.0.0.2")
    neighbour = await from_address(pair[0], "127.0.0.3")
    try:
        valid = await display(guesser)
        gone = await display(guesser)
        # The display left: its code now says 410.
        await superuser.execute("SELECT hearth.leave_session($1)", uuid.UUID(gone["participant_id"]))
        token = await controller_token(guesser)
        unknown = [c for c in ("ZZZZZZ", "YYYYYY", "XXXXXX", "WWWWWW") if c != valid["code"]][:4]
        attempts = [(c, 404) for c in unknown] + [(c, 400) for c in ("ABCDE0", "OOOOOO", "bad")]
        attempts += [(gone["code"], 410)] * 3
        assert len(attempts) == 10
        for code, status in attempts:
            assert (await pair_code(guesser, token, code)).status_code == status
        # Counted against the client's address (as the app sees it), each of them.
        assert await failures(superuser, "127.0.0.2") == 10
        limited = await pair_code(guesser, token, valid["code"])
        assert_error(limited, 429, "HT429")
        assert 1 <= int(limited.headers["retry-after"]) <= 600  # until the first failure is 10 minutes old
        assert_error(await pair_code(guesser, await controller_token(guesser), valid["code"]), 429, "HT429")
        assert await failures(superuser, "127.0.0.2") == 10, "a 429 is not counted again"
        # Through the other instance, from the same address: limited too (the count is in the database).
        other_instance = await from_address(pair[1], "127.0.0.2")
        try:
            assert_error(await pair_code(other_instance, token, valid["code"]), 429, "HT429")
        finally:
            await other_instance.close()
        # Another address is not limited: it pairs the very code.
        r = await pair_code(neighbour, await controller_token(neighbour), valid["code"])
        assert r.status_code == 200 and r.json()["session_id"] == valid["session_id"]
        # Ten minutes later the address may guess again.
        await superuser.execute(
            "UPDATE hearth_data.pairing_failures SET failed_at = failed_at - interval '10 minutes'"
            " WHERE client_key = '127.0.0.2'"
        )
        fresh = await display(neighbour)
        r = await pair_code(guesser, token, fresh["code"])
        assert r.status_code == 200 and r.json()["session_id"] == fresh["session_id"]
    finally:
        await guesser.close()
        await neighbour.close()


async def test_a_paired_code_is_not_a_failed_guess(
    pair: list[Instance], superuser: asyncpg.Connection
) -> None:
    client = await from_address(pair[1], "127.0.0.4")
    try:
        d = await display(client)
        assert (await pair_code(client, await controller_token(client), d["code"])).status_code == 200
        token = await controller_token(client)
        for _ in range(12):
            assert_error(await pair_code(client, token, d["code"]), 409, "HT409")
        assert await failures(superuser, "127.0.0.4") == 0
        fresh = await display(client)
        r = await pair_code(client, token, fresh["code"])
        assert r.status_code == 200 and r.json()["session_id"] == fresh["session_id"]
    finally:
        await client.close()


# --- presence while waiting ----------------------------------------------------------------------


async def test_a_display_waiting_on_its_stream_stays_present(
    pair: list[Instance], api_a: Api, superuser: asyncpg.Connection
) -> None:
    waiting = await display(api_a, "tv on sse")
    silent = await display(api_a, "tv without a stream")
    pid = uuid.UUID(waiting["participant_id"])
    joined_at = await superuser.fetchval(
        "SELECT joined_at FROM hearth_data.participants WHERE participant_id = $1", pid
    )
    stream = await sse(pair[0], waiting)
    try:
        # The stream's heartbeat moves last_seen_at past the registration (a flush a second).
        deadline = time.monotonic() + GUARD_S
        while True:
            last_seen = await superuser.fetchval(
                "SELECT last_seen_at FROM hearth_data.presence WHERE participant_id = $1", pid
            )
            if last_seen > joined_at:
                break
            assert time.monotonic() < deadline, "the stream never touched the display"
            await asyncio.sleep(0.25)
        # A sweep as it would run a full presence_timeout after that touch: the display on its stream
        # is seen, the one without a stream has timed out (and its pairing session ends).
        swept = await superuser.fetchval(
            "SELECT hearth.sweep_presence("
            " NULL, $1::timestamptz + hearth.get_setting('presence_timeout')::interval)",
            last_seen,
        )
        assert swept >= 1
        present = {
            r["participant_id"]
            for r in await superuser.fetch(
                "SELECT participant_id FROM hearth_data.presence WHERE participant_id = ANY($1::uuid[])",
                [pid, uuid.UUID(silent["participant_id"])],
            )
        }
        assert present == {pid}
        silent_status = await superuser.fetchval(
            "SELECT status FROM hearth_data.sessions WHERE session_id = $1", uuid.UUID(silent["session_id"])
        )
        assert silent_status == "ended"
        # The waiting display can still be paired.
        assert (await pair_code(api_a, await controller_token(api_a), waiting["code"])).status_code == 200
        assert (await stream.event())["event"] == "paired"
    finally:
        await stream.close()


# --- after pairing: signaling over websockets ------------------------------------------------------


async def test_paired_display_and_controller_signal_each_other_across_instances(
    pair: list[Instance], api_a: Api, api_b: Api
) -> None:
    d = await display(api_a)
    r = await pair_code(api_b, await controller_token(api_b), d["code"])
    assert r.status_code == 200
    c = r.json()
    # A participant of another (paired) session, on the display's instance.
    other = await display(api_a, "other tv")
    other_peer = (await pair_code(api_a, await controller_token(api_a), other["code"])).json()

    ws_display = await Ws.open(pair[0], d["token"])
    ws_controller = await Ws.open(pair[1], c["token"])
    ws_other = await Ws.open(pair[0], other["token"])
    try:
        welcome = await ws_display.until_type("welcome")
        assert {(p["participant_id"], p["role"]) for p in welcome["presence"]} == {
            (d["participant_id"], "display"),
            (c["participant_id"], "controller"),
        }
        await ws_controller.until_type("welcome")
        await ws_other.until_type("welcome")

        await ws_controller.send(
            {"type": "signal", "to": d["participant_id"], "kind": "offer", "data": {"sdp": "v=0 offer"}}
        )
        offer = await ws_display.until_type("signal")
        assert (offer["from"], offer["to"], offer["kind"], offer["data"]) == (
            c["participant_id"],
            d["participant_id"],
            "offer",
            {"sdp": "v=0 offer"},
        )
        await ws_display.send(
            {"type": "signal", "to": c["participant_id"], "kind": "answer", "data": {"sdp": "v=0 answer"}}
        )
        answer = await ws_controller.until_type("signal")
        assert (answer["from"], answer["kind"], answer["data"]) == (
            d["participant_id"],
            "answer",
            {"sdp": "v=0 answer"},
        )
        await ws_display.send(
            {"type": "signal", "to": c["participant_id"], "kind": "ice", "data": {"c": "d1"}}
        )
        await ws_controller.send(
            {"type": "signal", "to": d["participant_id"], "kind": "ice", "data": {"c": "c1"}}
        )
        assert (await ws_controller.until_type("signal"))["data"] == {"c": "d1"}
        assert (await ws_display.until_type("signal"))["data"] == {"c": "c1"}

        # A signal to a participant of another session: an error frame, the socket stays open.
        await ws_controller.send(
            {"type": "signal", "to": other["participant_id"], "kind": "offer", "data": {"sdp": "stray"}}
        )
        error = await ws_controller.until_type("error")
        assert error["code"] == "HT403"
        await ws_controller.send(
            {"type": "signal", "to": other_peer["participant_id"], "kind": "ice", "data": {"c": "stray"}}
        )
        assert (await ws_controller.until_type("error"))["code"] == "HT403"

        # Sentinels: a message in each session, committed after every signal. The instance relays in
        # commit order, so a signal that had reached the wrong socket would be there by now.
        await ws_controller.send({"type": "message", "body": {"n": "done"}})
        await ws_other.send({"type": "message", "body": {"n": "other done"}})
        for ws in (ws_display, ws_controller):
            assert (await ws.until_type("message"))["body"] == {"n": "done"}
        assert (await ws_other.until_type("message"))["body"] == {"n": "other done"}

        assert ws_other.events("signal") == []
        assert [(s["kind"], s["from"]) for s in ws_display.events("signal")] == [
            ("offer", c["participant_id"]),
            ("ice", c["participant_id"]),
        ]
        assert [(s["kind"], s["from"]) for s in ws_controller.events("signal")] == [
            ("answer", d["participant_id"]),
            ("ice", d["participant_id"]),
        ]
        assert all(s["to"] == d["participant_id"] for s in ws_display.events("signal"))
        assert all(s["to"] == c["participant_id"] for s in ws_controller.events("signal"))
    finally:
        for ws in (ws_display, ws_controller, ws_other):
            await ws.close()


async def test_parallel_wrong_guesses_cannot_outrun_the_limit(
    pair: list[Instance], superuser: asyncpg.Connection
) -> None:
    """30 wrong guesses at once from one address: only pairing_max_failures (10) are tried, the rest 429."""
    guesser = await from_address(pair[0], "127.0.0.5")
    try:
        token = await controller_token(guesser)
        answers = await asyncio.gather(*(pair_code(guesser, token, "ZZZZZZ") for _ in range(30)))
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [404] * 10 + [429] * 20, statuses
        assert await failures(superuser, "127.0.0.5") == 10
    finally:
        await guesser.close()


async def test_parallel_wrong_guesses_on_two_instances_cannot_outrun_the_limit(
    pair: list[Instance], superuser: asyncpg.Connection
) -> None:
    """The same, through both instances at once: one address's attempts are serialized across every
    instance (before, each instance ran one at a time, so two ran at once and more than 10 were tried)."""
    guessers = [await from_address(instance, "127.0.0.6") for instance in pair]
    try:
        tokens_ = [await controller_token(g) for g in guessers]
        answers = await asyncio.gather(
            *(pair_code(g, t, "ZZZZZZ") for _ in range(20) for g, t in zip(guessers, tokens_, strict=True))
        )
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [404] * 10 + [429] * 30, statuses
        assert await failures(superuser, "127.0.0.6") == 10
    finally:
        for g in guessers:
            await g.close()


async def join_code(api: Api, token: str, code: str) -> httpx.Response:
    return await api.http.post("/v1/join", json={"code": code}, headers=bearer(token))


async def test_join_by_code_cannot_take_a_waiting_display(
    pair: list[Instance], superuser: asyncpg.Connection
) -> None:
    """The audit's pairing_bypass.py: POST /v1/join seated an intruder in a display's pairing session (no
    failure counted, no session.paired) and the real controller then got 409. A display's code now
    answers as an unknown code does, and counts as a failed guess."""
    intruder = await from_address(pair[0], "127.0.0.7")
    try:
        d = await display(intruder)
        unknown = await join_code(intruder, await controller_token(intruder), "ZZZZZZ")
        taken = await join_code(intruder, await controller_token(intruder), d["code"])
        assert_error(taken, 404, "HT404")
        as_unknown = unknown.json()["error"]["message"].replace("ZZZZZZ", d["code"])
        assert taken.json()["error"]["message"] == as_unknown
        assert await failures(superuser, "127.0.0.7") == 2
        r = await pair_code(intruder, await controller_token(intruder, "real"), d["code"])
        assert r.status_code == 200, r.text
    finally:
        await intruder.close()


async def test_failed_join_codes_count_against_the_pairing_limit(
    pair: list[Instance], superuser: asyncpg.Connection
) -> None:
    """A room's code is a secret too: wrong codes on POST /v1/join count against the same per-address
    limit as pairing, so guessing cannot move from one route to the other."""
    guesser = await from_address(pair[1], "127.0.0.8")
    try:
        _, owner = await guesser.identity("owner")
        room = await guesser.session(owner)
        token = await controller_token(guesser)
        for _ in range(5):
            assert_error(await join_code(guesser, token, "ZZZZZZ"), 404, "HT404")
            assert_error(await pair_code(guesser, token, "ZZZZZZ"), 404, "HT404")
        assert await failures(superuser, "127.0.0.8") == 10
        assert_error(await join_code(guesser, token, room["code"]), 429, "HT429")
        assert_error(await pair_code(guesser, token, "ZZZZZZ"), 429, "HT429")
        assert await failures(superuser, "127.0.0.8") == 10
    finally:
        await guesser.close()


async def test_the_database_lock_alone_serializes_one_address(
    app_db: str, superuser: asyncpg.Connection
) -> None:
    """30 attempts at once from one address through 30 pools, as if through 30 instances, without the
    per-instance queue (app.pairing's, around the call layer): the advisory lock on the address in the
    database is what lets exactly pairing_max_failures (10) be tried."""
    from app.db import Database
    from app.metrics import Metrics

    identity_id = await superuser.fetchval("SELECT hearth.create_identity('guesser')")
    pools = [await Database.open(app_db, Metrics(), min_size=1, max_size=1) for _ in range(30)]
    try:

        async def attempt(db: Database) -> str:
            try:
                await db.pair_controller("ZZZZZZ", identity_id, "10.9.9.9")
            except HearthError as exc:
                return exc.code
            return "paired"

        codes = sorted(await asyncio.gather(*(attempt(db) for db in pools)))
    finally:
        for db in pools:
            await db.close()
    assert codes == ["HT404"] * 10 + ["HT429"] * 20, codes
    assert await failures(superuser, "10.9.9.9") == 10
