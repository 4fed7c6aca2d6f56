import asyncpg

from tests.conftest import raises_sqlstate


async def test_join_and_message(db: asyncpg.Connection) -> None:
    identity = await db.fetchval("SELECT hearth.create_identity('alice')")
    session = await db.fetchrow("SELECT * FROM hearth.create_session()")
    pid = await db.fetchval("SELECT hearth.join_session($1, $2)", session["session_id"], identity)
    assert await db.fetchval("SELECT hearth.touch($1)", [pid]) == 1
    seq = await db.fetchval("SELECT hearth.post_message($1, $2::jsonb)", pid, '{"text": "hi"}')
    assert seq == 2
    rows = await db.fetch("SELECT * FROM hearth.events_since($1, 0)", session["session_id"])
    assert [r["type"] for r in rows] == ["presence.join", "message"]
    async with raises_sqlstate("HT404"):
        await db.fetchval("SELECT hearth.leave_session(gen_random_uuid())")
