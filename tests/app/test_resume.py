"""Resume (SPEC section 6): `after` and `after_identity` replay both streams of a socket, and the
welcome's `recovered` says whether that replay is complete: false across a prune (the replay starts at
the oldest event kept) and beyond a stream's head (it resumes from the head)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest

from tests.app.harness import Api, Instance, Ws

pytestmark = pytest.mark.usefixtures("no_server_tracebacks")


async def _room(api: Api, *names: str) -> tuple[str, list[dict[str, str]]]:
    """A room with one joined member per name: (session_id, [{identity_id, participant_id, token}])."""
    _, owner_token = await api.identity("owner")
    session_id = (await api.session(owner_token))["session_id"]
    members = []
    for name in names:
        identity_id, token = await api.identity(name)
        participant_id, session_token = await api.join(session_id, token)
        members.append({"identity_id": identity_id, "participant_id": participant_id, "token": session_token})
    return session_id, members


async def _post(sql: asyncpg.Connection, participant_id: str, n: int) -> int:
    seq: int = await sql.fetchval(
        "SELECT hearth.post_message($1, $2::jsonb)", participant_id, json.dumps({"n": n})
    )
    return seq


async def _match_events(api: Api, sql: asyncpg.Connection, identity_id: str) -> list[int]:
    """A match.found then a match.ended on an identity's own stream; their seqs there."""
    peer, _ = await api.identity("peer")
    await sql.fetchval("SELECT hearth.enqueue_match($1)", identity_id)
    await sql.fetchval("SELECT hearth.enqueue_match($1)", peer)
    found = None
    for _ in range(200):  # the instances' matchers, woken by the enqueue, or this call pair them
        await sql.fetchval("SELECT hearth.match_waiting()")
        found = await sql.fetchrow(
            "SELECT seq, payload FROM hearth.events_since($1, 0) WHERE type = 'match.found'", identity_id
        )
        if found is not None:
            break
        await asyncio.sleep(0.02)
    assert found is not None
    match_session = json.loads(found["payload"])["match_session_id"]
    await sql.execute("SELECT hearth.end_match($1, $2, 'end')", match_session, identity_id)
    rows = await sql.fetch("SELECT seq FROM hearth.events_since($1, $2)", identity_id, found["seq"] - 1)
    return [r["seq"] for r in rows]


async def _prune_before(sql: asyncpg.Connection, stream_id: str, seq: int) -> None:
    """prune_events as pg_cron runs it, at the moment that makes event `seq` of the stream the oldest
    kept: every event emitted before it goes (those of other streams too)."""
    emitted = await sql.fetchval(
        "SELECT emitted_at FROM hearth_data.events WHERE stream_id = $1 AND seq = $2", stream_id, seq
    )
    await sql.fetchval("SELECT hearth.prune_events('1 hour', $1::timestamptz + interval '1 hour')", emitted)
    kept = await sql.fetchval("SELECT min(seq) FROM hearth_data.events WHERE stream_id = $1", stream_id)
    assert kept == seq


async def _welcome(ws: Ws) -> dict[str, Any]:
    welcome = await ws.next()
    assert welcome["type"] == "welcome", welcome
    return welcome


async def _collect(ws: Ws, count: int) -> list[dict[str, Any]]:
    await ws.until(lambda _f: len(ws.events()) >= count, 10)
    return ws.events()


async def test_a_fresh_connection_is_recovered(pair: list[Instance], api_a: Api) -> None:
    _, [ann] = await _room(api_a, "ann")
    ws = await Ws.open(pair[0], ann["token"])
    assert (await _welcome(ws))["recovered"] is True
    await ws.close()
    _, identity_token = await api_a.identity("solo")
    ws = await Ws.open(pair[0], identity_token)
    assert (await _welcome(ws))["recovered"] is True
    await ws.close()


async def test_resume_inside_retention_replays_both_streams_exactly(
    pair: list[Instance], api_a: Api, sql: asyncpg.Connection
) -> None:
    _, [ann, bob] = await _room(api_a, "ann", "bob")
    ws = await Ws.open(pair[0], ann["token"])
    first = await _welcome(ws)
    await ws.close()

    # While ann is away: messages on the session stream, a match found and ended on her own stream.
    posted = [await _post(sql, bob["participant_id"], n) for n in range(3)]
    identity_seqs = await _match_events(api_a, sql, ann["identity_id"])

    again = await Ws.open(pair[1], ann["token"], after=first["seq"], after_identity=first["identity_seq"])
    welcome = await _welcome(again)
    assert welcome["recovered"] is True
    assert welcome["identity_seq"] == identity_seqs[-1]
    events = await _collect(again, len(posted) + len(identity_seqs))
    session_events = [e for e in events if e["session_id"] is not None]
    identity_events = [e for e in events if e["session_id"] is None]
    assert [e["seq"] for e in session_events] == posted
    assert [e["body"]["n"] for e in session_events] == [0, 1, 2]
    assert [(e["seq"], e["type"]) for e in identity_events] == list(
        zip(identity_seqs, ["match.found", "match.ended"], strict=True)
    )
    assert all(e["identity_id"] == ann["identity_id"] for e in identity_events)
    # Live after the replay, none twice.
    live = await _post(sql, bob["participant_id"], 3)
    assert (await again.until_type("message"))["seq"] == live
    await again.close()


