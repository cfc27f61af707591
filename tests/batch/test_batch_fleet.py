"""``rexec batch`` over hundreds of servers (the fleet emulator): fanout,
the open-file limit, and output a person can read at that scale."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

from .conftest import CLI_TIMEOUT, Emulator, batch_argv, read_results, run_batch_cli


def run(
    fleet: Emulator, *args: str, prefix: tuple[str, ...] = (), input: str = ""
) -> subprocess.CompletedProcess:
    """``rexec batch`` with ``fleet``'s key over all its servers (``-w``), and ``args``;
    exec'd under ``prefix`` (a command such as ``prlimit``), else forked."""
    if not prefix:
        return run_batch_cli(fleet, "-w", fleet.hosts, *args, input=input)
    return subprocess.run(
        [*prefix, *batch_argv(fleet, "-w", fleet.hosts, *args)],
        input=input,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


def test_onall_keeps_at_most_fanout_connections_open(start_fleet) -> None:
    fleet = start_fleet(300)
    done = run(fleet, "--onall", "-f", "8", "-j", "32", "--", "hostname")
    assert done.returncode == 0, done.stderr
    lines = sorted(done.stdout.splitlines())
    assert lines == sorted(f"{fleet.host(i)}: node{i:05d}" for i in range(1, 301))
    stats = fleet.stats()
    assert stats["authenticated"] == 300  # one connection per server, none reopened
    assert stats["peak_open"] <= 8


def test_fanout_fits_a_low_open_file_limit(start_fleet) -> None:
    """With 64 descriptors, -f 500 can't be: the fanout is lowered, said
    once, and every one of 200 servers is still reached."""
    fleet = start_fleet(200)
    done = run(fleet, "--onall", "-f", "500", "--", "true", prefix=("prlimit", "--nofile=64:64"))
    assert done.returncode == 0, done.stderr
    assert "fanout lowered from 500 to" in done.stderr and "open-file limit is 64" in done.stderr
    assert fleet.stats()["authenticated"] == 200


def test_the_soft_open_file_limit_is_raised_to_fit_the_fanout(start_fleet) -> None:
    """Soft limit 64, hard 4,096: -f 300 needs more than 64 descriptors, and
    the batch raises its own soft limit rather than lowering the fanout."""
    fleet = start_fleet(300)
    done = run(
        fleet,
        "--onall",
        "-f",
        "300",
        "-j",
        "300",
        "--",
        "sleep",
        "0.5",
        prefix=("prlimit", "--nofile=64:4096"),
    )
    assert done.returncode == 0, done.stderr
    assert "fanout lowered" not in done.stderr
    stats = fleet.stats()
    assert stats["authenticated"] == 300 and stats["peak_open"] > 64


def test_running_out_of_descriptors_makes_jobs_wait_not_fail(start_fleet, tmp_path: Path) -> None:
    """The library does not touch the process's limits: when connecting
    meets EMFILE, the pool lowers its fanout and the job waits for a slot."""
    fleet = start_fleet(150)
    script = tmp_path / "batch.py"
    targets = [f"{fleet.host(i)}:{fleet.port}" for i in range(1, 151)]
    script.write_text(
        textwrap.dedent(f"""
        from rexec_client.batch import run_batch_sync
        results = list(run_batch_sync(
            ["true"], {targets!r}, key_file={str(fleet.key_file)!r},
            onall=True, fanout=1000, max_running=200,
        ))
        print(len(results), sorted({{r.status.value for r in results}}))
    """)
    )
    done = subprocess.run(
        ["prlimit", "--nofile=48:48", sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "150 ['ok']"


def test_b_folds_identical_outputs_and_failures_name_their_nodes(start_fleet) -> None:
    fleet = start_fleet(500, "--down", "17,342")
    done = run(fleet, "--onall", "-b", "--", "echo", "hello")
    assert done.returncode == 3
    assert done.stdout.splitlines() == [
        "---------------- 127.1.0.[1-16,18-250],127.1.1.[1-91,93-250] (498)",
        "hello",
        "---------------- 127.1.0.17,127.1.1.92 (2) connect_error",
    ]
    assert done.stderr.splitlines()[1:] == [
        "  127.1.0.17,127.1.1.92: connection refused (2 connect_error; jobs 1)"
    ]


def test_failures_are_summarised_by_cause(start_fleet, tmp_path: Path) -> None:
    fleet = start_fleet(40, "--down", "5", "--drop", "6-7", "--slow", "8", "--slow-seconds", "30")
    results = tmp_path / "r.jsonl"
    done = run(fleet, "--onall", "--connect-timeout", "1", "--results", str(results), "--", "false")
    assert done.returncode == 3
    assert sorted(done.stderr.splitlines()[1:]) == sorted(
        [
            "  127.1.0.[1-4,9-40]: exit 1 (36 failed; jobs 1)",
            "  127.1.0.[6-7]: closed the connection during the handshake (2 connect_error; jobs 1)",
            "  127.1.0.5: connection refused (1 connect_error; jobs 1)",
            "  127.1.0.8: no answer within 1 s (1 connect_error; jobs 1)",
        ]
    )
    assert len(read_results(results)) == 40  # every job accounted for


def test_a_spread_batch_over_many_servers_accounts_for_every_job(
    start_fleet, tmp_path: Path
) -> None:
    fleet = start_fleet(200, "--down", "50")
    results = tmp_path / "r.jsonl"
    done = run(
        fleet,
        "-j",
        "64",
        "-f",
        "32",
        "--retries",
        "1",
        "--results",
        str(results),
        "--",
        "echo",
        ":::",
        *map(str, range(3000)),
    )
    assert done.returncode == 0, done.stderr
    records = read_results(results)
    assert sorted(int(r["id"]) for r in records) == list(range(1, 3001))
    assert {r["status"] for r in records} == {"ok"}
    assert sorted(int(r["stdout"]) for r in records) == list(range(3000))
    assert fleet.stats()["peak_open"] <= 32


def test_a_server_that_dies_mid_command_is_a_lost_connection_not_a_result(
    start_fleet, tmp_path: Path
) -> None:
    """The emulator's ``drop-connection`` takes the connection down after
    ``started``: every job is reported lost, each after its retry on another
    server, and the summary says the server closed (or reset) it after the
    command was sent (it may have run), never that the client did, whichever
    job noticed first (a race: several rounds); the servers are dropped."""
    fleet = start_fleet(20)
    results = tmp_path / "r.jsonl"
    for _ in range(4):
        done = run(
            fleet, "--retries", "1", "--results", str(results), input="drop-connection\n" * 5
        )
        assert done.returncode == 3
        records = read_results(results)
        assert sorted(r["id"] for r in records) == ["1", "2", "3", "4", "5"]
        assert {(r["status"], r["attempt"]) for r in records} == {("connect_error", 2)}
        lines = done.stderr.splitlines()[1:]
        causes = [line for line in lines if "connect_error" in line]
        assert causes and all(
            re.fullmatch(
                r"  127\.1\.0\.\S+: connection lost: (the server closed the connection|"
                r"connection reset by peer), after the command was sent "
                r"\(\d connect_error; jobs [\d ]+\)",
                line,
            )
            for line in causes
        ), causes
        dropped = [line for line in lines if line not in causes]
        assert dropped and all(
            line.endswith("(dropped: no more jobs sent there)") for line in dropped
        ), lines
        assert sum(int(re.search(r"\((\d) connect_error", line)[1]) for line in causes) == 5


def test_onall_runs_as_many_commands_at_once_as_the_fanout(start_fleet) -> None:
    """pdsh -f 40 and clush -f 40 run 40 commands at once: so does --onall -f
    40 unless -j says otherwise (not the spread batch's default of 32)."""
    fleet = start_fleet(40)  # one round, its commands long enough to overlap under load
    done = run(fleet, "--onall", "-f", "40", "--", "sleep", "3")
    assert done.returncode == 0, done.stderr
    assert fleet.stats()["peak_running"] == 40
    bounded = start_fleet(20)
    done = run(bounded, "--onall", "-f", "40", "-j", "4", "--", "sleep", "0.2")
    assert done.returncode == 0, done.stderr
    assert bounded.stats()["peak_running"] == 4


def test_a_spread_batch_runs_every_job_on_the_servers_that_are_up(
    start_fleet, tmp_path: Path
) -> None:
    """2,000 jobs over 200 servers, 20 of them dead for three reasons: every
    job runs once, on a live server; the dead ones are named by cause, folded,
    and cost no job."""
    fleet = start_fleet(
        200,
        "--down",
        ",".join(str(i) for i in range(11, 191, 12)),  # 15 refuse
        "--drop",
        "7,77,177",
        "--slow",
        "50,150",
        "--slow-seconds",
        "30",
    )
    results = tmp_path / "r.jsonl"
    done = run(
        fleet,
        "-j",
        "200",  # and jobs that take a while: every server gets tried
        "--connect-timeout",
        "2",
        "--results",
        str(results),
        input="sleep 0.1\n" * 2000,
    )
    assert done.returncode == 0, done.stderr
    records = read_results(results)
    assert sorted(int(r["id"]) for r in records) == list(range(1, 2001))
    assert {(r["status"], r["attempt"]) for r in records} == {("ok", 1)}
    dead = {fleet.host(i) for i in (*range(11, 191, 12), 7, 77, 177, 50, 150)}
    assert not dead & {r["target"].rsplit(":", 1)[0] for r in records}
    assert sorted(done.stderr.splitlines()[1:]) == sorted(
        [
            "  127.1.0.[11,23,35,47,59,71,83,95,107,119,131,143,155,167,179]: connection refused"
            " (dropped: no more jobs sent there)",
            "  127.1.0.[7,77,177]: closed the connection during the handshake"
            " (dropped: no more jobs sent there)",
            "  127.1.0.[50,150]: no answer within 2 s (dropped: no more jobs sent there)",
        ]
    )
