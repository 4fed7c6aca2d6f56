"""The LiveKit double, driven by the real livekit-api client and checked with livekit-api's WebhookReceiver.

Tests taking ``lk``/``target`` only also run against a real server when LIVEKIT_URL is set; those taking
``double`` are double-only (they skip there).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
import uuid
from collections.abc import AsyncIterator

import aiohttp
import jwt
import pytest
from aiohttp import web
from livekit import api
from livekit.protocol import models
from livekit.protocol.webhook import WebhookEvent

from tests.livekit_double import JoinRefused, LiveKitDouble, RealLiveKit, livekit_target

KEY, SECRET = "devkey", "secret"  # livekit-server --dev's keys; pyjwt finds the secret short
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


def room_name() -> str:
    return f"room-{uuid.uuid4().hex[:10]}"


def join_token(
    room: str,
    identity: str,
    *,
    secret: str = SECRET,
    key: str = KEY,
    ttl: datetime.timedelta | None = None,
    grants: api.VideoGrants | None = None,
) -> str:
    tok = (
        api.AccessToken(key, secret)
        .with_identity(identity)
        .with_grants(grants or api.VideoGrants(room_join=True, room=room))
    )
    if ttl is not None:
        tok.with_ttl(ttl)
    return tok.to_jwt()


def admin_token(room: str) -> str:
    return api.AccessToken(KEY, SECRET).with_grants(api.VideoGrants(room_admin=True, room=room)).to_jwt()


class Receiver:
    """A webhook endpoint: records every request, verifies with livekit-api's WebhookReceiver."""

    def __init__(self, key: str = KEY, secret: str = SECRET) -> None:
        self.verifier = api.WebhookReceiver(api.TokenVerifier(key, secret))
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.events: list[WebhookEvent] = []
        self.rejected: list[str] = []
        self.fail_next = 0  # answer 500 (after recording and verifying) to this many requests
        self.delay_s = 0.0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.requests.append((body, dict(request.headers)))
        try:
            event = self.verifier.receive(body, request.headers.get("Authorization", ""))
        except Exception as e:
            self.rejected.append(str(e))
            return web.Response(status=401)
        self.events.append(event)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=500)
        return web.Response(text="ok")

    def names(self) -> list[str]:
        return [e.event for e in self.events]

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/v1/livekit/webhook", self.handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/v1/livekit/webhook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def target() -> AsyncIterator[LiveKitDouble | RealLiveKit]:
    async with livekit_target(api_key=KEY, api_secret=SECRET) as t:
        yield t


@pytest.fixture
def double(target: LiveKitDouble | RealLiveKit) -> LiveKitDouble:
    if not isinstance(target, LiveKitDouble):
        pytest.skip("double-only: LIVEKIT_URL points at a real server")
    return target


@pytest.fixture
async def lk(target: LiveKitDouble | RealLiveKit) -> AsyncIterator[api.LiveKitAPI]:
    client = api.LiveKitAPI(target.url, target.api_key, target.api_secret)
    yield client
    await client.aclose()


@pytest.fixture
async def receiver(double: LiveKitDouble) -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        double.webhook_url = r.url
        yield r


async def create(lk: api.LiveKitAPI, name: str, **kw: int | str) -> models.Room:
    return await lk.room.create_room(api.CreateRoomRequest(name=name, **kw))  # type: ignore[arg-type]


# -- RoomService --------------------------------------------------------------------------------------


