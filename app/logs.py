"""One logging setup for the process: uvicorn's loggers and Hearth's (`hearth.*`) go to one handler on
stderr, at the level of HEARTH_LOG_LEVEL, as text lines or, with HEARTH_LOG_FORMAT=json, one JSON object per
line for log shippers. A warning always says why: an exception whose str() is empty (`TimeoutError()`) is
logged as its repr. Query strings are never logged."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any


class Reasons(logging.Filter):
    """Exceptions in a record's arguments whose str() is empty become their repr, so that
    `log.warning("connection lost: %s", exc)` never ends in nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(_blank(arg) for arg in record.args):
            record.args = tuple(repr(arg) if _blank(arg) else arg for arg in record.args)
        return True


def _blank(value: object) -> bool:
    return isinstance(value, BaseException) and not str(value)


# A path and its query string, anywhere in a formatted line (uvicorn's, websockets' debug lines, a
# traceback): the query string goes. Tokens travel in websocket and event-stream URLs, under names that
# may be percent-encoded (`?%74oken=`), so no query string is logged at all.
_QUERY = re.compile(r"(/[^\s?\"'<>]*)\?[^\s\"'<>]*")


def without_queries(text: str) -> str:
    return _QUERY.sub(r"\1", text)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return without_queries(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: time (UTC, ISO 8601), level, logger, message, and the
    traceback as `exception` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": without_queries(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = without_queries(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = without_queries(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False)


def config(level: str, fmt: str) -> dict[str, Any]:
    """The dictConfig uvicorn applies (its `log_config`): one handler for every logger."""
    formatter = JsonFormatter if fmt == "json" else TextFormatter
    upper = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"reasons": {"()": Reasons}},
        "formatters": {"hearth": {"()": formatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "hearth",
                "filters": ["reasons"],
            }
        },
        "root": {"handlers": ["default"], "level": upper},
        # uvicorn's own loggers carry no handler of their own: they reach the one above.
        "loggers": {
            name: {"handlers": [], "level": upper, "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }
