"""What the server did to a command that its exit status alone does not say
is one ``rexec: HOST: …`` line on stderr: a background job killed because it
held the output open (``pipes_held``), a server shutting down under the
command. The real CLI against a real rexecd."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

from client_helpers import CLI_TIMEOUT, cli_argv

Run = Callable[..., subprocess.CompletedProcess[bytes]]


def test_a_background_job_holding_the_output_is_reported(rexec_run: Run, server: Any) -> None:
    result = rexec_run("echo fg; sleep 61 &")
    # The command itself (the shell) exited 0: that stays the status.
    assert (result.returncode, result.stdout) == (0, b"fg\n")
    [line] = result.stderr.decode().splitlines()
    assert line.startswith(f"rexec: {server.address}: ") and "pipes_held" in line
    assert ">/dev/null 2>&1 &" in line


def test_a_background_job_with_its_output_redirected_is_quiet(rexec_run: Run) -> None:
    result = rexec_run("sleep 0.2 >/dev/null 2>&1 &")
    assert (result.returncode, result.stderr) == (0, b"")


def test_a_server_shutting_down_under_a_run_says_so(start_server: Callable[..., Any]) -> None:
    server = start_server()
    argv = cli_argv(
        "run", "--key-file", str(server.key_file), server.address, "echo started; sleep 60"
    )
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as client:
        assert client.stdout is not None and client.stderr is not None
        assert client.stdout.readline() == b"started\n"  # the command runs
        server.stop()
        stderr = client.stderr.read()
        status = client.wait(timeout=CLI_TIMEOUT)
    # The command died of the server's SIGTERM: 128+15, and one line says why.
    assert status == 143
    [line] = stderr.decode().splitlines()
    assert line == (
        f"rexec: {server.address}: the server is shutting down: it ended the command "
        "(SIGTERM) (server.shutting_down)"
    )
