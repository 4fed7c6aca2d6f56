"""The client-address rule (SPEC section 5), on requests built in-process: the peer, unless the peer is a
trusted proxy; then X-Forwarded-For from the right, trusted proxies skipped."""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace

from starlette.requests import Request

from app.api import client_address
from app.config import Secret, Settings


def _request(peer: str | None, forwarded: list[str], trusted: str = "") -> Request:
    settings = Settings(
        Secret(""),
        Secret(""),
        Secret(""),
        trusted_proxies=tuple(ipaddress.ip_network(n) for n in trusted.split(",") if n),
    )
    app = SimpleNamespace(state=SimpleNamespace(hearth=SimpleNamespace(settings=settings)))
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/identities",
        "headers": headers,
        "client": (peer, 5000) if peer else None,
        "app": app,
    }
    return Request(scope)


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_address(_request("198.51.100.4", ["203.0.113.9"])) == "198.51.100.4"


def test_an_untrusted_peer_is_the_client_whatever_it_forwards() -> None:
    assert client_address(_request("198.51.100.4", ["203.0.113.9"], "10.0.0.0/8")) == "198.51.100.4"


def test_a_trusted_peer_forwards_the_right_most_untrusted_hop() -> None:
    request = _request("10.0.0.2", ["1.2.3.4, 203.0.113.9, 10.0.0.7"], "10.0.0.0/8")
    assert client_address(request) == "203.0.113.9"


def test_several_headers_are_one_list() -> None:
    request = _request("10.0.0.2", ["1.2.3.4", "203.0.113.9", "10.0.0.7"], "10.0.0.0/8")
    assert client_address(request) == "203.0.113.9"


def test_ipv6_and_mixed_networks() -> None:
    request = _request("fd00::1", ["2001:db8::5, fd00::2"], "10.0.0.0/8,fd00::/8")
    assert client_address(request) == "2001:db8::5"


def test_a_trusted_peer_without_the_header_is_the_client() -> None:
    assert client_address(_request("10.0.0.2", [], "10.0.0.0/8")) == "10.0.0.2"


def test_garbage_in_the_hop_the_proxy_wrote_falls_back_to_the_peer() -> None:
    assert client_address(_request("10.0.0.2", ["1.2.3.4, not-an-address"], "10.0.0.0/8")) == "10.0.0.2"


def test_only_trusted_hops_leave_the_left_most() -> None:
    assert client_address(_request("10.0.0.2", ["10.0.0.9, 10.0.0.8"], "10.0.0.0/8")) == "10.0.0.9"


def test_no_peer_address() -> None:
    assert client_address(_request(None, ["203.0.113.9"], "10.0.0.0/8")) is None
