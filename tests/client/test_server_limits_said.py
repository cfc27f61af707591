"""What the server's own limits did to a command is said, not guessed from
the status (outsider5 F5, F6): output withheld by its output cap is one line
and never a success, in ``rexec run`` and in ``rexec batch``; a command ended
by its time limit (not ours) says so. The real CLI against a real rexecd."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from client_helpers import run_cli


def _cli(server: Any, command: str, *args: str):
    return run_cli(command, "--key-file", str(server.key_file), *args)


def test_output_withheld_by_the_servers_cap_is_said_and_fails_run(start_server) -> None:
    server = start_server("--max-output", "4096", "--kill-grace", "0.2")
    # The command exits 0 on its own; the server withheld all but 4,096 bytes.
    done = _cli(server, "run", server.address, "seq 5000; exit 0")
    assert len(done.stdout) == 4096
    assert done.returncode == 255
    assert done.stderr.decode() == (
        f"rexec: {server.address}: the server's output limit withheld what the command wrote "
        "after 4096 bytes (output_capped)\n"
    )


def test_output_withheld_by_the_servers_cap_is_no_ok_in_batch(start_server, tmp_path: Path) -> None:
    server = start_server("--max-output", "4096", "--kill-grace", "0.2")
    results = tmp_path / "results.jsonl"
    done = _cli(
        server, "batch", "-w", server.address, "--onall", "--results", str(results), "--",
        "seq 5000; exit 0",
    )  # fmt: skip
    # It exits 0 or dies by the server's SIGTERM, whichever comes first: never ok.
    (record,) = [json.loads(line) for line in results.read_text().splitlines()]
    assert (record["status"], done.returncode) in (("failed", 1), ("signal", 2)), done.stderr
    assert record["error_code"] == "output_capped"
    assert record["stdout_bytes"] == 4096
    assert "output_capped" in done.stderr.decode()


def test_a_command_ended_by_the_servers_time_limit_says_so(start_server) -> None:
    server = start_server("--max-timeout", "0.5", "--kill-grace", "0.2")
    done = _cli(server, "run", server.address, "sleep", "30")
    assert done.returncode == 124
    line = done.stderr.decode()
    assert line.startswith(f"rexec: {server.address}: the server's time limit ended the command")
    assert line.endswith(" (timed_out)\n") and line.count("\n") == 1
    # Our own --timeout, when it is what expired, needs no line: 124 says it.
    done = _cli(server, "run", "--timeout", "0.3", server.address, "sleep", "30")
    assert done.returncode == 124 and done.stderr == b""
