"""``rexec batch`` end to end: the real CLI as a subprocess against real
``rexecd`` servers on 127.0.0.2, 127.0.0.3, … sharing one key."""

from __future__ import annotations

import base64
import json
import os
import select
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from .conftest import (
    Pool,
    batch_argv,
    marker_counts,
    read_joblog,
    read_results,
    run_batch_cli,
)

#: The header line GNU parallel writes (its man page, --joblog); written out here
#: rather than taken from client/batch/joblog.py, so the test checks the format itself.
GNU_PARALLEL_JOBLOG_HEADER = (
    "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand"
)
RESULT_FIELDS = {
    "schema",
    "id",
    "target",
    "command",
    "argv",
    "shell",
    "status",
    "exit_code",
    "signal",
    "signal_name",
    "attempt",
    "start",
    "duration",
    "server_duration",
    "stdin_bytes",
    "stdout_bytes",
    "stderr_bytes",
    "stdout",
    "stdout_encoding",
    "stderr",
    "stderr_encoding",
    "error_code",
    "error",
}
#: A command that succeeds only on the pool's first server (127.0.0.2): its
#: parent, rexecd, runs in that server's directory (start_rexecd).
ON_FIRST = "readlink /proc/$PPID/cwd | grep -q /server0$"


def processes_with(token: str) -> list[psutil.Process]:
    """Processes whose argv is exactly ``sleep TOKEN`` (the tests' sleeps
    have unique lengths)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if process.info["cmdline"] == ["sleep", token]:
            found.append(process)
    return found


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def kill_leftovers(token: str) -> None:
    """Processes our test commands left behind (only after a server was
    SIGKILLed: its commands are orphaned), found by their unique token."""
    for process in processes_with(token):
        process.kill()


# --- spreading and --onall -----------------------------------------------------


def test_spread_runs_each_job_once_over_the_servers(pool: Pool, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    commands = "".join(f"echo x >> {marks}/{i}; sleep 0.2; echo out{i}\n" for i in range(1, 13))
    done = run_batch_cli(
        pool, "-H", pool.spec, "-j", "6", "--results", str(tmp_path / "r.jsonl"), input=commands
    )
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == sorted(f"out{i}" for i in range(1, 13))
    assert marker_counts(marks) == {str(i): 1 for i in range(1, 13)}
    results = read_results(tmp_path / "r.jsonl")
    assert sorted(int(r["id"]) for r in results) == list(range(1, 13))
    # Least-loaded first: 12 jobs of equal length, 6 at a time, use every server.
    assert {r["target"] for r in results} == {pool.label(i) for i in range(3)}


def test_onall_runs_the_command_on_every_target(pool: Pool, tmp_path: Path) -> None:
    done = run_batch_cli(
        pool,
        "--onall",
        "-H",
        pool.spec,
        "--tag",
        "--results",
        str(tmp_path / "r.jsonl"),
        "--",
        "echo",
        "hi there",
    )
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == sorted(
        f"{pool.label(i)} 1\thi there" for i in range(3)
    )
    results = read_results(tmp_path / "r.jsonl")
    assert sorted(r["target"] for r in results) == sorted(pool.label(i) for i in range(3))
    assert {r["argv"] == ["echo", "hi there"] and r["status"] == "ok" for r in results} == {True}


def test_output_modes_keep_order_and_line(pool: Pool) -> None:
    commands = "sleep 0.6; echo first\nsleep 0.3; echo second\necho third\n"
    ordered = run_batch_cli(pool, "-H", pool.spec, "-k", input=commands)
    assert ordered.stdout == "first\nsecond\nthird\n"
    grouped = run_batch_cli(pool, "-H", pool.spec, input=commands)
    assert grouped.stdout == "third\nsecond\nfirst\n"
    live = run_batch_cli(
        pool,
        "-H",
        pool.label(0),
        "--line",
        "--tag",
        input="printf 'a\\nb'; sleep 0.2; printf 'c\\n'\n",
    )
    assert live.stdout == f"{pool.label(0)} 1\ta\n{pool.label(0)} 1\tbc\n"


def test_coalesce_groups_identical_results(pool: Pool) -> None:
    done = run_batch_cli(
        pool, "--onall", "-H", pool.spec, "-b", "--", "sh", "-c", f"echo same; {ON_FIRST} || exit 1"
    )
    assert done.returncode == 1
    assert done.stdout == (
        "---------------- 127.0.0.2 (1)\nsame\n---------------- 127.0.0.[3-4] (2) exit 1\nsame\n"
    )


def test_targets_listing_and_dry_run(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("# a comment\nweb[01-05/2]:7000\ndb[1-3]  # dbs\n")
    listed = run_batch_cli(None, "--hosts-file", str(hosts), "-x", "db2", "--list-targets")
    assert listed.stdout.split() == [
        "web01:7000",
        "web03:7000",
        "web05:7000",
        "db1:7420",
        "db3:7420",
    ]
    dry = run_batch_cli(None, "-H", "a,b", "--onall", "--dry-run", input="echo 1\necho 2\n")
    assert dry.stdout == "a:7420\techo 1\nb:7420\techo 1\na:7420\techo 2\nb:7420\techo 2\n"
    assert run_batch_cli(None, "-H", "w[2-1]", "--dry-run").returncode == 255


def test_dry_run_of_a_huge_batch_starts_at_once(tmp_path: Path) -> None:
    """1,000 servers × 100 commands: the first pair comes before the input
    is read whole, and the run streams (no materialised job list). The
    commands come through a FIFO whose writer holds back all but the first
    line until that pair is out: a batch that read its input to the end first
    would print nothing (bounded wait), however fast or slow the machine."""
    commands = tmp_path / "cmds"
    os.mkfifo(commands)
    process = subprocess.Popen(
        batch_argv(None, "-H", "n[0000-0999]", "--onall", "--dry-run", str(commands)),
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        with open(commands, "w") as writer:
            writer.write("echo 0\n")
            writer.flush()
            readable, _, _ = select.select([process.stdout], [], [], 30)
            assert readable, "no output while the input was still open"
            first = process.stdout.readline()
            writer.write("".join(f"echo {i}\n" for i in range(1, 100)))
        rest = process.stdout.read()
        assert process.wait(timeout=30) == 0
    finally:
        process.stdout.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    assert first == b"n0000:7420\techo 0\n"
    assert rest.count(b"\n") == 100 * 1000 - 1


# --- failures: servers dying, timeouts, retries ------------------------------------


@pytest.mark.parametrize("retries", [0, 1])
def test_server_killed_mid_batch(start_pool, tmp_path: Path, retries: int) -> None:
    pool = start_pool(3)
    marks = tmp_path / "marks"
    marks.mkdir()
    token = f"{time.time_ns() % 10**6:06d}{retries}"  # a unique sleep length finds leftovers
    commands = tmp_path / "cmds"
    commands.write_text(
        "".join(f"echo x >> {marks}/{i}; sleep 1.{token}; echo done{i}\n" for i in range(1, 10))
    )
    results = tmp_path / "r.jsonl"
    process = subprocess.Popen(
        batch_argv(
            pool,
            "-H",
            pool.spec,
            "-j",
            "9",
            "--per-host",
            "3",
            "--retries",
            str(retries),
            "--results",
            str(results),
            "--joblog",
            str(tmp_path / "log"),
            str(commands),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(lambda: len(list(marks.iterdir())) == 9)
        victim = pool.servers[0]
        victim.process.kill()  # by PID: the server dies, its connection drops
        victim.process.wait(timeout=10)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        kill_leftovers(f"1.{token}")
    records = read_results(results)
    assert sorted(int(r["id"]) for r in records) == list(range(1, 10))  # none lost
    on_victim = {r["id"] for r in records if r["attempt"] == 2 or r["status"] != "ok"}
    assert len(on_victim) == 3  # the victim ran 3 of the 9 (--per-host 3)
    counts = marker_counts(marks)
    if retries:
        assert process.returncode == 0, err
        assert {r["status"] for r in records} == {"ok"}
        for r in records:
            assert counts[r["id"]] == r["attempt"]  # run twice only when retried
            if r["attempt"] == 2:
                assert r["target"] != pool.label(0)  # failed over to another server
    else:
        assert process.returncode == 3, err
        lost = [r for r in records if r["status"] == "connect_error"]
        assert len(lost) == 3 and {r["target"] for r in lost} == {pool.label(0)}
        assert counts == {str(i): 1 for i in range(1, 10)}  # nothing ran twice
        assert f"{pool.servers[0].host}: connection lost" in err and "(3 connect_error" in err


def test_timeout_kills_the_remote_process_tree(pool: Pool, tmp_path: Path) -> None:
    token = f"5{time.time_ns() % 10**6}.25"
    done = run_batch_cli(
        pool,
        "-H",
        pool.spec,
        "--timeout",
        "0.5",
        "--results",
        str(tmp_path / "r.jsonl"),
        input=f"sleep {token} & sleep {token}; wait\necho quick\n",
    )
    assert done.returncode == 2, done.stderr
    timed_out, quick = sorted(read_results(tmp_path / "r.jsonl"), key=lambda r: r["id"])
    assert timed_out["status"] == "timeout" and timed_out["exit_code"] is None
    assert timed_out["signal_name"] == "SIGTERM"
    assert quick["status"] == "ok"
    assert wait_until(lambda: not processes_with(token), 5)


def test_retry_failed_prefers_another_server(pool: Pool, tmp_path: Path) -> None:
    done = run_batch_cli(
        pool,
        "-H",
        pool.spec,
        "--retries",
        "2",
        "--retry-failed",
        "--results",
        str(tmp_path / "r.jsonl"),
        input=f"{ON_FIRST} && exit 7; echo fine\n",
    )
    assert done.returncode == 0, done.stderr
    (record,) = read_results(tmp_path / "r.jsonl")
    assert record["attempt"] == 2 and record["target"] != pool.label(0)
    assert record["stdout"] == "fine\n"


def test_unreachable_server_is_reported(pool: Pool, tmp_path: Path) -> None:
    dead = f"127.0.0.9:{pool.port}"
    done = run_batch_cli(
        pool,
        "--onall",
        "-H",
        f"{pool.spec},{dead}",
        "--results",
        str(tmp_path / "r.jsonl"),
        "--rerun-file",
        str(tmp_path / "rerun"),
        "--",
        "true",
    )
    assert done.returncode == 3
    assert "127.0.0.9: connection refused (1 connect_error; jobs 1)" in done.stderr
    failed = [r for r in read_results(tmp_path / "r.jsonl") if r["status"] != "ok"]
    assert [(r["target"], r["status"]) for r in failed] == [(dead, "connect_error")]
    # The re-run file names the (job, target) pair, and runs as it is.
    rerun = [json.loads(line) for line in (tmp_path / "rerun").read_text().splitlines()]
    assert rerun == [{"id": "1", "argv": ["true"], "target": dead}]


# --- --halt ---------------------------------------------------------------------------


def test_halt_now_fail_cancels_running_jobs_remotely(pool: Pool, tmp_path: Path) -> None:
    token = f"4{time.time_ns() % 10**6}.5"
    commands = "sleep 0.3; exit 1\n" + "".join(f"sleep {token}\n" for _ in range(5))
    started = time.monotonic()
    done = run_batch_cli(
        pool,
        "-H",
        pool.spec,
        "-j",
        "3",
        "--halt",
        "now,fail=1",
        "--results",
        str(tmp_path / "r.jsonl"),
        input=commands,
    )
    assert done.returncode == 4, done.stderr
    assert time.monotonic() - started < 15
    statuses = sorted(r["status"] for r in read_results(tmp_path / "r.jsonl"))
    assert statuses == ["cancelled", "cancelled", "failed", "skipped", "skipped", "skipped"]
    assert wait_until(lambda: not processes_with(token), 5)
    assert "halted by --halt" in done.stderr


def test_halt_soon_lets_running_jobs_finish(pool: Pool, tmp_path: Path) -> None:
    commands = "sleep 0.2; exit 1\nsleep 1; echo finished\necho never\necho never\n"
    done = run_batch_cli(
        pool,
        "-H",
        pool.spec,
        "-j",
        "2",
        "--halt",
        "soon,fail=1",
        "--results",
        str(tmp_path / "r.jsonl"),
        input=commands,
    )
    assert done.returncode == 4
    assert done.stdout == "finished\n"
    by_id = {r["id"]: r["status"] for r in read_results(tmp_path / "r.jsonl")}
    assert by_id == {"1": "failed", "2": "ok", "3": "skipped", "4": "skipped"}
    success = run_batch_cli(
        pool,
        "-H",
        pool.spec,
        "-j",
        "1",
        "--halt",
        "now,success=1",
        input="exit 3\necho yes\necho no\n",
    )
    assert success.returncode == 0 and success.stdout == "yes\n"


# --- records: joblog, results, resume ----------------------------------------------


def test_joblog_has_gnu_parallel_columns(pool: Pool, tmp_path: Path) -> None:
    log = tmp_path / "log.tsv"
    done = run_batch_cli(
        pool, "-H", pool.label(1), "--joblog", str(log), input="printf abc\nexit 5\nkill -9 $$\n"
    )
    assert done.returncode == 2
    assert log.read_text().splitlines()[0] == GNU_PARALLEL_JOBLOG_HEADER
    rows = {row["Seq"]: row for row in read_joblog(log)}
    assert {k: (v["Exitval"], v["Signal"]) for k, v in rows.items()} == {
        "1": ("0", "0"),
        "2": ("5", "0"),
        "3": ("-1", "9"),
    }
    first = rows["1"]
    assert first["Host"] == pool.label(1) and first["Command"] == "printf abc"
    assert first["Receive"] == "3" and first["Send"] == "0"
    assert abs(float(first["Starttime"]) - time.time()) < 60
    assert 0 <= float(first["JobRuntime"]) < 10 and len(first["JobRuntime"]) == 10


def test_a_new_run_starts_the_joblog_afresh_as_gnu_parallel(pool: Pool, tmp_path: Path) -> None:
    """Only --resume appends; a second plain run does not pile onto the
    first one's lines (which --resume would then take for done)."""
    log = tmp_path / "log.tsv"
    for commands in ("echo one\necho two\n", "echo three\n"):
        done = run_batch_cli(pool, "-H", pool.label(1), "--joblog", str(log), input=commands)
        assert done.returncode == 0, done.stderr
    assert log.read_text().count("Seq\t") == 1
    assert [row["Command"] for row in read_joblog(log)] == ["echo three"]


