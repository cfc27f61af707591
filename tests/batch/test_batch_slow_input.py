"""A batch whose job list comes slowly (a pipe nobody closes, the terminal):
Ctrl-C ends it at once rather than when the input ends, and a failure at the
start (a log that can't be written) is one line and status 255, never an
interpreter abort (outsider5 F16, F17). The real CLI against real rexecd."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

from .conftest import CLI_TIMEOUT, Pool, batch_argv


@contextlib.contextmanager
def _open_input(pool: Pool, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """``rexec batch`` reading a pipe that stays open until the batch ends;
    killed by its PID if it outlives the test."""
    with subprocess.Popen(
        batch_argv(pool, "-w", pool.spec, *args),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as batch:
        try:
            yield batch
        finally:
            if batch.poll() is None:
                batch.kill()


def _ended(batch: subprocess.Popen[bytes]) -> str:
    """Its stderr, once it has exited (its input still open)."""
    batch.wait(timeout=CLI_TIMEOUT)
    assert batch.stderr is not None
    err = batch.stderr.read().decode()
    assert "Fatal Python error" not in err and "Traceback" not in err, err
    return err


def test_ctrl_c_ends_a_batch_waiting_for_its_input(pool: Pool) -> None:
    with _open_input(pool, "--", "echo", "{}") as batch:
        assert batch.stdin is not None and batch.stdout is not None
        batch.stdin.write(b"first\n")
        batch.stdin.flush()
        assert batch.stdout.readline() == b"first\n"  # it ran; the input stays open
        batch.send_signal(signal.SIGINT)
        err = _ended(batch)
    assert batch.returncode == 130, err
    assert err.splitlines()[-1].startswith("rexec batch: 1 job in "), err


def test_a_log_that_cannot_be_written_is_one_line_while_input_is_open(
    pool: Pool, tmp_path: Path
) -> None:
    for option in ("--results", "--joblog"):
        with _open_input(pool, option, str(tmp_path / "missing" / "log"), "--", "echo", "{}") as b:
            err = _ended(b)
        assert b.returncode == 255, err
        (line,) = err.splitlines()
        assert line.startswith("rexec: cannot write ") and "missing" in line
