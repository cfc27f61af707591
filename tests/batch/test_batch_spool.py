"""``rexec batch`` holds the output of running and unprinted jobs in
bounded memory: past a budget it goes to a temporary file in $TMPDIR (as
GNU parallel buffers there), which never outlives the batch, Ctrl-C
included. The real CLI against real ``rexecd`` servers."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

from .conftest import CLI_TIMEOUT, Pool, batch_argv, peak_rss_kib, run_batch_cli

MiB = 1 << 20


def _spool_files(pid: int, directory: Path) -> list[str]:
    """The files ``pid`` holds open in ``directory``."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith(f"{directory}/"):
            found.append(target)
    return found


def _wait_exit(process: subprocess.Popen, timeout: float) -> tuple[int, int]:
    """Wait for ``process``; its exit status and peak RSS in KiB (sampled
    every 10 ms: the peak only grows, so a late sample catches it)."""
    deadline = time.monotonic() + timeout
    peak = 0
    while True:
        peak = max(peak, peak_rss_kib(process.pid))
        pid, status, _ = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, peak
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise AssertionError("rexec batch did not finish")
        time.sleep(0.01)


def test_big_outputs_do_not_grow_the_client(pool: Pool, tmp_path: Path) -> None:
    """Four jobs print 32 MiB each at once: the client's peak memory stays
    far below the 128 MiB it prints, the output is exact and in order (-k),
    and nothing is left in $TMPDIR."""
    spool_dir, out = tmp_path / "tmp", tmp_path / "out"
    spool_dir.mkdir()
    size = 32 * MiB
    commands = "".join(f"yes job{i} | head -c {size}\n" for i in range(1, 5))
    with open(out, "wb") as stdout, open(tmp_path / "err", "wb") as stderr:
        process = subprocess.Popen(
            batch_argv(pool, "-H", pool.spec, "-j", "4", "-k"),
            stdin=subprocess.PIPE,
            stdout=stdout,
            stderr=stderr,
            env={**os.environ, "TMPDIR": str(spool_dir)},
        )
        process.stdin.write(commands.encode())
        process.stdin.close()
        status, peak_kib = _wait_exit(process, CLI_TIMEOUT)
    assert status == 0, (tmp_path / "err").read_text()
    expected = hashlib.sha256()
    for i in range(1, 5):
        line = f"job{i}\n".encode()
        expected.update((line * (size // len(line) + 1))[:size])
    printed = hashlib.sha256()
    with open(out, "rb") as file:
        while chunk := file.read(MiB):
            printed.update(chunk)
    assert out.stat().st_size == 4 * size and printed.digest() == expected.digest()
    assert peak_kib < 96 * 1024, f"peak RSS {peak_kib // 1024} MiB for 128 MiB of output"
    assert os.listdir(spool_dir) == []


def test_ctrl_c_leaves_no_spooled_output_behind(pool: Pool, tmp_path: Path) -> None:
    spool_dir = tmp_path / "tmp"
    spool_dir.mkdir()
    commands = tmp_path / "cmds"
    commands.write_text("yes | head -c 4000000; sleep 60\n")
    process = subprocess.Popen(
        batch_argv(pool, "-H", pool.label(0), str(commands)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "TMPDIR": str(spool_dir)},
    )
    try:
        deadline = time.monotonic() + 30
        while not _spool_files(process.pid, spool_dir):
            assert process.poll() is None and time.monotonic() < deadline, "no spool file"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=CLI_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    assert os.listdir(spool_dir) == []


def test_spooled_output_prints_as_held_output_did(pool: Pool) -> None:
    """Tagged lines across the spool's chunks, and -b folding of spooled
    outputs, come out exactly as they always did."""
    count = 300_000  # about 2 MiB of lines: past the in-memory part
    numbers = "".join(f"{n}\n" for n in range(1, count + 1))
    tagged = run_batch_cli(pool, "--onall", "-H", pool.label(0), "--tag", "--", "seq", str(count))
    assert tagged.returncode == 0, tagged.stderr
    tag = f"{pool.label(0)} 1\t"
    assert tagged.stdout == "".join(tag + line + "\n" for line in numbers.splitlines())
    folded = run_batch_cli(pool, "--onall", "-H", pool.spec, "-b", "--", "seq", str(count))
    assert folded.returncode == 0, folded.stderr
    assert folded.stdout == f"---------------- 127.0.0.[2-4] (3)\n{numbers}"


def test_output_that_cannot_be_spooled_fails_the_job_not_silently(
    pool: Pool, tmp_path: Path
) -> None:
    """The spool file can't grow (here a 1 MiB file-size limit, as a full
    disk): the job is reported failed with why, never ok with its output
    cut short; the other jobs are unharmed."""

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (MiB, MiB))

    commands = tmp_path / "cmds"
    commands.write_text("yes | head -c 8000000\necho small\n")
    process = subprocess.Popen(
        batch_argv(pool, "-H", pool.label(0), "-k", "--results", "/dev/stdout", str(commands)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=small_files,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    out, err = process.communicate(timeout=CLI_TIMEOUT)
    assert process.returncode == 1, err
    records = [json.loads(line) for line in out.splitlines() if line.startswith(b"{")]
    by_id = {r["id"]: r for r in records}
    assert (by_id["1"]["status"], by_id["1"]["error_code"]) == ("failed", "output.lost")
    assert by_id["1"]["error"].startswith("its stdout was lost: cannot write the spool file: ")
    assert (by_id["2"]["status"], by_id["2"]["stdout"]) == ("ok", "small\n")
    assert "output.lost (1 failed; jobs 1)" in err.decode()
