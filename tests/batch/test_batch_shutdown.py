"""``rexec batch`` when a server shuts down (a rolling restart), hangs, or
the batch itself is terminated: the real CLI against real ``rexecd``.

A server that refuses a command with ``server.shutting_down`` (or
``audit.unavailable``) proved it never ran it and will run none: a spread job
goes to the other servers, uncounted, and the server is dropped; a pinned job
fails naming the cause. A command the server ends as
it shuts down is a signal with its cause, as ``rexec run`` says it. A server
that stops answering ends its jobs through the keepalive (on by default),
never hangs the batch. SIGTERM to the batch exits 143, and a cancel the
server never confirmed says so."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import (
    CLI_TIMEOUT,
    Pool,
    batch_argv,
    read_joblog,
    read_results,
    run_batch_cli,
    start_rexecd,
)

DROPPED = "(dropped: no more jobs sent there)"
#: A job that waits (bounded) until the file ``release`` exists, or a file
#: ``release`` in the directory of the server that runs it (its parent's).
_GATE = (
    "for i in $(seq 1200); do test -e {release} && break; "
    'test -e "$(readlink /proc/$PPID/cwd)/release" && break; sleep 0.05; done'
)


def _wait_until(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.05)


def _refuses_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=5):
            return False
    except (ConnectionRefusedError, ConnectionResetError):
        # Reset: the listener closed with this connection still in its backlog.
        return True


@contextlib.contextmanager
def _popen(
    argv: list[str], stdout: Path | None = None, stderr: Path | None = None
) -> Iterator[subprocess.Popen]:
    """A process (its stdout and stderr to these files if given), killed by
    its PID at the end if it still runs."""
    with contextlib.ExitStack() as files:
        out, err = (
            files.enter_context(path.open("w")) if path else subprocess.PIPE
            for path in (stdout, stderr)
        )
        process = subprocess.Popen(argv, stdout=out, stderr=err, text=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


@contextlib.contextmanager
def _held(pool: Pool, victim: int, tmp_path: Path) -> Iterator[Callable[[], None]]:
    """Yields ``shut_down()``: SIGTERM the pool's server ``victim`` and return
    once it refuses new connections; it then stays shutting down (refusing
    new commands), held by another client's running command, until the end."""
    server = pool.servers[victim]
    held = tmp_path / "held"
    holder = [
        sys.executable,
        "-m",
        "rexec_client.cli",
        "run",
        "--key-file",
        str(pool.key_file),
        pool.label(victim),
        f"echo $$ > {held}; sleep 60",
    ]

    def shut_down() -> None:
        server.process.send_signal(signal.SIGTERM)
        _wait_until(lambda: _refuses_connections(server.host, pool.port), "the shutdown")

    with _popen(holder):
        _wait_until(lambda: held.exists() and held.read_text().strip(), "the holder's command")
        yield shut_down


def _gated_jobs(tmp_path: Path, gated: int, plain: int) -> tuple[Path, Path, Path]:
    """A commands file: ``gated`` jobs that mark their start in the directory
    ``started`` and wait for ``release``, then ``plain`` jobs; each echoes
    its number. Returns (commands, started, release)."""
    started, release = tmp_path / "started", tmp_path / "release"
    started.mkdir()
    gate = _GATE.format(release=release)
    lines = [f"touch {started}/$$; {gate}; echo {i}" for i in range(1, gated + 1)]
    lines += [f"echo {i}" for i in range(gated + 1, gated + plain + 1)]
    commands = tmp_path / "commands"
    commands.write_text("".join(line + "\n" for line in lines))
    return commands, started, release


def test_spread_jobs_leave_a_server_shutting_down_for_the_others(
    start_pool, tmp_path: Path
) -> None:
    """outsider5 F9: the jobs a server refuses as shutting down never ran:
    they run on the other server, uncounted, and the batch succeeds."""
    pool = start_pool(2, "--shutdown-grace", "60")
    commands, started, release = _gated_jobs(tmp_path, gated=4, plain=8)
    results = tmp_path / "r.jsonl"
    argv = batch_argv(pool, "-H", pool.spec, "-j", "4", "--per-host", "2", "-k")
    with (
        _held(pool, 1, tmp_path) as shut_down,
        _popen([*argv, "--results", str(results), str(commands)]) as batch,
    ):
        _wait_until(lambda: len(list(started.iterdir())) == 4, "4 jobs running")
        shut_down()  # with two jobs of the batch running there
        # Its jobs end first: the next ones go to its free slots, and it
        # refuses them (the other server's slots are still taken).
        victim = pool.servers[1]
        (victim.audit_log.parent / "release").touch()
        _wait_until(
            lambda: any(r.get("code") == "server.shutting_down" for r in victim.audit_records()),
            "a job refused by the server shutting down",
        )
        release.touch()
        out, err = batch.communicate(timeout=CLI_TIMEOUT)
    assert batch.returncode == 0, err
    assert out == "".join(f"{i}\n" for i in range(1, 13))
    records = read_results(results)
    assert {(r["status"], r["attempt"]) for r in records} == {("ok", 1)}
    assert {r["target"] for r in records if int(r["id"]) > 4} == {pool.label(0)}
    head, *lines = err.splitlines()
    assert head.endswith(": 12 ok"), err
    host = pool.servers[1].host
    assert lines == [f"  {host}: the server is shutting down (server.shutting_down) {DROPPED}"]


