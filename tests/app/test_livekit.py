"""Matchmaking onto LiveKit rooms, end to end: two app instances, the real `livekit-api` client, and the
in-process LiveKit double (Twirp + protobuf, JWT grants, signed webhooks, fault injection)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from google.protobuf.json_format import MessageToJson
from livekit.protocol import models, webhook

from tests.app.conftest import start_instances
from tests.app.harness import Api, Instance, Ws, bearer
from tests.livekit_double import JoinRefused, LiveKitDouble

API_KEY = "devkey"
API_SECRET = "devsecret-for-hearth-tests-0123456789abcdef"


@pytest.fixture(scope="module")
async def double() -> AsyncIterator[LiveKitDouble]:
    async with LiveKitDouble(api_key=API_KEY, api_secret=API_SECRET) as lk:
        yield lk


@pytest.fixture(scope="module")
def lk_pair(app_db: str, log_dir: Path, double: LiveKitDouble) -> Iterator[list[Instance]]:
    env = {
        "LIVEKIT_URL": double.url,
        "LIVEKIT_API_KEY": API_KEY,
        "LIVEKIT_API_SECRET": API_SECRET,
        "HEARTH_LIVEKIT_RECONCILE_S": "1",
        "HEARTH_LIVEKIT_GRACE_S": "1",
        "HEARTH_LIVEKIT_TIMEOUT_S": "0.5",
    }
    instances = start_instances(app_db, log_dir, 2, env)
    double.webhook_url = instances[0].base_url + "/v1/livekit/webhook"
    yield instances
    for instance in instances:
        instance.terminate()


@pytest.fixture(autouse=True)
def _no_faults(double: LiveKitDouble) -> Iterator[None]:
    double.faults.reset()
    yield
    double.faults.reset()


async def _eventually(check: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    """Wait for a condition the system reaches by itself (a guard against hanging, not a timing test)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"not reached within {timeout} s"
        await asyncio.sleep(0.05)


class Person:
    def __init__(self, api: Api, identity_id: str, token: str, ws: Ws) -> None:
        self.api, self.identity_id, self.token, self.ws = api, identity_id, token, ws

    @classmethod
    async def arrive(cls, instance: Instance, name: str) -> Person:
        api = Api(instance)
        identity_id, token = await api.identity(name)
        ws = await Ws.open(instance, token)
        assert (await ws.next())["type"] == "welcome"
        return cls(api, identity_id, token, ws)

    async def call(self, method: str, path: str) -> dict[str, Any]:
        r = await self.api.http.request(method, path, headers=bearer(self.token))
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result

    async def state(self) -> str:
        return str((await self.call("GET", "/v1/match"))["state"])

    async def join_room(self, session_id: str) -> dict[str, Any]:
        """Join the match session, then ask for a LiveKit token for it."""
        _, session_token = await self.api.join(session_id, self.token)
        r = await self.api.http.get(f"/v1/sessions/{session_id}/livekit-token", headers=bearer(session_token))
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result

    async def leave(self) -> None:
        await self.ws.close()
        await self.api.close()


async def _matched(people: list[Person]) -> list[dict[str, Any]]:
    return [await p.ws.until_type("match.found", timeout=15) for p in people]


async def test_match_across_instances_creates_a_room_and_tokens(
    lk_pair: list[Instance], double: LiveKitDouble, sql: asyncpg.Connection
) -> None:
    ann = await Person.arrive(lk_pair[0], "ann")
    bob = await Person.arrive(lk_pair[1], "bob")
    assert (await ann.call("POST", "/v1/match/queue")) == {"state": "waiting"}
    assert (await bob.call("POST", "/v1/match/queue")) == {"state": "waiting"}

    found_ann, found_bob = await _matched([ann, bob])
    session_id = found_ann["match_session_id"]
    assert found_bob["match_session_id"] == session_id
    assert (
        found_ann["peer_identity_id"] == bob.identity_id and found_bob["peer_identity_id"] == ann.identity_id
    )
    room_name = f"hearth-match-{session_id}"
    room = await _eventually(lambda: asyncio.sleep(0, double.rooms.get(room_name)))
    assert room.max_participants == 2 and room.departure_timeout > 0 and room.empty_timeout > 0
    assert await ann.call("GET", "/v1/match") == {
        "state": "connecting",
        "session_id": session_id,
        "peer": bob.identity_id,
    }

    grant_ann = await ann.join_room(session_id)
    grant_bob = await bob.join_room(session_id)
    assert grant_ann["room"] == room_name and grant_ann["url"] == double.url
    # The double checks the token like a LiveKit server: signature, key, roomJoin for this room only.
    with pytest.raises(JoinRefused):
        await double.join("hearth-match-some-other-room", grant_ann["token"])
    await double.join(room_name, grant_ann["token"])
    await double.join(room_name, grant_bob["token"])
    assert set(double.participants[room_name]) == {ann.identity_id, bob.identity_id}
    # Both joined (participant_joined webhooks) -> in_call.
    await _eventually(lambda: _states_are([ann, bob], "in_call"))

    # Someone else can neither join the match session nor get a token for its room.
    eve = await Person.arrive(lk_pair[0], "eve")
    r = await eve.api.http.post(f"/v1/sessions/{session_id}/join", headers=bearer(eve.token))
    assert r.status_code == 403
    for person in (ann, bob, eve):
        await person.leave()


