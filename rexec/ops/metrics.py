"""The server's metrics, rendered in the Prometheus text format (version 0.0.4).

A small implementation rather than ``prometheus_client``: rexecd needs three
kinds (counter, gauge, histogram), one registry, no process collectors and no
HTTP server of the library's, and every increment runs on the event loop's one
thread, so there is nothing to lock. The format rules followed are those of
https://prometheus.io/docs/instrumenting/exposition_formats/: one ``# HELP`` and
one ``# TYPE`` line per family, label values escaped (backslash, double quote,
newline), counters named ``*_total``, histograms as cumulative ``_bucket``
series ending in ``le="+Inf"`` plus ``_sum`` and ``_count``.

Nothing a client sent is ever a label value: labels come from fixed sets
(streams, outcomes, error codes of rexec.protocol.ErrorCode), so the number of
series is bounded and no command text can leak through ``/metrics``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

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

#: The content type of the text format, for the HTTP endpoint.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Command durations span milliseconds (``true``) to hours (builds, backups):
#: the buckets are roughly ×2.5 apart over that range.
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
)  # fmt: skip

Labels = tuple[tuple[str, str], ...]


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _series(name: str, labels: Labels, value: float) -> str:
    if labels:
        inner = ",".join(f'{key}="{_escape_label(val)}"' for key, val in labels)
        return f"{name}{{{inner}}} {_number(value)}"
    return f"{name} {_number(value)}"


class _Family:
    kind = ""

    def __init__(self, name: str, help: str, labelnames: tuple[str, ...] = ()) -> None:
        self.name = name
        self.help = help
        self.labelnames = labelnames

    def _key(self, labelvalues: tuple[str, ...]) -> Labels:
        if len(labelvalues) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}")
        return tuple(zip(self.labelnames, labelvalues))

    def header(self) -> Iterator[str]:
        yield f"# HELP {self.name} {_escape_help(self.help)}"
        yield f"# TYPE {self.name} {self.kind}"

    def samples(self) -> Iterator[str]:
        raise NotImplementedError

    def render(self) -> Iterator[str]:
        yield from self.header()
        yield from self.samples()


class Counter(_Family):
    """A monotonically increasing count; ``name`` ends in ``_total``."""

    kind = "counter"

    def __init__(
        self, name: str, help: str, labelnames: tuple[str, ...] = (),
        initial: Iterable[tuple[str, ...]] = (),
    ) -> None:  # fmt: skip
        super().__init__(name, help, labelnames)
        self._values: dict[Labels, float] = {}
        # Series known in advance are shown at 0 from the start, so that
        # rate() sees the first increment instead of a series appearing.
        for labelvalues in initial or ([()] if not labelnames else []):
            self._values[self._key(labelvalues)] = 0.0

    def inc(self, *labelvalues: str, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = self._key(labelvalues)
        self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, *labelvalues: str) -> float:
        return self._values.get(self._key(labelvalues), 0.0)

    def samples(self) -> Iterator[str]:
        for labels, value in self._values.items():
            yield _series(self.name, labels, value)


class Gauge(_Family):
    """A value read when the metrics are rendered (``function``)."""

    kind = "gauge"

    def __init__(self, name: str, help: str, function: Callable[[], float], labels: Labels = ()) -> None:
        super().__init__(name, help, tuple(key for key, _ in labels))
        self._function = function
        self._labels = labels

    def samples(self) -> Iterator[str]:
        yield _series(self.name, self._labels, self._function())


class Histogram(_Family):
    """Observations counted into cumulative buckets (no labels: none needed)."""

    kind = "histogram"

    def __init__(self, name: str, help: str, buckets: tuple[float, ...]) -> None:
        super().__init__(name, help)
        if list(buckets) != sorted(set(buckets)):
            raise ValueError("buckets must be increasing")
        self.buckets = buckets
        self._counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self._sum = 0.0

    def observe(self, value: float) -> None:
        self._sum += value
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                self._counts[index] += 1
                return
        self._counts[-1] += 1

    @property
    def count(self) -> int:
        return sum(self._counts)

    def samples(self) -> Iterator[str]:
        cumulative = 0
        for bound, count in zip((*self.buckets, math.inf), self._counts):
            cumulative += count
            yield _series(f"{self.name}_bucket", (("le", _number(bound)),), cumulative)
        yield _series(f"{self.name}_sum", (), self._sum)
        yield _series(f"{self.name}_count", (), cumulative)


#: How a command ended, for ``rexecd_commands_finished_total{outcome}``: the
#: first that applies, in this order (a timed-out command was also killed by
#: a signal, but "timeout" is what an operator wants to see).
OUTCOMES = ("timeout", "cancelled", "output_capped", "signal", "exit")
#: Refusal codes that are limits or rules, for ``rexecd_rejections_total``.
_REJECTION_BY_CODE = {"busy": "busy", "command.denied": "denied", "env.forbidden": "denied"}
REJECTIONS = ("busy", "denied", "admission")
DISCOVERY_RESULTS = ("answered", "malformed", "outside_networks", "rate_limited", "not_answered")


def outcome_label(outcome: Exit) -> str:
    if outcome.timed_out:
        return "timeout"
    if outcome.cancelled:
        return "cancelled"
    if outcome.output_capped:
        return "output_capped"
    if outcome.signal is not None:
        return "signal"
    return "exit"


class ServerMetrics:
    """Every metric of one ``Server``: an observer of its events (subscribe
    it with ``Server.subscribe``), plus gauges read from it when rendered."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self.connections = Counter(
            "rexecd_connections_total", "TCP connections accepted (admitted or not)"
        )
        self.auth_failures = Counter(
            "rexecd_auth_failures_total", "failed authentications, by reason",
            ("reason",), initial=[("failed",), ("timeout",)],
        )  # fmt: skip
        self.commands_started = Counter(
            "rexecd_commands_started_total", "commands started (spawned)"
        )
        self.commands_finished = Counter(
            "rexecd_commands_finished_total", "commands ended, by outcome",
            ("outcome",), initial=[(name,) for name in OUTCOMES],
        )  # fmt: skip
        self.commands_refused = Counter(
            "rexecd_commands_refused_total",
            "commands and transfers refused before they started, by error code", ("code",),
        )
        self.rejections = Counter(
            "rexecd_rejections_total",
            "requests turned away by a limit or rule: busy (command limits), denied "
            "(key rules), admission (connection limits and auth penalties)",
            ("reason",), initial=[(name,) for name in REJECTIONS],
        )  # fmt: skip
        self.output_bytes = Counter(
            "rexecd_output_bytes_total", "command output bytes sent, by stream",
            ("stream",), initial=[("stdout",), ("stderr",)],
        )  # fmt: skip
        self.duration = Histogram(
            "rexecd_command_duration_seconds", "wall time of finished commands", DURATION_BUCKETS
        )
        self.reloads = Counter(
            "rexecd_config_reloads_total", "SIGHUP reloads, by result",
            ("result",), initial=[("ok",), ("failed",)],
        )  # fmt: skip
        self.discovery = Counter(
            "rexecd_discovery_probes_total", "UDP discovery probes, by what became of them",
            ("result",), initial=[(name,) for name in DISCOVERY_RESULTS],
        )  # fmt: skip
        self._families: list[_Family] = [
            Gauge("rexecd_build_info", "the rexecd version", lambda: 1, (("version", __version__),)),
            self.connections,
            Gauge("rexecd_open_connections", "connections open now", lambda: len(server.sessions)),
            self.auth_failures,
            self.commands_started,
            self.commands_finished,
            Gauge(
                "rexecd_running_commands", "commands and transfers running now",
                lambda: server.running_requests,
            ),
            self.commands_refused,
            self.rejections,
            self.output_bytes,
            self.duration,
            Gauge(
                "rexecd_shutting_down", "1 while the server shuts down",
                lambda: 1 if server.shutting_down else 0,
            ),
            self.reloads,
            self.discovery,
        ]

    def notify(self, event: Event) -> None:
        match event:
            case ConnectionOpened():
                self.connections.inc()
            case ConnectionRefused():
                self.rejections.inc("admission")
            case AuthFailed(reason=reason):
                self.auth_failures.inc(reason)
            case CommandStarted():
                self.commands_started.inc()
            case CommandFinished(exit=exit):
                self.commands_finished.inc(outcome_label(exit))
                self.duration.observe(exit.duration)
            case RequestRefused(code=code):
                self.commands_refused.inc(code)
                rejection = _REJECTION_BY_CODE.get(code)
                if rejection is not None:
                    self.rejections.inc(rejection)
            case OutputSent(stream, nbytes):
                self.output_bytes.inc(stream.value, amount=nbytes)

    # --- exposition ------------------------------------------------------------

    def render(self) -> bytes:
        lines: list[str] = []
        for family in self._families:
            lines.extend(family.render())
        return ("\n".join(lines) + "\n").encode()
