"""A daemon out of file descriptors (attacker II, finding 1): it says so once
in a while on stderr, not in thousands of tracebacks, and a command it can't
start is a server-side failure (``spawn.failed`` naming ``EMFILE``), never the
client's ``cwd.invalid``."""

from __future__ import annotations

import socket
import time

from .conftest import healthy, open_wire, wait_until

#: The daemon's whole descriptor table (soft and hard limit).
FD_LIMIT = 64


def test_out_of_descriptors_is_a_server_failure_said_once(daemon) -> None:
    server = daemon(shell_prefix=f"ulimit -n {FD_LIMIT}")
    idle: list[socket.socket] = []
    try:
        with open_wire(server) as wire:
            # Idle connections take every descriptor the daemon has left; the
            # rest wait in the listening socket's backlog, which it keeps
            # trying to accept from.
            for _ in range(FD_LIMIT + 20):
                idle.append(socket.create_connection((server.host, server.port), timeout=5))
            assert wait_until(lambda: server.fds() >= FD_LIMIT, 10), server.fds()
            result = wire.wait(wire.run(["true"]), 10)
            assert result.error is not None, result.frames
            assert result.error.code == "spawn.failed", result.error
            assert "EMFILE" in result.error.message
            # Several of asyncio's accept retries (one a second) go by.
            time.sleep(3)
        refused = [record for record in server.events("refused") if record.get("id") == 1]
        assert [record["code"] for record in refused] == ["spawn.failed"]
        stderr = server.stderr()
        assert "Traceback" not in stderr
        said = [line for line in stderr.splitlines() if "EMFILE" in line]
        assert 1 <= len(said) <= 2, stderr[-2000:]
    finally:
        for sock in idle:
            sock.close()
    assert wait_until(lambda: server.fds() < FD_LIMIT // 2, 10)
    assert healthy(server)