async def _states_are(people: list[Person], state: str) -> bool:
    return all([await p.state() == state for p in people])


async def _room_gone(double: LiveKitDouble, name: str) -> bool:
    await asyncio.sleep(0)
    return name not in double.rooms


async def test_skip_and_end(lk_pair: list[Instance], double: LiveKitDouble) -> None:
    ann = await Person.arrive(lk_pair[0], "ann")
    bob = await Person.arrive(lk_pair[1], "bob")
    for p in (ann, bob):
        await p.call("POST", "/v1/match/queue")
    first, _ = await _matched([ann, bob])
    session_id = first["match_session_id"]
    await _eventually(lambda: asyncio.sleep(0, f"hearth-match-{session_id}" in double.rooms))

    assert await ann.call("POST", f"/v1/matches/{session_id}/skip") == {"state": "waiting"}
    for p in (ann, bob):
        ended = await p.ws.until_type("match.ended")
        assert ended["action"] == "skip" and ended["by"] == ann.identity_id
    assert await bob.state() == "waiting"
    await _eventually(lambda: _room_gone(double, f"hearth-match-{session_id}"))

    # Re-matched with others, not with each other (rematch cooldown).
    cat = await Person.arrive(lk_pair[0], "cat")
    dan = await Person.arrive(lk_pair[1], "dan")
    for p in (cat, dan):
        await p.call("POST", "/v1/match/queue")
    found = await _matched([ann, bob, cat, dan])
    peers = {f["identity_id"]: f["peer_identity_id"] for f in found}
    assert peers[ann.identity_id] != bob.identity_id and peers[bob.identity_id] != ann.identity_id
    assert {peers[cat.identity_id], peers[dan.identity_id]} == {ann.identity_id, bob.identity_id}

    # end: the ender goes idle, the other back to waiting; the room is deleted.
    ann_match = next(f["match_session_id"] for f in found if f["identity_id"] == ann.identity_id)
    peer = cat if peers[ann.identity_id] == cat.identity_id else dan
    await _eventually(lambda: asyncio.sleep(0, f"hearth-match-{ann_match}" in double.rooms))
    assert await ann.call("POST", f"/v1/matches/{ann_match}/end") == {"state": "idle"}
    assert (await peer.ws.until_type("match.ended"))["action"] == "end"
    assert await peer.state() == "waiting"
    await _eventually(lambda: _room_gone(double, f"hearth-match-{ann_match}"))
    r = await bob.api.http.post(f"/v1/matches/{ann_match}/skip", headers=bearer(bob.token))
    assert r.status_code == 403  # not bob's match
    for p in (ann, bob, cat, dan):
        await p.call("DELETE", "/v1/match/queue") if await p.state() == "waiting" else None
        await p.leave()


