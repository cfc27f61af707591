"""The progress line on a terminal (outsider5 F11): it shows from the start,
while no job has ended yet, not only when results come."""

from __future__ import annotations

import os
from pathlib import Path

import pexpect

from .conftest import CLI_TIMEOUT, Pool, batch_argv


def test_the_progress_line_shows_before_any_job_ends(pool: Pool, tmp_path: Path) -> None:
    release = tmp_path / "release"
    gate = f"for i in $(seq 1200); do test -e {release} && break; sleep 0.05; done"
    program, *args = batch_argv(pool, "-H", pool.spec, "-j", "2", "--", f"{gate}; echo {{}}")
    child = pexpect.spawn(
        program,
        [*args, ":::", "a", "b", "c"],
        env={**os.environ, "TERM": "xterm"},
        encoding="utf-8",
        timeout=CLI_TIMEOUT,
    )
    try:
        # Two jobs running, none ended: the line says so already.
        child.expect_exact("rexec batch: 0/3 ok 0 failed 0 running 2")
        release.touch()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    assert "rexec batch: 3 jobs in " in child.before
