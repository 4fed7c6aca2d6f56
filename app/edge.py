"""The HTTP/websocket edge: uvicorn's protocols with limits, so that no single client can stall or bloat
an instance. `protocols(settings, metrics)` gives the classes `uvicorn_config` hands to uvicorn.

HTTP keeps uvicorn's httptools protocol (its fastest parser) and adds:
- a cap on the request head, in bytes and in header fields, counted as the bytes arrive: past it the
  answer is 431 at once. (httptools grows a header value by copying it on every read, so one long header
  would otherwise stall the event loop for seconds and hold its size several times over.)
- deadlines: a request head must arrive within header_timeout_s of its first byte (of the connection,
  for the first request: a silent connection is closed too), its body within body_timeout_s of the head;
  past them, 408. A websocket handshake is an HTTP request head like any other.
- a cap on the connections of the instance (websockets included): past max_connections a new connection
  is answered 503 with `retry-after` and closed.

Websockets keep uvicorn's websockets-sansio protocol and add:
- a bound on the bytes a socket holds that the kernel has not taken (pongs included): a socket past
  ws_max_buffered_bytes is aborted. Reading stops while writes do not drain, so a client that sends pings
  and never reads its pongs stalls itself, not the instance;
- ping and pong frames are rate-limited (ws_pings_per_s, bursts of 4x; past it the socket is closed
  with 4429), so a flood of control frames cannot take the event loop for itself: the app's own frame
  limit never sees them;
- frames the app built itself (`{"type": "websocket.send", "hearth.framed": bytes}`, offered through the
  scope extension `hearth.framed`) are written as they are, in one write: an event is framed once for
  every socket, and a socket's queued frames go out in one system call;
- after Hearth's close frame no pong is written, what still arrives is dropped (past a quarter of
  ws_max_buffered_bytes, at most 64 KiB, the peer is aborted), and the closing handshake takes at most
  ws_close_timeout_s (at once aborted when the peer is not reading): then the connection is aborted,
  since closing a transport whose bytes the peer never reads would wait forever.

A refused request is answered with Hearth's error shape and `connection: close`; the connection then
lingers, its writing side shut, until the client closes it, for at most a moment (reading and dropping a
few KiB of what the client still sends, then reading nothing): closing at once on unread input would
reset the connection, and the client could lose the answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, ClassVar, cast

import httptools
from uvicorn._types import ASGISendEvent
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame
from websockets.http11 import Request

from app import cors
from app.config import Settings
from app.frames import FRAMED
from app.metrics import Metrics

log = logging.getLogger("hearth.edge")

# How long, and for how much more input, a refused connection waits for its client to read the answer.
REFUSED_LINGER_S = 2.0
REFUSED_LINGER_BYTES = 64 * 1024
# The connection limit is logged at most this often (it is counted in the metrics every time).
LIMIT_WARNING_EVERY_S = 60.0


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
    limit_warned_at: ClassVar[float] = float("-inf")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # the next bytes belong to a request head (the first, or a next one)
        self._in_body = False
        self._head_bytes = 0
        self._refused = False
        self._linger_budget = REFUSED_LINGER_BYTES
        self._linger: asyncio.TimerHandle | None = None
        # The deadline of the head or body being read (loop time; 0: none), checked by one timer that is
        # re-armed only when it fires early: a kept-alive connection pays a clock read per request,
        # not a timer.
        self._deadline = 0.0
        self._reading_head = True
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.settings.max_connections:
            now = self.loop.time()
            if now - self.limit_warned_at >= LIMIT_WARNING_EVERY_S:
                type(self).limit_warned_at = now
                log.warning(
                    "%d connections: refusing new ones (HEARTH_MAX_CONNECTIONS); counted in "
                    'hearth_http_refused_total{reason="connections"}',
                    self.settings.max_connections,
                )
            refusal = Refusal(503, "too many connections to this instance; try again shortly", "connections")
            self.refuse(refusal, (b"retry-after: 1\r\n",))
            return
        self._expect(head=True)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._timer, self._linger):
            if timer is not None:
                timer.cancel()
        super().connection_lost(exc)

    def _expect(self, *, head: bool) -> None:
        """The head (or the body) must now arrive within its timeout."""
        self._reading_head = head
        self._deadline = self.loop.time() + (
            self.settings.header_timeout_s if head else self.settings.body_timeout_s
        )
        if self._timer is None or self._timer.when() > self._deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_at(self._deadline, self._check_deadline)

    def _check_deadline(self) -> None:
        self._timer = None
        if not self._deadline or self._refused:
            return
        if self.loop.time() < self._deadline:
            self._timer = self.loop.call_at(self._deadline, self._check_deadline)
            return
        self._deadline = 0.0
        if self._reading_head:
            self._head_timeout()
        else:
            self._body_timeout()

    def _head_timeout(self) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined next head is late while a response is being written: close after that one.
            self.cycle.keep_alive = False
            return
        seconds = self.settings.header_timeout_s
        self.refuse(Refusal(408, f"the request head must arrive within {seconds:g} s", "header_timeout"))

    def _body_timeout(self) -> None:
        cycle = self.cycle
        if cycle.response_started:
            self.metrics.http_refused.labels("body_timeout").inc()
            self._refused = True
            self.transport.close()  # after the answer already on its way
            return
        # The app reads a disconnect (a client gone is not an error), and what it answers goes nowhere.
        cycle.disconnected = True
        cycle.message_event.set()
        seconds = self.settings.body_timeout_s
        self.refuse(Refusal(408, f"the request body must arrive within {seconds:g} s", "body_timeout"))

    def data_received(self, data: bytes) -> None:
        if self._refused:
            # Dropped while the answer lingers. A client that keeps sending is left to read the answer
            # with reading paused (and so its sending), until the linger ends.
            self._linger_budget -= len(data)
            if self._linger_budget < 0:
                self.flow.pause_reading()
            return
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
        # Deadlines are set only for what one read did not bring whole (most requests come in one).
        if self._in_head:
            if self._head_bytes > self.settings.max_header_bytes:
                # Still inside a head, past the cap: refused now, before httptools copies it further.
                self.refuse(self._head_too_large())
            elif self._head_bytes and not self._deadline:  # a next request on a kept-alive connection
                self._expect(head=True)
        elif self._in_body and (self._reading_head or not self._deadline):
            self._expect(head=False)

    def on_headers_complete(self) -> None:
        limit = self.settings.max_headers
        if len(self.headers) > limit:  # their bytes were capped already
            raise Refusal(431, f"a request may carry at most {limit} header fields", "headers")
        # A head that arrived within one read together with more is measured here.
        if self._head_bytes > self.settings.max_header_bytes and (
            len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
            > self.settings.max_header_bytes
        ):
            raise self._head_too_large()
        self._in_head = False
        self._deadline = 0.0
        # The websocket protocol takes an upgraded connection over.
        self._in_body = not (self.parser.should_upgrade() and self._should_upgrade())
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True
        self._in_body = False
        self._head_bytes = 0
        self._deadline = 0.0
        super().on_message_complete()

    def _head_too_large(self) -> Refusal:
        limit = self.settings.max_header_bytes
        return Refusal(431, f"the request line and headers may take at most {limit} bytes", "header_bytes")

    def refuse(self, refusal: Refusal, headers: tuple[bytes, ...] = ()) -> None:
        """Answer with Hearth's error shape and close: the app never sees this request."""
        self._refused = True
        self._deadline = 0.0
        # What the refused head accumulated goes now, not when the connection ends.
        self.parser, self.url, self.headers = httptools.HttpRequestParser(self), b"", []
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
                    *cors.edge_headers(self.settings.cors_origins),
                    *headers,
                    b"\r\n",
                    body,
                ]
            )
        )
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.flow.resume_reading()  # to see the client close
            self._linger = self.loop.call_later(REFUSED_LINGER_S, self.transport.abort)
        else:
            self.transport.close()


