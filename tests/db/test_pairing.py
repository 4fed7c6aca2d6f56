"""Pairing (revision 0002): register_display, pair_controller, record_pairing_failure.

A display registers and shows a code; exactly one controller wins it; unknown or expired codes are
failed guesses, counted per client key (the app counts them with record_pairing_failure, since
pair_controller's own writes roll back with its error); too many of them give HT429.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.conftest import raises_sqlstate
from tests.db.helpers import (
    app_connection,
    db_now,
    event_types,
    events,
    identity,
    leave,
    minutes,
    seconds,
    session_row,
)

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


async def register(
    db: asyncpg.Connection, identity_id: uuid.UUID | None = None, ttl: timedelta | None = None
) -> asyncpg.Record:
    """register_display, with the transaction's now() next to the result (as `now`)."""
    if identity_id is None:
        identity_id = await identity(db, "display")
    row: asyncpg.Record | None = await db.fetchrow(
        "SELECT now() AS now, r.* FROM hearth.register_display($1, $2) r", identity_id, ttl
    )
    assert row is not None
    return row


async def pair(
    db: asyncpg.Connection,
    code: str | None,
    identity_id: uuid.UUID | None = None,
    key: str | None = None,
    now: datetime | None = None,
) -> asyncpg.Record:
    if identity_id is None:
        identity_id = await identity(db, "controller")
    if now is None:
        row = await db.fetchrow("SELECT * FROM hearth.pair_controller($1, $2, $3)", code, identity_id, key)
    else:
        row = await db.fetchrow(
            "SELECT * FROM hearth.pair_controller($1, $2, $3, $4)", code, identity_id, key, now
        )
    assert row is not None
    return row


async def fail(db: asyncpg.Connection, key: str | None, now: datetime | None = None) -> int:
    if now is None:
        value: int = await db.fetchval("SELECT hearth.record_pairing_failure($1)", key)
    else:
        value = await db.fetchval("SELECT hearth.record_pairing_failure($1, $2)", key, now)
    return value


async def role_of(admin: asyncpg.Connection, participant_id: uuid.UUID) -> str:
    value: str = await admin.fetchval(
        "SELECT role FROM hearth_data.participants WHERE participant_id = $1", participant_id
    )
    return value


async def unused_code(admin: asyncpg.Connection) -> str:
    """A well-formed code no session of this database has."""
    for candidate in ("ZZZZZZ", "YYYYYY", "XXXXXX", "WWWWWW"):
        if not await admin.fetchval(
            "SELECT EXISTS (SELECT FROM hearth_data.sessions WHERE code = $1)", candidate
        ):
            return candidate
    raise AssertionError("every candidate code is taken")


# --- register_display ----------------------------------------------------------------------------


