"""Helpers of the operations tests: the HTTP endpoint's address, plain HTTP
requests, a small Prometheus text-format parser, and a rexecd started from a
config file of its own (``start_server`` always passes ``--key-file``, which a
config with ``[[keys]]`` must not have)."""

from __future__ import annotations

import dataclasses
import http.client
import itertools
import math
import re

from tests.conftest import RunningServer
from tests.server.conftest import marker  # noqa: F401  (the fixture, shared)

HTTP_LINE = re.compile(r"rexecd http on (\S+):(\d+)")
ANNOUNCE_LINE = re.compile(r"rexecd announcing on \S+:(\d+)")


def http_address(server: RunningServer) -> tuple[str, int]:
    match = HTTP_LINE.search(server.startup_output)
    assert match, f"no http line in {server.startup_output!r}"
    return match.group(1).strip("[]"), int(match.group(2))


def announce_port(server: RunningServer) -> int:
    match = ANNOUNCE_LINE.search(server.startup_output)
    assert match, f"no announce line in {server.startup_output!r}"
    return int(match.group(1))


@dataclasses.dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def http_request(
    server: RunningServer, path: str, method: str = "GET", timeout: float = 5.0
) -> Response:
    host, port = http_address(server)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        body = response.read()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Response(response.status, headers, body)
    finally:
        conn.close()


# --- a Prometheus text format (0.0.4) parser, strict enough to catch mistakes ---

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


@dataclasses.dataclass
class Family:
    name: str
    kind: str
    help: str
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = dataclasses.field(
        default_factory=dict
    )


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), value)


def parse_prometheus(text: str) -> dict[str, Family]:
    """Families by name; raises AssertionError on anything the format forbids:
    a sample before its TYPE, a sample of another family, a duplicate series,
    a bad label, a value that isn't a float, a histogram without +Inf or with
    buckets that are not cumulative."""
    assert text.endswith("\n"), "the exposition ends with a newline"
    families: dict[str, Family] = {}
    current: Family | None = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert name not in families, f"second HELP for {name}"
            current = families[name] = Family(name, "untyped", help_text)
            continue
        if line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert current is not None and current.name == name, f"TYPE without HELP: {line}"
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            assert not current.samples, "TYPE after samples"
            current.kind = kind
            continue
        assert not line.startswith("#") and line.strip(), f"unexpected line {line!r}"
        match = _SAMPLE.match(line)
        assert match, f"bad sample line {line!r}"
        name, label_text, value_text = match.groups()
        assert current is not None
        allowed = {current.name}
        if current.kind == "histogram":
            allowed = {current.name + suffix for suffix in ("_bucket", "_sum", "_count")}
        assert name in allowed, f"{name} is not in family {current.name}"
        labels: list[tuple[str, str]] = []
        rest = label_text or ""
        while rest:
            label = _LABEL.match(rest)
            assert label, f"bad labels in {line!r}"
            labels.append((label.group(1), _unescape(label.group(2))))
            rest = rest[label.end() :]
        value = float(value_text)  # raises on a bad value; +Inf/NaN parse
        key = (name, tuple(labels))
        assert key not in current.samples, f"duplicate series {line!r}"
        current.samples[key] = value
    for family in families.values():
        if family.kind == "counter":
            assert family.name.endswith("_total"), family.name
            assert all(v >= 0 for v in family.samples.values())
        if family.kind == "histogram":
            buckets = [
                (float(dict(labels)["le"]), value)
                for (name, labels), value in family.samples.items()
                if name.endswith("_bucket")
            ]
            assert buckets and buckets[-1][0] == math.inf, "histogram needs le=+Inf last"
            assert [b for b, _ in buckets] == sorted(b for b, _ in buckets)
            assert all(a[1] <= b[1] for a, b in itertools.pairwise(buckets)), "not cumulative"
            assert family.samples[(family.name + "_count", ())] == buckets[-1][1]
    return families


def sample(families: dict[str, Family], name: str, **labels: str) -> float:
    """The value of one series (0 when the series is not shown yet)."""
    for family in families.values():
        for (series, series_labels), value in family.samples.items():
            if series == name and dict(series_labels) == labels:
                return value
    return 0.0


def scrape(server: RunningServer) -> dict[str, Family]:
    response = http_request(server, "/metrics")
    assert response.status == 200
    return parse_prometheus(response.body.decode())