class WebSocketProtocol(WebSocketsSansIOProtocol):
    settings: ClassVar[Settings]
    metrics: ClassVar[Metrics]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.close_timeout = self.settings.ws_close_timeout_s
        self.write_blocked = False  # the transport's buffer is past its high-water mark
        self.aborted = False
        # Control frames spend tokens: bursts of 4x the rate per second.
        self._tokens = self._burst = 4 * self.settings.ws_pings_per_s
        self._stamp = self.loop.time()
        self._read_while_closing = 0
        # The write buffer's high-water mark, and what a closing peer may still send us.
        self.high_water = min(64 * 1024, self.settings.ws_max_buffered_bytes // 4)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # Writing pauses (and so reading stops) well before the bound is reached.
        self.transport.set_write_buffer_limits(high=self.high_water)
        self.transport = _BoundedTransport(self.transport, self)

    def connection_lost(self, exc: Exception | None) -> None:
        assert isinstance(self.transport, _BoundedTransport)
        self.transport.cancel_abort()
        super().connection_lost(exc)

    def abort(self, reason: str) -> None:
        if not self.aborted:
            self.aborted = True
            self.metrics.ws_aborted.labels(reason).inc()
            log.debug("aborted a websocket of %s: %s", self.client, reason)
        self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.close_sent:
            # Frames still in flight are read and dropped; a peer that keeps sending is not closing.
            self._read_while_closing += len(data)
            if self._read_while_closing > self.high_water:
                self.abort("not closing")
                return
        super().data_received(data)
        if not self.handshake_initiated and self.conn.handshake_exc is not None:
            # websockets refused the handshake (say, a header line past its 8 KiB): send its answer.
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()

    def pause_writing(self) -> None:
        super().pause_writing()
        self.write_blocked = True
        if self.close_sent:
            self.abort("not reading")  # no closing handshake with a peer that does not read
        else:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        self.write_blocked = False
        if not self.read_paused:
            self.transport.resume_reading()

    def handle_ping(self) -> None:
        if not self.close_sent and self._spend():
            super().handle_ping()
        else:
            self.conn.data_to_send()  # no pong: past our close frame, or past the rate

    def handle_pong(self, event: Frame) -> None:
        if not self.close_sent and self._spend():
            super().handle_pong(event)

    def _spend(self) -> bool:
        """One token for a control frame; past the rate the socket is closed with 4429."""
        now = self.loop.time()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self.settings.ws_pings_per_s)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        self._close(4429, "too many control frames")
        return False

    def _close(self, code: int, reason: str) -> None:
        """Close from the protocol's side: the app reads a disconnect, the peer a close frame."""
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:  # the peer's close frame must be read (what the app would have read is dropped)
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(self.close_timeout, self.abort, "close timeout")

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.response.status_code == 101:
            self.scope["extensions"][FRAMED] = {}

    async def send(self, message: ASGISendEvent) -> None:
        framed = cast(dict[str, Any], message).get(FRAMED) if message["type"] == "websocket.send" else None
        if framed is not None:
            await self._send_framed(framed)
            return
        closing = message["type"] == "websocket.close" and self.handshake_complete
        if closing and self.write_blocked:
            # The peer reads nothing: a close frame would wait behind what it has not read.
            if not self.close_sent:
                self.queue.put_nowait({"type": "websocket.disconnect", "code": 1006})
                self.close_sent = True
            self.abort("not reading")
            return
        await super().send(message)
        if closing and self.close_timer is not None:
            # A peer that does not answer our close frame in time is aborted, not closed: a close
            # would wait for it to read what it has not.
            self.close_timer.cancel()
            self.close_timer = self.loop.call_later(self.close_timeout, self.abort, "close timeout")

    async def _send_framed(self, data: bytes) -> None:
        """Frames built by the app (app.frames), written as they are in one write: the bytes of one
        event are shared by every socket it goes to, and a socket's queued frames go out together."""
        await self.writable.wait()
        if self.disconnected or self.close_sent:
            raise ClientDisconnected()
        if not self.handshake_complete or self.initial_response is not None:
            raise RuntimeError("framed websocket data before the handshake was accepted")
        self.transport.write(data)


