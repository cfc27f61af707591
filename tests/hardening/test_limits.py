"""The server's bounds on one command (argv and env sizes) and on how many run
at once: refusals are command-scoped, prompt, and never queued."""

from __future__ import annotations

import statistics
import time

from server.wire import wait_for_processes, wait_gone

from rexec.protocol import Cancel

from .conftest import healthy, open_wire


def refused(result, code: str) -> None:
    assert result.error is not None and result.error.code == code, result.frames
    assert result.error.fatal is False and result.started is None


def test_max_argv_bytes(daemon) -> None:
    server = daemon("--max-argv-bytes", "1000")
    with open_wire(server) as wire:
        # argv counts each argument plus its NUL: 5 + 994 + 1 = 1000 fits.
        ok = wire.wait(wire.run(["echo", "a" * 994]), 5)
        assert ok.exit.exit_code == 0 and len(ok.stdout) == 995
        refused(wire.wait(wire.run(["echo", "a" * 995]), 5), "command.denied")
        refused(wire.wait(wire.run(["echo"] + ["a"] * 600), 5), "command.denied")
        refused(wire.wait(wire.run(shell="echo " + "a" * 1000), 5), "command.denied")
        assert bytes(wire.wait(wire.run(shell="echo ok"), 5).stdout) == b"ok\n"
    assert len(server.events("refused")) == 3


def test_max_env_bytes(daemon) -> None:
    server = daemon("--max-env-bytes", "100", "--env-allow", "A", "--env-allow", "V*")
    with open_wire(server) as wire:
        ok = wire.wait(wire.run(["env"], env={"A": "x" * 97}), 5)  # 1 + 97 + 2 = 100
        assert b"A=" + b"x" * 97 in bytes(ok.stdout)
        refused(wire.wait(wire.run(["env"], env={"A": "x" * 98}), 5), "command.denied")
        refused(
            wire.wait(wire.run(["env"], env={f"V{i}": "" for i in range(40)}), 5), "command.denied"
        )
        assert wire.wait(wire.run(["true"]), 5).exit.exit_code == 0


def busy_latency(wire, argv: list[str]) -> float:
    sent = time.monotonic()
    result = wire.wait(wire.run(argv), 2)
    elapsed = time.monotonic() - sent
    refused(result, "busy")
    return elapsed


def test_busy_is_prompt_and_not_queued(daemon, marker) -> None:
    server = daemon("--max-commands", "1", "--max-total-commands", "2", "--kill-grace", "0.2")
    m = marker()
    a, b, c = open_wire(server), open_wire(server), open_wire(server)
    try:
        first = a.run(["sleep", m])
        b.run(["sleep", m])
        assert len(wait_for_processes(m, 2, 3)) == 2
        # Per connection (a has 1 of 1) and overall (2 of 2, c has none).
        latencies = [busy_latency(a, ["echo", "queued?"]) for _ in range(10)]
        latencies += [busy_latency(c, ["echo", "queued?"]) for _ in range(10)]
        assert statistics.median(latencies) < 0.05, latencies
        assert max(latencies) < 0.25, latencies
        # Never queued: when a slot frees, nothing refused runs.
        a.send(Cancel(id=first))
        assert a.wait(first, 3).exit.cancelled is True
        result = c.wait(c.run(["echo", "now"]), 5)
        assert bytes(result.stdout) == b"now\n"
        assert all(b"queued" not in bytes(r.stdout) for w in (a, c) for r in w.results.values())
        assert len(server.events("exec")) == 3
    finally:
        for wire in (a, b, c):
            wire.close()
    assert wait_gone(m, 2) == []
    assert healthy(server)