async def test_leaving_the_room_for_good_ends_the_match(
    lk_pair: list[Instance], double: LiveKitDouble
) -> None:
    ann = await Person.arrive(lk_pair[0], "ann")
    bob = await Person.arrive(lk_pair[1], "bob")
    for p in (ann, bob):
        await p.call("POST", "/v1/match/queue")
    found, _ = await _matched([ann, bob])
    session_id = found["match_session_id"]
    room = f"hearth-match-{session_id}"
    await _eventually(lambda: asyncio.sleep(0, room in double.rooms))
    for p in (ann, bob):
        await double.join(room, (await p.join_room(session_id))["token"])
    await _eventually(lambda: _states_are([ann, bob], "in_call"))

    await double.leave(room, bob.identity_id)  # and never comes back (grace: 1 s here)
    ended = await ann.ws.until_type("match.ended", timeout=15)
    assert ended["action"] == "end" and ended["by"] == bob.identity_id
    assert await ann.state() == "waiting" and await bob.state() == "idle"
    await _eventually(lambda: _room_gone(double, room))
    await ann.call("DELETE", "/v1/match/queue")
    for p in (ann, bob):
        await p.leave()


def _signed(event: webhook.WebhookEvent, secret: str = API_SECRET) -> tuple[bytes, str]:
    body = MessageToJson(event).encode()
    now = int(time.time())
    claims = {
        "iss": API_KEY,
        "nbf": now,
        "exp": now + 300,
        "sha256": base64.b64encode(hashlib.sha256(body).digest()).decode(),
    }
    return body, jwt.encode(claims, secret, algorithm="HS256")


def _event(
    event_id: str, kind: str, room: str, identity: str, created_at: int, sid: str = "PA_1"
) -> webhook.WebhookEvent:
    return webhook.WebhookEvent(
        id=event_id,
        event=kind,
        room=models.Room(name=room),
        participant=models.ParticipantInfo(identity=identity, sid=sid),
        created_at=created_at,
    )


async def test_webhooks_are_verified_deduplicated_and_order_tolerant(
    lk_pair: list[Instance], double: LiveKitDouble, sql: asyncpg.Connection
) -> None:
    hook = lk_pair[1].base_url + "/v1/livekit/webhook"
    async with httpx.AsyncClient(timeout=10) as http:
        body, auth = _signed(
            _event("EV_bad", "participant_joined", "hearth-match-x", "someone", int(time.time()))
        )
        assert (await http.post(hook, content=body, headers={"Authorization": auth + "x"})).status_code == 401
        _, other_auth = _signed(
            _event("EV_bad", "room_started", "r", "", 1), secret="not-the-secret-0123456789-abcdefghij"
        )
        assert (await http.post(hook, content=body, headers={"Authorization": other_auth})).status_code == 401
        tampered = body.replace(b"someone", b"someone-else")
        assert (await http.post(hook, content=tampered, headers={"Authorization": auth})).status_code == 401
        assert (await http.post(hook, content=body)).status_code == 401

        ann = await Person.arrive(lk_pair[0], "ann")
        bob = await Person.arrive(lk_pair[1], "bob")
        for p in (ann, bob):
            await p.call("POST", "/v1/match/queue")
        found, _ = await _matched([ann, bob])
        room = f"hearth-match-{found['match_session_id']}"
        now = int(time.time())

        async def send(event: webhook.WebhookEvent) -> bool:
            body, auth = _signed(event)
            r = await http.post(hook, content=body, headers={"Authorization": auth})
            assert r.status_code == 200, r.text
            return bool(r.json()["recorded"])

        # The same event twice counts once.
        assert await send(_event("EV_a1", "participant_joined", room, ann.identity_id, now)) is True
        assert await send(_event("EV_a1", "participant_joined", room, ann.identity_id, now)) is False
        assert (
            await sql.fetchval("SELECT count(*) FROM hearth_data.livekit_events WHERE event_id = 'EV_a1'")
            == 1
        )
        # A quick rejoin whose old participant_left arrives last (livekit#2399), within the same second:
        # the leave names the old connection's sid, so the new join stands.
        assert await send(_event("EV_b1", "participant_joined", room, bob.identity_id, now, sid="PA_old"))
        assert await send(_event("EV_b2", "participant_joined", room, bob.identity_id, now, sid="PA_new"))
        assert await send(_event("EV_b3", "participant_left", room, bob.identity_id, now, sid="PA_old"))
        await _eventually(lambda: _states_are([ann, bob], "in_call"))
        await asyncio.sleep(2.5)  # longer than the 1 s grace: the stale leave must not end the match
        assert await _states_are([ann, bob], "in_call")
        assert await sql.fetchval("SELECT ended_at IS NULL FROM hearth_data.matches WHERE room = $1", room)
        # Bob's current connection really leaves: the match ends after the grace.
        assert await send(_event("EV_b4", "participant_left", room, bob.identity_id, now, sid="PA_new"))
        ended = await ann.ws.until_type("match.ended", timeout=15)
        assert ended["by"] == bob.identity_id
        await ann.call("DELETE", "/v1/match/queue")
        for p in (ann, bob):
            await p.leave()


