"""Matchmaking: the match loop (pair waiting identities promptly, end abandoned matches) and its routes
(the queue, an identity's match, skip and end)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response

from app import shapes
from app.api import answer, claims_of, path_uuid, read_body, state_of
from app.db import Database
from app.loops import every
from app.openapi import ApiRoute, Operation


class Matchmaking:
    """The app's share of matchmaking: pair waiting identities promptly after an enqueue (pg_cron is the
    safety net) and end matches abandoned in LiveKit."""

    def __init__(self, db: Database, *, tick_s: float = 2.0, grace_s: float = 20.0) -> None:
        self._db = db
        self._tick_s = tick_s
        self._grace_s = grace_s
        self.wake = asyncio.Event()

    async def match(self) -> None:
        # Again while it finds pairs: concurrent matchers can hold some of the queue for a moment.
        while await self._db.match_waiting(100):
            pass

    async def reap(self) -> None:
        await self._db.end_abandoned_matches(timedelta(seconds=self._grace_s))

    async def match_loop(self) -> None:
        await every(self._tick_s, self.wake, self.match)

    async def reap_loop(self) -> None:
        await every(5.0, None, self.reap)


def _answer_state(state: str) -> Response:
    return answer(shapes.MatchState.model_validate({"state": state}))


async def enqueue(request: Request) -> Response:
    claims = claims_of(request)
    await read_body(request, shapes.Empty)
    return _answer_state(await state_of(request).db.enqueue_match(claims.identity_id))


async def leave_queue(request: Request) -> Response:
    claims = claims_of(request)
    return _answer_state(await state_of(request).db.leave_queue(claims.identity_id))


async def match_status(request: Request) -> Response:
    claims = claims_of(request)
    return answer(shapes.MatchStatus(**await state_of(request).db.match_status(claims.identity_id)))


async def _end(request: Request, action: str) -> Response:
    session_id = path_uuid(request, "session_id")
    claims = claims_of(request)
    await read_body(request, shapes.Empty)
    db = state_of(request).db
    await db.end_match(session_id, claims.identity_id, action)
    return _answer_state(await db.identity_state(claims.identity_id))


async def skip(request: Request) -> Response:
    return await _end(request, "skip")


async def end(request: Request) -> Response:
    return await _end(request, "end")


routes = [
    ApiRoute(
        "/v1/match/queue",
        enqueue,
        "POST",
        Operation("Wait for a match", {200: shapes.MatchState}, body=shapes.Empty, errors=(404, 409)),
    ),
    ApiRoute(
        "/v1/match/queue",
        leave_queue,
        "DELETE",
        Operation("Stop waiting for a match", {200: shapes.MatchState}, errors=(404, 409)),
    ),
    ApiRoute(
        "/v1/match",
        match_status,
        "GET",
        Operation("Where matching stands", {200: shapes.MatchStatus}, errors=(404,)),
    ),
    ApiRoute(
        "/v1/matches/{session_id}/skip",
        skip,
        "POST",
        Operation(
            "Leave a match and wait for the next",
            {200: shapes.MatchState},
            body=shapes.Empty,
            errors=(403, 404, 410),
        ),
    ),
    ApiRoute(
        "/v1/matches/{session_id}/end",
        end,
        "POST",
        Operation("Leave a match", {200: shapes.MatchState}, body=shapes.Empty, errors=(403, 404, 410)),
    ),
]