async def test_without_after_identity_the_identity_stream_starts_at_its_head(
    pair: list[Instance], api_a: Api, sql: asyncpg.Connection
) -> None:
    _, [ann, bob] = await _room(api_a, "ann", "bob")
    ws = await Ws.open(pair[0], ann["token"])
    first = await _welcome(ws)
    await ws.close()
    await _match_events(api_a, sql, ann["identity_id"])
    posted = await _post(sql, bob["participant_id"], 0)
    again = await Ws.open(pair[0], ann["token"], after=first["seq"])
    assert (await _welcome(again))["recovered"] is True  # only the session stream was asked for
    assert (await again.until_type("message"))["seq"] == posted
    assert [e for e in again.events() if e["session_id"] is None] == []
    await again.close()


async def test_resume_across_a_prune_is_not_recovered_and_starts_at_the_oldest_kept(
    pair: list[Instance], api_a: Api, sql: asyncpg.Connection
) -> None:
    session_id, [ann, bob] = await _room(api_a, "ann", "bob")
    ws = await Ws.open(pair[0], ann["token"])
    first = await _welcome(ws)
    await ws.close()
    posted = [await _post(sql, bob["participant_id"], n) for n in range(6)]
    await _prune_before(sql, session_id, posted[3])

    again = await Ws.open(pair[1], ann["token"], after=first["seq"], after_identity=first["identity_seq"])
    welcome = await _welcome(again)
    assert welcome["recovered"] is False
    events = await _collect(again, 3)
    assert [e["seq"] for e in events] == posted[3:]
    assert [e["body"]["n"] for e in events] == [3, 4, 5]
    await again.close()

    # Resuming from the oldest kept event's predecessor is complete again.
    again = await Ws.open(pair[0], ann["token"], after=posted[2])
    assert (await _welcome(again))["recovered"] is True
    assert [e["seq"] for e in await _collect(again, 3)] == posted[3:]
    await again.close()


async def test_a_prune_of_the_identity_stream_alone_is_not_recovered(
    pair: list[Instance], api_a: Api, sql: asyncpg.Connection
) -> None:
    _, [ann] = await _room(api_a, "ann")
    ws = await Ws.open(pair[0], ann["token"])
    first = await _welcome(ws)
    await ws.close()
    identity_seqs = await _match_events(api_a, sql, ann["identity_id"])
    await _prune_before(sql, ann["identity_id"], identity_seqs[1])
    again = await Ws.open(pair[0], ann["token"], after=first["seq"], after_identity=first["identity_seq"])
    assert (await _welcome(again))["recovered"] is False
    replayed = await _collect(again, 1)
    assert [(e["seq"], e["type"]) for e in replayed] == [(identity_seqs[1], "match.ended")]
    await again.close()


async def test_everything_pruned_resumes_from_the_head(
    pair: list[Instance], api_a: Api, sql: asyncpg.Connection
) -> None:
    session_id, [ann, bob] = await _room(api_a, "ann", "bob")
    ws = await Ws.open(pair[0], ann["token"])
    first = await _welcome(ws)
    await ws.close()
    posted = [await _post(sql, bob["participant_id"], n) for n in range(2)]
    await sql.fetchval("SELECT hearth.prune_events('1 hour', now() + interval '2 hours')")
    assert await sql.fetchval("SELECT count(*) FROM hearth_data.events WHERE stream_id = $1", session_id) == 0
    again = await Ws.open(pair[0], ann["token"], after=first["seq"])
    welcome = await _welcome(again)
    assert welcome["recovered"] is False and welcome["seq"] == posted[-1]
    live = await _post(sql, bob["participant_id"], 2)
    assert [e["seq"] for e in await _collect(again, 1)] == [live]
    await again.close()


@pytest.mark.parametrize("stream", ["session", "identity"])
async def test_after_beyond_the_head_resumes_from_the_head(
    pair: list[Instance], api_a: Api, sql: asyncpg.Connection, stream: str
) -> None:
    _, [ann, bob] = await _room(api_a, "ann", "bob")
    ws = await Ws.open(pair[0], ann["token"])
    first = await _welcome(ws)
    await ws.close()
    after, after_identity = first["seq"], first["identity_seq"]
    if stream == "session":
        after += 100
    else:
        after_identity += 100
    again = await Ws.open(pair[1], ann["token"], after=after, after_identity=after_identity)
    welcome = await _welcome(again)
    assert welcome["recovered"] is False
    assert (welcome["seq"], welcome["identity_seq"]) == (first["seq"], first["identity_seq"])
    # The next event is delivered, not skipped as already seen.
    live = await _post(sql, bob["participant_id"], 0)
    assert [e["seq"] for e in await _collect(again, 1)] == [live]
    await again.close()


