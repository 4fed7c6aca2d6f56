"""The websocket of SPEC section 6 under bad input and abuse: error frames that keep the connection,
the close codes, targeted signals, slow consumers. After each abuse the instance still serves a fresh
client."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app import tokens
from tests.app.harness import SECRET, Api, Instance, Ws, bearer

OTHER_SECRET = "another-secret-that-is-long-enough-0123456789"
LIMIT = 64 * 1024


@pytest.fixture
def instance(pair: list[Instance]) -> Instance:
    return pair[0]


@pytest.fixture
async def api(instance: Instance) -> AsyncIterator[Api]:
    client = Api(instance)
    yield client
    await client.close()


pytestmark = pytest.mark.usefixtures("no_server_tracebacks")


class Member:
    def __init__(self, identity_id: str, participant_id: str, token: str) -> None:
        self.identity_id = identity_id
        self.participant_id = participant_id
        self.token = token


async def room(api: Api, *names: str, **session: Any) -> tuple[str, list[Member]]:
    """A new room and one joined member per name."""
    _, owner_token = await api.identity("owner")
    sid = (await api.session(owner_token, **session))["session_id"]
    members = []
    for name in names:
        identity_id, token = await api.identity(name)
        pid, session_token = await api.join(sid, token)
        members.append(Member(identity_id, pid, session_token))
    return sid, members


async def opened(instance: Instance, token: str, after: int | None = None) -> Ws:
    """A socket past its welcome frame."""
    ws = await Ws.open(instance, token, after)
    assert (await ws.next())["type"] == "welcome"
    return ws


async def assert_serves(instance: Instance) -> None:
    """The instance still answers a fresh client: HTTP, and a websocket's ping."""
    async with httpx.AsyncClient(base_url=instance.base_url, timeout=10) as http:
        r = await http.post("/v1/identities", json={})
        assert r.status_code == 201
        assert (await http.get("/readyz")).json()["ready"] is True
    ws = await opened(instance, r.json()["token"])
    await ws.send({"type": "ping"})
    assert await ws.next() == {"type": "pong"}
    await ws.close()


async def expect_error(ws: Ws, code: str) -> dict[str, Any]:
    frame = await ws.next()
    assert frame["type"] == "error", frame
    assert set(frame) == {"type", "code", "message"}, frame
    assert frame["code"] == code, frame
    assert isinstance(frame["message"], str) and frame["message"]
    return frame


async def still_open(ws: Ws) -> None:
    await ws.send({"type": "ping"})
    assert await ws.until_type("pong") == {"type": "pong"}


async def close_code_for(instance: Instance, query: str) -> int | None:
    """The close code the server sends right after the handshake for this query string."""
    async with connect(f"{instance.ws_url}{query}", open_timeout=10) as conn:
        try:
            frame = await asyncio.wait_for(conn.recv(), 5)
        except ConnectionClosed:
            return conn.close_code
    raise AssertionError(f"got a frame instead of a close: {frame!r}")


async def metric(instance: Instance, name: str) -> float:
    async with httpx.AsyncClient(base_url=instance.base_url, timeout=10) as http:
        text = (await http.get("/metrics")).text
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


# Welcome ------------------------------------------------------------------------------------------


async def test_welcome_for_a_session_token(instance: Instance, api: Api) -> None:
    sid, (ann, bob) = await room(api, "ann", "bob")
    ws = await Ws.open(instance, bob.token)
    welcome = await ws.next()
    assert welcome["type"] == "welcome"
    assert {"session_id", "participant_id", "presence", "seq", "heartbeat_interval_s"} <= set(welcome)
    assert welcome["session_id"] == sid
    assert welcome["participant_id"] == bob.participant_id
    assert welcome["identity_id"] == bob.identity_id
    assert welcome["heartbeat_interval_s"] == 30
    assert isinstance(welcome["seq"], int) and welcome["seq"] >= 2  # two presence.join events
    presence = welcome["presence"]
    for entry in presence:
        assert set(entry) == {"participant_id", "identity_id", "role", "display_name", "joined_at"}
        datetime.fromisoformat(entry["joined_at"])
    assert [(p["participant_id"], p["identity_id"], p["role"], p["display_name"]) for p in presence] == [
        (ann.participant_id, ann.identity_id, "member", "ann"),
        (bob.participant_id, bob.identity_id, "member", "bob"),
    ]
    await still_open(ws)
    await ws.close()


