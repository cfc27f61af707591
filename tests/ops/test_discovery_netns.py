"""Discovery over a real broadcast domain: network namespaces joined by veth
pairs to a bridge. Needs root (CAP_NET_ADMIN) and iproute2; skipped with the
reason otherwise. Everything is created with names unique to this test run
and deleted at teardown (deleting a namespace deletes its veth ends).

    ns C (client): br0 10.213.X.1/24 ── a1 ═ veth ═ a0 10.213.X.2  ns A: rexecd --announce
                                    ├─ b1 ═ veth ═ b0 10.213.X.3  ns B: rexecd --announce
                                    └─ d1 ═ veth ═ d0 10.213.X.4  ns D: rexecd, default networks
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from launch import stop_process, write_key_file

from tests.conftest import READY_LINE


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


class Lan:
    def __init__(self, tmp_path: Path) -> None:
        self.tag = secrets.token_hex(3)
        self.subnet = secrets.randbelow(200) + 20
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        self.tmp_path = tmp_path

    def ns(self, letter: str) -> str:
        return f"rxt{self.tag}{letter}"

    def address(self, host: int) -> str:
        return f"10.213.{self.subnet}.{host}"

    def build(self) -> None:
        client = self.ns("c")
        for letter in "cabd":
            ip("netns", "add", self.ns(letter))
            self.namespaces.append(self.ns(letter))
            ip("-n", self.ns(letter), "link", "set", "lo", "up")
        ip("-n", client, "link", "add", "br0", "type", "bridge")
        ip("-n", client, "addr", "add", f"{self.address(1)}/24", "brd", "+", "dev", "br0")
        ip("-n", client, "link", "set", "br0", "up")
        for number, letter in enumerate("abd", 2):
            inner, outer = f"{letter}0", f"{letter}1"
            ip(
                "link",
                "add",
                f"rxt{self.tag}{letter}",
                "type",
                "veth",
                "peer",
                "name",
                f"rxt{self.tag}{letter}p",
            )
            ip("link", "set", f"rxt{self.tag}{letter}", "netns", self.ns(letter))
            ip("link", "set", f"rxt{self.tag}{letter}p", "netns", client)
            ip("-n", self.ns(letter), "link", "set", f"rxt{self.tag}{letter}", "name", inner)
            ip("-n", client, "link", "set", f"rxt{self.tag}{letter}p", "name", outer)
            ip(
                "-n",
                self.ns(letter),
                "addr",
                "add",
                f"{self.address(number)}/24",
                "brd",
                "+",
                "dev",
                inner,
            )
            ip("-n", self.ns(letter), "link", "set", inner, "up")
            ip("-n", client, "link", "set", outer, "master", "br0")
            ip("-n", client, "link", "set", outer, "up")

    def spawn_rexecd(self, letter: str, *extra: str) -> subprocess.Popen[bytes]:
        """Start rexecd in namespace ``letter`` on its LAN address (``ready`` waits)."""
        directory = self.tmp_path / letter
        directory.mkdir()
        key = write_key_file(directory)
        host = self.address("abd".index(letter) + 2)
        argv = [
            "ip", "netns", "exec", self.ns(letter), sys.executable, "-m", "rexec.daemon",
            "--host", host, "--port", "0", "--insecure", "--key-file", str(key),
            "--audit-log", str(directory / "audit"),
            "--state-dir", str(directory / "state"), *extra,
        ]  # fmt: skip
        process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        self.processes.append(process)
        return process

    @staticmethod
    def ready(process: subprocess.Popen[bytes]) -> str:
        """Wait for the ready line; returns HOST:PORT."""
        assert process.stdout is not None
        output = b""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not READY_LINE.search(output):
            chunk = process.stdout.readline()
            if not chunk:
                break
            output += chunk
        match = READY_LINE.search(output)
        assert match, f"rexecd did not start: {output!r}"
        return f"{match.group(1).decode()}:{match.group(2).decode()}"

    def discover(self, *args: str) -> list[dict[str, object]]:
        result = subprocess.run(
            ["ip", "netns", "exec", self.ns("c"), sys.executable, "-m", "rexec_client.cli",
             "discover", "--json", "--timeout", "0.7", *args],
            check=False, capture_output=True, text=True, timeout=20,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )  # fmt: skip
        assert result.returncode in (0, 1), result.stderr
        return [json.loads(line) for line in result.stdout.splitlines()]

    def tear_down(self) -> None:
        for process in self.processes:
            stop_process(process, timeout=10)
        for namespace in self.namespaces:
            subprocess.run(
                ["ip", "netns", "del", namespace], check=False, capture_output=True, timeout=10
            )


@pytest.fixture
def lan(tmp_path: Path) -> Iterator[Lan]:
    if sys.platform != "linux" or shutil.which("ip") is None:
        pytest.skip("needs Linux with iproute2 (ip netns) for a real broadcast domain")
    if os.geteuid() != 0:
        pytest.skip(
            "network namespaces need root (CAP_NET_ADMIN); the loopback tests cover the rest"
        )
    lan = Lan(tmp_path)
    try:
        lan.build()
    except (subprocess.CalledProcessError, OSError) as exc:
        lan.tear_down()
        detail = getattr(exc, "stderr", b"") or b""
        pytest.skip(
            "cannot set up namespaces and veth pairs: "
            f"{detail.decode(errors='replace').strip() or exc}"
        )
    yield lan
    lan.tear_down()


def test_discover_by_broadcast_across_namespaces(lan: Lan) -> None:
    network = f"10.213.{lan.subnet}.0/24"
    announce = ("--announce", "--announce-networks", network)
    started = [
        lan.spawn_rexecd("a", *announce),
        lan.spawn_rexecd("b", *announce),
        lan.spawn_rexecd("d", "--announce"),  # answers loopback only (the default): silent here
    ]
    first, second, _ = [lan.ready(process) for process in started]
    # Default targets: this namespace's interface broadcast addresses (br0's).
    found = lan.discover()
    assert [entry["address"] for entry in found] == [first, second]
    assert {entry["responder"] for entry in found} == {lan.address(2), lan.address(3)}
    # The subnet broadcast, given explicitly.
    found = lan.discover("--address", lan.address(255))
    assert [entry["address"] for entry in found] == [first, second]
