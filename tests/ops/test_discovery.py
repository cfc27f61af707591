"""UDP discovery on loopback: ``rexecd --announce`` and ``rexec discover``.

Loopback has a broadcast address (127.255.255.255) that reaches every socket
bound to the wildcard, so two servers sharing one announce port are both found
by one broadcast probe. The real-network case (veth pairs and a bridge in
network namespaces) is in test_discovery_netns.py.
"""

from __future__ import annotations

import collections
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time

import psutil
import pytest

import rexec_client
from rexec.ops.discovery import TokenBuckets
from rexec.protocol import PROTOCOL_VERSION
from rexec.protocol._discovery import (
    HEADER_SIZE,
    MIN_PROBE_SIZE,
    Announcement,
    decode_answer,
    decode_probe,
    encode_answer,
    encode_probe,
)
from rexec_client import Address
from rexec_client.discovery import (
    MALFORMED,
    MAX_PER_SENDER,
    MAX_SERVERS,
    OVER_CAP,
    DiscoveryError,
    default_probe_addresses,
    discover,
    discover_spec,
    ignored_lines,
)

from .conftest import announce_port, sample, scrape


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", 0))
        return sock.getsockname()[1]


def rexec_discover(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rexec_client.cli", "discover", *args],
        check=False, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def probe_once(port: int, data: bytes, wait: float = 0.3, host: str = "127.0.0.1") -> list[bytes]:
    """Send one datagram, return every datagram that comes back within ``wait``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(wait)
        sock.sendto(data, (host, port))
        answers = []
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                answers.append(sock.recv(4096))
            except TimeoutError:
                break
        return answers


def test_discover_finds_two_servers_by_loopback_broadcast(start_server) -> None:
    port = free_udp_port()
    announce = ("--announce", "--announce-port", str(port))
    first = start_server(*announce, host="127.0.0.2")
    second = start_server(*announce, host="127.0.0.3")
    result = rexec_discover(
        "--address", "127.255.255.255", "--port", str(port), "--json", "--timeout", "0.5"
    )
    assert result.returncode == 0, result.stderr
    found = [json.loads(line) for line in result.stdout.splitlines()]
    assert [entry["address"] for entry in found] == [first.address, second.address]
    for entry in found:
        assert (
            entry["protocol"] == [PROTOCOL_VERSION]
            and entry["tls"] is False
            and entry["client_cert"] is False
        )
        assert set(entry) == {
            "address",
            "host",
            "port",
            "name",
            "protocol",
            "tls",
            "client_cert",
            "responder",
        }
    # What was found is a server one can use (with its key: discovery grants nothing).
    done = rexec_client.run(
        ["echo", "found"], host=found[1]["host"], port=found[1]["port"], key=second.key
    )
    assert done.stdout == b"found\n"
    text = rexec_discover("--address", "127.255.255.255", "--port", str(port), "--timeout", "0.5")
    assert text.returncode == 0 and first.address in text.stdout and second.address in text.stdout


def test_each_server_on_a_shared_port_answers_a_probe_to_its_own_address(start_server) -> None:
    """Outsider5 F15: of the wildcard sockets sharing the announce port, only
    the last bound got a probe sent to one address (and answered it about
    itself); each server now binds its own address as well."""
    port = free_udp_port()
    announce = ("--announce", "--announce-port", str(port))
    servers = [start_server(*announce, host=f"127.0.0.{n}") for n in (2, 3)]
    for server in servers:
        result = rexec_discover(
            "--address", server.host, "--port", str(port), "--json", "--timeout", "0.5"
        )
        assert result.returncode == 0, result.stderr
        found = [json.loads(line)["address"] for line in result.stdout.splitlines()]
        assert found == [server.address]
    # The probes sent by default reach every server on this host (loopback's
    # broadcast among them); the others leave loopback, so they are not sent here.
    assert "127.255.255.255" in default_probe_addresses()


def test_no_answer_when_announce_is_off(start_server) -> None:
    server = start_server()
    assert psutil.Process(server.process.pid).net_connections(kind="udp") == []
    port = free_udp_port()
    result = rexec_discover("--address", "127.255.255.255", "--port", str(port), "--timeout", "0.3")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        f"rexec: no server answered the discovery probe on UDP port {port} within 0.3 s"
        " (rexecd answers only with --announce)\n"
    )


def test_probe_sizes_outside_256_to_512_get_no_answer(start_server) -> None:
    server = start_server("--announce", "--announce-port", "0", "--http", "127.0.0.1:0")
    port = announce_port(server)
    nonce = secrets.token_bytes(16)
    full = encode_probe(nonce, MIN_PROBE_SIZE)
    assert probe_once(port, full[:-1]) == []  # 255 bytes: could amplify
    assert probe_once(port, full + bytes(257)) == []  # 513 bytes
    assert probe_once(port, b"\x00" * 300) == []  # the right size, not a probe
    answers = probe_once(port, full)
    assert len(answers) == 1 and len(answers[0]) <= MIN_PROBE_SIZE
    assert decode_answer(answers[0], nonce) is not None
    families = scrape(server)
    assert sample(families, "rexecd_discovery_probes_total", result="malformed") == 3
    assert sample(families, "rexecd_discovery_probes_total", result="answered") == 1


def test_probes_are_rate_limited_per_source(start_server) -> None:
    server = start_server("--announce", "--announce-port", "0", "--http", "127.0.0.1:0")
    port = announce_port(server)
    answered = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        for _ in range(20):
            sock.sendto(encode_probe(secrets.token_bytes(16)), ("127.0.0.1", port))
        try:
            while sock.recv(4096):
                answered += 1
        except TimeoutError:
            pass
    assert 5 <= answered <= 7  # the burst, plus what refills while sending
    assert (
        sample(scrape(server), "rexecd_discovery_probes_total", result="rate_limited")
        == 20 - answered
    )


def test_probes_from_outside_the_networks_are_ignored(start_server) -> None:
    server = start_server(
        "--announce", "--announce-port", "0", "--announce-networks", "10.0.0.0/8",
        "--http", "127.0.0.1:0",
    )  # fmt: skip
    assert probe_once(announce_port(server), encode_probe(secrets.token_bytes(16))) == []
    assert sample(scrape(server), "rexecd_discovery_probes_total", result="outside_networks") == 1


def discover_from(answers) -> subprocess.CompletedProcess[str]:
    """``rexec discover --json`` against a FakeResponder answering with ``answers``."""
    fake = FakeResponder(answers)
    try:
        return rexec_discover(
            "--address", "127.0.0.1", "--port", str(fake.port), "--json", "--timeout", "0.5"
        )
    finally:
        fake.close()


class FakeResponder:
    """Answers every probe with the datagrams ``answers(nonce)`` makes."""

    def __init__(self, answers, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.answers = answers
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                data, source = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            for answer in self.answers(data[8:24]):
                self.sock.sendto(answer, source)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def announcement(name: str, port: int = 7420, **fields) -> Announcement:
    return Announcement(
        name=name,
        host=fields.pop("host", "127.0.0.1"),
        port=port,
        protocol=(1,),
        tls=fields.pop("tls", False),
    )


def test_spoofed_and_garbled_answers_are_ignored() -> None:
    def answers(nonce: bytes) -> list[bytes]:
        good = encode_answer(nonce, announcement("real", 7001), 512)
        wrong_nonce = encode_answer(secrets.token_bytes(16), announcement("spoofed", 7002), 512)
        bad_port = good.replace(b'"port":7001', b'"port":0')
        bad_json = good[:HEADER_SIZE] + b"{" + good[HEADER_SIZE + 1 :]
        bad_host = encode_answer(nonce, announcement("badhost", 7003, host="evil.example"), 512)
        control = encode_answer(nonce, announcement("esc\x1b[2J", 7004), 512)
        truncated = good[:-3]
        return [
            b"garbage",
            wrong_nonce,
            bad_port,
            bad_json,
            bad_host,
            control,
            truncated,
            bytes(600),
            good,
        ]

    fake = FakeResponder(answers)
    try:
        found = discover(["127.0.0.1"], port=fake.port, timeout=0.5)
        result = rexec_discover(
            "--address", "127.0.0.1", "--port", str(fake.port), "--json", "--timeout", "0.5"
        )
    finally:
        fake.close()
    assert [(server.name, server.address.port) for server in found] == [("real", 7001)]
    assert [json.loads(line)["name"] for line in result.stdout.splitlines()] == ["real"]


def test_an_answer_names_only_its_sender_and_one_sender_few_servers() -> None:
    """Whoever sees the probe can answer it (attacker finding F9): an answer
    naming another machine is ignored, so a batch can't be steered there, and
    one sender flooding made-up servers gets MAX_PER_SENDER of them listed."""

    def answers(nonce: bytes) -> list[bytes]:
        elsewhere = encode_answer(nonce, announcement("elsewhere", 7001, host="127.0.0.9"), 512)
        flood = [encode_answer(nonce, announcement(f"f{n}", 8000 + n), 512) for n in range(100)]
        return [elsewhere, *flood]

    result = discover_from(answers)
    found = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0, result.stderr
    assert [entry["name"] for entry in found] == [f"f{n}" for n in range(MAX_PER_SENDER)]
    assert {entry["host"] for entry in found} == {"127.0.0.1"}
    assert result.stderr.splitlines() == [
        "rexec: ignored 1 answer(s) that named an address other than its sender's",
        f"rexec: ignored {100 - MAX_PER_SENDER} answer(s) that came from a sender that had "
        f"announced {MAX_PER_SENDER} servers already",
    ]


def test_one_responder_answering_100_times_is_one_target_and_garbage_is_counted() -> None:
    """A responder repeating its answer (or garbage) 100 times plants one
    target; what could not be read is counted and said on stderr."""

    def answers(nonce: bytes) -> list[bytes]:
        same = encode_answer(nonce, announcement("same", 7001), 512)
        return [same] * 100 + [b"garbage"] * 7

    result = discover_from(answers)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["name"] for line in result.stdout.splitlines()] == ["same"]
    assert result.stderr.splitlines() == [f"rexec: ignored 7 answer(s) that {MALFORMED}"]


def test_the_total_cap_holds_and_is_said() -> None:
    """Senders on three loopback addresses announce 5 servers each; with a cap
    of 8 servers, 8 are kept and the rest counted as over the cap."""
    hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    port = free_udp_port()
    responders = []
    for host in hosts:

        def answers(nonce: bytes, host: str = host) -> list[bytes]:
            made = [announcement(f"{host}-{n}", 8000 + n, host=host) for n in range(5)]
            return [encode_answer(nonce, each, 512) for each in made]

        responders.append(FakeResponder(answers, host=host, port=port))
    ignored: collections.Counter[str] = collections.Counter()
    try:
        found = discover(hosts, port=port, timeout=0.5, ignored=ignored, max_servers=8)
    finally:
        for fake in responders:
            fake.close()
    assert len(found) == 8
    assert ignored == {OVER_CAP: 7}
    assert ignored_lines(ignored) == [
        f"rexec: ignored 7 answer(s) that {OVER_CAP} ({MAX_SERVERS}; only these are listed)"
    ]


def test_batch_says_what_discovery_ignored(tmp_path) -> None:
    """``rexec batch --hosts @discover`` does not drop answers silently: a
    planted answer naming another machine is refused, and said on stderr."""

    def answers(nonce: bytes) -> list[bytes]:
        return [encode_answer(nonce, announcement("elsewhere", 7001, host="127.0.0.9"), 512)]

    fake = FakeResponder(answers)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "rexec_client.cli", "batch", "--key-file", str(tmp_path / "k"),
             "-H", f"@discover:{fake.port}", "--onall", "--", "true"],
            check=False, capture_output=True, text=True, timeout=60,
            env={**os.environ, "REXEC_DISCOVER_ADDRESSES": "127.0.0.1"},
        )  # fmt: skip
    finally:
        fake.close()
    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        "rexec: ignored 1 answer(s) that named an address other than its sender's",
        f"rexec: @discover:{fake.port}: no server answered the discovery probe on UDP port "
        f"{fake.port}",
    ]


def test_answer_never_longer_than_the_probe() -> None:
    nonce = secrets.token_bytes(16)
    long_name = announcement("n" * 255)
    answer = encode_answer(nonce, long_name, MIN_PROBE_SIZE)
    assert answer is not None and len(answer) <= MIN_PROBE_SIZE
    decoded = decode_answer(answer, nonce)
    assert (
        decoded is not None and decoded.name == "n" * len(decoded.name) and len(decoded.name) < 255
    )
    assert encode_answer(nonce, long_name, HEADER_SIZE + 40) is None  # no room even without a name
    assert decode_probe(encode_probe(nonce)) == nonce
    with pytest.raises(ValueError):
        encode_probe(nonce, MIN_PROBE_SIZE - 1)


def test_token_buckets() -> None:
    buckets = TokenBuckets(rate=2, burst=5, global_rate=50, global_burst=100, max_keys=2)
    assert [buckets.allow("a", 0.0) for _ in range(6)] == [True] * 5 + [False]
    assert buckets.allow("a", 0.5)  # one token back after half a second
    assert not buckets.allow("a", 0.5)
    assert buckets.allow("b", 0.5)
    assert not buckets.allow("c", 0.5)  # table full of busy sources: dropped
    assert buckets.allow("c", 10.0)  # idle ones are forgotten to make room


def test_discover_spec_for_batch_hosts(start_server) -> None:
    """``rexec batch --hosts @discover[:PORT]`` resolves through discover_spec."""
    server = start_server("--announce", "--announce-port", "0")
    port = announce_port(server)
    loopback = ["127.0.0.1"]  # the default addresses would also broadcast on this host's LAN
    assert discover_spec("web[1-3]") is None
    assert discover_spec(f"@discover:{port}", 0.5, loopback) == [Address("127.0.0.1", server.port)]
    with pytest.raises(DiscoveryError, match="no server answered"):
        discover_spec(f"@discover:{free_udp_port()}", 0.3, loopback)
    with pytest.raises(ValueError, match="expected @discover or @discover:PORT"):
        discover_spec("@discover:http", 0.3, loopback)


def test_batch_runs_on_the_servers_discovery_finds(start_server, tmp_path) -> None:
    port = free_udp_port()
    announce = ("--announce", "--announce-port", str(port))
    first = start_server(*announce, host="127.0.0.2")
    second = start_server(*announce, host="127.0.0.3", key_file=first.key_file)
    result = subprocess.run(
        [sys.executable, "-m", "rexec_client.cli", "batch", "--key-file", str(first.key_file),
         "-H", f"@discover:{port}", "--onall", "--tag", "--", "echo", "hello"],
        check=False, capture_output=True, text=True, timeout=60,
        # Probes stay on loopback: the broadcast address of 127.0.0.0/8 only.
        env={**os.environ, "REXEC_DISCOVER_ADDRESSES": "127.255.255.255"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    tagged = {line.split()[0] for line in result.stdout.splitlines() if line.endswith("hello")}
    assert tagged == {first.address, second.address}