class _BoundedTransport(asyncio.Transport):
    """The websocket's transport, seen through its bounds: a write past the bound aborts, a close that
    leaves bytes behind aborts after the close timeout, and reading resumes only while writes drain."""

    def __init__(self, transport: asyncio.Transport, protocol: WebSocketProtocol) -> None:
        super().__init__()
        self._transport = transport
        self._protocol = protocol
        self._abort_timer: asyncio.TimerHandle | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._transport.get_write_buffer_size() > self._protocol.settings.ws_max_buffered_bytes:
            self._protocol.abort("unsent bytes")
            return
        self._transport.write(data)

    def close(self) -> None:
        self._transport.close()
        if self._transport.get_write_buffer_size() and self._abort_timer is None:
            timeout = self._protocol.settings.ws_close_timeout_s
            self._abort_timer = self._protocol.loop.call_later(timeout, self._protocol.abort, "close timeout")

    def cancel_abort(self) -> None:
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None

    def abort(self) -> None:
        self.cancel_abort()
        self._transport.abort()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        if not self._protocol.write_blocked:
            self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)


def protocols(settings: Settings, metrics: Metrics) -> dict[str, Any]:
    """uvicorn's `http` and `ws` settings: the protocol classes bound to these limits and metrics."""
    bound = {"settings": settings, "metrics": metrics}
    return {
        "http": type("HearthHttpProtocol", (HttpProtocol,), bound),
        "ws": type("HearthWebSocketProtocol", (WebSocketProtocol,), bound),
    }
