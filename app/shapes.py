"""Every HTTP request and response shape, declared once (pydantic models): requests are validated with
them where they are parsed, answers are built from them, and the OpenAPI document (app.openapi) is
generated from them, so the three cannot drift apart.

Request fields carry the limits the SQL functions enforce, so a client's mistake is reported in the
request's own terms (`display_name`), and the SQL API's HT400 stays a last line of defence. A code is the
exception on purpose: its format is checked by the database, where a malformed code counts as a failed
guess.

pydantic rather than msgspec: its validation errors are structured (field, kind, limit), so messages are
built from them without matching any text, and its JSON Schema is draft 2020-12, what OpenAPI 3.1 uses.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    field_validator,
)

# A time as the API writes it: ISO 8601 with its offset (datetime.isoformat()).
Timestamp = Annotated[
    datetime,
    PlainSerializer(lambda value: value.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
# A time the database already wrote as JSON text.
TimestampText = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
Token = Annotated[str, Field(description="An HS256 JWT: send it as `Authorization: Bearer <token>`.")]
MAX_SECONDS = 365 * 86400
METADATA_MAX_BYTES = 16 * 1024


class Request(BaseModel):
    """A JSON request body: only the declared fields, each of its exact JSON type."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def json_body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)  # an optional field left out stays out


# Requests


class NewIdentity(Request):
    display_name: str | None = Field(None, min_length=1, max_length=100)