async def test_create_room_is_get_or_create(lk: api.LiveKitAPI, target: LiveKitDouble | RealLiveKit) -> None:
    name = room_name()
    first = await create(lk, name, max_participants=2, empty_timeout=30, departure_timeout=5)
    assert first.sid.startswith("RM_") and first.name == name
    assert (first.max_participants, first.empty_timeout, first.departure_timeout) == (2, 30, 5)
    assert first.creation_time > 0
    again = await create(lk, name)
    assert again.sid == first.sid and again.creation_time == first.creation_time
    assert again.max_participants == 2  # zero fields of a repeat leave the stored ones alone
    updated = await create(lk, name, max_participants=3)
    assert updated.sid == first.sid and updated.max_participants == 3
    if isinstance(target, LiveKitDouble):
        stored = target.rooms[name]
        assert (stored.sid, stored.max_participants, stored.empty_timeout) == (first.sid, 3, 30)
        assert [c.status for c in target.calls_to("CreateRoom")] == [200, 200, 200]
    await lk.room.delete_room(api.DeleteRoomRequest(room=name))


async def test_create_room_applies_server_defaults(lk: api.LiveKitAPI) -> None:
    name = room_name()
    room = await create(lk, name)
    assert (room.empty_timeout, room.departure_timeout, room.max_participants) == (300, 20, 0)
    await lk.room.delete_room(api.DeleteRoomRequest(room=name))


async def test_list_rooms_with_and_without_filter(lk: api.LiveKitAPI) -> None:
    a, b = room_name(), room_name()
    await create(lk, a)
    await create(lk, b)
    listed = await lk.room.list_rooms(api.ListRoomsRequest(names=[a]))
    assert [r.name for r in listed.rooms] == [a]
    everything = await lk.room.list_rooms(api.ListRoomsRequest())
    assert {a, b} <= {r.name for r in everything.rooms}
    for n in (a, b):
        await lk.room.delete_room(api.DeleteRoomRequest(room=n))
    assert (await lk.room.list_rooms(api.ListRoomsRequest(names=[a, b]))).rooms == []


async def test_delete_room_twice_is_not_found(lk: api.LiveKitAPI) -> None:
    name = room_name()
    await create(lk, name)
    await lk.room.delete_room(api.DeleteRoomRequest(room=name))
    with pytest.raises(api.TwirpError) as info:
        await lk.room.delete_room(api.DeleteRoomRequest(room=name))
    assert info.value.code == api.TwirpErrorCode.NOT_FOUND
    assert info.value.status == 404


async def test_list_participants_of_unknown_room_is_empty(lk: api.LiveKitAPI) -> None:
    resp = await lk.room.list_participants(api.ListParticipantsRequest(room=room_name()))
    assert list(resp.participants) == []


# -- auth ---------------------------------------------------------------------------------------------


async def test_bad_secret_is_rejected_with_401(target: LiveKitDouble | RealLiveKit) -> None:
    # The server's auth middleware answers 401 with a plain-text body: no Twirp code reaches the client.
    client = api.LiveKitAPI(target.url, target.api_key, "not-the-secret")
    try:
        with pytest.raises(api.ServerError) as info:
            await client.room.list_rooms(api.ListRoomsRequest())
    finally:
        await client.aclose()
    assert info.value.status == 401
    assert info.value.code == "unknown"
    if isinstance(target, LiveKitDouble):
        assert target.calls[-1].method == "ListRooms" and target.calls[-1].status == 401


async def test_unknown_api_key_is_rejected_with_401(target: LiveKitDouble | RealLiveKit) -> None:
    client = api.LiveKitAPI(target.url, "someone-else", target.api_secret)
    try:
        with pytest.raises(api.ServerError) as info:
            await create(client, room_name())
    finally:
        await client.aclose()
    assert info.value.status == 401


async def test_missing_grant_is_unauthenticated_permissions_denied(
    target: LiveKitDouble | RealLiveKit,
) -> None:
    # A valid token without roomCreate: livekit-server wraps ErrPermissionDenied as Twirp "unauthenticated".
    list_only = api.AccessToken(target.api_key, target.api_secret).with_grants(
        api.VideoGrants(room_list=True)
    )
    client = api.LiveKitAPI.with_token(list_only.to_jwt(), target.url)
    name = room_name()
    try:
        with pytest.raises(api.ServerError) as info:
            await create(client, name)
        await client.room.list_rooms(api.ListRoomsRequest())  # the grant it has works
        with pytest.raises(api.ServerError) as admin_info:
            await client.room.list_participants(api.ListParticipantsRequest(room=name))
    finally:
        await client.aclose()
    for err in (info.value, admin_info.value):
        assert err.code == api.TwirpErrorCode.UNAUTHENTICATED
        assert err.status == 401
        assert err.message == "permissions denied"
    if isinstance(target, LiveKitDouble):
        assert name not in target.rooms


