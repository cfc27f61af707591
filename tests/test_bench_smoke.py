"""bench/run.py, run end to end with tiny sizes so it cannot rot. Speed is
never judged here (that is bench/'s job); only that every row of issue 15's
table is measured or skipped with a reason, and that verdicts are printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ISSUE_ROWS = (
    "warm `true` round trip, client library",
    "`true` at 16 concurrent, client library",
    "cold `rexec run HOST true` from a shell",
    "pty keystroke echo",
    "put of 1 MiB (tmpfs) vs scp",
    "get of 1 MiB (tmpfs) vs sftp",
    "1 MiB of stdout, client library",
    "server peak RSS in all of these",
    "client (put/get) peak RSS in all of these",
)


@pytest.mark.bench
@pytest.mark.timeout(180)
def test_run_py_prints_issue_15s_table_with_verdicts() -> None:
    mib = str(1 << 20)
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            "--quick",
            "--only",
            "local,rexec-lib",
            "--bulk-bytes",
            mib,
            "--xfer-bytes",
            mib,
            "--echo-samples",
            "3",
            "--conc-seconds",
            "0.2",
            "--retries",
            "0",
            "--budget",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=170,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = proc.stdout.split("\n\n")[1]
    for what in ISSUE_ROWS:
        line = next((row for row in table.splitlines() if what in row), None)
        assert line is not None, f"no row {what!r} in:\n{table}"
        cells = [cell.strip() for cell in line.split("|")]
        # Each measured row ends in a verdict; a reference that could not run
        # (no OpenSSH here) leaves its ratio unmeasured and is listed as skipped.
        assert cells[-2] in ("**met**", "**not met**") or (
            "not measured" in line and "skipped" in proc.stdout
        ), line
    assert "FAILED" not in proc.stderr, proc.stderr[-2000:]
