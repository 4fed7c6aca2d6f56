"""Two instances on one database: presence, messages and signals cross between them."""

from __future__ import annotations

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
