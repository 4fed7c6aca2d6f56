"""One table from Hearth's SQLSTATEs to HTTP statuses and websocket close codes (SPEC section 2)."""

from __future__ import annotations

import asyncpg

# SQLSTATE: (HTTP status, websocket close code)
STATUS: dict[str, tuple[int, int]] = {
    "HT400": (400, 4400),
    "HT401": (401, 4401),
    "HT403": (403, 4403),
    "HT404": (404, 4404),
    "HT409": (409, 4409),
    "HT410": (410, 4410),
    "HT429": (429, 4429),
}


# Codes no SQLSTATE raises, named after their HTTP status (SPEC section 5): the app's own.
HTTP_ONLY: dict[str, int] = {"HT405": 405, "HT413": 413, "HT503": 503}


class HearthError(Exception):
    """An error a client may see: an HT code and a message."""

    def __init__(
        self, code: str, message: str, *, http_status: int | None = None, retry_after_s: int | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s  # a rate limit's answer: HTTP's Retry-After
        self.http_status = http_status or STATUS.get(code, (HTTP_ONLY.get(code, 500), 1011))[0]

    @property
    def close_code(self) -> int:
        return STATUS.get(self.code, (500, 1011))[1]

    def body(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


def from_postgres(exc: asyncpg.PostgresError) -> HearthError | None:
    """The client-facing error for a database error of class HT, or None for anything else."""
    code = getattr(exc, "sqlstate", None)
    if code not in STATUS:
        return None
    # A rate limit says in its DETAIL how many seconds to wait (a quota's HT429 has no DETAIL).
    detail = getattr(exc, "detail", None)
    retry = int(detail) if code == "HT429" and isinstance(detail, str) and detail.isdigit() else None
    return HearthError(code, getattr(exc, "message", None) or str(exc), retry_after_s=retry)
