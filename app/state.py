"""What one app instance holds while it runs."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.appauth import AppAuth
from app.broadcast import Broadcasts
from app.config import Settings
from app.db import Database
from app.events import Listener
from app.heartbeat import Heartbeats
from app.hub import Hub
from app.limits import SocketLimit
from app.loops import Supervisor
from app.metrics import Metrics
from app.postbatch import PostBatcher
from app.ratelimit import RateLimits
from app.rooms import Rooms


@dataclass
class AppState:
    settings: Settings
    metrics: Metrics
    db: Database
    hub: Hub
    listener: Listener
    heartbeats: Heartbeats
    heartbeat_interval_s: int
    loops: Supervisor
    rate_limits: RateLimits
    broadcasts: Broadcasts
    sockets: SocketLimit
    app_auth: AppAuth
    posts: PostBatcher
    rooms: Rooms = field(init=False)  # the presence of the sessions with sockets here, for welcomes

    def __post_init__(self) -> None:
        self.rooms = Rooms(self.hub, self.db)
