"""The demo page in a real browser: Debian's headless Chromium driven by playwright, against real
`hearth serve` processes. A display and a controller pair through the UI, open a WebRTC DataChannel over
loopback with Hearth's signaling, and text typed on the controller appears on the display. Screenshots
of both pages go to test-artifacts/.

Chromium comes from Debian (`apt-get install chromium`, which scripts/bootstrap.sh does when run as
root); `playwright install` is never used.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.app.harness import ROOT, Instance
from tests.db.helpers import login_role
from tests.db.test_publish import APP_SCHEMA

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


@dataclass
class Tab:
    """One page of the demo, with what its console said (printed when a test fails)."""

    name: str
    page: Page
    console: list[str] = field(default_factory=list)

    @classmethod
    async def open(cls, browser: Browser, name: str, instance: Instance) -> Tab:
        context = await browser.new_context(viewport={"width": 900, "height": 860})
        tab = cls(name, await context.new_page())
        tab.page.on("console", lambda m: tab.console.append(f"{m.type}: {m.text}"))
        tab.page.on("pageerror", lambda e: tab.console.append(f"pageerror: {e}"))
        await tab.page.goto(instance.base_url + "/")
        return tab

    async def screenshot(self, label: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"browser-{label}-{self.name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path

    def page_errors(self) -> list[str]:
        return [line for line in self.console if line.startswith("pageerror:")]

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

    if via_link:
        link = await display.page.get_attribute("#controller-link", "href")
        assert link == f"{display.page.url.rstrip('/')}/?code={await code.inner_text()}"
        await controller.page.goto(link)
        # The code is used up once paired: the address bar drops it, so a reload does not retry it.
        await controller.page.wait_for_url(re.compile(r"/$"), timeout=WAIT_MS)
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
            "code",
            "code-input",
            "pair-btn",
            "presence",
            "status",
            "message-input",
            "send-btn",
            "received",
        ):
            assert f'id="{element}"' in page.text
        script = await client.get("/demo/static/demo.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]

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
    pair: list[Instance], browser: Browser, sql: asyncpg.Connection
) -> None:
    # The display and the controller use different instances: signaling crosses them via Postgres.
    display = await Tab.open(browser, "display", pair[0])
    controller = await Tab.open(browser, "controller", pair[1])
    try:
        session_id = await _pair_through_the_ui(display, controller, screenshots=True)
        await _send(controller, "hello over webrtc")
        await expect(display.page.locator("#received")).to_contain_text("hello over webrtc", timeout=WAIT_MS)

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


async def test_a_dropped_socket_reconnects_with_after_and_gets_what_it_missed(
    pair: list[Instance], browser: Browser, sql: asyncpg.Connection
) -> None:
    display = await Tab.open(browser, "display", pair[1])
    controller = await Tab.open(browser, "controller", pair[0])
    try:
        session_id = await _pair_through_the_ui(display, controller, via_link=True)
        await expect(display.page.locator("#status")).to_have_attribute("data-opens", "1")

        # The display's socket drops and stays down while the controller renegotiates: the new offer
        # reaches Hearth while the display is away.
        last_seq: int = await display.page.evaluate("hearthDemo.dropSocket(600000)")
        await expect(display.page.locator("#conn")).to_have_attribute(
            "data-state", "connecting", timeout=WAIT_MS
        )
        await controller.page.click("#restart-btn")
        await _until(lambda: _signals(sql, session_id), lambda s: s.get("offer") == 2, "a second offer")

        # Back with ?after=: the missed offer is replayed, the display answers, a new channel opens.
        await display.page.evaluate("hearthDemo.reconnectNow()")
        await expect(display.page.locator("#conn")).to_have_attribute(
            "data-after", str(last_seq), timeout=WAIT_MS
        )
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
    pair: list[Instance], browser: Browser
) -> None:
    # A participant the server let into the display's session some other way (the join-by-code hole
    # once did) sends the display an offer: the display neither answers it nor drops its controller.
    # The stranger's frame is put on the display's own websocket, as the server would deliver it.
    sockets: list[Any] = []
    sent_by_display: list[dict[str, Any]] = []

    def intercept(ws: Any) -> None:
        server = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            sent_by_display.append(json.loads(message))
            server.send(message)

        ws.on_message(from_page)
        sockets.append(ws)

    display = await Tab.open(browser, "display", pair[0])
    controller = await Tab.open(browser, "controller", pair[1])
    stranger = await Tab.open(browser, "stranger", pair[0])
    await display.page.route_web_socket(re.compile(r"/v1/ws"), intercept)
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
        sockets[-1].send(json.dumps(forged))

        async def acted() -> tuple[bool, list[dict[str, Any]]]:
            ignored = any("not the paired peer" in line for line in display.console)
            return ignored, [f for f in sent_by_display if f.get("to") == stranger_pid]

        ignored, answers = await _until(acted, lambda seen: seen[0] or seen[1], "the display to act on it")
        assert answers == [] and ignored, (answers, display.console)
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
    pair: list[Instance], browser: Browser, sql: asyncpg.Connection, app_db: str
) -> None:
    """docs/publishing.md's pattern end to end: a row written to the application's own table by a role
    holding hearth_publisher; its trigger's hearth.publish reaches the paired display's page."""
    display = await Tab.open(browser, "display", pair[0])
    controller = await Tab.open(browser, "controller", pair[1])
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
