"""The batch scheduler: runs jobs on servers, as many at once as allowed,
and yields each job's final result as it finishes.

Contract:

* At most ``max_running`` attempts run at once, at most ``Server.limit`` on
  one server; each server has one connection, shared by its jobs; at most
  ``fanout`` connections are open at once (``servers``): a job whose server
  can't get a connection slot waits, and never holds a running slot while
  it waits.
* The input is pulled ahead by at most ``lookahead`` work items, never whole.
* A job is *spread* (it goes to the least-loaded server with room) unless it
  is *pinned*: ``--onall`` pins one copy of each job to every target, and a
  job with ``target`` is pinned there.
* Every work item pulled from the input yields exactly one ``JobResult``,
  after its last attempt: nothing is lost, nothing reported twice.
* Dead servers (``attempt``): a server that can't be reached, whose
  connection is lost, or that refuses a command saying it will run none
  (shutting down: ``NOT_RUN_HERE``) is *dropped* (``dropped``): it gets no
  more spread jobs. A spread job whose server could not be reached or
  refused it so never ran, so it goes back to the queue for the others,
  uncounted; when every server is dropped (and none may be revived) it
  fails, ``NO_SERVER_LEFT``. A job
  whose command was sent before its connection was lost may have run: it
  ends ``connect_error``, rerun only within ``retries`` (a command need not
  be idempotent: running it twice is the user's call). A pinned job whose
  server is dropped fails with the server's reason.
* Retries: a transport failure (``connect_error``, ``protocol_error``) is
  retried up to ``retries`` times; with ``retry_failed`` a command failure
  (``failed``, ``signal``, ``timeout``) is too. A spread job prefers a server
  it has not tried yet. A pinned job stays on its server, which may be
  reconnected (``Server.revive``) within the same budget.
* ``--halt``: after a final result the policy is checked; ``soon`` stops
  starting jobs, ``now`` also cancels the running ones remotely (``cancel``
  frames: the server kills their process groups).
* ``cancel()`` (Ctrl-C) does what ``halt now`` does. The attempts that were
  running report ``cancelled`` once the server confirms; ones still
  connecting, and items never started, report ``skipped``. If the servers
  don't confirm within ``cancel_grace`` seconds, the connections are closed
  (the servers then kill the commands, ``[disconnect.kill]``).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator, Callable

from ..address import Address
from ..errors import RexecConnectionError
from .attempt import AttemptRunner, Busy, NotStarted, OutputCallback, WorkItem, aborted, failure
from .halt import HaltPolicy
from .jobs import Job, JobInputError
from .options import BatchOptions
from .outcome import JobResult, Status
from .pending import PendingWork
from .servers import Server, ServerPool
from .source import JobSource

#: ``skip(job, target)``: True for work already done (``--resume``);
#: ``target`` is None for a spread job.
SkipPredicate = Callable[[Job, Address | None], bool]
#: Why a spread job fails when every server was dropped before it could start.
NO_SERVER_LEFT = "not started: every server was dropped"


class Batch:
    """One batch run. Iterate ``results()`` once; ``cancel()`` any time."""

    def __init__(
        self,
        source: JobSource,
        pool: ServerPool,
        options: BatchOptions,
        *,
        on_output: OutputCallback | None = None,
        skip: SkipPredicate | None = None,
    ) -> None:
        self._source = source
        self._pool = pool
        self.options = options
        self._skip = skip
        self._runner = AttemptRunner(
            options, on_output, cancelling=lambda: self._cancelling, cancel=self._cancel_item
        )
        self._dropped: dict[Server, None] = {}
        self._lookahead = options.lookahead or max(
            1024, 4 * options.running_limit, 2 * len(pool.targets)
        )
        self._pending = PendingWork(pool)
        self._order = 0
        self._running: set[WorkItem] = set()
        self._results: asyncio.Queue[JobResult | None] = asyncio.Queue(
            max(64, 2 * options.running_limit)
        )
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        pool.on_slot_free = self._wake.set
        self._input_done = False
        self._feeder: asyncio.Task[None] | None = None
        self._next_start = 0.0
        #: Why the batch stopped starting jobs early: None, "halt", "interrupt", "input".
        self.stopped: str | None = None
        self.halted_by: HaltPolicy | None = None
        self.input_error: JobInputError | None = None
        self._cancelling = False
        self._closed = False
        self.succeeded = 0
        self.failed = 0
        self.counts: collections.Counter[Status] = collections.Counter()

    # --- public -------------------------------------------------------------

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def fanout_note(self) -> str | None:
        """Why the fanout was lowered during the run (out of descriptors), if it was."""
        return self._pool.fanout_note

    @property
    def dropped(self) -> list[tuple[Address, str]]:
        """The target servers found unreachable or lost during the run, and
        why, in the order they were dropped (a server revived and up again
        is not; one only named by a pinned job reports through that job)."""
        return [(s.address, s.down) for s in self._dropped if s.down is not None and s.spread]

    async def results(self) -> AsyncIterator[JobResult]:
        """Each job's final result, as jobs finish.

        Raises:
            JobInputError: a bad input record (after the results of every job
                read before it; no job after it is started).
        """
        self._feeder = feeder = asyncio.create_task(self._feed(), name="batch-feed")
        dispatcher = asyncio.create_task(self._dispatch(), name="batch-dispatch")
        try:
            while (result := await self._results.get()) is not None:
                yield result
            await dispatcher
        finally:
            self._closed = True
            tasks = [feeder, dispatcher, *(i.task for i in self._running if i.task)]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._pool.close()
        if self.input_error is not None:
            raise self.input_error

    def cancel(self, reason: str = "interrupt") -> None:
        """Stop: cancel the running commands remotely, start nothing more."""
        self._stop(reason)
        if self._cancelling:
            return
        self._cancelling = True
        for item in list(self._running):
            self._cancel_item(item)
        self._wake.set()

    def abort(self) -> None:
        """Cancel without waiting for the servers: close every connection now
        (a second Ctrl-C)."""
        self.cancel()
        for server in self._pool.servers:
            server.mark_down("the batch was aborted")
        for item in list(self._running):
            if item.task is not None:
                item.task.cancel()

    # --- input --------------------------------------------------------------

    async def _feed(self) -> None:
        try:
            while self.stopped is None:
                if self._pending.count >= self._lookahead:
                    self._room.clear()
                    await self._room.wait()
                    continue
                jobs = await self._source.take(min(256, self._lookahead - self._pending.count))
                if not jobs:
                    break
                for job in jobs:
                    self._enqueue_job(job)
                self._wake.set()
        except JobInputError as exc:
            self.input_error = exc
            self._stop("input")
        except OSError as exc:  # the input failed while being read
            self.input_error = JobInputError(f"cannot read the input: {exc.strerror or exc}")
            self._stop("input")
        finally:
            self._input_done = True
            self._wake.set()

    def _items_of(self, job: Job) -> list[tuple[Server | None, Address | None]]:
        if job.target is not None:
            server = self._pool.get(job.target)
            return [(server, server.address)]
        if self.options.onall:
            return [(server, server.address) for server in self._pool.targets]
        return [(None, None)]

    def _enqueue_job(self, job: Job) -> None:
        for server, address in self._items_of(job):
            if self._skip is not None and self._skip(job, address):
                continue
            self._order += 1
            self._pending.add(WorkItem(job, self._order, server))

    # --- dispatching ------------------------------------------------------------

    async def _dispatch(self) -> None:
        try:
            await self._dispatch_all()
        finally:
            if not self._closed:
                await self._results.put(None)

    async def _dispatch_all(self) -> None:
        while True:
            if self.stopped is not None:
                await self._skip_pending()
            else:
                await self._start_ready()
            if self._finished:
                break
            self._wake.clear()
            await self._wake.wait()
        if self.stopped is not None:
            await self._skip_pending()
            if self.options.report_unstarted and self.stopped != "input":
                await self._skip_rest_of_input()

    @property
    def _finished(self) -> bool:
        """Nothing runs, the input is read, and nothing pending will start."""
        idle = not self._running and self._input_done
        return idle and (self._pending.count == 0 or self.stopped is not None)

    async def _start_ready(self) -> None:
        """Start items while there is room."""
        while len(self._running) < self.options.running_limit and self.stopped is None:
            choice = self._pending.next_startable()
            if choice is None:
                return
            item, server = choice
            if server is None:  # nowhere to run it: it fails now
                self._take(item)
                item.attempt += 1
                why = (item.pinned.down if item.pinned else None) or NO_SERVER_LEFT
                await self._final(item, failure(item, item.pinned, Status.CONNECT_ERROR, why))
                continue
            if self.options.delay:
                now = time.monotonic()
                if now < self._next_start:
                    asyncio.get_running_loop().call_at(self._next_start, self._wake.set)
                    return
                self._next_start = now + self.options.delay
            self._take(item)
            self._launch(item, server)

    def _take(self, item: WorkItem) -> None:
        """Remove ``item`` (the head of its queue) from the pending items."""
        self._pending.take(item)
        self._room.set()

    def _launch(self, item: WorkItem, server: Server) -> None:
        item.attempt += 1
        item.tried.append(server)
        self._pool.reserve(server)
        server.running += 1
        self._pool.changed(server)
        if not server.has_room:
            self._pending.server_full(server)
        self._running.add(item)
        item.task = asyncio.create_task(self._attempt(item, server))

    async def _attempt(self, item: WorkItem, server: Server) -> None:
        """One attempt of ``item`` on ``server``. The server's slot is freed
        when the attempt ends; the global slot only once its result is
        handed over, so a slow consumer of ``results()`` slows the batch
        instead of piling up results."""
        released = False

        def release_server() -> None:
            nonlocal released
            if not released:
                released = True
                server.running -= 1
                server.drained()
                self._pool.changed(server)
                self._pending.mark_ready(server)
                self._wake.set()

        try:
            try:
                result: JobResult | None = await self._runner.run(item, server)
            except Busy:
                result = None
                item.tried.pop()  # the server may take it later
            except NotStarted as exc:
                result = None if self._elsewhere(item) else exc.result
            except asyncio.CancelledError:
                if self._closed:
                    raise
                result = aborted(item, server)
            if server.down is not None and not self._cancelling:
                self._dropped[server] = None
            release_server()
            if result is None:  # again, later, not counted as an attempt
                item.attempt -= 1
                self._pending.add(item, first=True)
            elif self._should_retry(result):
                self._pending.add(item, first=True)
            else:
                await self._final(item, result)
        finally:
            release_server()
            self._running.discard(item)
            self._wake.set()

    def _elsewhere(self, item: WorkItem) -> bool:
        """Whether a job whose server could not be reached goes back to the
        queue, for the servers still up (as a scheduler requeues, and GNU
        parallel's ``--filter-hosts`` drops dead hosts): a spread job does;
        a pinned one has nowhere else to go."""
        return item.pinned is None and self.stopped is None

    def _should_retry(self, result: JobResult) -> bool:
        if self.stopped is not None or result.attempt > self.options.retries:
            return False
        return result.status.is_transport or (
            self.options.retry_failed and result.status.is_command_failure
        )

    async def _final(self, item: WorkItem, result: JobResult) -> None:
        self.counts[result.status] += 1
        if result.status is Status.OK:
            self.succeeded += 1
        elif result.status not in (Status.CANCELLED, Status.SKIPPED):
            self.failed += 1
        halt = self.options.halt
        if (
            halt is not None
            and self.stopped is None
            and halt.triggered(self.succeeded, self.failed, self.options.total)
        ):
            self.halted_by = halt
            if halt.now:
                self.cancel("halt")
            else:
                self._stop("halt")
        if not self._closed:
            await self._results.put(result)

    def _stop(self, reason: str) -> None:
        if self.stopped is None:
            self.stopped = reason
        if reason != "input" and self._feeder is not None:
            # No more jobs start: stop waiting for a slow input (a pipe, the
            # terminal). A take() waiting for input holds no job, and what a
            # finite input has left is read again to report it skipped.
            self._feeder.cancel()
        self._room.set()
        self._wake.set()

    def _cancel_item(self, item: WorkItem) -> None:
        if item.process is not None:
            try:
                item.process.cancel()
            except RexecConnectionError:
                pass  # its connection is gone: the command ends as lost
        elif item.connecting and item.task is not None:
            item.task.cancel()
        asyncio.get_running_loop().call_later(self.options.cancel_grace, self._give_up, item)

    def _give_up(self, item: WorkItem) -> None:
        """The server did not confirm a cancel in time: drop its connection."""
        if item in self._running and item.tried:
            item.tried[-1].mark_down(f"no answer within {self.options.cancel_grace:g} s")

    async def _skip_pending(self) -> None:
        for item in self._pending.drain():
            await self._final(item, failure(item, None, Status.SKIPPED, None))

    async def _skip_rest_of_input(self) -> None:
        try:
            while jobs := await self._source.take(256):
                for job in jobs:
                    self._enqueue_job(job)
                await self._skip_pending()
        except JobInputError as exc:
            self.input_error = exc
