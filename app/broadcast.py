"""Ephemeral broadcast frames (SPEC section 6): to the session's other connected participants on every
instance, never stored, no seq, at most once, in the order each sender sent them.

Local receivers get a broadcast at once, straight from the sender's socket handler. Other instances get
it through PostgreSQL: the frames an instance's clients broadcast are packed, many to a NOTIFY payload,
and every payload gathered meanwhile goes out in one `hearth.broadcast` call (one transaction, its
commit with synchronous_commit off): no row, no WAL-flush wait, and one turn at the cluster-wide
notify commit lock per batch, not per broadcast, so the durable path keeps its throughput. A batch is
sent as soon as the previous one is done: the batch grows with the load, the latency does not.

LISTEN/NOTIFY has no privileges, and `hearth.broadcast` only NOTIFYs what it is given, so every payload
carries an HMAC made with a key derived from HEARTH_SECRET (shared by the instances, never seen by the
database). A receiver drops a payload that does not verify, that it has seen (a per-sender counter), or
that is older than MAX_AGE_S (a replay after the counter was forgotten), and counts it
(`hearth_broadcast_rejected_total{reason}`). Payload:

    v1.<MAC, 22 chars>.<sender nonce>.<counter>.<unix ms>\\n<session id> <from> <frame>\\n...

the MAC covering everything after its own field; each line is one broadcast with its client frame ready.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import time
from typing import Any

from app.db import UNAVAILABLE, Database
from app.errors import HearthError
from app.hub import Subscriber
from app.metrics import Metrics

log = logging.getLogger("hearth.broadcast")

CHANNEL = "hearth_broadcast"
MAX_BODY_BYTES = 4096
# NOTIFY payloads must be shorter than 8000 bytes.
MAX_PAYLOAD_BYTES = 7999
# Payloads per hearth.broadcast call (its own limit is 1000).
MAX_PAYLOADS_PER_CALL = 500
# Broadcasts waiting for the database beyond this are dropped (at most once: the database is away).
MAX_PENDING_BYTES = 8 * 1024 * 1024
# A receiver this many frames behind gets no broadcasts until it catches up (they would be stale), so
# broadcasts alone never make it a slow consumer (hub.MAX_QUEUED_FRAMES closes it).
MAX_BACKLOG = 1000
# Payloads older than this (by the sender's clock) are refused: a replay after its counter was forgotten.
MAX_AGE_S = 60.0
_MAC_CHARS = 22  # 16 bytes, base64url without padding


def channel_key(secret: str) -> bytes:
    """The broadcast channel's MAC key: derived from HEARTH_SECRET, so it differs from the token key."""
    return hmac.new(secret.encode(), b"hearth broadcast channel v1", hashlib.sha256).digest()