def test_results_schema_with_jsonl_input_and_binary_output(pool: Pool, tmp_path: Path) -> None:
    jobs = [
        {"id": "bin", "shell": "printf '\\377\\376ok'; echo err >&2"},
        {
            "id": "argv",
            "argv": ["sh", "-c", "pwd; echo $GREETING"],
            "cwd": "/tmp",
            "env": {"GREETING": "héllo"},
        },
        {"id": "slow", "shell": "sleep 5", "timeout": 0.3},
        {"id": "missing", "argv": ["/no/such/program"]},
    ]
    done = run_batch_cli(
        pool,
        "-H",
        pool.spec,
        "--jsonl",
        "--results",
        str(tmp_path / "r.jsonl"),
        input="".join(json.dumps(j) + "\n" for j in jobs),
        text=False,
    )
    assert done.returncode == 2, done.stderr
    records = {r["id"]: r for r in read_results(tmp_path / "r.jsonl")}
    for record in records.values():
        assert set(record) == RESULT_FIELDS and record["schema"] == 1
    binary = records["bin"]
    assert binary["stdout_encoding"] == "base64"
    assert base64.b64decode(binary["stdout"]) == b"\xff\xfeok"
    assert (binary["stderr"], binary["stderr_encoding"]) == ("err\n", "utf-8")
    assert binary["stdout_bytes"] == 4 and binary["status"] == "ok" and binary["attempt"] == 1
    assert records["argv"]["stdout"] == "/tmp\nhéllo\n"
    assert records["argv"]["shell"] is None and records["argv"]["argv"][0] == "sh"
    assert records["slow"]["status"] == "timeout" and records["slow"]["signal"] is not None
    missing = records["missing"]
    assert (missing["status"], missing["exit_code"], missing["error_code"]) == (
        "failed",
        127,
        "spawn.not_found",
    )


