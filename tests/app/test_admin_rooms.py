"""GET /v1/admin/rooms: room health, with each problem driven through the LiveKit double (a real `hearth
serve`, the real `livekit-api` client, signed webhooks, fault injection). Every answer is also held to the
schema the OpenAPI document declares for it (test_openapi's own walk sees no rooms)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jsonschema
import pytest

from app import shapes
from tests.app.conftest import start_instances
from tests.app.harness import ADMIN_TOKEN, Instance, bearer
from tests.app.test_livekit import API_KEY, API_SECRET, Person, _eventually, _matched
from tests.livekit_double import LiveKitDouble

ROOMS = jsonschema.Draft202012Validator(shapes.Rooms.model_json_schema(mode="serialization"))


@pytest.fixture(scope="module")
async def double() -> AsyncIterator[LiveKitDouble]:
    async with LiveKitDouble(api_key=API_KEY, api_secret=API_SECRET) as lk:
        yield lk


@pytest.fixture(scope="module")
def instance(app_db: str, log_dir: Path, double: LiveKitDouble) -> Iterator[Instance]:
    # A long grace: a side that left stays "gone" (end_abandoned_matches would end its match after it).
    env = {
        "LIVEKIT_URL": double.url,
        "LIVEKIT_API_KEY": API_KEY,
        "LIVEKIT_API_SECRET": API_SECRET,
        "HEARTH_LIVEKIT_RECONCILE_S": "1",
        "HEARTH_LIVEKIT_GRACE_S": "600",
        "HEARTH_LIVEKIT_TIMEOUT_S": "0.5",
    }
    [started] = start_instances(app_db, log_dir, 1, env)
    double.webhook_url = started.base_url + "/v1/livekit/webhook"
    yield started
    started.terminate()


@pytest.fixture(autouse=True)
def _no_faults(double: LiveKitDouble) -> Iterator[None]:
    double.faults.reset()
    yield
    double.faults.reset()


async def _rooms(instance: Instance) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=instance.base_url, timeout=10) as http:
        r = await http.get("/v1/admin/rooms", headers=bearer(ADMIN_TOKEN))
    assert r.status_code == 200, r.text
    ROOMS.validate(r.json())
    return {room["room"]: room for room in r.json()["rooms"]}


async def _room_shows(instance: Instance, room: str, **expected: Any) -> dict[str, Any]:
    """The room's entry once it shows `expected` (the app reaches it by itself: webhooks, jobs)."""

    async def check() -> dict[str, Any] | None:
        found = (await _rooms(instance)).get(room)
        if found is not None and all(found[k] == v for k, v in expected.items()):
            return found
        return None

    found: dict[str, Any] = await _eventually(check)
    return found


async def _gone(instance: Instance, room: str) -> None:
    async def check() -> bool:
        return room not in await _rooms(instance)

    await _eventually(check)


async def _matched_pair(instance: Instance) -> tuple[Person, Person, str, str]:
    ann = await Person.arrive(instance, "ann")
    bob = await Person.arrive(instance, "bob")
    for p in (ann, bob):
        await p.call("POST", "/v1/match/queue")
    found, _ = await _matched([ann, bob])
    session_id = found["match_session_id"]
    return ann, bob, session_id, f"hearth-match-{session_id}"


async def _in_call(double: LiveKitDouble, people: list[Person], session_id: str, room: str) -> None:
    await _eventually(lambda: _has_room(double, room))
    for p in people:
        await double.join(room, (await p.join_room(session_id))["token"])


async def _has_room(double: LiveKitDouble, room: str) -> bool:
    return room in double.rooms


async def _idle(people: list[Person]) -> None:
    """Everyone out of the queue and out of any match, then disconnected."""

    async def settled() -> bool:
        for p in people:
            match = await p.call("GET", "/v1/match")
            if match["state"] in ("connecting", "in_call"):
                r = await p.api.http.post(f"/v1/matches/{match['session_id']}/end", headers=bearer(p.token))
                assert r.status_code in (200, 409), r.text
            elif match["state"] == "waiting":
                await p.call("DELETE", "/v1/match/queue")
        return all([await p.state() == "idle" for p in people])

    await _eventually(settled)
    for p in people:
        await p.leave()


async def test_a_healthy_call_then_one_side_gone(instance: Instance, double: LiveKitDouble) -> None:
    ann, bob, session_id, room = await _matched_pair(instance)
    await _in_call(double, [ann, bob], session_id, room)
    healthy = await _room_shows(instance, room, participants_in_room=2)
    assert set(healthy) == {
        "room",
        "session_id",
        "match_status",
        "created_at",
        "expected_participants",
        "participants_in_room",
        "last_webhook_at",
        "problem",
    }
    assert (healthy["session_id"], healthy["match_status"], healthy["expected_participants"]) == (
        session_id,
        "in_call",
        2,
    )
    assert healthy["problem"] is None
    assert healthy["created_at"] is not None and healthy["last_webhook_at"] is not None

    await double.leave(room, bob.identity_id)
    gone = await _room_shows(instance, room, problem="one side gone")
    assert (gone["match_status"], gone["participants_in_room"]) == ("connecting", 1)
    await _idle([ann, bob])
    await _gone(instance, room)


async def test_room_never_created(instance: Instance, double: LiveKitDouble) -> None:
    double.faults.fail_next(1000, status=503, method="CreateRoom")
    ann, bob, session_id, room = await _matched_pair(instance)
    stuck = await _room_shows(instance, room, problem="room not created yet")
    assert (stuck["session_id"], stuck["created_at"], stuck["participants_in_room"]) == (session_id, None, 0)
    double.faults.reset()
    await _idle([ann, bob])
    await _gone(instance, room)


async def test_no_webhooks(instance: Instance, double: LiveKitDouble, sql: asyncpg.Connection) -> None:
    """LiveKit's webhooks never arrive: both sides are in the room, Hearth sees nobody. Flagged once the
    room has been quiet for 10 minutes (the room's creation time is moved back rather than waited for)."""
    double.faults.drop_webhook_rate = 1.0
    ann, bob, session_id, room = await _matched_pair(instance)
    await _in_call(double, [ann, bob], session_id, room)
    quiet = await _room_shows(instance, room, match_status="connecting")
    assert quiet["created_at"] is not None
    assert (quiet["participants_in_room"], quiet["last_webhook_at"], quiet["problem"]) == (0, None, None)
    await sql.execute(
        "UPDATE hearth_data.matches SET room_created_at = room_created_at - interval '11 minutes'"
        " WHERE session_id = $1",
        session_id,
    )
    await _room_shows(instance, room, problem="no webhook for 10 minutes")
    double.faults.reset()
    await _idle([ann, bob])
    await _gone(instance, room)


async def test_match_over_but_room_still_open(instance: Instance, double: LiveKitDouble) -> None:
    ann, bob, session_id, room = await _matched_pair(instance)
    await _in_call(double, [ann, bob], session_id, room)
    await _room_shows(instance, room, match_status="in_call")
    double.faults.fail_next(1000, status=503, method="DeleteRoom")
    assert await ann.call("POST", f"/v1/matches/{session_id}/end") == {"state": "idle"}
    open_room = await _room_shows(instance, room, problem="match over but room still open")
    assert (open_room["match_status"], open_room["expected_participants"]) == ("ended", 0)
    assert room in double.rooms
    double.faults.reset()
    await _gone(instance, room)  # deleted at last: room_finished
    assert room not in double.rooms
    await _idle([ann, bob])
