"""app.frames: a text frame as the websockets library reads it, at each length encoding."""

from __future__ import annotations

import pytest

from app.frames import text_frame
from tests.app.wire import texts


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_a_text_frame_reads_back_at_every_length_encoding(size: int) -> None:
    text = ("é" * size)[: size // 2] + "x" * (size - size // 2)
    assert texts(text_frame(text)) == [text]


def test_frames_joined_read_back_in_order() -> None:
    assert texts(text_frame('{"a":1}') + text_frame("") + text_frame("z" * 300)) == ['{"a":1}', "", "z" * 300]
