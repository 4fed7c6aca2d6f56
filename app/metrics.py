"""Prometheus metrics, one registry per app instance (several can live in one process in tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge("hearth_ws_connections", "Open websocket connections", registry=r)
        self.events_relayed = Counter(
            "hearth_events_relayed_total", "Event frames queued to websocket clients", registry=r
        )
        self.events_received = Counter(
            "hearth_events_received_total", "Events received from the database", registry=r
        )
        self.relay_lag = Histogram(
            "hearth_relay_lag_seconds",
            "From an event's time in the database to its fan-out here",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.heartbeat_batch = Histogram(
            "hearth_heartbeat_batch_size",
            "Participants per hearth.touch call",
            buckets=(1, 10, 50, 100, 500, 1000, 5000, 10000),
            registry=r,
        )
        self.db_call = Histogram(
            "hearth_db_call_seconds",
            "Latency of calls to the SQL API",
            ["function"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=r,
        )
        self.listener_up = Gauge("hearth_listener_up", "1 while the LISTEN connection is up", registry=r)
        self.listener_reconnects = Counter(
            "hearth_listener_reconnects_total", "LISTEN connection re-establishments", registry=r
        )
        self.http_refused = Counter(
            "hearth_http_refused_total",
            "Requests and connections the edge answered itself, by reason",
            ["reason"],
            registry=r,
        )
        self.ws_aborted = Counter(
            "hearth_ws_aborted_total",
            "Websockets the edge aborted (a peer not reading its bytes), by reason",
            ["reason"],
            registry=r,
        )
        self.client_disconnects = Counter(
            "hearth_http_client_disconnects_total",
            "HTTP requests whose client went away before the request was read",
            registry=r,
        )
        self.loop_up = Gauge(
            "hearth_loop_up",
            "1 while a background loop runs (or has finished by design); 0 while it waits to restart",
            ["loop"],
            registry=r,
        )
        self.loop_restarts = Counter(
            "hearth_loop_restarts_total", "Background loops restarted after a crash", ["loop"], registry=r
        )
        self.slow_consumers = Counter(
            "hearth_ws_slow_consumer_closes_total", "Websockets closed for not keeping up", registry=r
        )

        self.broadcasts = Counter(
            "hearth_broadcasts_total", "Broadcast frames this instance's clients sent", registry=r
        )
        self.broadcasts_delivered = Counter(
            "hearth_broadcasts_delivered_total", "Broadcast frames queued to websocket clients", registry=r
        )
        self.broadcasts_dropped = Counter(
            "hearth_broadcasts_dropped_total",
            "Broadcast frames not sent on or not delivered, by reason (rate, backlog, queue, database)",
            ["reason"],
            registry=r,
        )
        self.broadcast_rejected = Counter(
            "hearth_broadcast_rejected_total",
            "Broadcast channel notifications dropped unread, by reason (mac, malformed, stale, replay)",
            ["reason"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
