"""Nothing a batch was given is lost without a word (outsider5 F18, F19):
a bad ``--port`` or a ``--resume`` without its joblog is one usage line
(exit 255, as every usage error), and an attempt that fails in a way nobody
foresaw is a failed job with its cause, never a job dropped with exit 0."""

from __future__ import annotations

from pathlib import Path

from rexec_client.address import Address
from rexec_client.batch import Status, run_batch_sync

from .conftest import Pool, run_batch_cli


def test_a_port_out_of_range_is_a_usage_error(pool: Pool, tmp_path: Path) -> None:
    log = tmp_path / "log.tsv"
    for port in ("65536", "99999", "0"):
        done = run_batch_cli(
            pool, "--onall", "-w", "127.0.0.2", "--port", port, "--joblog", str(log), "--", "true"
        )
        assert (done.returncode, done.stdout) == (255, ""), done.stderr
        (line,) = done.stderr.splitlines()
        assert f"expected a port number from 1 to 65535, got '{port}'" in line, line
    assert not log.exists()  # nothing started


def test_resume_without_a_joblog_is_a_usage_error(pool: Pool) -> None:
    for option in ("--resume", "--resume-failed"):
        done = run_batch_cli(pool, "-w", pool.spec, option, input="echo 1\n")
        assert (done.returncode, done.stdout) == (255, ""), done.stderr
        assert done.stderr == f"rexec: {option} needs --joblog FILE (the log to resume from)\n"


def test_an_attempt_that_raises_is_a_failed_job_not_a_lost_one(pool: Pool) -> None:
    """Through the library an address is taken as given: a port no socket
    can have makes connecting raise; every job still has its result."""
    results = list(
        run_batch_sync(
            ["echo 1", "echo 2", "echo 3"],
            [Address(pool.servers[0].host, 65536)],
            key_file=pool.key_file,
            max_running=1,
        )
    )
    assert len(results) == 3
    first, *rest = sorted(results, key=lambda r: r.job.id)
    assert (first.status, first.error_code) == (Status.FAILED, "client.error")
    assert first.error == (
        "rexec could not run it: ValueError: bad port 65536: "
        "the port must be a number from 1 to 65535"
    )
    # The server was dropped: the others never started anywhere.
    assert {(r.status, r.error, r.started) for r in rest} == {
        (Status.CONNECT_ERROR, "not started: every server was dropped", False)
    }