def test_resume_runs_exactly_the_missing_jobs(pool: Pool, tmp_path: Path) -> None:
    marks, log = tmp_path / "marks", tmp_path / "log.tsv"
    marks.mkdir()
    flag = tmp_path / "fail-3"
    flag.touch()
    commands = tmp_path / "cmds"
    commands.write_text(
        "".join(
            f"echo x >> {marks}/{i}; " + (f"test ! -e {flag}\n" if i == 3 else "true\n")
            for i in range(1, 7)
        )
    )
    first = run_batch_cli(
        pool,
        "-H",
        pool.spec,
        "-j",
        "1",
        "--halt",
        "soon,fail=1",
        "--joblog",
        str(log),
        "--rerun-file",
        str(tmp_path / "rerun"),
        str(commands),
    )
    assert first.returncode == 4
    assert marker_counts(marks) == {"1": 1, "2": 1, "3": 1}
    # The re-run file: the failed and the skipped, as command lines.
    assert len((tmp_path / "rerun").read_text().splitlines()) == 4
    resumed = run_batch_cli(pool, "-H", pool.spec, "--resume", "--joblog", str(log), str(commands))
    assert resumed.returncode == 0, resumed.stderr
    assert marker_counts(marks) == {"1": 1, "2": 1, "3": 1, "4": 1, "5": 1, "6": 1}
    flag.unlink()
    again = run_batch_cli(
        pool, "-H", pool.spec, "--resume-failed", "--joblog", str(log), str(commands)
    )
    assert again.returncode == 0, again.stderr
    assert marker_counts(marks) == {"1": 1, "2": 1, "3": 2, "4": 1, "5": 1, "6": 1}
    seqs = [row["Seq"] for row in read_joblog(log)]
    assert (
        seqs[:3] == ["1", "2", "3"] and sorted(seqs[3:6]) == ["4", "5", "6"] and seqs[6:] == ["3"]
    )