async def test_room_admin_grant_is_scoped_to_its_room(double: LiveKitDouble, lk: api.LiveKitAPI) -> None:
    a, b = room_name(), room_name()
    await create(lk, a)
    await create(lk, b)
    client = api.LiveKitAPI.with_token(admin_token(a), double.url)
    try:
        await client.room.list_participants(api.ListParticipantsRequest(room=a))
        with pytest.raises(api.ServerError) as info:
            await client.room.list_participants(api.ListParticipantsRequest(room=b))
    finally:
        await client.aclose()
    assert info.value.code == "unauthenticated"


async def test_unauthenticated_request_without_header(double: LiveKitDouble) -> None:
    async with aiohttp.ClientSession() as s:
        resp = await s.post(
            f"{double.url}/twirp/livekit.RoomService/ListRooms",
            data=api.ListRoomsRequest().SerializeToString(),
            headers={"Content-Type": "application/protobuf"},
        )
        assert resp.status == 401
        assert await resp.json() == {"code": "unauthenticated", "msg": "permissions denied"}
        resp = await s.post(
            f"{double.url}/twirp/livekit.RoomService/ListRooms",
            data=b"",
            headers={"Content-Type": "application/protobuf", "Authorization": "Token abc"},
        )
        assert resp.status == 401
        assert resp.content_type == "text/plain"


# -- Twirp details ------------------------------------------------------------------------------------


async def test_twirp_routes_json_and_errors(double: LiveKitDouble) -> None:
    token = api.AccessToken(KEY, SECRET).with_grants(api.VideoGrants(room_create=True)).to_jwt()
    auth = {"Authorization": f"Bearer {token}"}
    base = f"{double.url}/twirp/livekit.RoomService"
    async with aiohttp.ClientSession() as s:
        resp = await s.post(
            f"{base}/CreateRoom",
            data=json.dumps({"name": "json-room", "max_participants": 4}),
            headers={**auth, "Content-Type": "application/json"},
        )
        assert resp.status == 200
        body = await resp.json()
        assert body["name"] == "json-room" and body["max_participants"] == 4
        assert body["sid"].startswith("RM_")

        resp = await s.post(
            f"{base}/NoSuchMethod", data=b"", headers={**auth, "Content-Type": "application/protobuf"}
        )
        assert (resp.status, (await resp.json())["code"]) == (404, "bad_route")
        resp = await s.get(f"{base}/CreateRoom", headers=auth)
        assert (resp.status, (await resp.json())["code"]) == (404, "bad_route")
        resp = await s.post(f"{base}/CreateRoom", data=b"x", headers={**auth, "Content-Type": "text/plain"})
        assert (resp.status, (await resp.json())["code"]) == (404, "bad_route")
        resp = await s.post(
            f"{base}/CreateRoom",
            data=b"\xff\xff\xff",
            headers={**auth, "Content-Type": "application/protobuf"},
        )
        assert (resp.status, (await resp.json())["code"]) == (400, "malformed")
        resp = await s.post(
            f"{base}/SendData", data=b"", headers={**auth, "Content-Type": "application/protobuf"}
        )
        assert (resp.status, (await resp.json())["code"]) == (501, "unimplemented")
    assert "json-room" in double.rooms


