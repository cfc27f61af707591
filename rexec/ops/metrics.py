"""The server's metrics, in the Prometheus text format (version 0.0.4), kept by
``prometheus_client``.

Each server has its own ``CollectorRegistry`` (never the library's global one),
with the process collector's ``process_*`` metrics (resident memory, CPU
seconds, open and maximum descriptors, start time). ``ServerMetrics`` is an
observer of the server's events (rexec/server/events.py): it counts them and
never sits in the data path; the gauges are read from the server when scraped.

Nothing a client sent is ever a label value: labels come from fixed sets
(streams, outcomes, error codes of rexec.protocol.ErrorCode), so the number of
series is bounded and no command text can leak through ``/metrics``.
"""

from __future__ import annotations

import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    generate_latest,
)

from rexec import __version__
from rexec.protocol import Exit
from rexec.server.events import (
    AuthFailed,
    CommandFinished,
    CommandStarted,
    ConnectionOpened,
    ConnectionRefused,
    Event,
    OutputSent,
    RequestRefused,
)
from rexec.server.server import Server

# A ``_created`` timestamp beside every counter doubles the series and is
# not part of the text format our scrapers read.
prometheus_client.disable_created_metrics()

#: Command durations span milliseconds (``true``) to hours (builds, backups):
#: the buckets are roughly ×2.5 apart over that range.
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
    3600.0,
)  # fmt: skip

#: How a command ended, for ``rexecd_commands_finished_total{outcome}``: the
#: first that applies, in this order (a timed-out command was also killed by
#: a signal, but "timeout" is what an operator wants to see).
OUTCOMES = ("timeout", "cancelled", "output_capped", "signal", "exit")
#: Refusal codes that are limits or rules, for ``rexecd_rejections_total``.
_REJECTION_BY_CODE = {"busy": "busy", "command.denied": "denied", "env.forbidden": "denied"}
REJECTIONS = ("busy", "denied", "admission")
DISCOVERY_RESULTS = ("answered", "malformed", "outside_networks", "rate_limited", "not_answered")


def outcome_label(exit: Exit) -> str:
    if exit.timed_out:
        return "timeout"
    if exit.cancelled:
        return "cancelled"
    if exit.output_capped:
        return "output_capped"
    if exit.signal is not None:
        return "signal"
    return "exit"


def _counter(
    registry: CollectorRegistry, name: str, documentation: str, label: str = "",
    initial: tuple[str, ...] = (),
) -> Counter:  # fmt: skip
    """A counter; the series of ``initial`` are shown at 0 from the start, so
    that rate() sees the first increment instead of a series appearing."""
    counter = Counter(name, documentation, (label,) if label else (), registry=registry)
    for value in initial:
        counter.labels(value)
    return counter


class ServerMetrics:
    """Every metric of one ``Server``: an observer of its events (subscribe
    it with ``Server.subscribe``), plus gauges read from it when scraped."""

    def __init__(self, server: Server) -> None:
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        Info("rexecd_build", "the rexecd version", registry=registry).info({"version": __version__})
        self.connections = _counter(
            registry, "rexecd_connections_total", "TCP connections accepted (admitted or not)"
        )
        Gauge("rexecd_open_connections", "connections open now", registry=registry).set_function(
            lambda: len(server.sessions)
        )
        self.auth_failures = _counter(
            registry, "rexecd_auth_failures_total", "failed authentications, by reason",
            "reason", ("failed", "timeout"),
        )  # fmt: skip
        self.commands_started = _counter(
            registry, "rexecd_commands_started_total", "commands started (spawned)"
        )
        self.commands_finished = _counter(
            registry, "rexecd_commands_finished_total", "commands ended, by outcome",
            "outcome", OUTCOMES,
        )  # fmt: skip
        Gauge(
            "rexecd_running_commands", "commands and transfers running now", registry=registry
        ).set_function(lambda: server.running_requests)
        self.commands_refused = _counter(
            registry, "rexecd_commands_refused_total",
            "commands and transfers refused before they started, by error code", "code",
        )  # fmt: skip
        self.rejections = _counter(
            registry, "rexecd_rejections_total",
            "requests turned away by a limit or rule: busy (command limits), denied "
            "(key rules), admission (connection limits and auth penalties)",
            "reason", REJECTIONS,
        )  # fmt: skip
        self.output_bytes = _counter(
            registry, "rexecd_output_bytes_total", "command output bytes sent, by stream",
            "stream", ("stdout", "stderr"),
        )  # fmt: skip
        self.duration = Histogram(
            "rexecd_command_duration_seconds", "wall time of finished commands",
            buckets=DURATION_BUCKETS, registry=registry,
        )  # fmt: skip
        Gauge(
            "rexecd_shutting_down", "1 while the server shuts down", registry=registry
        ).set_function(lambda: 1 if server.shutting_down else 0)
        Gauge(
            "rexecd_accepting_commands", "1 while a new command could start (/healthz 200)",
            registry=registry,
        ).set_function(lambda: 0 if server.not_accepting() else 1)  # fmt: skip
        self.reloads = _counter(
            registry, "rexecd_config_reloads_total", "SIGHUP reloads, by result",
            "result", ("ok", "failed"),
        )  # fmt: skip
        self.discovery = _counter(
            registry, "rexecd_discovery_probes_total",
            "UDP discovery probes, by what became of them", "result", DISCOVERY_RESULTS,
        )  # fmt: skip

    def notify(self, event: Event) -> None:
        match event:
            case ConnectionOpened():
                self.connections.inc()
            case ConnectionRefused():
                self.rejections.labels("admission").inc()
            case AuthFailed(reason=reason):
                self.auth_failures.labels(reason).inc()
            case CommandStarted():
                self.commands_started.inc()
            case CommandFinished(exit=exit):
                self.commands_finished.labels(outcome_label(exit)).inc()
                self.duration.observe(exit.duration)
            case RequestRefused(code=code):
                self.commands_refused.labels(code).inc()
                rejection = _REJECTION_BY_CODE.get(code)
                if rejection is not None:
                    self.rejections.labels(rejection).inc()
            case OutputSent(stream, nbytes):
                self.output_bytes.labels(stream.value).inc(nbytes)

    def count_reload(self, result: str) -> None:
        """A SIGHUP reload ended: ``ok`` or ``failed`` (rexec.ops.operations)."""
        self.reloads.labels(result).inc()

    def count_probe(self, result: str) -> None:
        """A discovery probe was answered or dropped (rexec.ops.discovery)."""
        self.discovery.labels(result).inc()

    def render(self) -> bytes:
        """Every metric, in the text format 0.0.4 (rexec.ops.http serves it)."""
        return generate_latest(self.registry)
