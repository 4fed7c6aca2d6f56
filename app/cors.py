"""Cross-origin access (SPEC section 7, `HEARTH_CORS_ORIGINS`).

Hearth's tokens are bearer tokens, never cookies: a page of another origin holds nothing the browser would
attach by itself, so by default (`*`) any origin may call the HTTP API. Credentials are never allowed
(no `Access-Control-Allow-Credentials`). A list of origins restricts it: then the HTTP API answers only
those origins' pages, and the two streams a page opens without a preflight — the websocket and the
display's event stream (SSE or long poll) — refuse a request whose `Origin` is not on the list (403).
A request without `Origin` is not from a browser page (a server, a native app): it passes.

`Cors` wraps the whole app, outside Starlette's error middleware, so every answer carries the headers —
errors (401, 429 with its `Retry-After`) and internal errors included: an error a page cannot read is
useless to it.
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import ANY_ORIGIN

METHODS = ("GET", "POST", "DELETE")
# What a page (and the hearth-client package) sends beyond the CORS-safelisted headers.
REQUEST_HEADERS = ("Authorization", "Content-Type")
# What a page needs to read beyond the CORS-safelisted response headers.
EXPOSED_HEADERS = ("Retry-After", "ETag")
MAX_AGE_S = 600
# The display's outcome stream: an EventSource (or a plain GET) needs no preflight, so it is checked here.
EVENT_STREAM = re.compile(r"/v1/displays/[^/]+/events")


def edge_headers(origins: tuple[str, ...]) -> tuple[bytes, ...]:
    """Header lines for the answers app/edge.py writes itself (431, 408, 503), before the request's Origin
    is known: with `*` any page may read them (a 503's Retry-After included); a list cannot be echoed."""
    if origins != ANY_ORIGIN:
        return ()
    exposed = ", ".join(EXPOSED_HEADERS).encode()
    return (b"access-control-allow-origin: *\r\n", b"access-control-expose-headers: " + exposed + b"\r\n")


class _Preflights(CORSMiddleware):
    """Starlette's CORS answers, with a refused preflight in Hearth's error shape."""

    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code == 200:
            return answer
        kept = ("access-control-", "vary")
        headers = {k: v for k, v in answer.headers.items() if k.lower().startswith(kept)}
        text = bytes(answer.body).decode()
        status = 403 if "origin" in text else 400
        error = {"code": f"HT{status}", "message": f"{text} (see HEARTH_CORS_ORIGINS)"}
        return JSONResponse({"error": error}, status_code=status, headers=headers)


class Cors:
    """The ASGI middleware: CORS headers on every HTTP answer, Origin checks on the streams."""

    def __init__(self, app: ASGIApp, origins: tuple[str, ...] = ANY_ORIGIN) -> None:
        self.app = app
        self.origins = None if origins == ANY_ORIGIN else frozenset(origins)
        self.http = _Preflights(
            app,
            allow_origins=origins,
            allow_methods=METHODS,
            allow_headers=REQUEST_HEADERS,
            allow_credentials=False,
            expose_headers=EXPOSED_HEADERS,
            max_age=MAX_AGE_S,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            if self._foreign(scope):
                await _refuse_websocket(scope, receive, send)
                return
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            if self._foreign(scope) and EVENT_STREAM.fullmatch(scope["path"]):
                await _refusal(scope)(scope, receive, send)
                return
            await self.http(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _foreign(self, scope: Scope) -> bool:
        """A browser request from an origin not on a restricted list."""
        if self.origins is None:
            return False
        origin = Headers(scope=scope).get("origin")
        return origin is not None and origin.lower() not in self.origins


def _refusal(scope: Scope) -> JSONResponse:
    origin = Headers(scope=scope).get("origin")
    message = f"origin {origin!r} is not allowed here (see HEARTH_CORS_ORIGINS)"
    return JSONResponse({"error": {"code": "HT403", "message": message}}, status_code=403)


async def _refuse_websocket(scope: Scope, receive: Receive, send: Send) -> None:
    """Refuses the handshake with 403: with the error shape where the server can send a body."""
    await receive()  # websocket.connect
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})  # a handshake closed before accept is a 403
        return
    body = bytes(_refusal(scope).body)
    await send(
        {
            "type": "websocket.http.response.start",
            "status": 403,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "websocket.http.response.body", "body": body})