async def test_call_log_records_methods_and_statuses(double: LiveKitDouble, lk: api.LiveKitAPI) -> None:
    name = room_name()
    await create(lk, name)
    await lk.room.list_rooms(api.ListRoomsRequest())
    await lk.room.delete_room(api.DeleteRoomRequest(room=name))
    with pytest.raises(api.TwirpError):
        await lk.room.delete_room(api.DeleteRoomRequest(room=name))
    assert [(c.method, c.status, c.code) for c in double.calls] == [
        ("CreateRoom", 200, None),
        ("ListRooms", 200, None),
        ("DeleteRoom", 200, None),
        ("DeleteRoom", 404, "not_found"),
    ]
    assert double.calls[0].request == api.CreateRoomRequest(name=name)


# -- fault injection ----------------------------------------------------------------------------------


async def test_fail_next_503_surfaces_and_is_not_applied(double: LiveKitDouble, lk: api.LiveKitAPI) -> None:
    name = room_name()
    double.faults.fail_next(1)
    with pytest.raises(api.ServerError) as info:
        await create(lk, name)
    assert (info.value.status, info.value.code) == (503, "unavailable")
    assert name not in double.rooms
    room = await create(lk, name)  # the next call goes through
    assert double.rooms[name].sid == room.sid
    assert [(c.status, c.fault) for c in double.calls] == [(503, "fail"), (200, None)]


async def test_fail_next_targets_one_method(double: LiveKitDouble, lk: api.LiveKitAPI) -> None:
    name = room_name()
    double.faults.fail_next(2, status=500, method="DeleteRoom")
    await create(lk, name)
    for _ in range(2):
        with pytest.raises(api.ServerError) as info:
            await lk.room.delete_room(api.DeleteRoomRequest(room=name))
        assert (info.value.status, info.value.code) == (500, "internal")
    await lk.room.list_rooms(api.ListRoomsRequest())
    await lk.room.delete_room(api.DeleteRoomRequest(room=name))
    assert name not in double.rooms


async def test_rate_limited_429(double: LiveKitDouble, lk: api.LiveKitAPI) -> None:
    double.faults.fail_rate = 1.0
    double.faults.fail_status = 429
    with pytest.raises(api.ServerError) as info:
        await lk.room.list_rooms(api.ListRoomsRequest())
    assert (info.value.status, info.value.code) == (429, api.TwirpErrorCode.RESOURCE_EXHAUSTED)
    double.faults.reset()
    await lk.room.list_rooms(api.ListRoomsRequest())


async def test_proxy_style_502_has_no_twirp_code(double: LiveKitDouble, lk: api.LiveKitAPI) -> None:
    double.faults.fail_next(1, status=502)
    with pytest.raises(api.ServerError) as info:
        await lk.room.list_rooms(api.ListRoomsRequest())
    assert (info.value.status, info.value.code) == (502, "unknown")


async def test_fail_rate_is_reproducible_with_a_seed(lk: api.LiveKitAPI) -> None:
    async def pattern(seed: int) -> list[int]:
        async with LiveKitDouble(KEY, SECRET, seed=seed) as d:
            d.faults.fail_rate = 0.5
            client = api.LiveKitAPI(d.url, KEY, SECRET)
            try:
                for _ in range(16):
                    try:
                        await client.room.list_rooms(api.ListRoomsRequest())
                    except api.ServerError:
                        pass
            finally:
                await client.aclose()
            return [c.status for c in d.calls]

    first, second, other = await pattern(7), await pattern(7), await pattern(8)
    assert first == second
    assert {200, 503} == set(first)
    assert first != other


async def test_livekit_api_does_not_apply_its_own_timeout(double: LiveKitDouble) -> None:
    # livekit-api 1.2.2: TwirpClient.request passes timeout=None to session.post, which aiohttp reads as
    # ClientTimeout(total=None): LiveKitAPI(timeout=...) (default 10 s) never bounds a RoomService call.
    # Callers need their own deadline (asyncio.timeout / wait_for). If this fails, the client got fixed.
    double.faults.delay_next(1, 0.4)
    client = api.LiveKitAPI(double.url, KEY, SECRET, timeout=aiohttp.ClientTimeout(total=0.1))
    try:
        t0 = time.monotonic()
        await client.room.list_rooms(api.ListRoomsRequest())
        assert time.monotonic() - t0 >= 0.4
    finally:
        await client.aclose()


