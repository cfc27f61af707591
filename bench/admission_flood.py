#!/usr/bin/env python3
"""What a right-key client sees while others attack admission, and what the
attack costs the daemon: a real rexecd on loopback, attackers in threads.

    python bench/admission_flood.py [--seconds 10] [--json out.json]

Scenarios (each against a fresh rexecd with default settings):
  idle     500 connections that never speak (400 from 127.0.0.1, 100 from
           eight other addresses) and 20 wrong keys, held while the right key
           connects, authenticates and runs ``true`` 100 times
  churn    8 processes opening connections as fast as they can and leaving
           each silent and open (closing the oldest past 600 of their own)
  guesses  4 threads presenting wrong keys in a loop, from one address
Each reports the right key's time to a finished ``true`` (median, max), how
often it was refused (never, if admission holds), the attackers' connections,
and the daemon's peak open descriptors and RSS.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from hardening.conftest import Daemon, launch, stop  # the tests' own launcher and probes  # noqa: E402
from server.wire import Wire  # noqa: E402

MiB = 2**20


def connect(server: Daemon, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(5)
    sock.connect((server.host, server.port))
    return sock


def right_key(server: Daemon) -> tuple[float, str | None]:
    """Seconds to a finished ``true`` with the right key, and the error if refused."""
    start = time.monotonic()
    try:
        with Wire(connect(server), server_key=server.key) as wire:
            wire.authenticate(timeout=10)
            result = wire.wait(wire.run(["true"]), 10)
        error = None if result.exit is not None else str(result.error)
    except Exception as exc:  # a refusal or a timeout is what is measured
        error = repr(exc)
    return time.monotonic() - start, error


def wrong_key(server: Daemon, source: str) -> None:
    try:
        with Wire(connect(server, source), server_key=os.urandom(32)) as wire:
            wire.authenticate(expect_ok=False, timeout=10)
            wire.next_event(40)
    except Exception:  # displaced, closed, refused: all fine for an attacker
        pass


class Probe:
    """Samples the daemon's descriptors and RSS every 50 ms."""

    def __init__(self, server: Daemon) -> None:
        self.server, self.fds, self.rss = server, [server.fds()], [server.rss()]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.fds.append(self.server.fds())
                self.rss.append(self.server.rss())
            except (OSError, Exception):
                return

    def close(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        return {"fds_start": self.fds[0], "fds_peak": max(self.fds),
                "rss_start_mib": round(self.rss[0] / MiB, 1),
                "rss_peak_mib": round(max(self.rss) / MiB, 1)}  # fmt: skip


def measure(
    server: Daemon, until: threading.Event, runs: int | None, pause: float
) -> dict[str, Any]:
    times: list[float] = []
    errors: list[str] = []
    while (runs is None and not until.is_set()) or (runs is not None and len(times) < runs):
        elapsed, error = right_key(server)
        times.append(elapsed)
        if error is not None:
            errors.append(error)
        time.sleep(pause)
    return {"right_key_runs": len(times), "right_key_refused": len(errors),
            "right_key_median_ms": round(statistics.median(times) * 1e3, 1),
            "right_key_max_ms": round(max(times) * 1e3, 1), "errors": errors[:3]}  # fmt: skip


def scenario_idle(server: Daemon, seconds: float) -> dict[str, Any]:
    held = [
        connect(server, "127.0.0.1" if n < 400 else f"127.0.0.{10 + n % 8}") for n in range(500)
    ]
    guessers = [threading.Thread(target=wrong_key, args=(server, f"127.0.0.{2 + n % 4}"))
                for n in range(20)]  # fmt: skip
    for thread in guessers:
        thread.start()
    try:
        result = measure(server, threading.Event(), 100, 0.01)
    finally:
        for sock in held:
            sock.close()
        for thread in guessers:
            thread.join(60)
    return {"attacker_connections": 520, **result}


def _flood(host: str, port: int, done: Any, opened: Any) -> None:
    """One attacker process: open connections as fast as it can, each left
    silent and open, closing its oldest past 600."""
    mine: list[socket.socket] = []
    while not done.is_set():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.settimeout(5)
            sock.connect((host, port))
            mine.append(sock)
            with opened.get_lock():
                opened.value += 1
        except OSError:
            sock.close()
            time.sleep(0.01)
        if len(mine) > 600:
            mine.pop(0).close()
    for sock in mine:
        sock.close()


def scenario_churn(server: Daemon, seconds: float) -> dict[str, Any]:
    # The attackers are processes of their own: their thousands of sockets
    # would push the measuring client's descriptor past what select() takes.
    context = multiprocessing.get_context("fork")
    done, opened = context.Event(), context.Value("l", 0)
    attackers = [
        context.Process(target=_flood, args=(server.host, server.port, done, opened))
        for _ in range(8)
    ]
    for attacker in attackers:
        attacker.start()
    until = threading.Event()
    timer = threading.Timer(seconds, until.set)
    timer.start()
    try:
        result = measure(server, until, None, 0.05)
    finally:
        done.set()
        for attacker in attackers:
            attacker.join(30)
    return {"attacker_connections": opened.value, **result}


def scenario_guesses(server: Daemon, seconds: float) -> dict[str, Any]:
    done = threading.Event()
    tried = [0]

    def guess() -> None:
        while not done.is_set():
            wrong_key(server, "127.0.0.1")
            tried[0] += 1

    threads = [threading.Thread(target=guess) for _ in range(4)]
    for thread in threads:
        thread.start()
    threading.Timer(seconds, done.set).start()
    try:
        result = measure(server, done, None, 0.05)
    finally:
        done.set()
        for thread in threads:
            thread.join(60)
    return {"attacker_connections": tried[0], **result}


SCENARIOS = {"idle": scenario_idle, "churn": scenario_churn, "guesses": scenario_guesses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--only", help="comma-separated scenarios: " + ",".join(SCENARIOS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(SCENARIOS)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            server = launch(Path(tmp) / name)
            probe = Probe(server)
            try:
                outcome = SCENARIOS[name](server, args.seconds)
            finally:
                load = probe.close()
                stop(server)
            results[name] = {
                **outcome,
                **load,
                "displaced": len(server.events("refused_connection")),
            }
            print(name, json.dumps(results[name]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