def test_exit_status_table(pool: Pool) -> None:
    def status(*commands: str, extra: tuple[str, ...] = ()) -> int:
        return run_batch_cli(
            pool,
            "-H",
            pool.spec,
            "--timeout",
            "0.5",
            *extra,
            input="".join(c + "\n" for c in commands),
        ).returncode

    assert status("true", "true") == 0
    assert status("true", "exit 3") == 1
    assert status("exit 3", "sleep 5") == 2
    assert status("exit 3", "true", extra=("-H", f"127.0.0.9:{pool.port}", "--onall")) == 3
    assert run_batch_cli(pool, "-H", "bad[").returncode == 255
    assert run_batch_cli(pool, "-H", pool.spec, "--jsonl", input="{oops\n").returncode == 255
    assert run_batch_cli(pool, "-H", pool.spec, "--", "echo", "{2}", ":::", "a").returncode == 255


# --- Ctrl-C ------------------------------------------------------------------------------


def test_ctrl_c_cancels_remote_processes_and_writes_the_logs(pool: Pool, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    token = f"6{time.time_ns() % 10**6}.75"
    commands = tmp_path / "cmds"
    commands.write_text("".join(f"echo x >> {marks}/{i}; sleep {token}\n" for i in range(1, 11)))
    results, log = tmp_path / "r.jsonl", tmp_path / "log.tsv"
    process = subprocess.Popen(
        batch_argv(
            pool,
            "-H",
            pool.spec,
            "-j",
            "6",
            "--results",
            str(results),
            "--joblog",
            str(log),
            str(commands),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(lambda: len(processes_with(token)) == 6)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert wait_until(lambda: not processes_with(token), 5)
    statuses = sorted(r["status"] for r in read_results(results))
    assert statuses == ["cancelled"] * 6 + ["skipped"] * 4
    rows = read_joblog(log)
    assert len(rows) == 6 and {(r["Exitval"], r["Signal"]) for r in rows} == {("-1", "15")}
    assert "interrupted" in err


def test_rerun_file_runs_exactly_the_failed_jobs_whatever_their_arguments(
    pool: Pool, tmp_path: Path
) -> None:
    # Attacker III, F11: an argument with a newline made the re-run file's
    # second line a command of its own.
    evil, out = tmp_path / "evil", tmp_path / "out"
    arguments = [
        f"a'\ntouch {evil} #",
        "tab\there",
        'quote"s $(touch ' + str(evil) + ") `x` \\back\\slash\r",
        "plain",
    ]
    template = f"printf '%s|' {{}} >> {out}; test {{}} = plain"
    first = run_batch_cli(
        pool, "-H", pool.spec, "-j", "1", "--rerun-file", str(tmp_path / "rerun"),
        "--", template, ":::", *arguments,
    )  # fmt: skip
    assert first.returncode != 0
    assert out.read_bytes() == "".join(f"{argument}|" for argument in arguments).encode()
    rerun = tmp_path / "rerun"
    assert rerun.read_bytes().count(b"\n") == 3  # one line per failed job
    out.unlink()
    again = run_batch_cli(pool, "-H", pool.spec, "-j", "1", str(rerun))
    assert again.returncode != 0  # the same three jobs fail again
    assert not evil.exists()
    assert out.read_bytes() == "".join(f"{argument}|" for argument in arguments[:3]).encode()
