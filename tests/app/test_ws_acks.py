"""Acknowledgements (SPEC section 6): a message or signal frame with a `ref` gets an `ack` with its
event's seq once committed, or an `error` carrying the same ref; frames without ref behave as before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from tests.app.harness import Api, Instance, Ws

pytestmark = pytest.mark.usefixtures("no_server_tracebacks")


@pytest.fixture
async def api(pair: list[Instance]) -> AsyncIterator[Api]:
    client = Api(pair[0])
    yield client
    await client.close()


async def _members(api: Api, *names: str) -> list[tuple[str, str]]:
    """A room with one joined member per name: [(participant_id, session token)]."""
    _, owner_token = await api.identity("owner")
    session_id = (await api.session(owner_token))["session_id"]
    members = []
    for name in names:
        _, token = await api.identity(name)
        members.append(await api.join(session_id, token))
    return members


async def _open(instance: Instance, token: str) -> Ws:
    ws = await Ws.open(instance, token)
    assert (await ws.next())["type"] == "welcome"
    return ws


async def _answer(ws: Ws) -> dict[str, Any]:
    """The next frame that is not an event."""
    return await ws.until(lambda f: f["type"] in ("ack", "error", "pong"))


async def test_a_message_with_a_ref_is_acked_with_its_seq(pair: list[Instance], api: Api) -> None:
    (_, ann), (_, bob) = await _members(api, "ann", "bob")
    ws_ann, ws_bob = await _open(pair[0], ann), await _open(pair[1], bob)
    await ws_ann.send({"type": "message", "body": {"text": "hi"}, "ref": "m-1"})
    ack = await _answer(ws_ann)
    assert set(ack) == {"type", "ref", "seq"} and ack["type"] == "ack" and ack["ref"] == "m-1"
    # The seq is the event's: the same the other participant receives.
    assert (await ws_bob.until_type("message"))["seq"] == ack["seq"]
    assert (await ws_ann.until_type("message"))["seq"] == ack["seq"]
    await ws_ann.close()
    await ws_bob.close()


async def test_a_signal_with_a_ref_is_acked(pair: list[Instance], api: Api) -> None:
    (_, ann), (bob_pid, bob) = await _members(api, "ann", "bob")
    ws_ann, ws_bob = await _open(pair[0], ann), await _open(pair[1], bob)
    ref = "x" * 64
    await ws_ann.send({"type": "signal", "to": bob_pid, "kind": "offer", "data": {"sdp": "v=0"}, "ref": ref})
    ack = await _answer(ws_ann)
    assert ack == {"type": "ack", "ref": ref, "seq": ack["seq"]}
    assert (await ws_bob.until_type("signal"))["seq"] == ack["seq"]
    await ws_ann.close()
    await ws_bob.close()


async def test_frames_without_a_ref_get_no_ack(pair: list[Instance], api: Api) -> None:
    [(_, ann)] = await _members(api, "ann")
    ws = await _open(pair[0], ann)
    await ws.send({"type": "message", "body": {"n": 1}})
    await ws.until_type("message")
    await ws.send({"type": "ping"})
    assert await _answer(ws) == {"type": "pong"}
    assert [f for f in ws.frames if f["type"] == "ack"] == []
    await ws.close()


async def test_refused_frames_answer_an_error_with_their_ref(pair: list[Instance], api: Api) -> None:
    [(_, ann)] = await _members(api, "ann")
    ws = await _open(pair[0], ann)
    cases = [
        ({"type": "message", "body": "not an object", "ref": "bad-body"}, "HT400"),
        ({"type": "message", "body": {}, "extra": 1, "ref": "extra"}, "HT400"),
        (
            {"type": "signal", "to": "00000000-0000-4000-8000-000000000000", "kind": "ice", "data": {},
             "ref": "nobody"},
            "HT404",
        ),
    ]
    for frame, code in cases:
        await ws.send(frame)
        error = await _answer(ws)
        assert error["type"] == "error" and error["code"] == code and error["ref"] == frame["ref"], error
        assert set(error) == {"type", "code", "message", "ref"}
    await ws.close()


async def test_an_identity_token_gets_its_403_with_the_ref(pair: list[Instance], api: Api) -> None:
    _, token = await api.identity("solo")
    ws = await _open(pair[0], token)
    await ws.send({"type": "message", "body": {}, "ref": "r"})
    error = await _answer(ws)
    assert (error["type"], error["code"], error["ref"]) == ("error", "HT403", "r")
    await ws.close()


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "message", "body": {}, "ref": 7},
        {"type": "message", "body": {}, "ref": None},
        {"type": "message", "body": {}, "ref": "x" * 65},
        {"type": "ping", "ref": "p"},
    ],
    ids=["number", "null", "too long", "on a ping"],
)
async def test_a_malformed_ref_is_a_bad_frame(pair: list[Instance], api: Api, frame: dict[str, Any]) -> None:
    [(_, ann)] = await _members(api, "ann")
    ws = await _open(pair[0], ann)
    await ws.send(frame)
    error = await _answer(ws)
    assert error["type"] == "error" and error["code"] == "HT400" and "ref" not in error, error
    await ws.send({"type": "ping"})
    assert await _answer(ws) == {"type": "pong"}
    assert ws.events("message") == []  # nothing was posted
    await ws.close()


async def test_a_database_refusal_is_an_ht503_with_the_ref(
    pair: list[Instance], api: Api, sql: asyncpg.Connection
) -> None:
    [(_, ann)] = await _members(api, "ann")
    ws = await _open(pair[0], ann)
    # The batch function, and post_message that the batcher falls back to when a batch is refused whole.
    functions = "hearth.post_messages(uuid, uuid[], jsonb[]), hearth.post_message(uuid, jsonb)"
    await sql.execute(f"REVOKE EXECUTE ON FUNCTION {functions} FROM hearth_app")
    try:
        await ws.send({"type": "message", "body": {"n": 1}, "ref": "while-down"})
        error = await _answer(ws)
    finally:
        await sql.execute(f"GRANT EXECUTE ON FUNCTION {functions} TO hearth_app")
    assert (error["type"], error["code"], error["ref"]) == ("error", "HT503", "while-down")
    await ws.send({"type": "message", "body": {"n": 2}, "ref": "retried"})
    assert (await _answer(ws))["ref"] == "retried"
    await ws.close()
