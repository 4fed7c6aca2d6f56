"""app.jsonin, a pure module: client JSON parsed so that whatever passes can be stored by PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from app import jsonin
from app.errors import HearthError


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ('{"a": [1, 2.5, -0.0, 1e300, null, true, "ü👋"]}', {"a": [1, 2.5, -0.0, 1e300, None, True, "ü👋"]}),
        (b'{"k": "v"}', {"k": "v"}),
        ('"\\ud83d\\udc4b"', "👋"),  # an escaped surrogate *pair* is one character
        ("[]", []),
        ("12345678901234567890", 12345678901234567890),
        ('{"a": ' * 64 + "1" + "}" * 64, None),  # 64 levels: allowed
    ],
)
def test_accepts(raw: str | bytes, value: Any) -> None:
    parsed = jsonin.parse(raw, "body")
    if value is not None:
        assert parsed == value


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("", "not valid JSON"),
        ("{", "not valid JSON"),
        (b"\xff", "not valid JSON"),
        ("NaN", "not valid JSON"),
        ('{"x": Infinity}', "not valid JSON"),
        ('{"x": -Infinity}', "not valid JSON"),
        ('{"x": 1e400}', "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
        ('{"x": "a\\u0000b"}', "NUL"),
        ('{"a\\u0000": 1}', "NUL"),
        ('["\\ud800"]', "surrogate"),
        ('{"\\udc00": 1}', "surrogate"),
        ('{"a": ' * 65 + "1" + "}" * 65, "nested"),
        ("[" * 65 + "]" * 65, "nested"),
    ],
)
def test_rejects(raw: str | bytes, fragment: str) -> None:
    with pytest.raises(HearthError) as info:
        jsonin.parse(raw, "body")
    assert info.value.code == "HT400"
    assert info.value.message.startswith("body ")
    assert fragment in info.value.message


def test_check_walks_values_built_in_python() -> None:
    jsonin.check({"a": ["b", {"c": 1}]}, "frame")
    with pytest.raises(HearthError):
        jsonin.check({"a": ["b", {"c": "\x00"}]}, "frame")


def test_whole_number_takes_ascii_digits_only() -> None:
    assert jsonin.whole_number("0", "n") == 0
    assert jsonin.whole_number("007", "n") == 7
    assert jsonin.whole_number("9" * 18, "n") == 10**18 - 1
    for bad in ("", "-1", "+1", " 1", "1.0", "1e3", "\u00b2", "\u0661\u0662", "\uff11", "9" * 19):
        with pytest.raises(HearthError) as info:
            jsonin.whole_number(bad, "after")
        assert info.value.code == "HT400" and info.value.message.startswith("after "), bad