class NewSession(Request):
    name: str | None = Field(None, min_length=1, max_length=200)
    max_participants: int | None = Field(None, ge=1, le=10_000)
    idle_timeout_s: int | None = Field(None, ge=1, le=MAX_SECONDS, description="Seconds without activity.")
    ttl_s: int | None = Field(None, ge=1, le=MAX_SECONDS, description="Seconds the session may last at most.")
    metadata: dict[str, Any] | None = Field(None, description="Any JSON object, at most 16 KiB as JSON.")

    @field_validator("metadata")
    @classmethod
    def _small(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(json.dumps(value, ensure_ascii=False).encode()) > METADATA_MAX_BYTES:
            raise ValueError("must be at most 16 KiB as JSON")
        return value


class JoinSession(Request):
    role: str = Field("member", pattern=r"^[a-z][a-z0-9_]{0,31}$", description="1 to 32 of a-z, 0-9, _.")


class Code(Request):
    code: str = Field(description="6 characters from 2-9 and A-Z, never 0, O, 1, I or L (any case).")


class NewDisplay(Request):
    ttl_s: int | None = Field(None, ge=1, le=86_400, description="Seconds the code is valid.")


class Empty(Request):
    """No fields: an empty body, or `{}`."""


# Answers


class IdentityCreated(Answer):
    identity_id: uuid.UUID
    token: Token
    expires_at: Timestamp


class TokenRefreshed(Answer):
    token: Token = Field(description="The same claims as the token refreshed; never past that token's cap.")
    expires_at: Timestamp


class SessionCreated(Answer):
    session_id: uuid.UUID
    code: str
    expires_at: Timestamp | None


class Participant(Answer):
    participant_id: uuid.UUID
    identity_id: uuid.UUID
    role: str
    display_name: str | None
    joined_at: TimestampText


class SessionView(Answer):
    session_id: uuid.UUID
    kind: Literal["room", "pairing", "match"]
    name: str | None
    status: str
    code: str | None
    expired: bool
    expires_at: TimestampText | None
    metadata: dict[str, Any]
    participants: list[Participant]


class Joined(Answer):
    session_id: uuid.UUID
    participant_id: uuid.UUID
    token: Token = Field(description="A session token: the websocket and the session's own routes take it.")


class Left(Answer):
    left: bool = Field(description="False when the participant had already left.")


class DisplayRegistered(Answer):
    session_id: uuid.UUID
    code: str
    participant_id: uuid.UUID
    token: Token
    expires_at: Timestamp


class DisplayOutcome(Answer):
    """A long poll's answer (`?wait=SECONDS`): the outcome, or null when there is none yet."""

    event: Literal["paired", "expired"] | None
    data: dict[str, Any] | None = Field(None, description="The session.paired or session.expired event.")


class DisplayEvent(Answer):
    """One server-sent event of a display's stream: its outcome, after which the stream ends."""

    event: Literal["paired", "expired"]
    data: str = Field(description="The session.paired or session.expired event, as JSON text.")


class MatchState(Answer):
    state: Literal["idle", "waiting", "connecting", "in_call"]


class MatchStatus(MatchState):
    session_id: uuid.UUID | None = None
    peer: uuid.UUID | None = None


class LiveKitToken(Answer):
    url: str
    room: str
    token: str = Field(description="A LiveKit access token for this room only.")


class WebhookRecorded(Answer):
    recorded: bool = Field(description="False for an event already recorded (LiveKit retries).")


class Room(Answer):
    room: str
    session_id: uuid.UUID = Field(description="The match's session.")
    match_status: Literal["connecting", "in_call", "ended"]
    created_at: Timestamp | None = Field(description="When LiveKit created the room; null until it has.")
    expected_participants: int = Field(description="2 while the match is open, 0 once it has ended.")
    participants_in_room: int = Field(description="Sides in the room by LiveKit's webhooks.")
    last_webhook_at: Timestamp | None
    problem: (
        Literal[
            "room not created yet",
            "both sides gone",
            "one side gone",
            "no webhook for 10 minutes",
            "match over but room still open",
        ]
        | None
    ) = Field(description="Null when the room is healthy.")


class Rooms(Answer):
    """Open matches' rooms first, oldest first; a room LiveKit reported finished is not listed."""

    rooms: list[Room]


class Stats(Answer):
    total_sessions: int
    active_sessions: int
    waiting_sessions: int
    inactive_sessions: int
    online_participants: int


class ArchivedParticipant(Answer):
    participant_id: uuid.UUID
    identity_id: uuid.UUID
    display_name: str | None
    role: str
    joined_at: TimestampText
    left_at: TimestampText | None
    leave_reason: str | None


class ArchivedMessage(Answer):
    """A message or app.* event as clients saw it: its type, seq and time, then its payload's fields."""

    model_config = ConfigDict(extra="allow")

    type: str
    seq: int
    at: TimestampText


class SessionHistory(Answer):
    """A deleted session's archive (hearth.session_history)."""

    session_id: uuid.UUID
    kind: Literal["room", "pairing", "match"]
    name: str | None
    created_at: Timestamp
    ended_at: Timestamp
    end_reason: str | None
    participants: list[ArchivedParticipant] = Field(description="By join time.")
    message_count: int = Field(description="Message and app.* events.")
    event_count: int
    messages: list[ArchivedMessage] | None = Field(
        description="By seq; null when archive_messages was off when the session was archived."
    )


class Health(Answer):
    status: Literal["ok"]


class Readiness(Answer):
    ready: bool
    database: bool
    listener: bool


class ErrorDetail(Answer):
    code: str = Field(pattern=r"^HT[0-9]{3}$", description="HT400 ... HT503: the HTTP status's code.")
    message: str


class ErrorBody(Answer):
    error: ErrorDetail


def describe(exc: ValidationError) -> str:
    """A client-facing message for a body that failed validation, naming the request's fields."""
    errors = exc.errors(include_url=False, include_input=False)
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
    if unknown:
        return f"unknown field(s): {', '.join(unknown)}"[:250]
    first = errors[0]
    field = ".".join(str(part) for part in first["loc"]) or "request body"
    if first["type"] == "missing":
        return f"{field} is required"
    if first["type"].endswith("_type") or first["type"] in ("int_from_float", "bool_parsing"):
        return f"field {field} has the wrong type: {first['msg'].lower()}"
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{field}: {message[0].lower()}{message[1:]}"
