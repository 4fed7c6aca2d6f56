"""The demo page in a real browser: Debian's headless Chromium driven by playwright, against real
`hearth serve` processes. The pages come from another origin than the API (a static server on another
port, `?api=` naming the server), as a real web app's would: every call crosses origins, so CORS is
exercised for real. Pairing: a display and a controller pair through the UI, open a WebRTC DataChannel
over loopback with the package's signaling, and text typed on the controller appears on the display.
Screenshots of every mode go to test-artifacts/.

Chromium comes from Debian (`apt-get install chromium`, which scripts/bootstrap.sh does when run as
root); `playwright install` is never used.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest

from tests.app.conftest import start_instances
from tests.app.harness import ROOT, Api, Instance, Ws
from tests.db.helpers import login_role
from tests.db.test_publish import APP_SCHEMA
from tests.livekit_double import LiveKitDouble

try:
    from playwright.async_api import Browser, Page, async_playwright, expect
except ImportError:  # reported by the fixture as a failure with a clear message, not a collection error
    async_playwright = None

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = ROOT / "test-artifacts"
WAIT_MS = 20_000
CODE = re.compile(r"^[2-9A-HJKMNP-Z]{6}$")
LIVEKIT_KEY = "devkey"
LIVEKIT_SECRET = "devsecret-for-hearth-tests-0123456789abcdef"
STATIC = ROOT / "app" / "static"
CLIENT = ROOT / "clients" / "js" / "hearth-client.js"
API_ORIGIN = re.compile(r"http://127\.0\.0\.1:[0-9]{1,5}")


class _PageFiles(BaseHTTPRequestHandler):
    """The demo's files and the hearth-client module, as a web app's own server would serve them: the
    page's CSP stays strict (scripts from this origin only) and lets it reach the API named by `?api=`."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path in ("/", "/index.html", "/blank.html"):
            api = (parse_qs(url.query).get("api") or [""])[0]
            apis = f" {api} {api.replace('http', 'ws', 1)}" if API_ORIGIN.fullmatch(api) else ""
            csp = (
                f"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'{apis}; "
                f"connect-src 'self'{apis}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
            )
            body = b"<!doctype html><title>blank</title>" if url.path == "/blank.html" else None
            self._send(body or (STATIC / "index.html").read_bytes(), "text/html; charset=utf-8", csp)
        elif url.path == "/v1/hearth-client.js":
            self._send(CLIENT.read_bytes(), "text/javascript; charset=utf-8")
        elif url.path.startswith("/demo/static/") and "/" not in url.path.removeprefix("/demo/static/"):
            file = STATIC / url.path.removeprefix("/demo/static/")
            kinds = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
            if file.is_file() and file.suffix in kinds:
                self._send(file.read_bytes(), kinds[file.suffix] + "; charset=utf-8")
                return
            self.send_error(404)
        else:
            self.send_error(404)

    def _send(self, body: bytes, kind: str, csp: str | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if csp:
            self.send_header("Content-Security-Policy", csp)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    """A static server for the pages on its own port: another origin than any Hearth instance."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PageFiles)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def _chromium_installed() -> bool:
    return CHROMIUM.is_file()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if async_playwright is None:
        pytest.fail(
            "the browser tests need the Python package playwright: run scripts/bootstrap.sh "
            "(or .venv/bin/pip install -e '.[dev]'); never `playwright install`, Debian's chromium is used",
            pytrace=False,
        )
    if not _chromium_installed():
        pytest.fail(
            f"the browser tests need Debian's Chromium at {CHROMIUM}: run scripts/bootstrap.sh as root "
            "(it installs it) or `apt-get install -y chromium`",
            pytrace=False,
        )
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        yield chromium
        await chromium.close()


class SocketGate:
    """A page's websockets, routed through playwright: `drop()` cuts them as a network failure would
    (both sides closed), and while `held` every new one is cut at once, so the page stays away."""

    def __init__(self) -> None:
        self.held = False
        self.open: list[tuple[Any, Any]] = []
        self.page_frames: list[dict[str, Any]] = []  # what the page sent

    async def route(self, ws: Any) -> None:
        if self.held:
            await ws.close(code=4000, reason="held by the test")
            return
        server = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            self.page_frames.append(json.loads(message))
            server.send(message)

        ws.on_message(from_page)
        self.open.append((ws, server))

    async def drop(self, *, hold: bool) -> None:
        self.held = hold
        for page_side, server_side in self.open:
            await server_side.close(code=1001, reason="dropped by the test")
            await page_side.close(code=4000, reason="dropped by the test")
        self.open = []


@dataclass
class Tab:
    """One page of the demo, on the page origin, talking to `instance`; with what its console said
    (printed when a test fails)."""

    name: str
    page: Page
    console: list[str] = field(default_factory=list)
    gate: SocketGate | None = None

    @classmethod
    async def open(
        cls, browser: Browser, name: str, instance: Instance, origin: str, *, gated: bool = False
    ) -> Tab:
        context = await browser.new_context(viewport={"width": 900, "height": 860})
        tab = cls(name, await context.new_page())
        tab.page.on("console", lambda m: tab.console.append(f"{m.type}: {m.text}"))
        tab.page.on("pageerror", lambda e: tab.console.append(f"pageerror: {e}"))
        if gated:
            tab.gate = SocketGate()
            await tab.page.route_web_socket(re.compile(r"/v1/ws"), tab.gate.route)
        await tab.page.goto(f"{origin}/?api={instance.base_url}")
        return tab

    async def screenshot(self, label: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"browser-{label}-{self.name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path

    def page_errors(self) -> list[str]:
        return [line for line in self.console if line.startswith("pageerror:") or "Content Security" in line]

    async def close(self) -> None:
        print(f"--- {self.name} console ---", *self.console, sep="\n")
        await self.page.context.close()


async def _pair_through_the_ui(
    display: Tab, controller: Tab, *, screenshots: bool = False, via_link: bool = False
) -> str:
    """Display: get a code. Controller: enter it (or open the display's controller link, as a scanned
    QR code would). Both: DataChannel open. Returns the session id."""
    if screenshots:
        await display.screenshot("home")
    await expect(display.page.locator("#conn")).to_have_text("not connected")
    await display.page.click("#role-display")
    code = display.page.locator("#code")
    await expect(code).to_have_text(CODE, timeout=WAIT_MS)
    qr = display.page.locator("#qr")
    await expect(qr).to_be_visible(timeout=WAIT_MS)
    # The QR image was served and decoded as an image by the browser. Not `wait_for_function`: the
    # page's CSP forbids eval, and Playwright evaluates a string predicate with eval on every poll
    # after the first, so it fails whenever the image is not ready at once. `complete` is also true
    # for a broken image, so the width is read after it.
    await expect(qr).to_have_js_property("complete", True, timeout=WAIT_MS)
    assert await qr.evaluate("img => img.naturalWidth") > 0
    await expect(display.page.locator("#status")).to_contain_text("Waiting for a controller", timeout=WAIT_MS)
    await expect(display.page.locator("#conn")).to_have_attribute("data-state", "waiting")

    if via_link:
        link = await display.page.get_attribute("#controller-link", "href")
        assert link is not None and f"code={await code.inner_text()}" in link
        assert link.startswith(display.page.url.split("?")[0])  # this page, on its own origin
        await controller.page.goto(link)
        # The code is used up once paired: the address bar drops it, so a reload does not retry it.
        await expect(controller.page.locator("#send-form")).to_be_visible(timeout=WAIT_MS)
        assert "code=" not in controller.page.url
    else:
        await controller.page.click("#role-controller")
        await controller.page.fill("#code-input", await code.inner_text())
        if screenshots:
            await display.screenshot("code")
            await controller.screenshot("code")
        await controller.page.click("#pair-btn")

    for tab in (display, controller):
        await expect(tab.page.locator("#status")).to_contain_text("DataChannel open", timeout=WAIT_MS)
        presence = tab.page.locator("#presence li")
        await expect(presence).to_have_count(2, timeout=WAIT_MS)
        await expect(tab.page.locator("#presence li[data-role=display]")).to_have_count(1)
        await expect(tab.page.locator("#presence li[data-role=controller]")).to_have_count(1)
        await expect(tab.page.locator("#presence li.you")).to_have_count(1)
        await expect(tab.page.locator("#conn")).to_have_attribute("data-state", "open")
        await expect(tab.page.locator("#error")).to_be_hidden()
    await expect(display.page.locator("#presence li.you")).to_have_attribute("data-role", "display")
    await expect(controller.page.locator("#presence li.you")).to_have_attribute("data-role", "controller")

    session_id: str = await display.page.evaluate("hearthDemo.sessionId")
    assert session_id == await controller.page.evaluate("hearthDemo.sessionId")
    return session_id


async def _send(controller: Tab, text: str) -> None:
    await controller.page.fill("#message-input", text)
    await controller.page.click("#send-btn")
    await expect(controller.page.locator("#sent")).to_contain_text(text, timeout=WAIT_MS)


async def _signals(sql: asyncpg.Connection, session_id: str) -> dict[str, int]:
    rows = await sql.fetch(
        "SELECT payload->>'kind' AS kind, count(*) AS n FROM hearth_data.events "
        "WHERE stream_id = $1::uuid AND type = 'signal' GROUP BY 1",
        session_id,
    )
    return {r["kind"]: r["n"] for r in rows}


async def _until(
    fetch: Callable[[], Awaitable[Any]], done: Callable[[Any], bool], what: str, timeout: float = 20.0
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}; last: {value!r}")
        await asyncio.sleep(0.05)


async def _events_mentioning(sql: asyncpg.Connection, session_id: str, text: str) -> int:
    count: int = await sql.fetchval(
        "SELECT count(*) FROM hearth_data.events"
        " WHERE stream_id = $1::uuid AND strpos(payload::text, $2) > 0",
        session_id,
        text,
    )
    return count


async def test_demo_page_and_qr_code(pair: list[Instance]) -> None:
    async with httpx.AsyncClient(base_url=pair[0].base_url, timeout=10) as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        for element in (
            "role-display",
            "role-controller",
            "mode-room",
            "mode-match",
            "code",
            "code-input",
            "pair-btn",
            "presence",
            "status",
            "message-input",
            "send-btn",
            "received",
            "chat",
            "match-find",
        ):
            assert f'id="{element}"' in page.text
        assert '<script type="module" src="/demo/static/demo.js">' in page.text
        module = await client.get("/v1/hearth-client.js")
        assert module.status_code == 200
        assert "javascript" in module.headers["content-type"]
        script = await client.get("/demo/static/demo.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        # No protocol code of its own: everything goes through the package.
        assert 'from "/v1/hearth-client.js"' in script.text
        for protocol in ("new WebSocket", "EventSource", "fetch(", "/v1/ws", "after="):
            assert protocol not in script.text, protocol

        qr = await client.get("/demo/qr.svg", params={"code": "abc234"})
        assert qr.status_code == 200
        assert qr.headers["content-type"] == "image/svg+xml"
        assert qr.text.startswith("<svg")
        # The QR code encodes the controller link on the origin the client used.
        assert f"<title>{pair[0].base_url}/?code=ABC234</title>" in qr.text
        other_host = await client.get("/demo/qr.svg?code=ABC234", headers={"Host": "tv.example:8443"})
        assert "<title>http://tv.example:8443/?code=ABC234</title>" in other_host.text

        for bad in ("", "ABC23", "ABC2345", "ABC1O4", "ABC 23", "ABCDE%00"):
            r = await client.get(f"/demo/qr.svg?code={bad}")
            assert r.status_code == 400, bad
            assert r.json()["error"]["code"] == "HT400"
            assert "6 characters" in r.json()["error"]["message"]


async def test_display_and_controller_talk_over_a_webrtc_datachannel(
    pair: list[Instance], browser: Browser, sql: asyncpg.Connection, page_origin: str
) -> None:
    # The display and the controller use different instances: signaling crosses them via Postgres.
    display = await Tab.open(browser, "display", pair[0], page_origin)
    controller = await Tab.open(browser, "controller", pair[1], page_origin)
    try:
        assert not page_origin.startswith(pair[0].base_url) and not page_origin.startswith(pair[1].base_url)
        session_id = await _pair_through_the_ui(display, controller, screenshots=True)
        for n in range(3):
            await _send(controller, f"hello over webrtc {n}")
        await expect(display.page.locator("#received li")).to_have_text(
            [re.compile(f"hello over webrtc {n}$") for n in range(3)], timeout=WAIT_MS
        )
        # Both sides list the messages in the order they were sent, oldest first.
        await expect(controller.page.locator("#sent li")).to_have_text(
            [re.compile(f"hello over webrtc {n}$") for n in range(3)]
        )

        # The channel was negotiated through Hearth (offer, answer, candidates are signal events)...
        signals = await _signals(sql, session_id)
        assert signals.get("offer") == 1 and signals.get("answer") == 1, signals
        assert signals.get("ice", 0) >= 1, signals
        # ...and the text went peer to peer: no event of the session carries it.
        assert await _events_mentioning(sql, session_id, "hello over webrtc") == 0
        assert display.page_errors() == [] and controller.page_errors() == []
    finally:
        await display.screenshot("datachannel")
        await controller.screenshot("datachannel")
        await display.close()
        await controller.close()


async def test_after_the_controller_leaves_the_display_gets_a_new_code(
    pair: list[Instance], browser: Browser, page_origin: str
) -> None:
    display = await Tab.open(browser, "display", pair[0], page_origin)
    controller = await Tab.open(browser, "controller", pair[1], page_origin)
    try:
        await _pair_through_the_ui(display, controller)
        first_code = await display.page.locator("#code").inner_text()
        await controller.page.click("#leave-btn")
        await expect(display.page.locator("#status")).to_contain_text("The controller left", timeout=WAIT_MS)
        await expect(controller.page.locator("#pair-form")).to_be_visible()
        await display.screenshot("left")
        await display.page.click("#new-code-btn")
        await expect(display.page.locator("#code")).not_to_have_text(first_code, timeout=WAIT_MS)
        await expect(display.page.locator("#code")).to_have_text(CODE)
        await expect(display.page.locator("#status")).to_contain_text("Waiting for a controller")
        await expect(display.page.locator("#error")).to_be_hidden()  # no stale banner
        # The controller pairs again with the new code.
        await controller.page.fill("#code-input", await display.page.locator("#code").inner_text())
        await controller.page.click("#pair-btn")
        for tab in (display, controller):
            await expect(tab.page.locator("#status")).to_contain_text("DataChannel open", timeout=WAIT_MS)
            await expect(tab.page.locator("#presence li")).to_have_count(2, timeout=WAIT_MS)
            await expect(tab.page.locator("#error")).to_be_hidden()
        assert display.page_errors() == [] and controller.page_errors() == []
    finally:
        await display.screenshot("repaired")
        await display.close()
        await controller.close()


async def test_a_dropped_socket_reconnects_with_after_and_gets_what_it_missed(
    pair: list[Instance], browser: Browser, sql: asyncpg.Connection, page_origin: str
) -> None:
    display = await Tab.open(browser, "display", pair[1], page_origin, gated=True)
    controller = await Tab.open(browser, "controller", pair[0], page_origin)
    assert display.gate is not None
    try:
        session_id = await _pair_through_the_ui(display, controller, via_link=True)
        await expect(display.page.locator("#status")).to_have_attribute("data-opens", "1")

        # The display's socket drops and stays down while the controller renegotiates: the new offer
        # reaches Hearth while the display is away. The header says so at once.
        await display.gate.drop(hold=True)
        await expect(display.page.locator("#conn")).to_have_attribute(
            "data-state", "reconnecting", timeout=WAIT_MS
        )
        await controller.page.click("#restart-btn")
        await _until(lambda: _signals(sql, session_id), lambda s: s.get("offer") == 2, "a second offer")

        # Back with ?after=: the missed offer is replayed, the display answers, a new channel opens.
        display.gate.held = False
        await expect(display.page.locator("#conn")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
        for tab in (display, controller):
            await expect(tab.page.locator("#status")).to_have_attribute("data-opens", "2", timeout=WAIT_MS)
            await expect(tab.page.locator("#status")).to_contain_text("DataChannel open", timeout=WAIT_MS)
        await _send(controller, "after the reconnect")
        await expect(display.page.locator("#received")).to_contain_text(
            "after the reconnect", timeout=WAIT_MS
        )

        # The drop was not a leave: both stayed present, the controller saw no presence.leave.
        await expect(controller.page.locator("#presence li")).to_have_count(2)
        leaves = await sql.fetchval(
            "SELECT count(*) FROM hearth_data.events WHERE stream_id = $1::uuid AND type = 'presence.leave'",
            session_id,
        )
        assert leaves == 0
        assert display.page_errors() == [] and controller.page_errors() == []
    finally:
        await display.screenshot("reconnect")
        await controller.screenshot("reconnect")
        await display.close()
        await controller.close()


async def test_a_display_ignores_an_offer_from_anyone_but_its_paired_controller(
    pair: list[Instance], browser: Browser, page_origin: str
) -> None:
    # A participant the server let into the display's session some other way (the join-by-code hole
    # once did) sends the display an offer: the display neither answers it nor drops its controller.
    # The stranger's frame is put on the display's own websocket, as the server would deliver it.
    display = await Tab.open(browser, "display", pair[0], page_origin, gated=True)
    controller = await Tab.open(browser, "controller", pair[1], page_origin)
    stranger = await Tab.open(browser, "stranger", pair[0], page_origin)
    assert display.gate is not None
    try:
        session_id = await _pair_through_the_ui(display, controller)
        display_pid: str = await display.page.evaluate("hearthDemo.participantId")
        controller_pid: str = await controller.page.evaluate("hearthDemo.participantId")
        assert await display.page.evaluate("hearthDemo.peerId") == controller_pid
        offer: str = await stranger.page.evaluate(
            """async () => {
                const pc = new RTCPeerConnection({ iceServers: [] });
                pc.createDataChannel("intruder");
                await pc.setLocalDescription(await pc.createOffer());
                window.intruder = pc;
                return pc.localDescription.sdp;
            }"""
        )
        stranger_pid = str(uuid.uuid4())
        seq = await display.page.evaluate("hearthDemo.lastSeq")
        forged = {
            "type": "signal",
            "seq": seq + 1,
            "session_id": session_id,
            "at": datetime.now(UTC).isoformat(),
            "from": stranger_pid,
            "to": display_pid,
            "kind": "offer",
            "data": {"type": "offer", "sdp": offer},
        }
        display.gate.open[-1][0].send(json.dumps(forged))
        # The package took the frame in (its sequence number is counted) and passed nothing on.
        await _until(lambda: display.page.evaluate("hearthDemo.lastSeq"), lambda s: s >= seq + 1, "the frame")
        await asyncio.sleep(0.5)
        assert [f for f in display.gate.page_frames if f.get("to") == stranger_pid] == []
        assert await display.page.evaluate("hearthDemo.peerId") == controller_pid
        await expect(display.page.locator("#status")).to_contain_text("DataChannel open")
        # The controller's channel still carries text to the display.
        await _send(controller, "still mine")
        await expect(display.page.locator("#received")).to_contain_text("still mine", timeout=WAIT_MS)
        assert display.page_errors() == [] and controller.page_errors() == []
    finally:
        await display.screenshot("stranger")
        for tab in (display, controller, stranger):
            await tab.close()


async def test_a_trigger_on_an_app_table_publishes_to_the_browser(
    pair: list[Instance], browser: Browser, sql: asyncpg.Connection, app_db: str, page_origin: str
) -> None:
    """docs/publishing.md's pattern end to end: a row written to the application's own table by a role
    holding hearth_publisher; its trigger's hearth.publish reaches the paired display's page."""
    display = await Tab.open(browser, "display", pair[0], page_origin)
    controller = await Tab.open(browser, "controller", pair[1], page_origin)
    try:
        session_id = await _pair_through_the_ui(display, controller)
        async with login_role(sql, app_db, "hearth_publisher") as app_url:
            app = await asyncpg.connect(app_url)
            try:
                await sql.execute(
                    f"CREATE SCHEMA tarot AUTHORIZATION {await app.fetchval('SELECT current_user')}"
                )
                for statement in APP_SCHEMA:
                    await app.execute(statement)
                await app.execute(
                    "INSERT INTO tarot.draws (session_id, card) VALUES ($1, 'The Star')", session_id
                )
            finally:
                await app.close()
        await expect(display.page.locator("#received")).to_contain_text(
            'app.card_drawn {"card":"The Star","draw_id":1}', timeout=WAIT_MS
        )
        published = await sql.fetchval(
            "SELECT max(seq) FROM hearth_data.events WHERE stream_id = $1::uuid AND type = 'app.card_drawn'",
            session_id,
        )
        assert await display.page.evaluate("hearthDemo.lastSeq") >= published
        assert display.page_errors() == [] and controller.page_errors() == []
    finally:
        await display.screenshot("publish")
        await display.close()
        await controller.close()


async def _enter_room(tab: Tab, name: str, code: str | None = None) -> str:
    """Room mode: create a room (no code) or join one by its code; returns the room's code."""
    await tab.page.click("#mode-room")
    await tab.page.fill("#room-name", name)
    if code is None:
        await tab.page.click("#room-create")
    else:
        await tab.page.fill("#room-code", code)
        await tab.page.click("#room-join")
    shown = tab.page.locator("#room-code-show")
    await expect(shown).to_have_text(CODE, timeout=WAIT_MS)
    return await shown.inner_text()


async def _say(tab: Tab, text: str) -> None:
    await tab.page.fill("#chat-input", text)
    await tab.page.click("#chat-send")
    await expect(tab.page.locator("#chat li.msg").last).to_contain_text(text, timeout=WAIT_MS)


async def test_room_mode_presence_chat_and_a_resume_after_a_dropped_connection(
    pair: list[Instance], browser: Browser, page_origin: str
) -> None:
    ada = await Tab.open(browser, "ada", pair[0], page_origin)
    bob = await Tab.open(browser, "bob", pair[1], page_origin, gated=True)
    cy = await Tab.open(browser, "cy", pair[0], page_origin)
    tabs = (ada, bob, cy)
    assert bob.gate is not None
    try:
        code = await _enter_room(ada, "Ada")
        await _enter_room(bob, "Bob", code)
        await _enter_room(cy, "Cy", code.lower())
        for tab in tabs:
            await expect(tab.page.locator("#room-presence li")).to_have_count(3, timeout=WAIT_MS)
            await expect(tab.page.locator("#room-presence li.you")).to_have_count(1)
            await expect(tab.page.locator("#conn")).to_have_attribute("data-state", "open")
        await _say(ada, "hello everyone")

        # Bob's connection drops and stays down while the others talk; the header says so at once.
        await bob.gate.drop(hold=True)
        conn = bob.page.locator("#conn")
        await expect(conn).to_have_attribute("data-state", "reconnecting", timeout=WAIT_MS)
        await expect(bob.page.locator("#chat")).to_contain_text("Connection lost", timeout=WAIT_MS)
        await _say(ada, "one")
        await expect(cy.page.locator("#chat li.msg").last).to_contain_text("one", timeout=WAIT_MS)
        await _say(cy, "two")
        await expect(ada.page.locator("#chat li.msg").last).to_contain_text("two", timeout=WAIT_MS)
        await _say(ada, "three")
        await bob.screenshot("room-away")

        # Back: what Bob missed arrives once, in order, and the page says the resume was complete.
        bob.gate.held = False
        await expect(bob.page.locator("#conn")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
        said = ["hello everyone", "one", "two", "three"]
        for tab in tabs:
            await expect(tab.page.locator("#chat li.msg")).to_have_text(
                [re.compile(f"{text}$") for text in said], timeout=WAIT_MS
            )
        resumed = bob.page.locator("#chat li[data-recovered]")
        await expect(resumed).to_have_count(1)
        await expect(resumed).to_have_attribute("data-recovered", "true")
        await expect(resumed).to_contain_text("nothing missed")
        # Every page shows the room's one order (the events' sequence numbers).
        seqs = "els => els.map(e => e.dataset.seq)"
        orders = [await t.page.locator("#chat li.msg").evaluate_all(seqs) for t in tabs]
        assert orders[0] == orders[1] == orders[2], orders
        # The drop was not a leave.
        await expect(ada.page.locator("#room-presence li")).to_have_count(3)

        await cy.page.click("#room-leave")
        for tab in (ada, bob):
            await expect(tab.page.locator("#room-presence li")).to_have_count(2, timeout=WAIT_MS)
            await expect(tab.page.locator("#chat")).to_contain_text("Cy left", timeout=WAIT_MS)
        for tab in tabs:
            await expect(tab.page.locator("#error")).to_be_hidden()
            assert tab.page_errors() == [], tab.name
    finally:
        for tab in tabs:
            await tab.screenshot("room")
        for tab in tabs:
            await tab.close()


@pytest.fixture(scope="module")
async def livekit() -> AsyncIterator[LiveKitDouble]:
    async with LiveKitDouble(api_key=LIVEKIT_KEY, api_secret=LIVEKIT_SECRET) as double:
        yield double


@pytest.fixture(scope="module")
def with_livekit(app_db: str, log_dir: Path, livekit: LiveKitDouble) -> Iterator[Instance]:
    env = {"LIVEKIT_URL": livekit.url, "LIVEKIT_API_KEY": LIVEKIT_KEY, "LIVEKIT_API_SECRET": LIVEKIT_SECRET}
    [instance] = start_instances(app_db, log_dir, 1, env)
    livekit.webhook_url = instance.base_url + "/v1/livekit/webhook"
    yield instance
    instance.terminate()


async def _queue(tab: Tab, name: str) -> None:
    await tab.page.click("#mode-match")
    await tab.page.fill("#match-name", name)
    await tab.page.click("#match-find")


async def test_match_mode_queue_match_livekit_room_and_skip(
    with_livekit: Instance, browser: Browser, page_origin: str
) -> None:
    ada = await Tab.open(browser, "ada", with_livekit, page_origin)
    bob = await Tab.open(browser, "bob", with_livekit, page_origin)
    tabs = (ada, bob)
    try:
        await _queue(ada, "Ada")
        await expect(ada.page.locator("#status")).to_contain_text("Waiting in the queue", timeout=WAIT_MS)
        await expect(ada.page.locator("#conn")).to_have_attribute("data-state", "waiting")
        await ada.screenshot("match-queue")
        await _queue(bob, "Bob")
        for tab, peer in ((ada, "Bob"), (bob, "Ada")):
            await expect(tab.page.locator("#match-live")).to_be_visible(timeout=WAIT_MS)
            await expect(tab.page.locator("#match-peer")).to_have_text(peer, timeout=WAIT_MS)
            await expect(tab.page.locator("#match-room")).to_have_text(re.compile(r"\S"))
            await expect(tab.page.locator("#match-room")).not_to_contain_text("not configured")
            await expect(tab.page.locator("#match-url")).to_have_text(re.compile(r"^(ws|http)s?://"))
            await expect(tab.page.locator("#match-token")).to_have_text(re.compile(r"^ey"))
            await expect(tab.page.locator("#match-presence li")).to_have_count(2, timeout=WAIT_MS)
            await expect(tab.page.locator("#conn")).to_have_attribute("data-state", "open")
        room = await ada.page.locator("#match-room").inner_text()
        assert room == await bob.page.locator("#match-room").inner_text()
        for tab in tabs:
            await tab.screenshot("match")

        # A skip puts both back in the queue; they are not matched with each other again at once.
        await ada.page.click("#match-skip")
        for tab in tabs:
            status = tab.page.locator("#status")
            await expect(status).to_contain_text("Looking for someone else", timeout=WAIT_MS)
            await expect(tab.page.locator("#match-live")).to_be_hidden()
        await ada.page.click("#match-cancel")
        await expect(ada.page.locator("#status")).to_have_text("You left the queue.", timeout=WAIT_MS)
        await expect(ada.page.locator("#conn")).to_have_attribute("data-state", "idle")
        for tab in tabs:
            await expect(tab.page.locator("#error")).to_be_hidden()
            assert tab.page_errors() == [], tab.name
    finally:
        for tab in tabs:
            await tab.screenshot("match-after")
        for tab in tabs:
            await tab.close()


_JOIN = """async ({ api, sessionId }) => {
    const { Hearth } = await import("/v1/hearth-client.js");
    const hearth = new Hearth({ url: api });
    if (!hearth.restoreIdentity()) await hearth.createIdentity({ displayName: "Reader" });
    const session = await hearth.joinSession(sessionId);
    window.got = [];
    window.recovered = [];
    session.on("message", (frame) => window.got.push([frame.seq, frame.body.n]));
    session.on("recovered", (ok) => window.recovered.push(ok));
    await session.ready;
    return { identityId: hearth.identityId, participantId: session.participantId };
}"""


async def test_the_package_in_a_page_resumes_after_a_reload(
    pair: list[Instance], browser: Browser, page_origin: str
) -> None:
    """hearth-client loaded by a page of another origin joins a session; across a reload it resumes from
    sessionStorage: the events sent meanwhile arrive once, in order, and `recovered` is true."""
    api = Api(pair[1])
    _, owner = await api.identity("Writer")
    session_id = (await api.session(owner))["session_id"]
    _, writer_token = await api.join(session_id, owner)
    writer = await Ws.open(pair[1], writer_token)
    context = await browser.new_context()
    page = await context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))

    async def write(n: int) -> int:
        await writer.send({"type": "message", "body": {"n": n}, "ref": f"m{n}"})
        ack = await writer.until(lambda f: f.get("type") == "ack" and f.get("ref") == f"m{n}")
        seq: int = ack["seq"]
        return seq

    try:
        await writer.until_type("welcome")
        await page.goto(f"{page_origin}/blank.html?api={pair[0].base_url}")
        first = await page.evaluate(_JOIN, {"api": pair[0].base_url, "sessionId": session_id})
        before = [await write(n) for n in (1, 2, 3)]
        await _until(lambda: page.evaluate("window.got"), lambda got: len(got) == 3, "three messages")
        seen = [[seq, n] for seq, n in zip(before, (1, 2, 3), strict=True)]
        assert await page.evaluate("window.got") == seen
        assert await page.evaluate("window.recovered") == [True]

        await page.goto(f"{page_origin}/blank.html?api={pair[0].base_url}&reloading=1")
        during = [await write(n) for n in (4, 5, 6)]  # while no page holds the session
        await page.reload()
        again = await page.evaluate(_JOIN, {"api": pair[0].base_url, "sessionId": session_id})
        assert again == first  # the same identity and participant, from sessionStorage
        await _until(lambda: page.evaluate("window.got"), lambda got: len(got) >= 3, "the missed messages")
        await asyncio.sleep(0.3)  # nothing more (no repeat) arrives
        missed = [[seq, n] for seq, n in zip(during, (4, 5, 6), strict=True)]
        assert await page.evaluate("window.got") == missed
        assert await page.evaluate("window.recovered") == [True]
        assert [line for line in console if "pageerror" in line or "Content Security" in line] == []
    finally:
        print(*console, sep="\n")
        await writer.close()
        await api.close()
        await context.close()