async def test_delay_beyond_the_callers_deadline(double: LiveKitDouble, lk: api.LiveKitAPI) -> None:
    name = room_name()
    double.faults.delay_next(1, 0.5, method="CreateRoom")
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(create(lk, name), 0.2)
    assert time.monotonic() - t0 < 0.45
    assert name not in double.rooms
    # The server still handles the request once its delay is over, like a slow real server.
    await asyncio.sleep(0.5)
    assert name in double.rooms
    sid = double.rooms[name].sid
    assert (await create(lk, name)).sid == sid  # the retry is get-or-create


async def test_reply_delay_applies_the_change_before_the_timeout(
    double: LiveKitDouble, lk: api.LiveKitAPI
) -> None:
    name = room_name()
    double.faults.reply_delay_s = 0.5
    double.faults.methods = {"CreateRoom"}
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(create(lk, name, max_participants=2), 0.2)
    assert double.rooms[name].max_participants == 2  # applied, though the caller saw a timeout
    await asyncio.wait_for(lk.room.list_rooms(api.ListRoomsRequest()), 0.2)  # not in `methods`


# -- participants -------------------------------------------------------------------------------------


async def test_join_with_valid_token(double: LiveKitDouble, lk: api.LiveKitAPI) -> None:
    name = room_name()
    await create(lk, name)
    info = await double.join(name, join_token(name, "alice"))
    assert info.sid.startswith("PA_") and info.identity == "alice"
    assert info.state == models.ParticipantInfo.State.ACTIVE
    assert set(double.participants[name]) == {"alice"}
    assert double.rooms[name].num_participants == 1
    admin = api.LiveKitAPI.with_token(admin_token(name), double.url)
    try:
        listed = await admin.room.list_participants(api.ListParticipantsRequest(room=name))
        assert [(p.identity, p.sid) for p in listed.participants] == [("alice", info.sid)]
        got = await admin.room.get_participant(api.RoomParticipantIdentity(room=name, identity="alice"))
        assert got.sid == info.sid
        await admin.room.remove_participant(api.RoomParticipantIdentity(room=name, identity="alice"))
        with pytest.raises(api.TwirpError) as missing:
            await admin.room.remove_participant(api.RoomParticipantIdentity(room=name, identity="alice"))
        assert missing.value.code == "not_found"
    finally:
        await admin.aclose()
    assert double.participants[name] == {}


async def test_join_refusals(double: LiveKitDouble, lk: api.LiveKitAPI) -> None:
    name, other = room_name(), room_name()
    await create(lk, name)
    await create(lk, other)
    cases = [
        (join_token(other, "bob"), "unauthorized"),  # a token for another room
        (join_token(name, "bob", secret="wrong"), "unauthorized"),
        (join_token(name, "bob", key="other-key"), "unauthorized"),
        (join_token(name, "bob", ttl=datetime.timedelta(minutes=-5)), "unauthorized"),  # expired
        (join_token(name, "bob", grants=api.VideoGrants(room_admin=True, room=name)), "unauthorized"),
        (join_token(name, "bob", grants=api.VideoGrants(room=name)), "unauthorized"),  # no roomJoin
        # no identity (AccessToken refuses to mint one, so sign it by hand)
        (
            jwt.encode(
                {"iss": KEY, "exp": int(time.time()) + 60, "video": {"roomJoin": True, "room": name}},
                SECRET,
                algorithm="HS256",
            ),
            "bad_request",
        ),
    ]
    for token, reason in cases:
        with pytest.raises(JoinRefused) as info:
            await double.join(name, token)
        assert info.value.reason == reason, info.value
    with pytest.raises(JoinRefused) as unknown:
        missing = room_name()
        await double.join(missing, join_token(missing, "bob"))
    assert (unknown.value.reason, unknown.value.status) == ("not_found", 404)
    assert double.participants[name] == {}