async def test_room_creation_failing_for_good_rolls_the_match_back(
    lk_pair: list[Instance], double: LiveKitDouble
) -> None:
    double.faults.fail_next(1000, status=503, method="CreateRoom")
    ann = await Person.arrive(lk_pair[0], "ann")
    bob = await Person.arrive(lk_pair[1], "bob")
    for p in (ann, bob):
        await p.call("POST", "/v1/match/queue")
    found, _ = await _matched([ann, bob])
    for p in (ann, bob):
        ended = await p.ws.until_type("match.ended", timeout=30)
        assert ended["action"] == "failed" and ended["match_session_id"] == found["match_session_id"]
    double.faults.reset()
    # Both are back in the queue, and are matched again once LiveKit works.
    again, _ = await _matched([ann, bob])
    assert again["match_session_id"] != found["match_session_id"]
    await _eventually(lambda: asyncio.sleep(0, f"hearth-match-{again['match_session_id']}" in double.rooms))
    await ann.call("POST", f"/v1/matches/{again['match_session_id']}/end")
    await bob.call("DELETE", "/v1/match/queue")
    for p in (ann, bob):
        await p.leave()


async def test_flaky_livekit_every_match_gets_a_room_or_is_rolled_back(
    lk_pair: list[Instance], double: LiveKitDouble, sql: asyncpg.Connection
) -> None:
    double.faults.fail_rate = 0.3
    double.faults.fail_status = 503
    double.faults.delay_next(4, 1.0, method="CreateRoom")  # past the 0.5 s call timeout; lands late
    double.faults.delay_next(2, 1.0, method="CreateRoom", after=True)  # applied, but the answer is late
    people = [await Person.arrive(lk_pair[n % 2], f"p{n}") for n in range(20)]
    for p in people:
        await p.call("POST", "/v1/match/queue")

    async def settled() -> bool:
        pending = await sql.fetchval(
            "SELECT count(*) FROM hearth_data.matches WHERE ended_at IS NULL AND room_state = 'pending'"
        )
        jobs = await sql.fetchval("SELECT count(*) FROM hearth_data.livekit_jobs WHERE kind = 'create_room'")
        waiting = await sql.fetchval(
            "SELECT count(*) FROM hearth_data.identities"
            " WHERE identity_id = ANY($1::uuid[]) AND match_state = 'waiting'",
            [p.identity_id for p in people],
        )
        return pending == 0 and jobs == 0 and waiting == 0

    await _eventually(settled, timeout=60)
    assert double.faults.rng is not None and any(c.fault for c in double.calls), "no fault was injected"
    open_rooms = {
        r["room"]
        for r in await sql.fetch(
            "SELECT room FROM hearth_data.matches WHERE ended_at IS NULL AND identity_a = ANY($1::uuid[])",
            [p.identity_id for p in people],
        )
    }
    assert len(open_rooms) == 10
    double.faults.reset()
    for room in open_rooms:
        assert room in double.rooms, f"{room} has no LiveKit room"

    async def nothing_untracked() -> bool:
        tracked = {
            r["room"] for r in await sql.fetch("SELECT room FROM hearth_data.matches WHERE ended_at IS NULL")
        }
        return set(double.rooms) <= tracked

    await _eventually(nothing_untracked)  # the reconciler (every second here) deletes the rest
    for room in open_rooms:
        session_id = room.removeprefix("hearth-match-")
        members = await _members(sql, session_id)
        owner = next(p for p in people if p.identity_id in members)
        await owner.call("POST", f"/v1/matches/{session_id}/end")
    for p in people:
        if await p.state() == "waiting":
            await p.call("DELETE", "/v1/match/queue")
        await p.leave()


async def _members(sql: asyncpg.Connection, session_id: str) -> set[str]:
    row = await sql.fetchrow(
        "SELECT identity_a, identity_b FROM hearth_data.matches WHERE session_id = $1", session_id
    )
    assert row is not None
    return {str(row["identity_a"]), str(row["identity_b"])}
