"""GET /v1/openapi.json: a valid OpenAPI 3.1 document of every route the app serves, true to its answers.

Three ways of holding the document to the server: it validates as OpenAPI 3.1; every route of the app is
in it; and real answers — a scripted walk through every operation, then schemathesis generating requests
against a live `hearth serve`, authenticated — validate against it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import jwt
import psycopg
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from livekit import api as lkapi
from openapi_spec_validator import validate
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Mount, Route, WebSocketRoute

from app import openapi
from app.config import Secret, Settings
from app.main import create_app
from tests.app.conftest import start_instances
from tests.app.harness import ADMIN_TOKEN, SECRET, Instance, bearer

APP_SECRET = "the-app-signs-its-users-tokens-with-this-0123456789"
LIVEKIT = {
    "LIVEKIT_URL": "http://127.0.0.1:9",  # never called: tokens are signed locally, no match gets a room
    "LIVEKIT_API_KEY": "devkey",
    "LIVEKIT_API_SECRET": "devsecret-for-hearth-tests-0123456789abcdef",
    "HEARTH_LIVEKIT_RECONCILE_S": "3600",
    # The app's own tokens are accepted too (POST /v1/identities), so their path is generated against.
    "HEARTH_AUTH_SECRET": APP_SECRET,
}
EXAMPLES = 50  # hypothesis examples per operation (its explicit and coverage phases add some)


@pytest.fixture(scope="module")
def served(app_db: str, log_dir: Path) -> Iterator[Instance]:
    [instance] = start_instances(app_db, log_dir, 1, LIVEKIT)
    yield instance
    print("schemathesis requests per operation:", dict(sorted(SENT.items())))
    assert "Traceback" not in instance.log(), instance.log()[-3000:]
    instance.terminate()


@pytest.fixture(scope="module")
def doc(served: Instance) -> dict[str, Any]:
    r = httpx.get(served.base_url + "/v1/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    document: dict[str, Any] = r.json()
    return document


def test_the_document_is_openapi_3_1(doc: dict[str, Any]) -> None:
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    assert set(doc["components"]["securitySchemes"]) >= {"identityToken", "sessionToken", "adminToken"}
    error = doc["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["error"]


def test_every_route_the_app_serves_is_in_it(doc: dict[str, Any]) -> None:
    app = _app()
    served: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, Route):
            served |= {(route.path, m.lower()) for m in route.methods or () if m != "HEAD"}
        elif isinstance(route, Mount):
            served.add((route.path + "/{path}", "get"))
        else:
            assert isinstance(route, WebSocketRoute)  # OpenAPI describes no websockets
    documented = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert served == documented
    assert ("/v1/openapi.json", "get") in documented


class Conformance:
    """Validates real answers against the document and remembers which operations were seen answering."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.seen: set[tuple[str, str]] = set()

    def check(self, path: str, r: httpx.Response) -> httpx.Response:
        method = r.request.method.lower()
        responses = self.doc["paths"][path][method]["responses"]
        assert str(r.status_code) in responses, (path, method, r.status_code, r.text)
        media = r.headers["content-type"].split(";")[0].strip()
        content = responses[str(r.status_code)]["content"]
        assert media in content, (path, method, media, list(content))
        if media == "application/json":
            schema = {**content[media]["schema"], "components": self.doc["components"]}
            jsonschema.Draft202012Validator(schema).validate(r.json())
        self.seen.add((path, method))
        return r


def _webhook(body: bytes, secret: str) -> str:
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    return lkapi.AccessToken(LIVEKIT["LIVEKIT_API_KEY"], secret).with_sha256(digest).to_jwt()


async def test_real_answers_validate_against_it(
    served: Instance, doc: dict[str, Any], credentials: dict[str, Any]
) -> None:
    c = Conformance(doc)
    async with httpx.AsyncClient(base_url=served.base_url, timeout=10) as http:
        ident = c.check("/v1/identities", await http.post("/v1/identities", json={"display_name": "Ann"}))
        me = bearer(ident.json()["token"])
        room = c.check("/v1/sessions", await http.post("/v1/sessions", json={"name": "r"}, headers=me)).json()
        sid = room["session_id"]
        c.check("/v1/sessions/{session_id}", await http.get(f"/v1/sessions/{sid}", headers=me))
        joined = await http.post(f"/v1/sessions/{sid}/join", json={"role": "host"}, headers=me)
        session = bearer(c.check("/v1/sessions/{session_id}/join", joined).json()["token"])
        c.check("/v1/sessions/{session_id}", await http.get(f"/v1/sessions/{sid}", headers=me))
        refreshed = await http.post("/v1/tokens/refresh", headers=session)
        session = bearer(c.check("/v1/tokens/refresh", refreshed).json()["token"])
        lk = await http.get(f"/v1/sessions/{sid}/livekit-token", headers=session)
        c.check("/v1/sessions/{session_id}/livekit-token", lk)
        await _displays(c, http, me)
        other = bearer((await http.post("/v1/identities")).json()["token"])
        c.check("/v1/join", await http.post("/v1/join", json={"code": room["code"]}, headers=other))
        for path, method in [
            ("/v1/match/queue", "POST"),
            ("/v1/match", "GET"),
            ("/v1/match/queue", "DELETE"),
        ]:
            c.check(path, await http.request(method, path, headers=other))
        for action in ("skip", "end"):  # no match: the error is as documented too
            r = await http.post(f"/v1/matches/{uuid.uuid4()}/{action}", headers=other)
            assert c.check(f"/v1/matches/{{session_id}}/{action}", r).status_code == 404
        await _webhooks(c, http)
        c.check(
            "/v1/sessions/{session_id}/leave", await http.post(f"/v1/sessions/{sid}/leave", headers=session)
        )
        c.check("/v1/stats", await http.get("/v1/stats", headers=bearer(ADMIN_TOKEN)))
        c.check("/v1/admin/rooms", await http.get("/v1/admin/rooms", headers=bearer(ADMIN_TOKEN)))
        await _history(c, http, credentials, me)
        for path in ("/v1/openapi.json", "/v1/hearth-client.js", "/healthz", "/readyz", "/metrics", "/"):
            c.check(path, await http.get(path))
        c.check("/demo/qr.svg", await http.get("/demo/qr.svg", params={"code": "ABCDEF"}))
        c.check("/demo/static/{path}", await http.get("/demo/static/demo.css"))
        await _errors(c, http, me, sid)
    documented = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert c.seen == documented