async def test_welcome_for_an_identity_token(instance: Instance, api: Api) -> None:
    identity_id, token = await api.identity("ida")
    ws = await Ws.open(instance, token)
    welcome = await ws.next()
    assert welcome["type"] == "welcome"
    assert welcome["identity_id"] == identity_id
    assert isinstance(welcome["seq"], int) and welcome["seq"] >= 0
    assert "session_id" not in welcome and "presence" not in welcome
    await ws.send({"type": "ping"})
    assert await ws.next() == {"type": "pong"}
    await ws.close()


async def test_ping_pong_and_messages_reach_the_session(instance: Instance, api: Api) -> None:
    _, (ann, bob) = await room(api, "ann", "bob")
    ws_ann = await opened(instance, ann.token)
    ws_bob = await opened(instance, bob.token)
    for _ in range(3):
        await ws_ann.send({"type": "ping"})
        assert await ws_ann.next() == {"type": "pong"}
    await ws_ann.send({"type": "message", "body": {"text": "hi 👋", "nested": {"list": [1, 2.5, None]}}})
    message = await ws_bob.until_type("message")
    assert message["participant_id"] == ann.participant_id
    assert message["body"] == {"text": "hi 👋", "nested": {"list": [1, 2.5, None]}}
    await ws_ann.close()
    await ws_bob.close()


# Bad frames: an error frame, and the connection stays --------------------------------------------

BAD_FRAMES = {
    "not json": "hello",
    "truncated json": '{"type": "ping"',
    "array": '[{"type": "ping"}]',
    "string": '"ping"',
    "number": "42",
    "null": "null",
    "no type": "{}",
    "type not a string": '{"type": 5}',
    "unknown type": '{"type": "subscribe"}',
    "welcome from the client": '{"type": "welcome"}',
    "message without body": '{"type": "message"}',
    "message body a string": '{"type": "message", "body": "hi"}',
    "message body an array": '{"type": "message", "body": [1]}',
    "message body null": '{"type": "message", "body": null}',
    "message extra field": '{"type": "message", "body": {}, "to": "x"}',
    "message body too big": json.dumps({"type": "message", "body": {"t": "x" * 40000}}),
    "signal bad kind": '{"type": "signal", "to": "%s", "kind": "hello", "data": {}}',
    "signal kind missing": '{"type": "signal", "to": "%s", "data": {}}',
    "signal missing to": '{"type": "signal", "kind": "offer", "data": {}}',
    "signal to null": '{"type": "signal", "to": null, "kind": "offer", "data": {}}',
    "signal to not a uuid": '{"type": "signal", "to": "bob", "kind": "offer", "data": {}}',
    "signal to a number": '{"type": "signal", "to": 12, "kind": "offer", "data": {}}',
    "signal data not an object": '{"type": "signal", "to": "%s", "kind": "ice", "data": "candidate"}',
    "signal extra field": '{"type": "signal", "to": "%s", "kind": "ice", "data": {}, "from": "x"}',
    "signal to itself": '{"type": "signal", "to": "%(self)s", "kind": "offer", "data": {}}',
    # What PostgreSQL cannot store, and JSON that is not JSON.
    "NaN in body": '{"type": "message", "body": {"x": NaN}}',
    "Infinity in body": '{"type": "message", "body": {"x": Infinity}}',
    "huge float in body": '{"type": "message", "body": {"x": 1e999}}',
    "NUL in body": '{"type": "message", "body": {"x": "a\\u0000b"}}',
    "NUL in key": '{"type": "message", "body": {"a\\u0000b": 1}}',
    "lone surrogate in body": '{"type": "message", "body": {"x": "\\ud800"}}',
    "NUL in signal data": '{"type": "signal", "to": "%s", "kind": "ice", "data": {"c": "\\u0000"}}',
    "deep nesting": '{"type": "message", "body": ' + '{"a": ' * 200 + "1" + "}" * 201,
    "deeper than the parser": '{"type": "message", "body": ' + "[" * 20000 + "]" * 20000 + "}",
    "NUL in type": '{"type": "pi\\u0000ng"}',
}


@pytest.mark.parametrize("name", list(BAD_FRAMES))
async def test_bad_frame_gets_an_error_frame(instance: Instance, api: Api, name: str) -> None:
    _, (ann, bob) = await room(api, "ann", "bob")
    ws = await opened(instance, ann.token)
    text = BAD_FRAMES[name]
    if "%(self)s" in text:
        text = text % {"self": ann.participant_id}
    elif "%s" in text:
        text = text % bob.participant_id
    await ws.conn.send(text)
    await expect_error(ws, "HT400")
    await still_open(ws)
    await ws.close()