class Broadcasts:
    def __init__(self, db: Database, key: bytes, metrics: Metrics) -> None:
        self._db = db
        self._key = key
        self._metrics = metrics
        self._nonce = secrets.token_hex(8)
        self._counter = 0
        self._receivers: dict[str, set[Subscriber]] = {}
        self._pending: list[str] = []
        self._pending_bytes = 0
        self._wake = asyncio.Event()
        self._seen: dict[str, tuple[int, float]] = {}  # sender nonce -> (last counter, when)
        self._pruned_at = time.time()
        self._failing = False

    # Sockets of this instance
    def add(self, session_id: str, sub: Subscriber) -> None:
        """Deliver the session's broadcasts to this socket (after its welcome was queued)."""
        self._receivers.setdefault(session_id, set()).add(sub)

    def remove(self, session_id: str, sub: Subscriber) -> None:
        subs = self._receivers.get(session_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._receivers[session_id]

    def send(self, session_id: str, sender: str, frame: dict[str, Any]) -> None:
        """A client's broadcast frame: delivered here at once, queued for the other instances."""
        body = frame.get("body")
        if not isinstance(body, dict) or set(frame) != {"type", "body"}:
            raise HearthError("HT400", "broadcast frames are {type, body: object}")
        body_text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        if len(body_text.encode()) > MAX_BODY_BYTES:
            raise HearthError("HT400", f"a broadcast body is at most {MAX_BODY_BYTES} bytes of JSON")
        at = dt.datetime.now(dt.UTC).isoformat()
        text = (
            f'{{"type":"broadcast","session_id":"{session_id}","from":"{sender}","at":"{at}",'
            f'"body":{body_text}}}'
        )
        self._metrics.broadcasts.inc()
        self._deliver(session_id, sender, text)
        line = f"{session_id} {sender} {text}"
        size = len(line.encode()) + 1
        if self._pending_bytes + size > MAX_PENDING_BYTES:
            self._metrics.broadcasts_dropped.labels("queue").inc()
            return
        self._pending.append(line)
        self._pending_bytes += size
        self._wake.set()

    def _deliver(self, session_id: str, sender: str, text: str) -> int:
        delivered = 0
        for sub in self._receivers.get(session_id, ()):
            if sub.participant_id == sender:
                continue
            if sub.queued > MAX_BACKLOG:
                self._metrics.broadcasts_dropped.labels("backlog").inc()
                continue
            sub.push(text)
            delivered += 1
        if delivered:
            self._metrics.broadcasts_delivered.inc(delivered)
        return delivered

    # To the other instances
    async def run(self) -> None:
        """The sender: one hearth.broadcast call at a time, carrying all that was queued meanwhile."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            lines, self._pending, self._pending_bytes = self._pending, [], 0
            payloads = self._pack(lines)
            for start in range(0, len(payloads), MAX_PAYLOADS_PER_CALL):
                batch = payloads[start : start + MAX_PAYLOADS_PER_CALL]
                try:
                    await self._db.broadcast(batch)
                    self._failing = False
                except UNAVAILABLE as exc:  # anything else escapes to the supervisor
                    unsent = sum(payload.count("\n") for payload in payloads[start:])
                    self._metrics.broadcasts_dropped.labels("database").inc(unsent)
                    if not self._failing:
                        log.warning("broadcasts to other instances lost (database unavailable): %s", exc)
                    self._failing = True
                    break

    def _pack(self, lines: list[str]) -> list[str]:
        payloads: list[str] = []
        chunk: list[str] = []
        size = 0
        room = MAX_PAYLOAD_BYTES - 80  # the header: version, MAC, nonce, counter, time
        for line in lines:
            length = len(line.encode()) + 1
            if chunk and size + length > room:
                payloads.append(self._sign(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += length
        if chunk:
            payloads.append(self._sign(chunk))
        return payloads

    def _sign(self, lines: list[str]) -> str:
        self._counter += 1
        signed = f"{self._nonce}.{self._counter}.{int(time.time() * 1000)}\n" + "\n".join(lines)
        return f"v1.{self._mac(signed)}.{signed}"

    def _mac(self, signed: str) -> str:
        digest = hmac.new(self._key, signed.encode(), hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(digest).decode()[:_MAC_CHARS]

    # From the other instances (the listener's callback)
    def on_notify(self, payload: str) -> None:
        if not payload.startswith("v1.") or len(payload) < 4 + _MAC_CHARS or payload[3 + _MAC_CHARS] != ".":
            self._reject("malformed")
            return
        mac, signed = payload[3 : 3 + _MAC_CHARS], payload[4 + _MAC_CHARS :]
        if not hmac.compare_digest(mac, self._mac(signed)):
            self._reject("mac")
            return
        header, _, body = signed.partition("\n")
        nonce, counter_text, ms_text = header.split(".")
        if nonce == self._nonce:
            return  # ours: delivered here when it was sent
        now = time.time()
        if abs(now - int(ms_text) / 1000) > MAX_AGE_S:
            self._reject("stale")
            return
        counter = int(counter_text)
        last = self._seen.get(nonce)
        if last is not None and counter <= last[0]:
            self._reject("replay")
            return
        self._seen[nonce] = (counter, now)
        self._forget_old_senders(now)
        for line in body.split("\n"):
            self._deliver(line[:36], line[37:73], line[74:])

    def _reject(self, reason: str) -> None:
        self._metrics.broadcast_rejected.labels(reason).inc()

    def _forget_old_senders(self, now: float) -> None:
        """Counters of senders silent for twice MAX_AGE_S: their payloads are refused as stale anyway."""
        if now - self._pruned_at < MAX_AGE_S:
            return
        self._pruned_at = now
        self._seen = {n: seen for n, seen in self._seen.items() if now - seen[1] < 2 * MAX_AGE_S}
