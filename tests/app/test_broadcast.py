"""app.broadcast in-process: packing and signing, what receivers accept and drop, the sender's batches."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from app import broadcast
from app.broadcast import Broadcasts, channel_key
from app.errors import HearthError
from app.events import Event
from app.hub import Hub, Subscriber
from app.metrics import Metrics
from tests.app.wire import texts

SESSION = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
ANN = "11111111-1111-4111-8111-111111111111"
BOB = "22222222-2222-4222-8222-222222222222"
KEY = channel_key("test-secret-for-hearth-tokens-0123456789")


class _Db:
    """hearth.broadcast as the sender sees it: records each call's payloads; can be made to fail."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.down = False

    async def broadcast(self, payloads: list[str]) -> int:
        if self.down:
            raise OSError("connection refused")
        self.calls.append(payloads)
        await asyncio.sleep(0.01)  # one round trip: what arrives meanwhile waits for the next call
        return len(payloads)


async def _no_events(streams: list[str], after: list[int]) -> list[Event]:
    return []


def _instance(key: bytes = KEY) -> tuple[Broadcasts, _Db, Metrics, Hub]:
    metrics = Metrics()
    db = _Db()
    return Broadcasts(db, key, metrics), db, metrics, Hub(_no_events, metrics)  # type: ignore[arg-type]


def _frames(sub: Subscriber) -> list[dict[str, Any]]:
    return [json.loads(text) for frame in sub._out for text in texts(frame)]


def _rejected(metrics: Metrics, reason: str) -> float:
    return metrics.registry.get_sample_value("hearth_broadcast_rejected_total", {"reason": reason}) or 0.0


def test_sent_frames_reach_the_local_others_at_once() -> None:
    sender, _, _, hub = _instance()
    ann, bob = Subscriber(hub, ANN), Subscriber(hub, BOB)
    sender.add(SESSION, ann)
    sender.add(SESSION, bob)
    sender.send(SESSION, ANN, {"type": "broadcast", "body": {"x": 1, "text": "héllo\nthere"}})
    [frame] = _frames(bob)
    assert frame["body"] == {"x": 1, "text": "héllo\nthere"} and frame["from"] == ANN
    assert _frames(ann) == []
    sender.remove(SESSION, bob)
    sender.send(SESSION, ANN, {"type": "broadcast", "body": {"x": 2}})
    assert len(_frames(bob)) == 1


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "broadcast", "body": [1]},
        {"type": "broadcast"},
        {"type": "broadcast", "body": {}, "to": ANN},
        {"type": "broadcast", "body": {"pad": "é" * 2100}},  # 4,200 bytes of UTF-8 in 2,100 characters
    ],
)
def test_bad_bodies_are_ht400(frame: dict[str, Any]) -> None:
    sender, _, _, _ = _instance()
    with pytest.raises(HearthError) as info:
        sender.send(SESSION, ANN, frame)
    assert info.value.code == "HT400"


async def test_one_call_carries_what_queued_meanwhile_in_payloads_under_8000_bytes() -> None:
    sender, db, _, hub = _instance()
    receiver, _, _, _ = _instance()
    bob = Subscriber(hub, BOB)
    receiver.add(SESSION, bob)
    task = asyncio.create_task(sender.run())
    try:
        for n in range(1000):
            sender.send(SESSION, ANN, {"type": "broadcast", "body": {"n": n, "pad": "x" * 100}})
        await asyncio.sleep(0.05)
        assert len(db.calls) == 1, "a batch per call, not a call per broadcast"
        payloads = db.calls[0]
        assert 20 < len(payloads) < 60  # about 23 broadcasts of 340 bytes a payload
        assert all(len(p.encode()) < 8000 for p in payloads)
        for payload in payloads:
            receiver.on_notify(payload)
        assert [f["body"]["n"] for f in _frames(bob)] == list(range(1000))
        for n in range(3):  # later broadcasts: the next calls
            sender.send(SESSION, ANN, {"type": "broadcast", "body": {"n": n}})
            await asyncio.sleep(0.03)
        assert len(db.calls) == 4
    finally:
        task.cancel()


async def test_a_database_outage_loses_broadcasts_and_then_they_flow() -> None:
    sender, db, metrics, _ = _instance()
    task = asyncio.create_task(sender.run())
    try:
        db.down = True
        sender.send(SESSION, ANN, {"type": "broadcast", "body": {"n": 1}})
        await asyncio.sleep(0.02)
        lost = metrics.registry.get_sample_value("hearth_broadcasts_dropped_total", {"reason": "database"})
        assert lost == 1
        db.down = False
        sender.send(SESSION, ANN, {"type": "broadcast", "body": {"n": 2}})
        await asyncio.sleep(0.02)
        assert len(db.calls) == 1 and '"n":2' in db.calls[0][0]
    finally:
        task.cancel()


def _payloads(sender: Broadcasts, count: int) -> list[str]:
    lines = [
        f'{SESSION} {ANN} {{"type":"broadcast","session_id":"{SESSION}","from":"{ANN}","body":{{"n":{n}}}}}'
        for n in range(count)
    ]
    return [sender._pack([line])[0] for line in lines]


def test_receivers_drop_what_does_not_verify_or_was_seen() -> None:
    sender, _, _, _ = _instance()
    receiver, _, metrics, hub = _instance()
    bob = Subscriber(hub, BOB)
    receiver.add(SESSION, bob)
    first, second = _payloads(sender, 2)
    forger, _, _, _ = _instance(channel_key("another-secret-that-is-long-enough-0123456789"))
    (forged,) = _payloads(forger, 1)
    receiver.on_notify(first)
    receiver.on_notify(forged)  # signed with another key
    receiver.on_notify(first.replace('"n":0', '"n":9'))  # tampered
    receiver.on_notify(first)  # replayed
    receiver.on_notify("v1." + "A" * 30)
    receiver.on_notify("")
    receiver.on_notify(second)
    assert [f["body"]["n"] for f in _frames(bob)] == [0, 1]
    rejected = [_rejected(metrics, reason) for reason in ("mac", "replay", "malformed")]
    assert rejected == [2, 1, 2]


def test_receivers_ignore_their_own_and_refuse_stale_payloads(monkeypatch: pytest.MonkeyPatch) -> None:
    sender, _, metrics, hub = _instance()
    bob = Subscriber(hub, BOB)
    sender.add(SESSION, bob)
    (own,) = _payloads(sender, 1)
    sender.on_notify(own)  # delivered locally when sent; not again
    assert _frames(bob) == []
    other, _, _, _ = _instance()
    (old,) = _payloads(other, 1)
    now = time.time()
    monkeypatch.setattr(broadcast.time, "time", lambda: now + broadcast.MAX_AGE_S + 1)
    sender.on_notify(old)
    assert _frames(bob) == [] and _rejected(metrics, "stale") == 1


def test_a_receiver_far_behind_gets_no_more_broadcasts() -> None:
    sender, _, metrics, hub = _instance()
    bob = Subscriber(hub, BOB)
    sender.add(SESSION, bob)
    for n in range(broadcast.MAX_BACKLOG + 10):
        sender.send(SESSION, ANN, {"type": "broadcast", "body": {"n": n}})
    assert bob.queued == broadcast.MAX_BACKLOG + 1 and bob.close_code is None
    assert metrics.registry.get_sample_value("hearth_broadcasts_dropped_total", {"reason": "backlog"}) == 9
