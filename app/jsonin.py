"""JSON from clients (HTTP bodies, websocket frames), parsed strictly: what passes can be stored by
PostgreSQL, so bad input is an HT400 and never a database error (a 500, or a dropped websocket).

Pure: text in, value or HearthError out.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from app.errors import HearthError

# Deeper nesting than any client needs; also keeps json.dumps (asyncpg's jsonb codec) off the
# recursion limit.
MAX_DEPTH = 64
# A whole number in a query string: ASCII digits only (str.isdigit() also takes "²", which int() refuses,
# and "١٢", which int() takes), at most 18 of them so it fits a bigint.
_WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400
        raise ValueError("number out of range")
    return value


def _no_constants(name: str) -> Any:  # NaN, Infinity, -Infinity: Python extensions, not JSON
    raise ValueError(f"{name} is not JSON")


def parse(raw: str | bytes, what: str) -> Any:
    """The JSON value of `raw`; HT400 naming `what` if it is not JSON PostgreSQL can store."""
    try:
        value = json.loads(raw, parse_float=_finite, parse_constant=_no_constants)
    except (ValueError, RecursionError):
        raise HearthError("HT400", f"{what} is not valid JSON") from None
    check(value, what)
    return value


def check(value: Any, what: str) -> None:
    """HT400 for nesting deeper than MAX_DEPTH, or a string (or key) with a NUL character or an unpaired
    surrogate: PostgreSQL's text and jsonb cannot hold them."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise HearthError("HT400", f"{what} contains a NUL character")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise HearthError("HT400", f"{what} contains an unpaired surrogate") from None
        elif isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise HearthError("HT400", f"{what} is nested deeper than {MAX_DEPTH} levels")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def whole_number(text: str, what: str) -> int:
    """The non-negative integer `text` spells in ASCII digits; HT400 naming `what` otherwise."""
    if not _WHOLE_NUMBER.fullmatch(text):
        raise HearthError("HT400", f"{what} must be a whole number (ASCII digits)")
    return int(text)
