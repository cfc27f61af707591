"""The audit log hands records queued on the event loop to its writer thread
in batches (``HAND_OVER_DELAY``): every record still reaches the file, in
order, with nothing else happening after it, at a flush, and at close."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from rexec.server.audit import AuditLog

#: Generous: the file is written by a thread on a machine shared with others.
WAIT = 10.0


def _events(path: Path) -> list[tuple[str, int]]:
    lines = path.read_text().splitlines()
    return [(record["event"], record["id"]) for record in map(json.loads, lines)]


async def _written(path: Path, count: int) -> list[tuple[str, int]]:
    """The records once ``count`` are in the file (bounded by ``WAIT``)."""
    async with asyncio.timeout(WAIT):
        while len(events := _events(path)) < count:
            await asyncio.sleep(0.01)
    return events


def test_records_queued_on_the_loop_are_written_in_order_with_nothing_after(
    tmp_path: Path,
) -> None:
    """The last records of a burst are written though nothing follows them."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path))

    async def go() -> list[tuple[str, int]]:
        for n in range(3):
            log.write("exec", id=n)
            log.try_write("exit", id=n)
        return await _written(path, 6)

    try:
        events = asyncio.run(go())
    finally:
        log.close()
    assert events == [(event, n) for n in range(3) for event in ("exec", "exit")]


def test_a_flush_from_a_thread_waits_for_records_the_loop_has_not_handed_over(
    tmp_path: Path,
) -> None:
    """The daemon's shutdown flushes from a worker thread while its loop runs."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path))

    async def go() -> bool:
        log.write("exec", id=1)
        return await asyncio.to_thread(log.flush, WAIT)

    try:
        assert asyncio.run(go()) is True
        assert _events(path) == [("exec", 1)]
    finally:
        log.close()


def test_close_writes_records_queued_just_before_the_loop_stopped(tmp_path: Path) -> None:
    """A record queued in the loop's last instant (before the hand-over timer
    could fire) is written when the log is closed."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path))

    async def go() -> None:
        log.try_write("exit", id=7)  # the loop ends before HAND_OVER_DELAY passes

    asyncio.run(go())
    log.close(WAIT)
    assert _events(path) == [("exit", 7)]


def test_records_queued_without_a_loop_are_handed_over_at_once(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path))
    try:
        log.write("exec", id=3)
        assert log.flush(WAIT) is True
        assert _events(path) == [("exec", 3)]
    finally:
        log.close()


def test_records_of_a_later_event_loop_are_written_too(tmp_path: Path) -> None:
    """A loop that stopped with records pending (its hand-over never ran)
    does not hold back the records a later loop queues."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path))

    async def first() -> None:
        log.try_write("exit", id=1)

    async def second() -> list[tuple[str, int]]:
        log.try_write("exit", id=2)
        return await _written(path, 2)

    try:
        asyncio.run(first())
        assert asyncio.run(second()) == [("exit", 1), ("exit", 2)]
    finally:
        log.close()


def test_a_loop_busy_for_longer_than_the_timeout_is_not_taken_for_a_stuck_log(
    tmp_path: Path,
) -> None:
    """A thousand commands started in one turn of the loop queue their records
    without the loop ever waiting: the hand-over timer can't fire meanwhile,
    and the log looked stuck (records older than ``timeout`` unwritten), so
    new commands were refused with audit.unavailable (tests/hardening's 1000
    connections under load). Records are handed over as they age instead."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path), timeout=0.1)

    async def go() -> int:
        written, busy_until = 0, time.monotonic() + 0.5
        while time.monotonic() < busy_until:  # one turn: never awaits
            log.write("exec", id=written)  # raises AuditError if the log looks stuck
            written += 1
            time.sleep(0.001)
        return written

    try:
        count = asyncio.run(go())
    finally:
        log.close()
    assert len(_events(path)) == count