def test_a_job_pinned_to_a_server_shutting_down_fails_naming_why(
    start_pool, tmp_path: Path
) -> None:
    """With --onall the refused job has nowhere else to go: it has no
    result (exit 3, as an unreachable server), and the summary says why."""
    pool = start_pool(2, "--shutdown-grace", "60")
    commands, started, release = _gated_jobs(tmp_path, gated=1, plain=1)
    results = tmp_path / "r.jsonl"
    argv = batch_argv(
        pool, "--onall", "--per-host", "1", "-H", pool.spec, "--results", str(results)
    )
    with _held(pool, 1, tmp_path) as shut_down, _popen([*argv, str(commands)]) as batch:
        _wait_until(lambda: len(list(started.iterdir())) == 2, "job 1 running on both")
        shut_down()
        release.touch()
        out, err = batch.communicate(timeout=CLI_TIMEOUT)
    assert batch.returncode == 3, err
    host = pool.servers[1].host
    by_key = {(r["id"], r["target"]): r for r in read_results(results)}
    refused = by_key[("2", pool.label(1))]
    assert (refused["status"], refused["error_code"]) == ("connect_error", "server.shutting_down")
    assert refused["start"] is None  # it never started
    assert f"{host}: 2" not in out.splitlines()
    assert err.splitlines()[1:] == [
        f"  {host}: the server is shutting down (server.shutting_down) (1 connect_error; jobs 2)"
    ]


def test_a_command_ended_by_the_server_shutting_down_says_so(start_pool, tmp_path: Path) -> None:
    """outsider5 F10: not 'cancelled' (nobody cancelled it) but killed by
    the server's SIGTERM, with the cause, as rexec run says: exit 2."""
    pool = start_pool(1)
    pid_file, results = tmp_path / "pid", tmp_path / "r.jsonl"
    argv = batch_argv(pool, "--onall", "-H", pool.spec, "--results", str(results), "--")
    with _popen([*argv, f"echo $$ > {pid_file}; sleep 60"]) as batch:
        _wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), "the command")
        pool.servers[0].process.send_signal(signal.SIGTERM)
        out, err = batch.communicate(timeout=CLI_TIMEOUT)
    assert batch.returncode == 2, err
    (record,) = read_results(results)
    assert (record["status"], record["signal_name"], record["error_code"]) == (
        "signal",
        "SIGTERM",
        "server.shutting_down",
    )
    host = pool.servers[0].host
    assert err.splitlines()[1:] == [
        f"  {host}: the server is shutting down: it ended the command (SIGTERM) "
        "(server.shutting_down) (1 signal; jobs 1)"
    ]


@contextlib.contextmanager
def _stopped(pool: Pool, index: int) -> Iterator[Callable[[], None]]:
    """Yields ``stop()``: SIGSTOP the server (continued at the end)."""
    process = pool.servers[index].process
    try:
        yield lambda: process.send_signal(signal.SIGSTOP)
    finally:
        process.send_signal(signal.SIGCONT)


@pytest.mark.parametrize(("keepalive", "given_up_after"), [((), 15), (("--keepalive", "1"), 3)])
def test_a_hung_server_ends_its_jobs_through_the_keepalive(
    start_pool, tmp_path: Path, keepalive: tuple[str, ...], given_up_after: int
) -> None:
    """outsider5 F2/F3: a server that stops answering (SIGSTOP) does not
    hang the batch: the keepalive, on by default (5 s, 3 pings), gives up as
    --keepalive N says (N x 3 s) and says after how long."""
    pool = start_pool(1)
    pid_file = tmp_path / "pid"
    argv = batch_argv(pool, "--onall", *keepalive, "-H", pool.spec, "--")
    with _stopped(pool, 0) as stop, _popen([*argv, f"echo $$ > {pid_file}; sleep 60"]) as batch:
        _wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), "the command")
        stop()
        out, err = batch.communicate(timeout=CLI_TIMEOUT)
    assert batch.returncode == 3, err
    host = pool.servers[0].host
    assert err.splitlines()[1:] == [
        f"  {host}: connection lost: no answer to keepalive within {given_up_after} s, "
        "after the command was sent (1 connect_error; jobs 1)"
    ]


