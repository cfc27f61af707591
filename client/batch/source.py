"""Where a batch pulls its jobs from, a few at a time, so that the input is
never held whole (a huge or endless input costs a bounded amount of memory).

``JobSource.take(n)`` returns up to ``n`` jobs (at least one, unless the
input has ended: then ``[]``); errors of the input (``JobInputError``) are
raised from it when the bad record is reached.

* ``IterableSource``: an in-memory iterable (strings, argv lists or ``Job``s;
  ids are the 1-based positions unless a ``Job`` brings its own);
* ``AsyncIterableSource``: the same from an async iterable;
* ``ThreadedSource``: a blocking iterator (a file, stdin) read in a daemon
  thread into a bounded queue, so a slow pipe never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Protocol

from .jobs import Job

Command = str | list[str] | tuple[str, ...] | Job

_QUEUE_SIZE = 1024
_END = object()


class JobSource(Protocol):
    async def take(self, n: int) -> list[Job]: ...


class IterableSource:
    def __init__(self, commands: Iterable[Command]) -> None:
        self._numbered: Iterator[Job] = (
            Job.of(command, str(number)) for number, command in enumerate(commands, 1)
        )

    async def take(self, n: int) -> list[Job]:
        return list(itertools.islice(self._numbered, n))


class AsyncIterableSource:
    def __init__(self, commands: AsyncIterable[Command]) -> None:
        self._iterator: AsyncIterator[Command] = aiter(commands)
        self._count = 0

    async def take(self, n: int) -> list[Job]:
        jobs: list[Job] = []
        async for command in self._iterator:
            self._count += 1
            jobs.append(Job.of(command, str(self._count)))
            if len(jobs) >= n:
                break
        return jobs


class ThreadedSource:
    """Reads ``jobs`` (a blocking iterator) in a daemon thread."""

    def __init__(self, jobs: Iterator[Job]) -> None:
        self._queue: queue.Queue[object] = queue.Queue(_QUEUE_SIZE)
        self._loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        self._waiting = False
        self._ended = False
        threading.Thread(target=self._read, args=(jobs,), daemon=True, name="batch-input").start()

    def _read(self, jobs: Iterator[Job]) -> None:
        try:
            for job in jobs:
                self._put(job)
            self._put(_END)
        except BaseException as exc:  # handed to the event loop, raised by take()
            self._put(exc)

    def _put(self, item: object) -> None:
        self._queue.put(item)
        if self._waiting:
            self._loop.call_soon_threadsafe(self._ready.set)

    async def take(self, n: int) -> list[Job]:
        jobs: list[Job] = []
        while not self._ended and len(jobs) < n:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                if jobs:
                    break
                self._ready.clear()
                self._waiting = True
                if self._queue.empty():
                    await self._ready.wait()
                self._waiting = False
                continue
            if item is _END:
                self._ended = True
            elif isinstance(item, BaseException):
                self._ended = True
                if jobs:  # report the good jobs first; the error comes next time
                    self._queue.put(item)
                    self._ended = False
                    break
                raise item
            else:
                jobs.append(item)  # type: ignore[arg-type]
        return jobs


def source_of(jobs: Iterable[Command] | AsyncIterable[Command] | JobSource) -> JobSource:
    """The right source for what ``run_batch`` was given."""
    if hasattr(jobs, "take"):
        return jobs  # type: ignore[return-value]
    if isinstance(jobs, AsyncIterable):
        return AsyncIterableSource(jobs)
    return IterableSource(jobs)
