"""The demo page at `/`: pairing (a display and a controller that talk over WebRTC), a room (presence and
chat across reconnects) and a match (queue, match, LiveKit room and token).

Plain HTML, CSS and an ES module under app/static/ (no build step). The page holds no protocol code of its
own: it imports the hearth-client package from `/v1/hearth-client.js`, which speaks the public API. Served
by another web server, it talks to the Hearth named by `?api=` (CORS). The one server-side helper is the QR
code of the controller link, rendered here as SVG with segno.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import segno
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

from app.errors import HearthError
from app.openapi import ApiMount, ApiRoute, Operation

STATIC_DIR = Path(__file__).resolve().parent / "static"
# The alphabet of display codes (SPEC: 2-9 and A-Z without I, L, O); lowercase is accepted.
CODE_RE = re.compile(r"[2-9A-HJKMNP-Z]{6}")
MAX_LINK = 512
# The page loads only its own files and talks only to its own origin (the websocket included).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


async def index(request: Request) -> Response:
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"},
    )


def controller_link(request: Request, code: str) -> str:
    """`<origin>/?code=CODE`, the origin as the client addressed this server (its Host header)."""
    return f"{str(request.base_url).rstrip('/')}/?code={code}"


async def qr_svg(request: Request) -> Response:
    code = (request.query_params.get("code") or "").strip().upper()
    if not CODE_RE.fullmatch(code):
        raise HearthError("HT400", "code must be 6 characters from 2-9 and A-Z, never 0, O, 1, I or L")
    link = controller_link(request, code)
    if len(link) > MAX_LINK:
        raise HearthError("HT400", "the Host header is too long for a QR code")
    out = io.BytesIO()
    segno.make(link, error="m").save(
        out, kind="svg", scale=8, border=2, xmldecl=False, title=link, dark="#14171c", light="#ffffff"
    )
    return Response(
        out.getvalue(),
        media_type="image/svg+xml",
        headers={"Cache-Control": "private, max-age=600", "X-Content-Type-Options": "nosniff"},
    )


routes = [
    ApiRoute("/", index, "GET", Operation("The demo page", {200: "text/html"}, "none")),
    ApiRoute(
        "/demo/qr.svg",
        qr_svg,
        "GET",
        Operation(
            "The QR code of a controller link",
            {200: "image/svg+xml"},
            "none",
            query={"code": {"type": "string", "description": "A display's code."}},
        ),
    ),
    ApiMount(
        "/demo/static",
        StaticFiles(directory=STATIC_DIR),
        Operation(
            "The demo page's files",
            {200: ("text/css", "text/javascript", "image/svg+xml", "text/html")},
            "none",
            errors=(404,),
        ),
    ),
]
