"""The OpenAPI 3.1 document (GET /v1/openapi.json), built from what each route declares beside itself.

A route is an `ApiRoute`: its path, handler and method plus an `Operation` — who may call it, its body
shape and its answers, shapes from app.shapes (the same classes the handler validates and answers with).
The document is derived from the app's own route list, so a route cannot be served and left out, and the
error statuses that follow from the declaration (a body: 400 and 413; a token: 401; an id in the path: 400)
are added here once rather than written on every route.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal

from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute, Mount, Route

from app import shapes


@dataclass(frozen=True)
class Stream:
    """A body of items in a streaming media type (server-sent events: each event is an `item`)."""

    media_type: str
    item: type[shapes.Answer]


Answer = type[shapes.Answer] | Stream | str
Auth = Literal["none", "app", "identity", "session", "display", "admin", "identity_or_admin", "livekit"]
REF = "#/components/schemas/{model}"
SECURITY: dict[Auth, list[dict[str, list[str]]]] = {
    "none": [],
    "app": [{}, {"appToken": []}],
    "identity": [{"identityToken": []}],
    "session": [{"sessionToken": []}],
    "display": [{"sessionToken": []}, {"sessionTokenQuery": []}],
    "admin": [{"adminToken": []}],
    "identity_or_admin": [{"identityToken": []}, {"adminToken": []}],
    "livekit": [{"livekitSignature": []}],
}
SECURITY_SCHEMES = {
    "appToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The app's own JWT for one of its users (HEARTH_AUTH_SECRET or HEARTH_AUTH_JWKS): "
        "optional, and only where the server is configured for it.",
    },
    "identityToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An identity token (POST /v1/identities); a session token also carries the identity.",
    },
    "sessionToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A session token: from joining the session, pairing, or registering a display.",
    },
    "sessionTokenQuery": {
        "type": "apiKey",
        "in": "query",
        "name": "token",
        "description": "The session token as `?token=`, for a browser's EventSource (it cannot set headers).",
    },
    "adminToken": {"type": "http", "scheme": "bearer", "description": "The server's HEARTH_ADMIN_TOKEN."},
    "livekitSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "LiveKit's signed JWT over the body (its webhook key and secret).",
    },
}
ERRORS = {
    400: "Bad request: the message names the field or parameter.",
    401: "Missing, invalid or expired token.",
    403: "The token does not allow this.",
    404: "Not found.",
    409: "Conflicts with the current state.",
    410: "Gone: expired or ended.",
    413: "The request body is larger than 64 KiB.",
    429: "Rate limited (with Retry-After: the seconds to wait), or too many open sessions (without).",
    503: "Not available on this server, or not ready.",
}


@dataclass(frozen=True)
class Operation:
    """One method of one path, as the document shows it. An answer is a shape, or the media type of a
    body that is not JSON, or a tuple of those when one status has several (chosen by the request)."""

    summary: str
    answers: Mapping[int, Answer | tuple[Answer, ...]]
    auth: Auth = "identity"
    body: type[shapes.Request] | None = None
    raw_body: str | None = None
    errors: tuple[int, ...] = ()
    query: Mapping[str, dict[str, Any]] = field(default_factory=dict)

    def error_statuses(self, path: str) -> list[int]:
        statuses = set(self.errors)
        if self.body is not None or self.raw_body is not None:
            statuses |= {400, 413}
        if self.auth != "none":
            statuses.add(401)
        if self.auth in ("session", "display"):
            statuses.add(403)
        if "{" in path or self.query:
            statuses.add(400)
        return sorted(statuses)


class ApiRoute(Route):
    """A route that declares its operation; its method is the one the operation describes."""

    def __init__(self, path: str, endpoint: Callable[..., Any], method: str, operation: Operation) -> None:
        super().__init__(path, endpoint, methods=[method])
        self.method = method
        self.operation = operation


class ApiMount(Mount):
    """A mount served by GET under `{path}` (static files)."""

    def __init__(self, path: str, app: Any, operation: Operation) -> None:
        super().__init__(path, app=app)
        self.operation = operation


def operations(routes: Sequence[BaseRoute]) -> list[tuple[str, str, Operation]]:
    """(path, method, operation) of every declared route; a websocket route is not HTTP and has none."""
    found = []
    for route in routes:
        if isinstance(route, ApiRoute):
            found.append((route.path, route.method, route.operation))
        elif isinstance(route, ApiMount):
            found.append((f"{route.path}/{{path}}", "GET", route.operation))
    return found


def document(routes: Sequence[BaseRoute], version: str) -> dict[str, Any]:
    declared = operations(routes)
    schemas = _component_schemas(declared)
    paths: dict[str, dict[str, Any]] = {}
    for path, method, operation in declared:
        paths.setdefault(path, {})[method.lower()] = _operation(path, operation)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Hearth",
            "version": version,
            "description": "Realtime sessions on PostgreSQL. The websocket, GET /v1/ws?token=..., is not "
            "described here: OpenAPI has no websockets.",
        },
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
    }


def _component_schemas(declared: list[tuple[str, str, Operation]]) -> dict[str, Any]:
    models: set[tuple[type[shapes.Request] | type[shapes.Answer], Literal["validation", "serialization"]]]
    models = {(shapes.ErrorBody, "serialization")}
    for _, _, operation in declared:
        if operation.body is not None:
            models.add((operation.body, "validation"))
        for answer in operation.answers.values():
            models |= {(_model(a), "serialization") for a in _each(answer) if not isinstance(a, str)}
    ordered = sorted(models, key=lambda item: item[0].__name__)
    _, top = models_json_schema(ordered, ref_template=REF)
    return dict(sorted(top.get("$defs", {}).items()))


def _ref(model: type[shapes.Answer] | type[shapes.Request]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _model(answer: type[shapes.Answer] | Stream) -> type[shapes.Answer]:
    return answer.item if isinstance(answer, Stream) else answer


def _each(answer: Answer | tuple[Answer, ...]) -> tuple[Answer, ...]:
    return answer if isinstance(answer, tuple) else (answer,)


def _content(answer: Answer | tuple[Answer, ...]) -> dict[str, Any]:
    content: dict[str, Any] = {}
    for one in _each(answer):
        if isinstance(one, str):
            content[one] = {"schema": {"type": "string"} if one.startswith("text/") else {}}
        elif isinstance(one, Stream):
            content[one.media_type] = {"schema": _ref(one.item)}
        else:
            content["application/json"] = {"schema": _ref(one)}
    return content


def _operation(path: str, operation: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": operation.summary, "security": SECURITY[operation.auth]}
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": _PATH_SCHEMA.get(name, _UUID)}
        for name in _path_names(path)
    ]
    parameters += [
        {"name": name, "in": "query", "schema": schema} for name, schema in operation.query.items()
    ]
    if parameters:
        out["parameters"] = parameters
    if operation.body is not None:
        required = any(f.is_required() for f in operation.body.model_fields.values())
        out["requestBody"] = {
            "required": required,
            "content": {"application/json": {"schema": _ref(operation.body)}},
        }
    elif operation.raw_body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {operation.raw_body: {"schema": {"type": "object"}}},
        }
    responses: dict[str, Any] = {
        str(status): {"description": _describe(status, answer), "content": _content(answer)}
        for status, answer in operation.answers.items()
    }
    for status in operation.error_statuses(path):
        responses.setdefault(
            str(status),
            {
                "description": ERRORS[status],
                "content": {"application/json": {"schema": _ref(shapes.ErrorBody)}},
            },
        )
    out["responses"] = dict(sorted(responses.items()))
    return out


def _describe(status: int, answer: Answer | tuple[Answer, ...]) -> str:
    models = [_model(one) for one in _each(answer) if not isinstance(one, str)]
    docs = [model.__doc__.strip().splitlines()[0] for model in models if model.__doc__]
    return " ".join(docs) or HTTPStatus(status).phrase


_UUID = {"type": "string", "format": "uuid"}
_PATH_SCHEMA = {"path": {"type": "string", "description": "A file's name."}}


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]
