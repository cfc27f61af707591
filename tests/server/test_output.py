"""Output: streams kept apart and in order, binary-safe, capped exactly, and a
background grandchild that holds the pipes does not hang the command."""

from __future__ import annotations

import random
import sys
import time

import pytest

from rexec.protocol import Cancel

from .wire import run_once, sha256, wait_gone

#: Writes ``SIZE`` seeded random bytes to stdout and as many (another seed) to
#: stderr, alternating 64 KiB chunks between the streams.
BINARY_WRITER = """
import random, sys
size = int(sys.argv[1])
out = random.Random(1).randbytes(size)
err = random.Random(2).randbytes(size)
step = 65536
for i in range(0, size, step):
    sys.stdout.buffer.write(out[i:i + step]); sys.stdout.buffer.flush()
    sys.stderr.buffer.write(err[i:i + step]); sys.stderr.buffer.flush()
"""


def test_stdout_and_stderr_apart_and_in_order(server) -> None:
    script = "; ".join(f"printf 'out{i}\\n'; printf 'err{i}\\n' >&2" for i in range(50))
    result = run_once(server, shell=script)
    assert bytes(result.stdout) == b"".join(b"out%d\n" % i for i in range(50))
    assert bytes(result.stderr) == b"".join(b"err%d\n" % i for i in range(50))
    assert result.exit.exit_code == 0


def test_output_is_streamed_before_the_command_ends(server, wires) -> None:
    wire = wires(server)
    command_id = wire.run(shell="echo first; sleep 2; echo second")
    started = time.monotonic()
    wire.wait_for(lambda: bytes(wire.results[command_id].stdout) == b"first\n", 1.5)
    assert time.monotonic() - started < 1.5
    assert not wire.results[command_id].done
    wire.send(Cancel(id=command_id))
    assert wire.wait(command_id, 5).exit.cancelled is True


@pytest.mark.slow
def test_8_mib_of_binary_on_each_stream(server) -> None:
    size = 8 * 1024 * 1024
    expected_out = random.Random(1).randbytes(size)
    expected_err = random.Random(2).randbytes(size)
    assert b"\x00" in expected_out and b"\x00" in expected_err
    with pytest.raises(UnicodeDecodeError):
        expected_out.decode("utf-8")
    result = run_once(server, [sys.executable, "-c", BINARY_WRITER, str(size)], wait=60)
    assert result.exit.exit_code == 0, bytes(result.stderr[-500:])
    assert len(result.stdout) == size and len(result.stderr) == size
    assert sha256(bytes(result.stdout)) == sha256(expected_out)
    assert sha256(bytes(result.stderr)) == sha256(expected_err)
    assert result.exit.stdout_bytes == size and result.exit.stderr_bytes == size
    # Bodies respect the protocol's 1 MiB cap.
    assert all(f.data_size <= 1024 * 1024 for f in result.frames if f.type in ("stdout", "stderr"))


@pytest.mark.parametrize("attempt", range(5))
def test_output_limit_is_exact_and_ends_by_sigterm(server, attempt) -> None:
    """[output.limit]: exactly the limit, and the command ends by the
    server's SIGTERM every time, never by a SIGPIPE from pipes closed under it
    (which, depending on timing, it used to)."""
    result = run_once(server, ["yes"], output_limit=65536, wait=20)
    assert len(result.stdout) == 65536
    assert bytes(result.stdout) == b"y\n" * 32768
    assert result.exit.output_capped is True
    assert result.exit.stdout_bytes == 65536
    assert (result.exit.signal_name, result.exit.exit_code) == ("SIGTERM", None)
    assert not result.exit.timed_out and not result.exit.cancelled


@pytest.mark.parametrize("produced", [999, 1000])
def test_output_up_to_the_limit_is_not_capped(server, produced) -> None:
    """[exit.output_capped]: true only when bytes were withheld; a command
    that writes exactly the limit runs to its own end."""
    result = run_once(server, ["head", "-c", str(produced), "/dev/zero"], output_limit=1000)
    assert len(result.stdout) == produced
    assert result.exit.output_capped is False and result.exit.exit_code == 0


def test_output_limit_withholds_across_streams_and_exited_commands(server) -> None:
    # Both streams, 1200 bytes produced at once, and the command gone before
    # the server could signal it: 1000 delivered, capped, its own exit code.
    result = run_once(
        server, shell="head -c 600 /dev/zero; head -c 600 /dev/zero >&2; exit 3", output_limit=1000
    )
    assert len(result.stdout) + len(result.stderr) == 1000
    assert result.exit.stdout_bytes + result.exit.stderr_bytes == 1000
    assert result.exit.output_capped is True
    # It may have exited before the TERM reached it, or not: whatever ended it is reported.
    assert result.exit.exit_code == 3 or result.exit.signal_name == "SIGTERM"


def test_output_limit_counts_both_streams(server) -> None:
    result = run_once(
        server, shell="while :; do echo out; echo err >&2; done", output_limit=1000, wait=20
    )
    assert len(result.stdout) + len(result.stderr) == 1000
    assert result.exit.output_capped is True
    assert result.exit.stdout_bytes + result.exit.stderr_bytes == 1000


def test_output_limit_not_reached(server) -> None:
    result = run_once(server, ["echo", "short"], output_limit=65536)
    assert bytes(result.stdout) == b"short\n"
    assert result.exit.output_capped is False and result.exit.exit_code == 0


def test_output_limit_kills_the_whole_group(start_server, marker) -> None:
    server = start_server("--kill-grace", "0.3")
    m = marker()
    started = time.monotonic()
    result = run_once(server, shell=f"sleep {m} & yes", output_limit=4096, wait=10)
    assert result.exit.output_capped is True and len(result.stdout) == 4096
    assert time.monotonic() - started < 0.3 + 1.5
    assert wait_gone(m, 0.3 + 1.0) == []


def test_background_grandchild_holding_the_pipes(start_server, marker) -> None:
    server = start_server("--drain-grace", "0.3")
    m = marker()
    started = time.monotonic()
    result = run_once(server, shell=f"sleep {m} & echo hi", wait=5)
    elapsed = time.monotonic() - started
    assert elapsed < 0.3 + 1.0, elapsed
    assert bytes(result.stdout) == b"hi\n"
    assert result.exit.exit_code == 0 and result.exit.signal is None
    assert result.exit.pipes_held is True
    assert wait_gone(m, 1.0) == [], "the grandchild holding the pipes was left running"


def test_pipes_not_held(server) -> None:
    result = run_once(server, shell="echo hi")
    assert bytes(result.stdout) == b"hi\n"
    assert result.exit.pipes_held is False


def test_grandchild_output_within_the_drain_grace_is_delivered(start_server) -> None:
    """Exit is judged by the process, but output a descendant writes before
    closing the pipes (within the grace) still arrives, before exit."""
    server = start_server("--drain-grace", "2")
    result = run_once(server, shell="(sleep 0.3; echo late) & echo early", wait=5)
    assert bytes(result.stdout) == b"early\nlate\n"
    assert result.exit.pipes_held is False and result.exit.exit_code == 0


def test_grandchild_with_redirected_output_does_not_hold(start_server, marker) -> None:
    # A drain grace far longer than the run may take, even on a loaded machine:
    # the command's end is not waited for beyond its own exit.
    server = start_server("--drain-grace", "60")
    m = marker()
    started = time.monotonic()
    result = run_once(server, shell=f"sleep {m} >/dev/null 2>&1 & echo hi", wait=30)
    assert time.monotonic() - started < 30
    assert result.exit.pipes_held is False
    # Whatever happens to the detached sleep, the marker fixture removes it by PID.