def test_sigterm_ends_the_batch_143_and_an_unconfirmed_cancel_says_so(
    start_pool, tmp_path: Path
) -> None:
    """outsider5 F2: SIGTERM is 143 (as put and get), not Ctrl-C's 130; a
    cancel the (hung) server never answered is not reported as done."""
    pool = start_pool(1)
    printed = tmp_path / "out"
    argv = batch_argv(pool, "--onall", "--line", "--keepalive", "30", "-H", pool.spec, "--")
    with _stopped(pool, 0) as stop, _popen([*argv, "echo ready; sleep 60"], printed) as batch:
        # Its output printed: the batch knows the command started (it has one to cancel).
        _wait_until(lambda: "ready" in printed.read_text(), "the command's output")
        stop()
        batch.send_signal(signal.SIGTERM)
        out, err = batch.communicate(timeout=CLI_TIMEOUT)
    assert batch.returncode == 128 + signal.SIGTERM, err
    host = pool.servers[0].host
    # The first line starts with a carriage return (over a progress line).
    first, head, *lines = [line for line in err.splitlines() if line]
    assert "terminated: cancelling 1 running command(s)" in first, err
    assert head.endswith(": 1 cancelled (interrupted)"), err
    assert lines == [
        f"  {host}: cancel not confirmed: no answer within 10 s; the command may still run "
        "(1 cancelled; jobs 1)"
    ]


def test_a_server_whose_audit_log_is_stuck_is_no_black_hole(start_pool, tmp_path: Path) -> None:
    """outsider5 F20: a server refusing every command at once (its audit log
    can't be written) would get nearly every job from the least-loaded
    scheduler; it is dropped at its first refusal and the jobs run elsewhere."""
    pool = start_pool(1)
    fifo = tmp_path / "audit.fifo"
    os.mkfifo(fifo)  # nobody reads it: the server refuses every command
    stuck = start_rexecd(
        tmp_path / "stuck",
        *("--port", str(pool.port), "--audit-log", str(fifo)),
        host="127.0.0.3",
        key_file=pool.key_file,
    )
    try:
        results = tmp_path / "r.jsonl"
        done = run_batch_cli(
            pool,
            *("-H", f"127.0.0.[2-3]:{pool.port}", "-j", "4", "-k", "--results", str(results)),
            input="".join(f"echo {i}\n" for i in range(1, 21)),
        )
    finally:
        stuck.stop(signal.SIGKILL)
        stuck.process.stdout.close()
    assert done.returncode == 0, done.stderr
    assert done.stdout == "".join(f"{i}\n" for i in range(1, 21))
    assert {(r["status"], r["attempt"], r["target"]) for r in read_results(results)} == {
        ("ok", 1, pool.label(0))
    }
    assert done.stderr.splitlines()[1:] == [
        f"  127.0.0.3: the audit log can't be written (audit.unavailable) {DROPPED}"
    ]


def test_a_second_ctrl_c_keeps_the_start_of_a_command_sent(start_pool, tmp_path: Path) -> None:
    """outsider5 F21: aborted while its (hung) server ran it, a command is
    logged as sent (host, start time), so --resume does not run it again,
    and its cancel is said to be unconfirmed."""
    pool = start_pool(1)
    printed, said, log = tmp_path / "out", tmp_path / "err", tmp_path / "log.tsv"
    argv = batch_argv(
        pool, "--onall", "--line", "--keepalive", "30", "--joblog", str(log), "-H", pool.spec, "--"
    )
    with _stopped(pool, 0) as stop, _popen([*argv, "echo ready; sleep 60"], printed, said) as batch:
        _wait_until(lambda: "ready" in printed.read_text(), "the command's output")
        stop()
        batch.send_signal(signal.SIGINT)
        _wait_until(lambda: "interrupted: cancelling 1" in said.read_text(), "the first Ctrl-C")
        batch.send_signal(signal.SIGINT)
        batch.communicate(timeout=CLI_TIMEOUT)
    err = said.read_text()
    assert batch.returncode == 130, err
    (row,) = read_joblog(log)
    assert row["Host"] == pool.label(0) and float(row["Starttime"]) > 0, row
    assert err.splitlines()[-1] == (
        f"  {pool.servers[0].host}: cancel not confirmed: the batch was aborted; the command may "
        "still run (1 cancelled; jobs 1)"
    )
    # --resume plans nothing: the command was sent, it may have run.
    resumed = run_batch_cli(
        pool,
        *("--onall", "--resume", "--dry-run", "--joblog", str(log), "-H", pool.spec),
        *("--", "echo ready; sleep 60"),
    )
    assert (resumed.returncode, resumed.stdout) == (0, ""), resumed.stderr