async def test_register_display_waits_with_the_display_present(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    ident = await identity(db, "tv")
    row = await register(db, ident)
    assert list(row.keys()) == ["now", "session_id", "code", "participant_id", "expires_at"]
    assert re.fullmatch(f"[{ALPHABET}]{{6}}", row["code"])
    # The pairing_ttl setting (10 minutes) from the moment of registering.
    assert row["expires_at"] == row["now"] + minutes(10)
    stored = await session_row(admin, row["session_id"])
    assert stored is not None
    assert (stored["kind"], stored["status"], stored["code"]) == ("pairing", "waiting", row["code"])
    assert stored["max_participants"] == 2
    assert stored["expires_at"] == row["expires_at"]
    participant = await admin.fetchrow(
        "SELECT session_id, identity_id, role, left_at FROM hearth_data.participants"
        " WHERE participant_id = $1",
        row["participant_id"],
    )
    assert participant is not None
    assert dict(participant) == {
        "session_id": row["session_id"],
        "identity_id": ident,
        "role": "display",
        "left_at": None,
    }
    assert (
        await admin.fetchval(
            "SELECT session_id FROM hearth_data.presence WHERE participant_id = $1", row["participant_id"]
        )
        == row["session_id"]
    )
    [join] = await events(db, row["session_id"])
    assert join["type"] == "presence.join"
    assert join["payload"] == {
        "participant_id": str(row["participant_id"]),
        "identity_id": str(ident),
        "role": "display",
        "display_name": "tv",
    }
    assert await db.fetchval("SELECT hearth.check_session_expiry($1)", row["session_id"]) is False


async def test_register_display_with_its_own_ttl(db: asyncpg.Connection) -> None:
    row = await register(db, ttl=seconds(30))
    assert row["expires_at"] == row["now"] + seconds(30)
    longest = await register(db, ttl=timedelta(days=1))
    assert longest["expires_at"] == longest["now"] + timedelta(days=1)


async def test_register_display_follows_the_pairing_ttl_setting(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    await admin.execute("SELECT hearth.set_setting('pairing_ttl', '2 minutes')")
    row = await register(db)
    assert row["expires_at"] == row["now"] + minutes(2)


async def test_register_display_gives_every_display_its_own_code(db: asyncpg.Connection) -> None:
    ident = await identity(db)
    rows = [await register(db, ident) for _ in range(20)]
    assert len({r["code"] for r in rows}) == 20
    assert len({r["session_id"] for r in rows}) == 20


async def test_register_display_unknown_identity_is_ht404(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    async with raises_sqlstate("HT404"):
        await register(db, uuid.uuid4())
    assert await admin.fetchval("SELECT count(*) FROM hearth_data.sessions") == 0


@pytest.mark.parametrize(
    "ttl", [timedelta(0), seconds(-1), minutes(-10), timedelta(days=1, seconds=1), timedelta(days=400)]
)
async def test_register_display_bad_ttl_is_ht400(
    db: asyncpg.Connection, admin: asyncpg.Connection, ttl: timedelta
) -> None:
    async with raises_sqlstate("HT400"):
        await register(db, ttl=ttl)
    assert await admin.fetchval("SELECT count(*) FROM hearth_data.sessions") == 0


async def test_register_display_null_identity_is_ht400(db: asyncpg.Connection) -> None:
    async with raises_sqlstate("HT400"):
        await db.fetch("SELECT * FROM hearth.register_display(NULL)")


# --- pair_controller: the happy path -------------------------------------------------------------


async def test_pair_controller_pairs_and_emits_session_paired(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    display = await register(db)
    controller_identity = await identity(db, "phone")
    paired = await pair(db, display["code"], controller_identity)
    assert list(paired.keys()) == ["session_id", "participant_id"]
    assert paired["session_id"] == display["session_id"]
    assert paired["participant_id"] != display["participant_id"]
    assert await role_of(admin, paired["participant_id"]) == "controller"
    assert await role_of(admin, display["participant_id"]) == "display"

    stored = await session_row(admin, display["session_id"])
    assert stored is not None
    assert stored["status"] == "active"
    assert stored["expires_at"] is None, "a paired code stops expiring"
    # Long past the pairing TTL, the paired session is alive (only its idle timeout applies).
    late = display["now"] + minutes(30)
    assert (
        await db.fetchval("SELECT hearth.check_session_expiry($1, $2)", display["session_id"], late) is False
    )

    found = await events(db, display["session_id"])
    assert [e["type"] for e in found] == ["presence.join", "presence.join", "session.paired"]
    assert found[1]["payload"]["role"] == "controller"
    assert found[1]["payload"]["participant_id"] == str(paired["participant_id"])
    assert found[2]["payload"] == {
        "display_participant_id": str(display["participant_id"]),
        "controller_participant_id": str(paired["participant_id"]),
    }
    assert (
        await admin.fetchval(
            "SELECT count(*) FROM hearth_data.presence WHERE session_id = $1", display["session_id"]
        )
        == 2
    )


@pytest.mark.parametrize("shape", ["lower", "padded", "lower-padded", "mixed"])
async def test_pair_controller_matches_lower_case_and_blank_padded_codes(
    db: asyncpg.Connection, shape: str
) -> None:
    display = await register(db)
    code: str = display["code"]
    entered = {
        "lower": code.lower(),
        "padded": f"  {code}   ",
        "lower-padded": f" {code.lower()} ",
        "mixed": code[:3].lower() + code[3:],
    }[shape]
    paired = await pair(db, entered)
    assert paired["session_id"] == display["session_id"]


async def test_pair_controller_at_an_explicit_time_before_the_ttl(db: asyncpg.Connection) -> None:
    display = await register(db, ttl=minutes(5))
    paired = await pair(db, display["code"], now=display["now"] + minutes(4) + seconds(59))
    assert paired["session_id"] == display["session_id"]
    assert (await events(db, display["session_id"]))[-1]["created_at"] == display["now"] + minutes(
        4
    ) + seconds(59)


async def test_the_display_cannot_pair_with_itself(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    ident = await identity(db)
    display = await register(db, ident)
    async with raises_sqlstate("HT409"):
        await pair(db, display["code"], ident)
    stored = await session_row(admin, display["session_id"])
    assert stored is not None and stored["status"] == "waiting"


async def test_exactly_one_of_50_concurrent_controllers_wins(
    db: asyncpg.Connection, admin: asyncpg.Connection, db_url: str
) -> None:
    display = await register(db)
    controllers = [await app_connection(db_url) for _ in range(50)]
    blocker = await app_connection(db_url)
    await blocker.execute("RESET ROLE")
    try:
        identities = [await identity(db, f"controller {n}") for n in range(50)]
        pids = [await c.fetchval("SELECT pg_backend_pid()") for c in controllers]
        # The barrier: the session row is locked, so all 50 calls start and queue on it; once every one
        # of them waits on the lock, it is released and they race.
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute(
            "SELECT 1 FROM hearth_data.sessions WHERE session_id = $1 FOR UPDATE", display["session_id"]
        )

        async def attempt(conn: asyncpg.Connection, ident: uuid.UUID) -> Any:
            try:
                return await conn.fetchrow(
                    "SELECT * FROM hearth.pair_controller($1, $2, 'k')", display["code"], ident
                )
            except asyncpg.PostgresError as exc:
                return exc

        tasks = [asyncio.create_task(attempt(c, i)) for c, i in zip(controllers, identities, strict=True)]
        deadline = time.monotonic() + 60  # a guard against hanging, not a timing assertion
        while (
            await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE pid = ANY($1::int[]) AND wait_event_type = 'Lock'",
                pids,
            )
            < 50
        ):
            assert time.monotonic() < deadline, "the 50 calls never all waited on the session lock"
            await asyncio.sleep(0.02)
        await tx.commit()
        results = await asyncio.gather(*tasks)
    finally:
        for conn in [*controllers, blocker]:
            await conn.close()

    winners = [r for r in results if isinstance(r, asyncpg.Record)]
    losers = [r for r in results if not isinstance(r, asyncpg.Record)]
    assert len(winners) == 1
    assert [e.sqlstate for e in losers] == ["HT409"] * 49
    winner = winners[0]
    assert winner["session_id"] == display["session_id"]
    assert (
        await admin.fetchval(
            "SELECT count(*) FROM hearth_data.participants WHERE session_id = $1", display["session_id"]
        )
        == 2
    )
    assert await role_of(admin, winner["participant_id"]) == "controller"
    found = await events(db, display["session_id"])
    assert [e["type"] for e in found] == ["presence.join", "presence.join", "session.paired"]
    assert found[2]["payload"]["controller_participant_id"] == str(winner["participant_id"])
    # The 49 losers hit a paired code: no failed guesses.
    assert await admin.fetchval("SELECT count(*) FROM hearth_data.pairing_failures") == 0


# --- pair_controller: refusals -------------------------------------------------------------------


async def test_unknown_code_is_ht404(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    await register(db)
    async with raises_sqlstate("HT404"):
        await pair(db, await unused_code(admin))


async def test_a_room_code_is_not_a_display_code(db: asyncpg.Connection) -> None:
    room_code = await db.fetchval("SELECT code FROM hearth.create_session('room')")
    async with raises_sqlstate("HT404"):
        await pair(db, room_code)


async def test_expired_code_is_ht410_before_and_after_expire_sessions(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    display = await register(db)
    t0 = display["now"]
    # Due but not yet marked expired: HT410 already.
    async with raises_sqlstate("HT410"):
        await pair(db, display["code"], now=t0 + minutes(10))
    async with raises_sqlstate("HT410"):
        await pair(db, display["code"], now=t0 + minutes(11))
    assert await db.fetchval("SELECT hearth.expire_sessions($1)", t0 + minutes(11)) == 1
    found = await events(db, display["session_id"])
    assert [e["type"] for e in found] == ["presence.join", "presence.leave", "session.expired"]
    assert found[1]["payload"] == {"participant_id": str(display["participant_id"]), "reason": "expired"}
    assert found[2]["payload"] == {"reason": "pairing_timeout"}
    stored = await session_row(admin, display["session_id"])
    assert stored is not None and (stored["status"], stored["close_reason"]) == ("expired", "pairing_timeout")
    # Marked expired: HT410 whatever the time, not HT404 (the code stays findable until cleanup).
    async with raises_sqlstate("HT410"):
        await pair(db, display["code"])
    async with raises_sqlstate("HT410"):
        await pair(db, display["code"], now=t0 + minutes(1))


async def test_a_paired_code_is_ht409(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    display = await register(db)
    first = await identity(db)
    await pair(db, display["code"], first)
    async with raises_sqlstate("HT409"):
        await pair(db, display["code"])
    # Not even the winner pairs twice.
    async with raises_sqlstate("HT409"):
        await pair(db, display["code"], first)
    assert await event_types(db, display["session_id"]) == [
        "presence.join",
        "presence.join",
        "session.paired",
    ]


async def test_a_paired_code_is_not_a_failed_guess(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    display = await register(db)
    await pair(db, display["code"])
    # Far more HT409s than pairing_max_failures from one key: never HT429, nothing counted.
    for _ in range(15):
        async with raises_sqlstate("HT409"):
            await pair(db, display["code"], key="10.0.0.9")
    assert await admin.fetchval("SELECT count(*) FROM hearth_data.pairing_failures") == 0
    fresh = await register(db)
    assert (await pair(db, fresh["code"], key="10.0.0.9"))["session_id"] == fresh["session_id"]


MALFORMED = [
    "",
    "      ",
    "ABC",
    "ABCDE",
    "ABCDEFG",
    "ABC DEF",
    "ABC-DE",
    "ABCDE!",
    "ÄBCDEF",
    "ABCDE\n",
    "\tABCDEF",
    "ABCDEF" * 50,
]
# Look-alike characters are never in a code: 0, O, 1, I, L (in either case).
LOOK_ALIKES = [
    "ABCDE0",
    "ABCDEO",
    "ABCDE1",
    "ABCDEI",
    "ABCDEL",
    "abcdeo",
    "abcdei",
    "abcdel",
    "O0O0O0",
    "1I1LIL",
]


@pytest.mark.parametrize("code", MALFORMED + LOOK_ALIKES)
async def test_malformed_codes_are_ht400(db: asyncpg.Connection, code: str) -> None:
    await register(db)
    async with raises_sqlstate("HT400"):
        await pair(db, code)


async def test_a_look_alike_of_a_real_code_is_ht400_not_a_match(db: asyncpg.Connection) -> None:
    display = await register(db)
    code: str = display["code"]
    # Each look-alike in place of the last character: never a code, never this display's.
    for lookalike in "0O1IL":
        async with raises_sqlstate("HT400"):
            await pair(db, code[:5] + lookalike)
    # A valid neighbour is just another (unknown) code.
    neighbour = code[:5] + ALPHABET[(ALPHABET.index(code[5]) + 1) % len(ALPHABET)]
    async with raises_sqlstate("HT404"):
        await pair(db, neighbour)
    assert (await pair(db, code))["session_id"] == display["session_id"]


async def test_pairing_an_ended_display_is_ht410(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    display = await register(db)
    assert await leave(db, display["participant_id"])
    found = await events(db, display["session_id"])
    assert [e["type"] for e in found] == ["presence.join", "presence.leave", "session.ended"]
    assert found[2]["payload"] == {"reason": "empty"}
    stored = await session_row(admin, display["session_id"])
    assert stored is not None and (stored["status"], stored["close_reason"]) == ("ended", "empty")
    async with raises_sqlstate("HT410"):
        await pair(db, display["code"])


async def test_a_reused_code_pairs_the_newest_display(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    old = await register(db)
    assert await leave(db, old["participant_id"])
    new = await register(db)
    # Codes are unique among open sessions only: a new display may get a closed session's code.
    await admin.execute(
        "UPDATE hearth_data.sessions SET code = $1 WHERE session_id = $2", old["code"], new["session_id"]
    )
    paired = await pair(db, old["code"])
    assert paired["session_id"] == new["session_id"]


async def test_after_pairing_the_display_leaving_does_not_end_the_session(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    display = await register(db)
    controller = await pair(db, display["code"])
    assert await leave(db, display["participant_id"])
    stored = await session_row(admin, display["session_id"])
    assert stored is not None and stored["status"] == "active"
    assert await leave(db, controller["participant_id"])
    stored = await session_row(admin, display["session_id"])
    assert stored is not None and stored["status"] == "ended"
    assert (await event_types(db, display["session_id"]))[-3:] == [
        "presence.leave",
        "presence.leave",
        "session.ended",
    ]


# --- failed guesses and HT429 --------------------------------------------------------------------


async def test_record_pairing_failure_counts_per_key_within_10_minutes(db: asyncpg.Connection) -> None:
    t0 = await db_now(db)
    assert [await fail(db, "a", t0 + seconds(i)) for i in range(3)] == [1, 2, 3]
    assert await fail(db, "b", t0) == 1, "keys are counted apart"
    # Ten minutes after the first: that one no longer counts.
    assert await fail(db, "a", t0 + minutes(10)) == 3
    assert await fail(db, "a", t0 + minutes(30)) == 1
    assert await fail(db, None, t0) == 0, "a null key counts nothing"
    assert await fail(db, "a") >= 1  # the default p_now is now()


async def test_record_pairing_failure_clears_attempts_older_than_a_day(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    t0 = await db_now(db)
    for i in range(5):
        await fail(db, f"old-{i}", t0 - timedelta(days=2))
    await fail(db, "recent", t0 - minutes(5))
    await fail(db, "now", t0)
    keys = [
        r["client_key"]
        for r in await admin.fetch("SELECT client_key FROM hearth_data.pairing_failures ORDER BY 1")
    ]
    assert keys == ["now", "recent"]


async def test_ten_failures_give_ht429_even_for_a_valid_code(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    display = await register(db, ttl=minutes(60))
    t0 = display["now"]
    for i in range(9):
        await fail(db, "203.0.113.7", t0 + seconds(i))
    # Nine failures: the tenth attempt is still allowed (and this one is not even a failure).
    spare = await register(db, ttl=minutes(60))
    assert (await pair(db, spare["code"], key="203.0.113.7", now=t0 + seconds(20)))["session_id"] == spare[
        "session_id"
    ]
    assert await fail(db, "203.0.113.7", t0 + seconds(30)) == 10
    for code in (display["code"], await unused_code(admin), "bad!"):
        async with raises_sqlstate("HT429"):
            await pair(db, code, key="203.0.113.7", now=t0 + seconds(31))
    # Other keys and the null key are unaffected.
    async with raises_sqlstate("HT404"):
        await pair(db, await unused_code(admin), key="203.0.113.8", now=t0 + seconds(31))
    async with raises_sqlstate("HT404"):
        await pair(db, await unused_code(admin), key=None, now=t0 + seconds(31))
    # Still limited a second before the first failure is ten minutes old, and told so (Retry-After) ...
    async with raises_sqlstate("HT429") as info:
        await pair(db, display["code"], key="203.0.113.7", now=t0 + minutes(10) - seconds(1))
    assert info.value.detail == "1"
    async with raises_sqlstate("HT429") as info:
        await pair(db, display["code"], key="203.0.113.7", now=t0 + seconds(31))
    assert info.value.detail == str(10 * 60 - 31)
    # ... and free again ten minutes after the first failure (nine left in the window).
    paired = await pair(db, display["code"], key="203.0.113.7", now=t0 + minutes(10))
    assert paired["session_id"] == display["session_id"]
    stored = await session_row(admin, display["session_id"])
    assert stored is not None and stored["status"] == "active"


async def test_ht429_follows_the_pairing_max_failures_setting(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    await admin.execute("SELECT hearth.set_setting('pairing_max_failures', '3')")
    display = await register(db)
    assert [await fail(db, "k") for _ in range(2)] == [1, 2]
    async with raises_sqlstate("HT404"):
        await pair(db, await unused_code(admin), key="k")
    assert await fail(db, "k") == 3
    async with raises_sqlstate("HT429"):
        await pair(db, display["code"], key="k")


async def test_ht429_comes_before_everything_else(db: asyncpg.Connection, admin: asyncpg.Connection) -> None:
    """A limited client learns nothing about codes: malformed, unknown, expired and paired all say 429."""
    paired = await register(db)
    await pair(db, paired["code"])
    expired = await register(db, ttl=seconds(1))
    t0 = await db_now(db)
    for _ in range(10):
        await fail(db, "k", t0)
    for code in ("bad!", await unused_code(admin), expired["code"], paired["code"]):
        async with raises_sqlstate("HT429"):
            await pair(db, code, key="k", now=t0 + seconds(5))


async def test_pair_controller_writes_no_failure_itself(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    """Its errors roll back its writes: counting is the caller's job (record_pairing_failure)."""
    for _ in range(12):
        async with raises_sqlstate("HT404"):
            await pair(db, await unused_code(admin), key="k")
    assert await admin.fetchval("SELECT count(*) FROM hearth_data.pairing_failures") == 0


# --- leaving -------------------------------------------------------------------------------------


async def test_the_display_leaving_ends_the_pairing_session(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    display = await register(db)
    t1 = display["now"] + minutes(1)
    assert (
        await db.fetchval("SELECT hearth.leave_session($1, 'left', $2)", display["participant_id"], t1)
        is True
    )
    found = await events(db, display["session_id"])
    assert [(e["type"], e["payload"]) for e in found[1:]] == [
        ("presence.leave", {"participant_id": str(display["participant_id"]), "reason": "left"}),
        ("session.ended", {"reason": "empty"}),
    ]
    stored = await session_row(admin, display["session_id"])
    assert stored is not None
    assert (stored["status"], stored["closed_at"]) == ("ended", t1)
    assert await db.fetchval("SELECT hearth.leave_session($1)", display["participant_id"]) is False
    assert await db.fetchval("SELECT hearth.expire_sessions($1)", display["now"] + minutes(11)) == 0


async def test_a_swept_display_ends_the_pairing_session(
    db: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    display = await register(db, ttl=minutes(60))
    assert await db.fetchval("SELECT hearth.sweep_presence(NULL, $1)", display["now"] + minutes(2)) == 1
    assert (await event_types(db, display["session_id"]))[-2:] == ["presence.leave", "session.ended"]
    async with raises_sqlstate("HT410"):
        await pair(db, display["code"])


# --- bad input -----------------------------------------------------------------------------------

UNKNOWN = uuid.UUID("00000000-0000-4000-8000-000000000000")
BAD_INPUT: list[tuple[str, list[Any]]] = [
    ("SELECT * FROM hearth.register_display(NULL)", []),
    ("SELECT * FROM hearth.register_display(NULL, '5 minutes')", []),
    ("SELECT * FROM hearth.register_display($1, '0 seconds')", [":identity"]),
    ("SELECT * FROM hearth.register_display($1, '-5 minutes')", [":identity"]),
    ("SELECT * FROM hearth.register_display($1, '25 hours')", [":identity"]),
    ("SELECT * FROM hearth.register_display($1, '1000000 years')", [":identity"]),
    ("SELECT * FROM hearth.register_display($1)", [UNKNOWN]),
    ("SELECT * FROM hearth.pair_controller(NULL, $1)", [":identity"]),
    ("SELECT * FROM hearth.pair_controller(':code', NULL)", []),
    ("SELECT * FROM hearth.pair_controller(':code', $1, $2)", [":identity", "k" * 201]),
    ("SELECT * FROM hearth.pair_controller(':code', $1, 'k', NULL)", [":identity"]),
    ("SELECT * FROM hearth.pair_controller($1, $2)", ["", ":identity"]),
    ("SELECT * FROM hearth.pair_controller($1, $2)", ["x" * 100_000, ":identity"]),
    ("SELECT * FROM hearth.pair_controller(':code', $1)", [UNKNOWN]),
    ("SELECT hearth.record_pairing_failure($1)", ["k" * 201]),
    ("SELECT hearth.record_pairing_failure('k', NULL)", []),
    ("SELECT hearth.record_pairing_failure(NULL, NULL)", []),
]


COUNTS = (
    "SELECT (SELECT count(*) FROM hearth_data.sessions) AS s,"
    " (SELECT count(*) FROM hearth_data.participants) AS p,"
    " (SELECT count(*) FROM hearth_data.pairing_failures) AS f"
)


@pytest.mark.parametrize(("sql", "args"), BAD_INPUT, ids=[f"{i:02}" for i in range(len(BAD_INPUT))])
async def test_bad_input_is_an_ht_error(
    db: asyncpg.Connection, admin: asyncpg.Connection, sql: str, args: list[Any]
) -> None:
    ident = await identity(db)
    display = await register(db)
    before = await admin.fetchrow(COUNTS)
    values = [ident if a == ":identity" else a for a in args]
    with pytest.raises(asyncpg.PostgresError) as info:
        await db.fetch(sql.replace(":code", display["code"]), *values)
    assert info.value.sqlstate.startswith("HT"), f"{info.value.sqlstate}: {info.value}"
    after = await admin.fetchrow(COUNTS)
    assert before is not None and after is not None
    assert tuple(after) == tuple(before), "a failed call writes nothing"
    stored = await session_row(admin, display["session_id"])
    assert stored is not None and stored["status"] == "waiting"
