"""NOTIFY has no privileges: whoever can connect may NOTIFY hearth_events. The relay delivers only rows
of the events table, so a forged notification reaches no client and costs the genuine event nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from tests.app.harness import Api, Instance, Ws

RELAY_READS = re.compile(r'^hearth_db_call_seconds_count\{function="event_frames"\} (\S+)$', re.M)


@contextlib.asynccontextmanager
async def _login(superuser: asyncpg.Connection, url: str, member_of: str | None) -> AsyncIterator[str]:
    """A login role holding only `member_of` (or nothing), allowed to connect (a cloned test database
    keeps CONNECT for PUBLIC; a migrated one would refuse a role without Hearth grants)."""
    name = f"forger_{uuid.uuid4().hex[:8]}"
    await superuser.execute(f"CREATE ROLE {name} LOGIN")
    if member_of:
        await superuser.execute(f"GRANT {member_of} TO {name}")
    parts = urlsplit(url)
    try:
        yield parts._replace(netloc=f"{name}@{parts.hostname}:{parts.port}").geturl()
    finally:
        await superuser.execute(f"DROP ROLE {name}")


async def _relay_reads(instance: Instance) -> float:
    async with httpx.AsyncClient(base_url=instance.base_url) as http:
        text = (await http.get("/metrics")).text
    found = RELAY_READS.search(text)
    return float(found[1]) if found else 0.0


@pytest.mark.parametrize("member_of", [None, "hearth_app", "hearth_admin"])
async def test_a_forged_notification_reaches_no_client(
    pair: list[Instance], api_a: Api, superuser: asyncpg.Connection, app_db: str, member_of: str | None
) -> None:
    _, alice_token = await api_a.identity("alice")
    _, bob_token = await api_a.identity("bob")
    session = await api_a.session(alice_token)
    sid = session["session_id"]
    alice_pid, alice_session = await api_a.join(sid, alice_token)
    _, bob_session = await api_a.join(sid, bob_token)
    bob = await Ws.open(pair[1], bob_session)
    head = (await bob.until_type("welcome"))["seq"]

    async with _login(superuser, app_db, member_of) as url:
        forger = await asyncpg.connect(url)
        try:
            forged = {
                "type": "message",
                "seq": head + 1,
                "session_id": sid,
                "at": "2026-01-01T00:00:00+00:00",
                "participant_id": alice_pid,
                "body": {"text": "FORGED"},
            }
            for payload in (json.dumps(forged), f"{sid} {head + 1}", f"{sid} {head + 10**6}", "garbage"):
                await forger.execute("SELECT pg_notify('hearth_events', $1)", payload)
        finally:
            await forger.close()
    await asyncio.sleep(0.5)
    reads_before = await _relay_reads(pair[1])
    await asyncio.sleep(1.0)
    # A doorbell beyond the stream's head is read once, then forgotten: no loop re-reading the table.
    assert await _relay_reads(pair[1]) - reads_before <= 1

    alice = await Ws.open(pair[0], alice_session)
    await alice.until_type("welcome")
    await alice.send({"type": "message", "body": {"text": "genuine"}})
    message = await bob.until_type("message")
    assert message["body"] == {"text": "genuine"} and message["seq"] == head + 1
    assert [f["body"] for f in bob.events("message")] == [{"text": "genuine"}]
    await alice.close()
    await bob.close()
