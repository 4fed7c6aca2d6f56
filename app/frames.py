"""Websocket frames as the server writes them: built once, the same bytes for every socket.

A server's frames are unmasked (RFC 6455 section 5.1), so an event's frame does not depend on the socket
it goes to: the relay frames each event once and queues the same bytes object to every subscriber, and a
socket's writer sends what is queued in one write. Hearth declines permessage-deflate (uvicorn's
`ws_per_message_deflate` off, see app.main), so no socket needs a frame of its own.
"""

from __future__ import annotations

import struct

# The scope extension (and `websocket.send` message key) under which the app hands app.edge's protocol
# frames it built itself: they are written as they are.
FRAMED = "hearth.framed"
_TEXT_FIN = 0x81  # FIN + opcode 1 (text)


def text_frame(text: str) -> bytes:
    """One final, unmasked text frame carrying `text`."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        head = bytes((_TEXT_FIN, size))
    elif size < 65536:
        head = struct.pack("!BBH", _TEXT_FIN, 126, size)
    else:
        head = struct.pack("!BBQ", _TEXT_FIN, 127, size)
    return head + payload