async def _displays(c: Conformance, http: httpx.AsyncClient, me: dict[str, str]) -> None:
    display = c.check("/v1/displays", await http.post("/v1/displays", json={"ttl_s": 60}, headers=me)).json()
    events = f"/v1/displays/{display['session_id']}/events"
    waiting = c.check(
        "/v1/displays/{session_id}/events",
        await http.get(events, params={"wait": 0, "token": display["token"]}),
    )
    assert waiting.json() == {"event": None}
    controller = bearer((await http.post("/v1/identities")).json()["token"])
    c.check("/v1/pair", await http.post("/v1/pair", json={"code": display["code"]}, headers=controller))
    paired = await http.get(events, params={"wait": 1}, headers=bearer(display["token"]))
    assert c.check("/v1/displays/{session_id}/events", paired).json()["event"] == "paired"
    stream = await http.get(events, params={"token": display["token"]})  # settled: the stream ends at once
    assert c.check("/v1/displays/{session_id}/events", stream).text.count("event: paired") == 1


async def _history(
    c: Conformance, http: httpx.AsyncClient, credentials: dict[str, Any], stranger: dict[str, str]
) -> None:
    archived, participant = credentials["archived"]
    path = "/v1/sessions/{session_id}/history"
    for headers in (bearer(participant), bearer(ADMIN_TOKEN)):
        history = c.check(path, await http.get(f"/v1/sessions/{archived}/history", headers=headers)).json()
        assert history["session_id"] == archived and history["messages"][0]["note"] == "hi"
    r = await http.get(f"/v1/sessions/{archived}/history", headers=stranger)
    assert c.check(path, r).status_code == 403
    r = await http.get(f"/v1/sessions/{uuid.uuid4()}/history", headers=bearer(ADMIN_TOKEN))
    assert c.check(path, r).status_code == 404


async def _webhooks(c: Conformance, http: httpx.AsyncClient) -> None:
    body = json.dumps(
        {"id": f"EV_{uuid.uuid4().hex}", "event": "participant_joined", "createdAt": str(int(time.time()))}
    ).encode()
    headers = {"Content-Type": "application/webhook+json"}
    signed = {**headers, "Authorization": _webhook(body, LIVEKIT["LIVEKIT_API_SECRET"])}
    assert c.check(
        "/v1/livekit/webhook", await http.post("/v1/livekit/webhook", content=body, headers=signed)
    ).json() == {"recorded": True}
    unsigned = await http.post("/v1/livekit/webhook", content=body, headers=headers)
    assert c.check("/v1/livekit/webhook", unsigned).status_code == 401


async def _errors(c: Conformance, http: httpx.AsyncClient, me: dict[str, str], sid: str) -> None:
    statuses = [
        c.check("/v1/sessions", await http.post("/v1/sessions", json={"ttl_s": 0}, headers=me)).status_code,
        c.check("/v1/sessions", await http.post("/v1/sessions", json={})).status_code,
        c.check(
            "/v1/sessions/{session_id}", await http.get(f"/v1/sessions/{uuid.uuid4()}", headers=me)
        ).status_code,
        c.check(
            "/v1/sessions/{session_id}", await http.get("/v1/sessions/not-an-id", headers=me)
        ).status_code,
        c.check("/v1/identities", await http.post("/v1/identities", content=b" " * 70_000)).status_code,
        c.check(
            "/v1/sessions/{session_id}/leave", await http.post(f"/v1/sessions/{sid}/leave", headers=me)
        ).status_code,
        c.check("/demo/static/{path}", await http.get("/demo/static/nothing.js")).status_code,
    ]
    assert statuses == [400, 401, 404, 400, 413, 401, 404]


