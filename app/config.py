"""Configuration from the environment: the one module that reads it (SPEC section 7)."""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

LOG_LEVELS = ("info", "debug", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")
ANY_ORIGIN = ("*",)
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:[0-9]{1,5})?")


class Secret:
    """A string that hides itself in repr() and str(), so secrets never reach logs."""

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


@dataclass(frozen=True)
class Settings:
    database_url: Secret
    secret: Secret
    admin_token: Secret
    host: str = "127.0.0.1"
    port: int = 8000
    instance_id: str = ""
    livekit_url: str = ""
    livekit_api_key: str = ""
    livekit_api_secret: Secret = field(default_factory=lambda: Secret(""))
    livekit_webhook_key: str = ""
    # Not in the contract: how often LiveKit's rooms are reconciled, how long a side may be gone from a
    # 1:1 room before its match ends, and how long one LiveKit call may take.
    livekit_reconcile_s: float = 30.0
    livekit_grace_s: float = 20.0
    livekit_timeout_s: float = 5.0
    # Not in the contract: how often an instance re-reads the settings it applies per frame (rate limits).
    settings_refresh_s: float = 5.0
    # auto: the app runs the periodic SQL functions (one leader) where pg_cron is not loaded; on; off.
    maintenance: str = "auto"
    maintenance_scale: float = 1.0  # tests shrink the schedule (1/60: "every minute" is every second)
    log_level: str = "info"
    log_format: str = "text"  # or json: one object per line
    # The HTTP/websocket edge (app/edge.py): what one client may take of an instance.
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 10_000
    ws_max_buffered_bytes: int = 1024 * 1024
    ws_close_timeout_s: float = 5.0
    ws_pings_per_s: float = 10.0
    # The app's own JWTs (app.appauth): HS256 with a shared secret, or RS256/ES256 from a JWKS (path or URL).
    auth_secret: Secret = field(default_factory=lambda: Secret(""))
    auth_jwks: str = ""
    auth_issuer: str = ""
    auth_audience: str = ""
    anonymous: bool = True
    # Peers whose X-Forwarded-For is believed (app.api.client_address).
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    # Origins whose pages may use Hearth (app.cors): ("*",) for any.
    cors_origins: tuple[str, ...] = ANY_ORIGIN

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        api_key = env.get("LIVEKIT_API_KEY", "")
        return cls(
            database_url=Secret(env.get("HEARTH_DATABASE_URL", "")),
            secret=Secret(env.get("HEARTH_SECRET", "")),
            admin_token=Secret(env.get("HEARTH_ADMIN_TOKEN", "")),
            host=env.get("HEARTH_HOST", "127.0.0.1"),
            port=int(env.get("HEARTH_PORT", "8000")),
            instance_id=env.get("HEARTH_INSTANCE_ID", "") or os.uname().nodename + f"-{os.getpid()}",
            livekit_url=env.get("LIVEKIT_URL", ""),
            livekit_api_key=api_key,
            livekit_api_secret=Secret(env.get("LIVEKIT_API_SECRET", "")),
            livekit_webhook_key=env.get("LIVEKIT_WEBHOOK_KEY", "") or api_key,
            livekit_reconcile_s=float(env.get("HEARTH_LIVEKIT_RECONCILE_S", "30")),
            livekit_grace_s=float(env.get("HEARTH_LIVEKIT_GRACE_S", "20")),
            livekit_timeout_s=float(env.get("HEARTH_LIVEKIT_TIMEOUT_S", "5")),
            settings_refresh_s=_number(env, "HEARTH_SETTINGS_REFRESH_S", cls.settings_refresh_s, 0.05),
            maintenance=env.get("HEARTH_MAINTENANCE", "auto"),
            maintenance_scale=float(env.get("HEARTH_MAINTENANCE_SCALE", "1")),
            log_level=_choice(env, "HEARTH_LOG_LEVEL", LOG_LEVELS),
            log_format=_choice(env, "HEARTH_LOG_FORMAT", LOG_FORMATS),
            max_header_bytes=int(_number(env, "HEARTH_MAX_HEADER_BYTES", cls.max_header_bytes, 1024)),
            max_headers=int(_number(env, "HEARTH_MAX_HEADERS", cls.max_headers, 10)),
            header_timeout_s=_number(env, "HEARTH_HEADER_TIMEOUT_S", cls.header_timeout_s, 0.1),
            body_timeout_s=_number(env, "HEARTH_BODY_TIMEOUT_S", cls.body_timeout_s, 0.1),
            max_connections=int(_number(env, "HEARTH_MAX_CONNECTIONS", cls.max_connections, 1)),
            ws_max_buffered_bytes=int(
                _number(env, "HEARTH_WS_MAX_BUFFERED_BYTES", cls.ws_max_buffered_bytes, 16 * 1024)
            ),
            ws_close_timeout_s=_number(env, "HEARTH_WS_CLOSE_TIMEOUT_S", cls.ws_close_timeout_s, 0.1),
            ws_pings_per_s=_number(env, "HEARTH_WS_PINGS_PER_S", cls.ws_pings_per_s, 0.1),
            auth_secret=Secret(env.get("HEARTH_AUTH_SECRET", "")),
            auth_jwks=env.get("HEARTH_AUTH_JWKS", "").strip(),
            auth_issuer=env.get("HEARTH_AUTH_ISSUER", "").strip(),
            auth_audience=env.get("HEARTH_AUTH_AUDIENCE", "").strip(),
            anonymous=_choice(env, "HEARTH_ANONYMOUS", ("on", "off")) == "on",
            trusted_proxies=_networks(env, "HEARTH_TRUSTED_PROXIES"),
            cors_origins=_origins(env, "HEARTH_CORS_ORIGINS"),
        )


def _number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    """A number of at least `minimum` (whole when the default is); a clear exit otherwise."""
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text) if isinstance(default, int) else float(text)
    except ValueError:
        value = minimum - 1
    if not (math.isfinite(value) and value >= minimum):
        kind = "a whole number" if isinstance(default, int) else "a number"
        raise SystemExit(f"hearth: {name} must be {kind} of at least {minimum} (got {text!r})")
    return value


def _networks(env: Mapping[str, str], name: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Comma-separated CIDRs (a bare address is a /32 or /128); a clear exit otherwise."""
    networks = []
    for part in env.get(name, "").split(","):
        if part.strip():
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                message = f"hearth: {name} must be comma-separated CIDRs (got {part.strip()!r})"
                raise SystemExit(message) from None
    return tuple(networks)


def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """`*` (also when unset) or comma-separated origins, `scheme://host[:port]`; a clear exit otherwise."""
    text = env.get(name, "").strip()
    if text in ("", "*"):
        return ANY_ORIGIN
    origins = []
    for part in text.split(","):
        origin = part.strip().lower()
        if origin == "*":
            raise SystemExit(f"hearth: {name}: * allows every origin, it cannot be in a list (got {text!r})")
        if origin and not _ORIGIN.fullmatch(origin):
            raise SystemExit(
                f"hearth: {name} must be * or comma-separated origins, scheme://host[:port] with no path and "
                f"no trailing slash, e.g. https://app.example.org (got {part.strip()!r})"
            )
        if origin:
            origins.append(origin)
    if not origins:
        raise SystemExit(f"hearth: {name} must be * or comma-separated origins (got {text!r})")
    return tuple(dict.fromkeys(origins))


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (the first is the default), case-insensitive; a clear exit otherwise."""
    value = env.get(name, "").strip().lower() or choices[0]
    if value not in choices:
        raise SystemExit(f"hearth: {name} must be one of {', '.join(choices)} (got {env[name]!r})")
    return value
