"""``rexec batch`` when servers are dead or die: the real CLI against real
``rexecd`` servers. A spread job whose server can't be reached goes to the
live servers (as GNU parallel's ``--filter-hosts`` drops dead hosts); one
whose command was sent before its server died may have run and is reported
so, never silently rerun; every failure is summarised under its own cause;
``--resume`` runs again what never started."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil

from .conftest import CLI_TIMEOUT, Pool, batch_argv, read_joblog, read_results, run_batch_cli

DROPPED = "(dropped: no more jobs sent there)"


def _wait_for(path: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return path.read_text().strip()


def test_spread_jobs_leave_a_dead_server_for_the_live_ones(pool: Pool, tmp_path: Path) -> None:
    dead = f"127.0.0.9:{pool.port}"
    results, log = tmp_path / "r.jsonl", tmp_path / "log.tsv"
    done = run_batch_cli(
        pool,
        "-H",
        f"{dead},{pool.spec}",
        "-k",
        "--results",
        str(results),
        "--joblog",
        str(log),
        input="".join(f"echo job{i}\n" for i in range(1, 10)),
    )
    # Every job ran, once, on a live server: the batch did what was asked.
    assert done.returncode == 0, done.stderr
    assert done.stdout == "".join(f"job{i}\n" for i in range(1, 10))
    records = read_results(results)
    assert {(r["status"], r["attempt"]) for r in records} == {("ok", 1)}
    assert dead not in {r["target"] for r in records}
    assert dead not in {row["Host"] for row in read_joblog(log)}
    # ... and the summary says which server was dropped, and why.
    lines = done.stderr.splitlines()
    assert lines[0].startswith("rexec batch: 9 jobs in ") and lines[0].endswith(": 9 ok"), lines
    assert lines[1:] == [f"  127.0.0.9: connection refused {DROPPED}"]


def test_every_dead_server_is_named_with_its_own_cause(
    pool: Pool, start_pool, tmp_path: Path
) -> None:
    """Three servers dead for three reasons: each named with its own cause,
    none with another's; the jobs that could run nowhere say so."""
    other_key = start_pool(1)  # a live rexecd whose key is not ours
    refused = f"127.0.0.9:{pool.port}"
    unknown = f"nosuchhost.invalid:{pool.port}"
    wrong_key = other_key.label(0)
    log = tmp_path / "log.tsv"
    done = run_batch_cli(
        pool,
        "-H",
        f"{refused},{unknown},{wrong_key}",
        "--connect-timeout",
        "10",
        "--joblog",
        str(log),
        input="true\n" * 6,
    )
    assert done.returncode == 3, done.stderr  # no job has a result: README's 3
    head, *lines = done.stderr.splitlines()
    assert re.fullmatch(r"rexec batch: 6 jobs in [\d.]+ s: 6 connect_error", head), head
    assert re.fullmatch(
        r"  -: not started: every server was dropped \(6 connect_error; jobs( \d){6}\)", lines[0]
    ), lines
    causes = {
        refused: "connection refused",
        unknown: "no such host (the name does not resolve)",
        wrong_key: "refused the key (auth.failed)",
    }
    assert len(lines[1:]) == 3, lines
    for target, cause in causes.items():
        (line,) = [line for line in lines[1:] if target in line]
        assert line.startswith(f"  {target}: {cause}") and line.endswith(DROPPED), line
    # The joblog says none of them started: no host, no start time.
    assert {(row["Host"], row["Starttime"], row["Exitval"]) for row in read_joblog(log)} == {
        ("", "0.000", "-1")
    }


def test_resume_runs_the_jobs_that_never_started(pool: Pool, tmp_path: Path) -> None:
    marks, log = tmp_path / "marks", tmp_path / "log.tsv"
    marks.mkdir()
    commands = tmp_path / "cmds"
    commands.write_text("".join(f"echo x >> {marks}/{i}\n" for i in range(1, 5)))
    dead = run_batch_cli(pool, "-H", f"127.0.0.9:{pool.port}", "--joblog", str(log), str(commands))
    assert dead.returncode == 3 and len(read_joblog(log)) == 4
    resumed = run_batch_cli(pool, "-H", pool.spec, "--resume", "--joblog", str(log), str(commands))
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(p.name for p in marks.iterdir()) == ["1", "2", "3", "4"]
    again = run_batch_cli(pool, "-H", pool.spec, "--resume", "--joblog", str(log), str(commands))
    assert again.returncode == 0, again.stderr
    assert {len(p.read_text().splitlines()) for p in marks.iterdir()} == {1}


def _server_running(pid: int, pool: Pool) -> int:
    """The index of the pool's server whose command ``pid`` is."""
    servers = {server.process.pid: index for index, server in enumerate(pool.servers)}
    for parent in psutil.Process(pid).parents():
        if parent.pid in servers:
            return servers[parent.pid]
    raise AssertionError(f"{pid} runs under none of the servers")


def test_a_job_whose_server_died_is_reported_not_rerun(start_pool, tmp_path: Path) -> None:
    """A job sent to a server that then died may have run: it is reported
    as such and not run again elsewhere (a command need not be idempotent);
    the server is dropped. ``--resume`` counts it done, ``--resume-failed``
    runs it again."""
    pool = start_pool(2)
    runs, pid_file, release = tmp_path / "runs", tmp_path / "pid", tmp_path / "release"
    first = f"echo x >> {runs}; test -e {release} || {{ echo $$ > {pid_file}; sleep 60; }}"
    commands = tmp_path / "cmds"
    commands.write_text(first + "\n" + "echo ok\n" * 4)
    results, log = tmp_path / "r.jsonl", tmp_path / "log.tsv"
    argv = batch_argv(
        pool, "-H", pool.spec, "--per-host", "1", "--results", str(results), "--joblog", str(log)
    )
    process = subprocess.Popen(
        [*argv, str(commands)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    shell = None
    try:
        shell = int(_wait_for(pid_file))
        victim = _server_running(shell, pool)
        pool.servers[victim].process.kill()
        out, err = process.communicate(timeout=CLI_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        if shell is not None:  # the orphan its dead server left
            with contextlib.suppress(ProcessLookupError):
                os.killpg(os.getpgid(shell), signal.SIGKILL)
    host = pool.servers[victim].host
    assert process.returncode == 3, err
    assert out == "ok\n" * 4
    assert len(runs.read_text().splitlines()) == 1  # not rerun
    by_id = {r["id"]: r for r in read_results(results)}
    assert (by_id["1"]["status"], by_id["1"]["attempt"]) == ("connect_error", 1)
    assert by_id["1"]["start"] is not None
    lines = err.splitlines()[1:]
    assert lines[0].startswith(f"  {host}: connection lost: ") and lines[0].endswith(
        ", after the command was sent (1 connect_error; jobs 1)"
    ), lines
    assert lines[1].startswith(f"  {host}: connection lost: ") and lines[1].endswith(DROPPED)
    # --resume: it may have run, so it is done; --resume-failed runs it again.
    survivor = pool.label(1 - victim)
    release.touch()
    for option, expected_runs in (("--resume", 1), ("--resume-failed", 2)):
        resumed = run_batch_cli(pool, "-H", survivor, option, "--joblog", str(log), str(commands))
        assert resumed.returncode == 0, resumed.stderr
        assert resumed.stdout == ""
        assert len(runs.read_text().splitlines()) == expected_runs, option