async def test_join_auto_create(lk: api.LiveKitAPI) -> None:
    async with LiveKitDouble(KEY, SECRET, auto_create=True) as d:
        name = room_name()
        await d.join(name, join_token(name, "carol"))
        assert d.rooms[name].empty_timeout == 300
        assert [w.name for w in d.webhooks] == ["room_started", "participant_joined"]


async def test_max_participants_enforced(double: LiveKitDouble, lk: api.LiveKitAPI) -> None:
    name = room_name()
    await create(lk, name, max_participants=2)
    await double.join(name, join_token(name, "a"))
    await double.join(name, join_token(name, "b"))
    with pytest.raises(JoinRefused) as info:
        await double.join(name, join_token(name, "c"))
    assert info.value.reason == "full"
    # a rejoin of someone already inside replaces them rather than counting twice
    rejoined = await double.join(name, join_token(name, "b"))
    assert double.participants[name]["b"].sid == rejoined.sid
    await double.leave(name, "a")
    await double.join(name, join_token(name, "c"))
    assert set(double.participants[name]) == {"b", "c"}
    with pytest.raises(LookupError):
        await double.leave(name, "a")


# -- webhooks -----------------------------------------------------------------------------------------


async def test_webhooks_are_signed_like_the_server(
    double: LiveKitDouble, lk: api.LiveKitAPI, receiver: Receiver
) -> None:
    name = room_name()
    room = await create(lk, name)
    alice = await double.join(name, join_token(name, "alice"))
    await double.leave(name, "alice")
    await lk.room.delete_room(api.DeleteRoomRequest(room=name))
    await double.drain_webhooks()

    assert receiver.rejected == []
    assert receiver.names() == ["room_started", "participant_joined", "participant_left", "room_finished"]
    assert all(e.room.sid == room.sid and e.room.name == name for e in receiver.events)
    assert receiver.events[1].participant.sid == alice.sid
    assert receiver.events[2].participant.disconnect_reason == models.DisconnectReason.CLIENT_INITIATED
    assert receiver.events[3].room_end_reason == models.RoomEndReason.ROOM_END_API_DELETE
    assert len({e.id for e in receiver.events}) == 4 and all(e.id.startswith("EV_") for e in receiver.events)
    for body, headers in receiver.requests:
        assert headers["Content-Type"] == "application/webhook+json"
        assert not headers["Authorization"].startswith("Bearer")
        raw = json.loads(body)
        assert isinstance(raw["createdAt"], str) and abs(int(raw["createdAt"]) - time.time()) < 60
        assert "turnPassword" not in raw["room"]
    assert [w.outcome for w in double.webhooks] == ["delivered"] * 4


async def test_delete_room_disconnects_participants_first(
    double: LiveKitDouble, lk: api.LiveKitAPI, receiver: Receiver
) -> None:
    name = room_name()
    await create(lk, name)
    await double.join(name, join_token(name, "a"))
    await double.join(name, join_token(name, "b"))
    await lk.room.delete_room(api.DeleteRoomRequest(room=name))
    await double.drain_webhooks()
    assert receiver.names() == [
        "room_started",
        "participant_joined",
        "participant_joined",
        "participant_left",
        "participant_left",
        "room_finished",
    ]
    assert {e.participant.disconnect_reason for e in receiver.events[3:5]} == {
        models.DisconnectReason.ROOM_DELETED
    }
    assert name not in double.rooms and name not in double.participants


