"""`GET /v1/hearth-client.js`: the JavaScript client (clients/js/hearth-client.js), for pages that do not
bundle. The wheel carries it as the package data `app.js` (pyproject.toml maps clients/js there), read with
importlib.resources, so a checkout and an installed server serve the same bytes."""

from __future__ import annotations

import functools
import hashlib
import importlib.resources

from starlette.requests import Request
from starlette.responses import Response

from app.openapi import ApiRoute, Operation

MODULE = "hearth-client.js"
MEDIA_TYPE = "text/javascript; charset=utf-8"
# A stable URL whose bytes change with the server's version: caches keep it briefly, then revalidate.
CACHE_CONTROL = "public, max-age=300, must-revalidate"


@functools.cache
def module_bytes() -> tuple[bytes, str]:
    """The module and its ETag (read once: it changes only with the installed package)."""
    body = importlib.resources.files("app.js").joinpath(MODULE).read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


async def hearth_client(request: Request) -> Response:
    body, etag = module_bytes()
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "X-Content-Type-Options": "nosniff"}
    match = request.headers.get("if-none-match", "")
    if etag in {tag.strip().removeprefix("W/") for tag in match.split(",")} or match.strip() == "*":
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=MEDIA_TYPE, headers=headers)


routes = [
    ApiRoute(
        "/v1/hearth-client.js",
        hearth_client,
        "GET",
        Operation(
            "The JavaScript client as one ES module (304 to an If-None-Match of its ETag)",
            {200: "text/javascript"},
            "none",
        ),
    ),
]
