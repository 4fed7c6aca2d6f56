"""The HTTP/websocket edge: uvicorn's protocols with limits, so that no single client can stall or bloat
an instance. `protocols(settings, metrics)` gives the classes `uvicorn_config` hands to uvicorn.

HTTP keeps uvicorn's httptools protocol (its fastest parser) and adds:
- a cap on the request head, in bytes and in header fields, counted as the bytes arrive: past it the
  answer is 431 at once. (httptools grows a header value by copying it on every read, so one long header
  would otherwise stall the event loop for seconds and hold its size several times over.)

A refused request is answered with Hearth's error shape and `connection: close`; the connection then
lingers for a moment with its writing side shut, reading and dropping what the client still sends, so
that the answer is read before the socket closes (closing on unread input resets the connection, and
the client may lose the answer).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from app.config import Settings
from app.metrics import Metrics

log = logging.getLogger("hearth.edge")

# How long a refused connection reads and drops what its client still sends before it closes.
REFUSED_LINGER_S = 2.0


class Refusal(Exception):
    """A request answered by the edge itself, before the app sees it."""

    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason  # the metric's label


class HttpProtocol(HttpToolsProtocol):
    settings: ClassVar[Settings]
    metrics: ClassVar[Metrics]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # the next bytes belong to a request head (the first, or a next one)
        self._head_bytes = 0
        self._header_count = 0
        self._refused = False
        self._linger: asyncio.TimerHandle | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # read and dropped while the answer lingers
        self._unset_keepalive_if_required()
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, Refusal):
                self.refuse(exc.__context__)
            else:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        # Still inside a head, past the cap: refused now, before httptools copies it any further.
        if self._in_head and self._head_bytes > self.settings.max_header_bytes:
            self.refuse(self._head_too_large())

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        limit = self.settings.max_headers
        if self._header_count > limit:
            raise Refusal(431, f"a request may carry at most {limit} header fields", "headers")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        # A head that arrived whole within one read is measured here.
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.settings.max_header_bytes:
            raise self._head_too_large()
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True
        self._head_bytes = self._header_count = 0
        super().on_message_complete()

    def _head_too_large(self) -> Refusal:
        limit = self.settings.max_header_bytes
        return Refusal(431, f"the request line and headers may take at most {limit} bytes", "header_bytes")

    def refuse(self, refusal: Refusal, headers: tuple[bytes, ...] = ()) -> None:
        """Answer with Hearth's error shape and close: the app never sees this request."""
        self._refused = True
        self.metrics.http_refused.labels(refusal.reason).inc()
        log.debug("refused a request from %s: %s", self.client, refusal.message)
        body = json.dumps({"error": {"code": f"HT{refusal.status}", "message": refusal.message}}).encode()
        default = [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[refusal.status],
                    *default,
                    b"content-type: application/json\r\n",
                    b"content-length: %d\r\n" % len(body),
                    b"connection: close\r\n",
                    *headers,
                    b"\r\n",
                    body,
                ]
            )
        )
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._linger = self.loop.call_later(REFUSED_LINGER_S, self.transport.abort)
        else:
            self.transport.close()


def protocols(settings: Settings, metrics: Metrics) -> dict[str, Any]:
    """uvicorn's `http` setting: the protocol class bound to these limits and metrics."""
    http = type("HearthHttpProtocol", (HttpProtocol,), {"settings": settings, "metrics": metrics})
    return {"http": http}