async def test_binary_frame_gets_an_error_frame(instance: Instance, api: Api) -> None:
    _, token = await api.identity()
    ws = await opened(instance, token)
    await ws.conn.send(b'{"type": "ping"}')
    await expect_error(ws, "HT400")
    await still_open(ws)
    await ws.close()


async def test_signal_to_an_unknown_participant(instance: Instance, api: Api) -> None:
    _, (ann,) = await room(api, "ann")
    ws = await opened(instance, ann.token)
    await ws.send({"type": "signal", "to": str(uuid.uuid4()), "kind": "offer", "data": {}})
    await expect_error(ws, "HT404")
    await still_open(ws)
    await ws.close()


async def test_bad_frames_spread_out_are_tolerated(instance: Instance, api: Api) -> None:
    """Five bad frames, then good ones: still open. (Only more than five within 10 s closes.)"""
    _, (ann,) = await room(api, "ann")
    ws = await opened(instance, ann.token)
    for _ in range(5):
        await ws.conn.send("nope")
        await expect_error(ws, "HT400")
    for _ in range(20):
        await still_open(ws)
    await ws.close()


# Signals go to their target only -------------------------------------------------------------------


async def test_signal_reaches_only_its_target(instance: Instance, pair: list[Instance], api: Api) -> None:
    _, (ann, bob, cat) = await room(api, "ann", "bob", "cat")
    ws_ann = await opened(instance, ann.token)
    ws_bob = await opened(instance, bob.token)
    ws_cat = await opened(pair[1], cat.token)  # the target on the other instance

    data = {"sdp": "v=0 offer", "n": 1}
    await ws_ann.send({"type": "signal", "to": cat.participant_id, "kind": "offer", "data": data})
    signal = await ws_cat.until_type("signal")
    assert signal["from"] == ann.participant_id
    assert signal["to"] == cat.participant_id
    assert signal["kind"] == "offer"
    assert signal["data"] == data
    assert isinstance(signal["seq"], int)

    # A later event in the same stream: whoever got it without the signal will never get the signal.
    await ws_ann.send({"type": "message", "body": {"after": "signal"}})
    for ws in (ws_ann, ws_bob, ws_cat):
        message = await ws.until_type("message")
        assert message["seq"] > signal["seq"]
    assert ws_ann.events("signal") == []
    assert ws_bob.events("signal") == []
    assert [e["seq"] for e in ws_cat.events("signal")] == [signal["seq"]]

    # Replies go back the same way.
    await ws_cat.send({"type": "signal", "to": ann.participant_id, "kind": "answer", "data": {"sdp": "a"}})
    answer = await ws_ann.until_type("signal")
    assert (answer["from"], answer["kind"]) == (cat.participant_id, "answer")
    for ws in (ws_ann, ws_bob, ws_cat):
        await ws.close()


async def test_signal_across_sessions_is_forbidden(instance: Instance, api: Api) -> None:
    _, (ann,) = await room(api, "ann")
    _, (dan, eve) = await room(api, "dan", "eve")
    ws_ann = await opened(instance, ann.token)
    ws_dan = await opened(instance, dan.token)

    await ws_ann.send({"type": "signal", "to": dan.participant_id, "kind": "offer", "data": {"sdp": "x"}})
    await expect_error(ws_ann, "HT403")
    await still_open(ws_ann)

    # Dan's session goes on; nothing from Ann arrived before Eve's later message, so it never will.
    ws_eve = await opened(instance, eve.token)
    await ws_eve.send({"type": "message", "body": {"from": "eve"}})
    message = await ws_dan.until_type("message")
    assert message["participant_id"] == eve.participant_id
    assert ws_dan.events("signal") == []
    for ws in (ws_ann, ws_dan, ws_eve):
        await ws.close()


async def test_identity_socket_cannot_send_to_sessions(instance: Instance, api: Api) -> None:
    _, (ann,) = await room(api, "ann")
    _, token = await api.identity()
    ws_ann = await opened(instance, ann.token)
    ws = await opened(instance, token)
    await ws.send({"type": "message", "body": {"text": "let me in"}})
    await expect_error(ws, "HT403")
    await ws.send({"type": "signal", "to": ann.participant_id, "kind": "offer", "data": {}})
    await expect_error(ws, "HT403")
    await still_open(ws)
    # Nothing reached the session: Ann's own next message is the first message she sees.
    await ws_ann.send({"type": "message", "body": {"text": "mine"}})
    assert (await ws_ann.until_type("message"))["participant_id"] == ann.participant_id
    assert ws_ann.events("signal") == []
    await ws.close()
    await ws_ann.close()


# Closing abusers ---------------------------------------------------------------------------------


async def test_repeated_bad_frames_close_with_1008(instance: Instance, api: Api) -> None:
    _, (ann,) = await room(api, "ann")
    ws = await opened(instance, ann.token)
    for _ in range(6):
        await ws.conn.send("[not an object]")
    assert await ws.closed() == 1008
    errors = [f for f in ws.frames if f.get("type") == "error"]
    assert len(errors) == 6 and {e["code"] for e in errors} == {"HT400"}
    await assert_serves(instance)


async def test_oversize_frame_closes_with_1009(instance: Instance, api: Api) -> None:
    _, token = await api.identity()
    ws = await opened(instance, token)
    # Exactly 64 KiB is allowed (a ping ignores extra fields).
    padding = LIMIT - len(json.dumps({"type": "ping", "pad": ""}))
    exact = json.dumps({"type": "ping", "pad": "x" * padding})
    assert len(exact) == LIMIT
    await ws.conn.send(exact)
    assert await ws.next() == {"type": "pong"}
    await ws.conn.send(exact + " ")
    assert await ws.closed() == 1009
    await assert_serves(instance)


async def test_flood_closes_with_4429(instance: Instance, api: Api) -> None:
    _, (ann,) = await room(api, "ann")
    ws = await opened(instance, ann.token)
    sent = 0
    try:
        for _ in range(600):
            await ws.conn.send('{"type":"ping"}')
            sent += 1
    except ConnectionClosed:
        pass
    assert await ws.closed() == 4429
    pongs = [f for f in ws.frames if f == {"type": "pong"}]
    assert 200 <= len(pongs) < sent  # the burst of 200 is answered, the flood is not
    await assert_serves(instance)


@pytest.mark.parametrize(
    "label",
    [
        "none",
        "empty",
        "garbage",
        "expired",
        "other secret",
        "alg none",
        "sub not a uuid",
        "sid a number",
        "truncated",
    ],
)
async def test_bad_tokens_close_with_4401(instance: Instance, api: Api, label: str) -> None:
    identity_id, token = await api.identity()
    claims = tokens.Claims(uuid.UUID(identity_id))
    now = time.time()
    query = {
        "none": "",
        "empty": "?token=",
        "garbage": "?token=garbage",
        "expired": "?token=" + tokens.issue(SECRET, claims, now=now - 100, ttl_s=10),
        "other secret": "?token=" + tokens.issue(OTHER_SECRET, claims),
        "alg none": "?token="
        + jwt.encode({"sub": identity_id, "exp": int(now) + 60}, None, algorithm="none"),
        "sub not a uuid": "?token="
        + jwt.encode({"sub": "ann", "exp": int(now) + 60}, SECRET, algorithm="HS256"),
        "sid a number": "?token="
        + jwt.encode(
            {"sub": identity_id, "sid": 7, "pid": 8, "exp": int(now) + 60}, SECRET, algorithm="HS256"
        ),
        "truncated": "?token=" + token[:-5],
    }[label]
    assert await close_code_for(instance, query) == 4401
    await assert_serves(instance)


@pytest.mark.parametrize("after", ["abc", "-1", "1.5", "", "1e3", "9" * 30, "%20"])
async def test_bad_after_closes_with_4400(instance: Instance, api: Api, after: str) -> None:
    _, token = await api.identity()
    assert await close_code_for(instance, f"?token={token}&after={after}") == 4400
    await assert_serves(instance)


async def test_expired_session_closes_with_4410(
    instance: Instance, api: Api, superuser: asyncpg.Connection
) -> None:
    sid, (ann, bob) = await room(api, "ann", "bob", ttl_s=1)
    ws_bob = await opened(instance, bob.token)
    expired = await superuser.fetchval("SELECT hearth.expire_sessions(now() + interval '1 minute')")
    assert expired >= 1
    # Live: the open socket sees the expiry and is closed.
    assert await ws_bob.closed() == 4410
    assert [e["type"] for e in ws_bob.events() if e["type"].startswith("session.")] == ["session.expired"]
    # Later: a socket with a token for the expired session is refused.
    assert await close_code_for(instance, f"?token={ann.token}") == 4410
    state = await superuser.fetchval("SELECT status FROM hearth_data.sessions WHERE session_id = $1", sid)
    assert state == "expired"
    await assert_serves(instance)


async def test_token_of_a_participant_who_left_closes_with_4404(instance: Instance, api: Api) -> None:
    sid, (ann, bob) = await room(api, "ann", "bob")
    ws_ann = await opened(instance, ann.token)
    r = await api.http.post(f"/v1/sessions/{sid}/leave", headers=bearer(bob.token))
    assert r.json() == {"left": True}
    assert await close_code_for(instance, f"?token={bob.token}") == 4404
    leave = await ws_ann.until_type("presence.leave")
    assert leave["participant_id"] == bob.participant_id
    await still_open(ws_ann)
    await ws_ann.close()
    await assert_serves(instance)


async def test_token_for_an_unknown_session_closes(instance: Instance, api: Api) -> None:
    identity_id, _ = await api.identity()
    forged = tokens.issue(SECRET, tokens.Claims(uuid.UUID(identity_id), uuid.uuid4(), uuid.uuid4()))
    assert await close_code_for(instance, f"?token={forged}") == 4404
    await assert_serves(instance)


# Slow consumers ----------------------------------------------------------------------------------


def _small_buffer_socket(instance: Instance) -> socket.socket:
    """A client socket with a tiny receive buffer, so the server's queue (not the kernel) fills up."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", instance.port))
    sock.setblocking(False)
    return sock


async def test_slow_consumer_is_closed_and_others_keep_receiving(
    instance: Instance, api: Api, superuser: asyncpg.Connection
) -> None:
    _, (slow, fast, poster) = await room(api, "slow", "fast", "poster")
    closes_before = await metric(instance, "hearth_ws_slow_consumer_closes_total")
    connections_before = await metric(instance, "hearth_ws_connections")

    url = f"{instance.ws_url}?token={slow.token}"
    # No permessage-deflate: the padding would compress to nothing and never fill a buffer.
    stalled = await connect(
        url, sock=_small_buffer_socket(instance), max_queue=1, max_size=2**20, compression=None
    )
    assert json.loads(await stalled.recv())["type"] == "welcome"
    ws_fast = await opened(instance, fast.token)

    total = 6000  # ~4 KB each: 24 MB, far past what socket buffers hold and the server may queue
    received: list[int] = []

    async def read_fast() -> None:
        while len(received) < total:
            frame = await ws_fast.next(timeout=30)
            if frame["type"] == "message":
                received.append(frame["body"]["n"])

    reader = asyncio.create_task(read_fast())
    for start in range(0, total, 500):
        await superuser.execute(
            "SELECT hearth.post_message($1::uuid, jsonb_build_object('n', g, 'pad', repeat('x', 4000)))"
            " FROM generate_series($2::int, $3::int) g",
            uuid.UUID(poster.participant_id),
            start,
            start + 499,
        )
    await asyncio.wait_for(reader, 60)
    assert received == list(range(total))

    # The stalled client was dropped by the server while it was not reading...
    deadline = time.monotonic() + 30
    while await metric(instance, "hearth_ws_slow_consumer_closes_total") < closes_before + 1:
        assert time.monotonic() < deadline, "the stalled client was never closed"
        await asyncio.sleep(0.1)
    # ...and when it reads again it finds part of the stream, then close 1013.
    got = 0
    try:
        while True:
            frame = json.loads(await asyncio.wait_for(stalled.recv(), 30))
            assert frame["type"] == "message"
            got += 1
    except ConnectionClosed:
        pass
    # 1013 if the close frame got through before the server gave up on the blocked socket, else the
    # server dropped the connection (1006): either way it is gone from the server.
    assert stalled.close_code in (1013, 1006)
    assert got < total
    deadline = time.monotonic() + 30
    while await metric(instance, "hearth_ws_connections") > connections_before + 1:  # + the fast one
        assert time.monotonic() < deadline, "the stalled client's connection was never torn down"
        await asyncio.sleep(0.2)

    # The fast client is still connected and live.
    await still_open(ws_fast)
    await ws_fast.close()
    await assert_serves(instance)