def _app() -> Any:
    return create_app(Settings(Secret("postgresql://unused"), Secret(SECRET), Secret(ADMIN_TOKEN)))


# Schemathesis: requests generated from the document against the live server, authenticated. The document
# is built here from the app's routes (collection needs it before any server runs); test_it_is_served
# holds it equal to what the server serves.
schema = schemathesis.openapi.from_dict(openapi.document(_app().routes, version("hearth")))
SENT: Counter[str] = Counter()


def test_it_is_served(doc: dict[str, Any]) -> None:
    assert doc == schema.raw_schema


@pytest.fixture(scope="module")
def credentials(served: Instance, app_db: str) -> dict[str, Any]:
    """An identity; a room with two of its participants (one for leave, one for the rest); a paired display
    (its event stream ends at once, so a request for it does not wait for a pairing); an archived session
    and the identity token of one who took part in it."""
    with httpx.Client(base_url=served.base_url, timeout=10) as http:
        archived = _archived_session(http, app_db)
        token = http.post("/v1/identities").json()["token"]
        room = http.post("/v1/sessions", json={}, headers=bearer(token)).json()["session_id"]
        members = []
        for _ in range(2):
            member = http.post("/v1/identities").json()["token"]
            members.append(http.post(f"/v1/sessions/{room}/join", headers=bearer(member)).json()["token"])
        display = http.post("/v1/displays", json={}, headers=bearer(token)).json()
        controller = http.post("/v1/identities").json()["token"]
        assert (
            http.post("/v1/pair", json={"code": display["code"]}, headers=bearer(controller)).status_code
            == 200
        )
    return {
        "identity": token,
        "room": room,
        "leaving": members[0],
        "member": members[1],
        "display": (display["session_id"], display["token"]),
        "archived": archived,
        "app": jwt.encode({"sub": "app-user-1", "exp": int(time.time()) + 3600}, APP_SECRET, "HS256"),
    }


def _archived_session(http: httpx.Client, database_url: str) -> tuple[str, str]:
    """A pairing with one app.* event, archived with its messages once both sides left: its id and the
    controller's identity token. Made first: the cleanup deletes every other closed session too."""
    display_identity = http.post("/v1/identities").json()["token"]
    display = http.post("/v1/displays", json={}, headers=bearer(display_identity)).json()
    session_id = display["session_id"]
    controller = http.post("/v1/identities").json()["token"]
    paired = http.post("/v1/pair", json={"code": display["code"]}, headers=bearer(controller)).json()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT hearth.set_setting('archive_messages', 'on')")
        conn.execute("SELECT hearth.publish(%s, 'app.note', '{\"note\": \"hi\"}')", (session_id,))
        for token in (display["token"], paired["token"]):
            r = http.post(f"/v1/sessions/{session_id}/leave", headers=bearer(token))
            assert r.json() == {"left": True}, r.text
        conn.execute("SELECT hearth.cleanup_inactive_sessions()")
        archived = "SELECT count(*) FROM hearth_data.session_archive WHERE session_id = %s"
        assert conn.execute(archived, (session_id,)).fetchone() == (1,)
    return session_id, controller


@pytest.fixture(scope="module")
def keepalive() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def authorize(case: Any, doc: dict[str, Any], credentials: dict[str, Any]) -> None:
    """The token each operation asks for; a session-scoped operation gets its session's id whenever the
    generated id is a well-formed one (else every request would stop at 403), an identity's half the time."""
    path, method = case.operation.path, case.operation.method.lower()
    schemes = {name for option in doc["paths"][path][method]["security"] for name in option}
    session_id = (case.path_parameters or {}).get("session_id")
    well_formed = isinstance(session_id, str) and _is_uuid(session_id)
    token, scoped = None, None
    if path == "/v1/displays/{session_id}/events":
        scoped, token = credentials["display"]
    elif path.endswith("/history"):  # a third each: unknown id (404), the participant, the admin
        archived, participant = credentials["archived"]
        kind = uuid.UUID(session_id).int % 3 if well_formed else 0
        token = (credentials["identity"], participant, ADMIN_TOKEN)[kind]
        scoped = archived if kind else None
    elif "sessionToken" in schemes:
        scoped = credentials["room"]
        token = credentials["leaving"] if path.endswith("/leave") else credentials["member"]
    elif "identityToken" in schemes:
        token = credentials["identity"]
        scoped = credentials["room"] if well_formed and uuid.UUID(session_id).int % 2 == 0 else None
    elif "adminToken" in schemes:
        token = ADMIN_TOKEN
    elif "appToken" in schemes and len(repr(case.body)) % 2:  # an app's user half the time, else anonymous
        token = credentials["app"]
    if token is not None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
    if scoped is not None and well_formed:
        case.path_parameters["session_id"] = scoped


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_schemathesis_finds_nothing(
    case: Any, served: Instance, doc: dict[str, Any], credentials: dict[str, Any], keepalive: requests.Session
) -> None:
    authorize(case, doc, credentials)
    SENT[f"{case.operation.method.upper()} {case.operation.path}"] += 1
    case.call_and_validate(
        base_url=served.base_url,
        session=keepalive,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
        timeout=10,
    )
