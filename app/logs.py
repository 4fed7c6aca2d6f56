"""One logging setup for the process: uvicorn's loggers and Hearth's (`hearth.*`) go to one handler on
stderr, at the level of HEARTH_LOG_LEVEL, as text lines or, with HEARTH_LOG_FORMAT=json, one JSON object per
line for log shippers. A warning always says why: an exception whose str() is empty (`TimeoutError()`) is
logged as its repr."""

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


class RedactTokens(logging.Filter):
    """Tokens travel in websocket and event-stream URLs (`?token=`): keep them out of the logs."""

    _pattern = re.compile(r"(token=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self._pattern.sub(r"\1[redacted]", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                self._pattern.sub(r"\1[redacted]", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: time (UTC, ISO 8601), level, logger, message, and the
    traceback as `exception` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def config(level: str, fmt: str) -> dict[str, Any]:
    """The dictConfig uvicorn applies (its `log_config`): one handler for every logger."""
    formatter = JsonFormatter if fmt == "json" else TextFormatter
    upper = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"reasons": {"()": Reasons}, "redact_tokens": {"()": RedactTokens}},
        "formatters": {"hearth": {"()": formatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "hearth",
                "filters": ["reasons", "redact_tokens"],
            }
        },
        "root": {"handlers": ["default"], "level": upper},
        # uvicorn's own loggers carry no handler of their own: they reach the one above.
        "loggers": {
            name: {"handlers": [], "level": upper, "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }
