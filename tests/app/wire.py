"""Reading what a socket's writer would write: websocket frames parsed by the websockets library, not by
Hearth's own code."""

from __future__ import annotations

from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader


def texts(data: bytes) -> list[str]:
    """The texts of the final, unmasked text frames `data` holds, in order."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    out: list[str] = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=False)
        try:
            while True:
                next(parser)
        except StopIteration as done:
            frame: Frame = done.value
        assert frame.fin and frame.opcode is Opcode.TEXT, frame
        out.append(frame.data.decode())
    return out