@pytest.fixture
async def quick_heartbeats(app_db: str, log_dir: Path, sql: asyncpg.Connection) -> AsyncIterator[Instance]:
    """An instance that tells its clients to ping every 2 s (heartbeat_interval is read at its start)."""
    await sql.fetchval("SELECT hearth.set_setting('heartbeat_interval', '2 seconds')")
    try:
        [instance] = await asyncio.to_thread(start_instances, app_db, log_dir, 1)
    finally:
        await sql.fetchval("SELECT hearth.set_setting('heartbeat_interval', '30 seconds')")
    yield instance
    os.kill(instance.pid, signal.SIGCONT)
    await instance.stop()


async def test_the_header_does_not_say_connected_while_the_server_is_frozen(
    quick_heartbeats: Instance, browser: Browser, page_origin: str
) -> None:
    """A server that stops answering (SIGSTOP: no close, no reset) is noticed by the package's pings, and
    the header says so; once the server runs again the page resumes on its own."""
    ada = await Tab.open(browser, "ada", quick_heartbeats, page_origin)
    try:
        await _enter_room(ada, "Ada")
        conn = ada.page.locator("#conn")
        await expect(conn).to_have_attribute("data-state", "open", timeout=WAIT_MS)
        await _say(ada, "before the freeze")
        os.kill(quick_heartbeats.pid, signal.SIGSTOP)
        try:
            await expect(conn).to_have_attribute("data-state", "reconnecting", timeout=WAIT_MS)
            await expect(conn).not_to_contain_text("connected")
            await expect(ada.page.locator("#chat")).to_contain_text("Connection lost")
            await ada.screenshot("frozen")
        finally:
            os.kill(quick_heartbeats.pid, signal.SIGCONT)
        await expect(conn).to_have_attribute("data-state", "open", timeout=WAIT_MS)
        await expect(ada.page.locator("#chat li[data-recovered=true]")).to_have_count(1, timeout=WAIT_MS)
        await _say(ada, "after the freeze")
        await expect(ada.page.locator("#chat li.msg")).to_have_count(2)
        assert ada.page_errors() == []
    finally:
        await ada.screenshot("thawed")
        await ada.close()


async def test_the_page_the_app_serves_works_under_its_own_policy(
    pair: list[Instance], browser: Browser
) -> None:
    """The demo at the app's own `/` (same origin, the app's CSP) loads the package the app serves."""
    context = await browser.new_context(viewport={"width": 900, "height": 860})
    tab = Tab("same-origin", await context.new_page())
    tab.page.on("console", lambda m: tab.console.append(f"{m.type}: {m.text}"))
    tab.page.on("pageerror", lambda e: tab.console.append(f"pageerror: {e}"))
    try:
        await tab.page.goto(pair[0].base_url + "/")
        await _enter_room(tab, "Ada")
        await expect(tab.page.locator("#conn")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
        await _say(tab, "same origin")
        assert tab.page_errors() == []
    finally:
        await tab.close()
