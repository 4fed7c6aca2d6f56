"""What a socket's bytes look like: permessage-deflate is declined (frames are built once for every
socket), and the frames an instance writes read back as plain text frames."""

from __future__ import annotations

import json

import pytest
from websockets.asyncio.client import connect

from tests.app.harness import Api, Instance

pytestmark = pytest.mark.usefixtures("no_server_tracebacks")


async def test_a_client_offering_permessage_deflate_gets_uncompressed_frames(
    pair: list[Instance], api_a: Api
) -> None:
    _, owner_token = await api_a.identity("owner")
    session_id = (await api_a.session(owner_token))["session_id"]
    _, token = await api_a.identity("ann")
    _, ann = await api_a.join(session_id, token)
    url = f"{pair[0].ws_url}?token={ann}"
    async with connect(url, compression="deflate", open_timeout=10) as conn:  # as browsers offer it
        assert conn.response is not None
        assert "Sec-WebSocket-Extensions" not in conn.response.headers
        assert json.loads(await conn.recv())["type"] == "welcome"
        await conn.send(json.dumps({"type": "message", "body": {"text": "hi"}, "ref": "r"}))
        kinds = {json.loads(await conn.recv())["type"] for _ in range(2)}
        assert kinds == {"message", "ack"}
