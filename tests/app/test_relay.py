"""Two instances on one database: presence, messages and signals cross between them."""

from __future__ import annotations

import uuid

import asyncpg

from tests.app.harness import Api, Instance, Ws


async def test_presence_and_messages_cross_instances(pair: list[Instance], api_a: Api, api_b: Api) -> None:
    _alice, alice_token = await api_a.identity("alice")
    _bob, bob_token = await api_b.identity("bob")
    session = await api_a.session(alice_token, name="room")
    alice_pid, alice_session_token = await api_a.join(session["session_id"], alice_token)

    ws_a = await Ws.open(pair[0], alice_session_token)
    welcome = await ws_a.next()
    assert welcome["type"] == "welcome"
    assert welcome["participant_id"] == alice_pid
    assert [p["participant_id"] for p in welcome["presence"]] == [alice_pid]

    bob_pid, bob_session_token = await api_b.join(session["session_id"], bob_token)
    ws_b = await Ws.open(pair[1], bob_session_token)
    assert (await ws_b.next())["type"] == "welcome"

    join = await ws_a.until_type("presence.join")
    assert join["participant_id"] == bob_pid and join["display_name"] == "bob"
    await ws_b.send({"type": "message", "body": {"text": "hello from b"}})
    message = await ws_a.until_type("message")
    assert message["body"] == {"text": "hello from b"} and message["participant_id"] == bob_pid

    r = await api_b.http.post(
        f"/v1/sessions/{session['session_id']}/leave",
        headers={"Authorization": f"Bearer {bob_session_token}"},
    )
    assert r.json() == {"left": True}
    leave = await ws_a.until_type("presence.leave")
    assert leave["participant_id"] == bob_pid and leave["reason"] == "left"
    assert [e["seq"] for e in ws_a.events()] == sorted(e["seq"] for e in ws_a.events())
    await ws_a.close()
    await ws_b.close()
    # Tokens travel in websocket URLs; they never reach the logs.
    for instance in pair:
        assert alice_session_token not in instance.log() and bob_session_token not in instance.log()
        assert '"WebSocket /v1/ws" [accepted]' in instance.log()  # logged without its query string


async def test_signal_reaches_only_its_target_across_instances(
    pair: list[Instance], api_a: Api, api_b: Api
) -> None:
    _, owner = await api_a.identity("owner")
    session = await api_a.session(owner)
    joined = []
    for name in ("target", "bystander", "sender"):
        _, token = await api_a.identity(name)
        joined.append(await api_a.join(session["session_id"], token))
    (target_pid, target_token), (_, bystander_token), (sender_pid, sender_token) = joined
    target = await Ws.open(pair[0], target_token)
    bystander = await Ws.open(pair[0], bystander_token)
    sender = await Ws.open(pair[1], sender_token)
    for ws in (target, bystander, sender):
        await ws.until_type("welcome")

    sdp = "v=0\r\n" + "a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host\r\n" * 400  # ~20 KB
    await sender.send({"type": "signal", "to": target_pid, "kind": "offer", "data": {"sdp": sdp}})
    await sender.send({"type": "signal", "to": target_pid, "kind": "ice", "data": {"candidate": "c1"}})
    await sender.send({"type": "message", "body": {"text": "after the signals"}})

    offer = await target.until_type("signal")
    assert offer["from"] == sender_pid and offer["to"] == target_pid and offer["kind"] == "offer"
    assert offer["data"]["sdp"] == sdp, "an SDP larger than a NOTIFY payload arrives whole"
    ice = await target.until_type("signal")
    assert ice["kind"] == "ice" and ice["data"] == {"candidate": "c1"}
    await target.until_type("message")
    await bystander.until_type("message")
    assert bystander.events("signal") == []
    assert sender.events("signal") == []
    # The bystander skipped the two signal seqs without treating them as a gap.
    seqs = [e["seq"] for e in bystander.events()]
    assert seqs == sorted(set(seqs))
    for ws in (target, bystander, sender):
        await ws.close()


async def test_a_live_frame_and_its_replay_are_the_same_text(
    pair: list[Instance], api_a: Api, api_b: Api, superuser: asyncpg.Connection
) -> None:
    # A frame reaches a client live or replayed (a resume with after): both come from the events
    # table, so the same event reads the same, timestamps included (PostgreSQL writes no trailing
    # zeros in a fraction; a frame rebuilt elsewhere once carried six digits).
    _alice, alice_token = await api_a.identity("alice")
    session = await api_a.session(alice_token, name="room")
    _pid, session_token = await api_a.join(session["session_id"], alice_token)
    live_ws = await Ws.open(pair[0], session_token)
    welcome = await live_ws.next()
    for micros in (250000, 100000, 123456, 120, 0):
        identity = await superuser.fetchval("SELECT hearth.create_identity('x')")
        await superuser.execute(
            "SELECT hearth.join_session($1, $2, 'member',"
            " date_trunc('second', now()) + $3 * interval '1 microsecond')",
            uuid.UUID(session["session_id"]),
            identity,
            micros,
        )
    live = [await live_ws.until_type("presence.join") for _ in range(5)]
    replay_ws = await Ws.open(pair[1], session_token, after=welcome["seq"])
    await replay_ws.next()  # welcome
    replayed = [await replay_ws.until_type("presence.join") for _ in range(5)]
    assert replayed == live
    assert len({frame["at"] for frame in live}) == 5
    for ws in (live_ws, replay_ws):
        await ws.close()


async def test_a_published_app_event_is_delivered_live_and_on_resume(
    pair: list[Instance], api_a: Api, superuser: asyncpg.Connection
) -> None:
    # hearth.publish from SQL (here a DBA; a trigger in tests/app/test_browser.py): the socket on the
    # other instance gets it live, a resume with after replays it, the same text.
    _alice, alice_token = await api_a.identity("alice")
    session = await api_a.session(alice_token, name="table")
    _pid, session_token = await api_a.join(session["session_id"], alice_token)
    live_ws = await Ws.open(pair[1], session_token)
    welcome = await live_ws.next()
    seq = await superuser.fetchval(
        "SELECT hearth.publish($1, 'app.card_drawn', '{\"card\": \"The Star\"}')",
        uuid.UUID(session["session_id"]),
    )
    live = await live_ws.until_type("app.card_drawn")
    assert live.pop("at")
    assert live == {
        "type": "app.card_drawn",
        "seq": seq,
        "session_id": session["session_id"],
        "card": "The Star",
    }
    replay_ws = await Ws.open(pair[0], session_token, after=welcome["seq"])
    await replay_ws.next()  # welcome
    replayed = await replay_ws.until_type("app.card_drawn")
    assert replayed.pop("at")
    assert replayed == live
    for ws in (live_ws, replay_ws):
        await ws.close()
