"""GET /v1/hearth-client.js serves the client's module from the package's own files, with an ETag."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.testclient import TestClient

from app import sdk

SOURCE = Path(__file__).resolve().parents[2] / "clients" / "js" / "hearth-client.js"


def test_it_serves_the_source_file_as_javascript_with_an_etag() -> None:
    with TestClient(Starlette(routes=sdk.routes)) as client:
        r = client.get("/v1/hearth-client.js")
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/javascript; charset=utf-8"
        assert r.content == SOURCE.read_bytes()
        assert "max-age" in r.headers["cache-control"]
        etag = r.headers["etag"]
        assert etag.startswith('"') and etag.endswith('"')

        again = client.get("/v1/hearth-client.js", headers={"If-None-Match": f'"other", {etag}'})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag

        stale = client.get("/v1/hearth-client.js", headers={"If-None-Match": '"other"'})
        assert stale.status_code == 200
        assert stale.content == SOURCE.read_bytes()