async def test_finish_room_helper(double: LiveKitDouble, lk: api.LiveKitAPI, receiver: Receiver) -> None:
    name = room_name()
    await create(lk, name)
    await double.join(name, join_token(name, "a"))
    await double.finish_room(name)
    await double.drain_webhooks()
    assert receiver.names()[-2:] == ["participant_left", "room_finished"]
    assert receiver.events[-2].participant.disconnect_reason == models.DisconnectReason.ROOM_CLOSED
    assert receiver.events[-1].room_end_reason == models.RoomEndReason.ROOM_END_IDLE_TIMEOUT
    with pytest.raises(api.TwirpError):
        await lk.room.delete_room(api.DeleteRoomRequest(room=name))


async def test_5xx_is_retried_so_the_receiver_sees_duplicates_in_order(
    double: LiveKitDouble, lk: api.LiveKitAPI, receiver: Receiver
) -> None:
    name = room_name()
    receiver.fail_next = 2  # the receiver handles room_started, then answers 500 twice
    await create(lk, name)
    await double.join(name, join_token(name, "a"))
    await double.drain_webhooks()
    assert receiver.names() == ["room_started"] * 3 + ["participant_joined"]
    assert len({e.id for e in receiver.events[:3]}) == 1  # the same event: dedupe on id
    started = double.events("room_started")[0]
    assert [a.status for a in started.attempts] == [500, 500, 200]
    assert started.outcome == "delivered"


async def test_retries_exhausted(lk: api.LiveKitAPI) -> None:
    async with Receiver() as r, LiveKitDouble(KEY, SECRET, webhook_url=r.url, webhook_max_retries=2) as d:
        r.fail_next = 100
        client = api.LiveKitAPI(d.url, KEY, SECRET)
        try:
            await create(client, room_name())
        finally:
            await client.aclose()
        await d.drain_webhooks()
        assert d.webhooks[0].outcome == "failed"
        assert [a.status for a in d.webhook_attempts] == [500, 500, 500]


async def test_unreachable_receiver_is_retried_then_given_up(
    double: LiveKitDouble, lk: api.LiveKitAPI
) -> None:
    async with Receiver() as r:
        url = r.url
    double.webhook_url = url  # nobody listens there any more
    await create(lk, room_name())
    await double.drain_webhooks()
    rec = double.webhooks[0]
    assert rec.outcome == "failed"
    assert len(rec.attempts) == double.webhook_max_retries + 1
    assert all(a.status is None and a.error for a in rec.attempts)


async def test_drop_and_duplicate_faults(
    double: LiveKitDouble, lk: api.LiveKitAPI, receiver: Receiver
) -> None:
    name = room_name()
    double.faults.drop_next_webhooks(1, event="participant_joined")
    double.faults.duplicate_next_webhooks(1, event="participant_left")
    await create(lk, name)
    await double.join(name, join_token(name, "a"))
    await double.leave(name, "a")
    await double.drain_webhooks()
    assert receiver.names() == ["room_started", "participant_left", "participant_left"]
    assert receiver.events[1].id == receiver.events[2].id
    assert receiver.requests[1] == receiver.requests[2]  # byte-identical, same signature
    assert [(w.name, w.outcome) for w in double.webhooks] == [
        ("room_started", "delivered"),
        ("participant_joined", "dropped"),
        ("participant_left", "delivered"),
    ]
    assert double.webhooks[2].duplicated
    assert [a.duplicate for a in double.webhook_attempts] == [False, False, True]


