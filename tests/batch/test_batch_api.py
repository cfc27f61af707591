"""The Python API: ``run_batch`` and ``run_batch_sync`` against real servers."""

from __future__ import annotations

import asyncio

from rexec_client.batch import Job, Status, run_batch, run_batch_sync

from .conftest import Pool


def test_run_batch_sync_yields_results_as_jobs_finish(pool: Pool) -> None:
    targets = [pool.label(i) for i in range(3)]
    results = list(
        run_batch_sync(
            ["sleep 0.4; echo slow", ["echo", "fast"], Job(id="j", shell="sleep 0.2; exit 2")],
            targets,
            key_file=pool.key_file,
        )
    )
    assert [r.job.id for r in results] == ["2", "j", "1"]  # in the order they ended
    assert [r.status for r in results] == [Status.OK, Status.FAILED, Status.OK]
    assert results[0].stdout == b"fast\n" and results[2].stdout == b"slow\n"


def test_run_batch_async_onall_with_halt(pool: Pool) -> None:
    async def collect() -> list:
        return [
            r
            async for r in run_batch(
                ["echo hi"],
                [pool.label(i) for i in range(3)],
                key_file=pool.key_file,
                onall=True,
                halt="now,done=3",
                per_host=1,
            )
        ]

    results = asyncio.run(collect())
    assert sorted(str(r.target) for r in results) == sorted(pool.label(i) for i in range(3))
    assert {r.stdout for r in results} == {b"hi\n"}


def test_delay_spaces_the_starts_and_per_host_bounds_each_server(pool: Pool) -> None:
    results = list(
        run_batch_sync(
            ["sleep 0.3"] * 4,
            [pool.label(0)],
            key_file=pool.key_file,
            delay=0.25,
            per_host=2,
        )
    )
    starts = sorted(r.start for r in results)
    assert all(b - a >= 0.2 for a, b in zip(starts, starts[1:], strict=False))
    # per_host=2 with 0.3 s jobs started 0.25 s apart: the third waits for the first.
    assert {r.status for r in results} == {Status.OK}