async def test_identity_token_sockets_resume_and_say_whether_they_recovered(
    pair: list[Instance], api_a: Api, sql: asyncpg.Connection
) -> None:
    identity_id, token = await api_a.identity("solo")
    ws = await Ws.open(pair[0], token)
    first = await _welcome(ws)
    assert first["seq"] == 0
    await ws.close()
    seqs = await _match_events(api_a, sql, identity_id)

    again = await Ws.open(pair[1], token, after=first["seq"])
    welcome = await _welcome(again)
    assert welcome["recovered"] is True and welcome["seq"] == seqs[-1]
    assert [e["seq"] for e in await _collect(again, 2)] == seqs
    await again.close()

    beyond = await Ws.open(pair[0], token, after=seqs[-1] + 5)
    assert (await _welcome(beyond))["recovered"] is False
    await beyond.close()

    await _prune_before(sql, identity_id, seqs[1])
    pruned = await Ws.open(pair[0], token, after=first["seq"])
    assert (await _welcome(pruned))["recovered"] is False
    assert [e["seq"] for e in await _collect(pruned, 1)] == seqs[1:]
    await pruned.close()


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "", "9" * 30])
async def test_a_malformed_after_identity_closes_with_4400(
    pair: list[Instance], api_a: Api, value: str
) -> None:
    _, [ann] = await _room(api_a, "ann")
    ws = Ws(await _raw_connect(pair[0], f"?token={ann['token']}&after_identity={value}"))
    assert await ws.closed() == 4400


async def test_after_identity_on_an_identity_token_closes_with_4400(pair: list[Instance], api_a: Api) -> None:
    _, token = await api_a.identity("solo")
    ws = Ws(await _raw_connect(pair[0], f"?token={token}&after_identity=0"))
    assert await ws.closed() == 4400


async def _raw_connect(instance: Instance, query: str) -> Any:
    from websockets.asyncio.client import connect

    return await connect(instance.ws_url + query, open_timeout=10)


async def test_resume_across_a_partition_boundary_and_a_dropped_partition(
    pair: list[Instance], api_a: Api, sql: asyncpg.Connection
) -> None:
    """The events table in partitions of one second: a replay spanning two of them is complete; once the
    partitions holding the first half are dropped, it is not, and starts at the oldest event kept."""
    session_id, [ann, bob] = await _room(api_a, "ann", "bob")
    ws = await Ws.open(pair[0], ann["token"])
    first = await _welcome(ws)
    await ws.close()
    await sql.fetchval("SELECT hearth.set_setting('event_partition_interval', '1 second')")
    try:
        assert await sql.fetchval("SELECT hearth.create_event_partitions()") >= 4
        # The first partition starts after the default partition's newest event (this module's others).
        lower = await sql.fetchval("SELECT min(lower) FROM hearth_data.event_partitions()")
        await asyncio.sleep(
            max(0.0, (lower - await sql.fetchval("SELECT clock_timestamp()")).total_seconds())
        )
        posted = [await _post(sql, bob["participant_id"], n) for n in range(3)]
        where = "SELECT tableoid::regclass::text FROM hearth_data.events WHERE stream_id = $2 AND seq = $1"
        held = await sql.fetchval(where, posted[-1], session_id)
        upper = await sql.fetchval(
            "SELECT upper FROM hearth_data.event_partitions() WHERE partition::text = $1", held
        )
        now = await sql.fetchval("SELECT clock_timestamp()")
        await asyncio.sleep(max(0.0, (upper - now).total_seconds()) + 0.05)
        posted += [await _post(sql, bob["participant_id"], n) for n in range(3, 6)]
        assert await sql.fetchval(where, posted[3], session_id) not in (held, "hearth_data.events_default")

        again = await Ws.open(pair[1], ann["token"], after=first["seq"])
        assert (await _welcome(again))["recovered"] is True
        assert [e["seq"] for e in await _collect(again, 6)] == posted
        await again.close()

        # Every partition up to the one holding the third message goes.
        await sql.fetchval("SELECT hearth.prune_events('1 hour', $1::timestamptz + interval '1 hour')", upper)
        assert await sql.fetchval(where, posted[2], session_id) is None
        again = await Ws.open(pair[0], ann["token"], after=first["seq"])
        assert (await _welcome(again))["recovered"] is False
        events = await _collect(again, 3)
        assert [e["seq"] for e in events] == posted[3:]
        assert [e["body"]["n"] for e in events] == [3, 4, 5]
        await again.close()
        again = await Ws.open(pair[1], ann["token"], after=posted[2])
        assert (await _welcome(again))["recovered"] is True
        assert [e["seq"] for e in await _collect(again, 3)] == posted[3:]
        await again.close()
    finally:
        # The module's other tests prune at exact times: events go back to the default partition.
        await sql.fetchval("SELECT hearth.set_setting('event_partition_interval', '15 minutes')")
        for (name,) in await sql.fetch("SELECT partition::text FROM hearth_data.event_partitions()"):
            await sql.execute(f"DROP TABLE {name}")