async def test_webhook_fault_rates_are_seeded(lk: api.LiveKitAPI) -> None:
    async def run(seed: int) -> list[tuple[str, bool]]:
        async with Receiver() as r, LiveKitDouble(KEY, SECRET, webhook_url=r.url, seed=seed) as d:
            d.faults.drop_webhook_rate = 0.3
            d.faults.duplicate_webhook_rate = 0.3
            client = api.LiveKitAPI(d.url, KEY, SECRET)
            try:
                for i in range(12):
                    await create(client, f"seeded-{i}")
            finally:
                await client.aclose()
            await d.drain_webhooks()
            # every delivered event arrived (once, or twice when duplicated); dropped ones never did
            expected = sorted(
                w.id for w in d.webhooks if w.outcome == "delivered" for _ in range(2 if w.duplicated else 1)
            )
            assert sorted(e.id for e in r.events) == expected
            return [(w.outcome, w.duplicated) for w in d.webhooks]

    first, second = await run(3), await run(3)
    assert first == second
    assert {"delivered", "dropped"} <= {outcome for outcome, _ in first}
    assert ("delivered", True) in first


async def test_per_room_fifo_survives_retries(
    double: LiveKitDouble, lk: api.LiveKitAPI, receiver: Receiver
) -> None:
    name = room_name()
    receiver.fail_next = 1
    await create(lk, name)
    for who in ("a", "b", "c"):
        await double.join(name, join_token(name, who))
    await double.drain_webhooks()
    firsts = list(dict.fromkeys(e.id for e in receiver.events))  # first arrival order of each id
    assert [w.id for w in double.webhooks] == firsts
    assert [e.participant.identity for e in receiver.events if e.event == "participant_joined"] == [
        "a",
        "b",
        "c",
    ]


async def test_events_too_old_in_the_queue_expire(lk: api.LiveKitAPI) -> None:
    async with Receiver() as r, LiveKitDouble(KEY, SECRET, webhook_url=r.url, webhook_max_age_s=0.1) as d:
        r.delay_s = 0.3  # the first delivery blocks the room's queue past the max age
        name = room_name()
        client = api.LiveKitAPI(d.url, KEY, SECRET)
        try:
            await create(client, name)
        finally:
            await client.aclose()
        await d.join(name, join_token(name, "a"))
        await d.drain_webhooks()
        assert [(w.name, w.outcome) for w in d.webhooks] == [
            ("room_started", "delivered"),
            ("participant_joined", "expired"),
        ]
        assert r.names() == ["room_started"]


async def test_webhook_url_can_be_set_after_start(double: LiveKitDouble, lk: api.LiveKitAPI) -> None:
    name = room_name()
    await create(lk, name)
    assert double.webhooks[0].outcome == "no_url"
    async with Receiver() as r:
        double.webhook_url = r.url
        await double.join(name, join_token(name, "a"))
        await double.drain_webhooks()
        assert r.names() == ["participant_joined"]


async def test_receiver_rejects_a_tampered_body(
    double: LiveKitDouble, lk: api.LiveKitAPI, receiver: Receiver
) -> None:
    await create(lk, room_name())
    await double.drain_webhooks()
    body, headers = receiver.requests[0]
    verifier = api.WebhookReceiver(api.TokenVerifier(KEY, SECRET))
    assert verifier.receive(body, headers["Authorization"]).event == "room_started"
    with pytest.raises(Exception, match="hash mismatch"):
        verifier.receive(body.replace("room_started", "room_finished"), headers["Authorization"])
    with pytest.raises(Exception):  # noqa: B017 - pyjwt's signature error
        api.WebhookReceiver(api.TokenVerifier(KEY, "other")).receive(body, headers["Authorization"])


async def test_livekit_target_describes_a_real_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_URL", "http://livekit.invalid:7880")
    monkeypatch.delenv("LIVEKIT_API_KEY", raising=False)
    monkeypatch.delenv("LIVEKIT_API_SECRET", raising=False)
    async with livekit_target() as t:
        assert isinstance(t, RealLiveKit) and not t.is_double
        assert (t.url, t.api_key, t.api_secret) == ("http://livekit.invalid:7880", "devkey", "secret")
    monkeypatch.delenv("LIVEKIT_URL")
    async with livekit_target() as t:
        assert isinstance(t, LiveKitDouble) and t.is_double and t.url.startswith("http://127.0.0.1:")
