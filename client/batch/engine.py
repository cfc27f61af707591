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
import dataclasses
import time
from collections.abc import AsyncIterator, Callable

from ..address import Address
from ..errors import RemoteCommandError, RexecConnectionError
from ..process import RemoteProcess
from ..result import RETURNCODE_BY_REFUSAL
from ..streams import OutputReader
from .descriptors import OutOfDescriptors
from .halt import HaltPolicy
from .jobs import Job, JobInputError
from .outcome import JobResult, Status, status_of, status_of_connection_error
from .servers import DEFAULT_FANOUT, Server, ServerPool
from .source import JobSource

#: ``on_output(job, target, stream, data)``: live output of an attempt
#: (``stream`` is "stdout" or "stderr"); ``data`` b"" marks the stream's end.
OutputCallback = Callable[[Job, Address, str, bytes], None]
#: ``skip(job, target)``: True for work already done (``--resume``);
#: ``target`` is None for a spread job.
SkipPredicate = Callable[[Job, Address | None], bool]

_READ_SIZE = 1 << 16
#: Commands running at once in a spread batch unless ``-j`` says otherwise.
DEFAULT_JOBS = 32


@dataclasses.dataclass(kw_only=True)
class BatchOptions:
    """How a batch runs (the CLI options of the same names)."""

    #: Commands running at once in all; None: ``DEFAULT_JOBS``, or with
    #: ``onall`` the fanout (pdsh and clush run as many commands as their
    #: fanout, one per connection). ``running_limit`` is the number in force.
    max_running: int | None = None
    per_host: int | None = None
    #: Connections open at once (None: one per server, never closed early).
    fanout: int | None = DEFAULT_FANOUT
    onall: bool = False
    timeout: float | None = None
    retries: int = 0
    retry_failed: bool = False
    halt: HaltPolicy | None = None
    delay: float = 0.0
    #: Keep each job's output in its result (else only ``on_output`` sees it).
    capture: bool = True
    #: The number of jobs when known (``--halt P%``, progress ETA).
    total: int | None = None
    #: After a halt or cancel, read the rest of the input to report it skipped
    #: (only for finite inputs).
    report_unstarted: bool = False
    cancel_grace: float = 10.0
    lookahead: int | None = None

    def __post_init__(self) -> None:
        if self.max_running is not None and self.max_running < 1:
            raise ValueError("max_running must be at least 1")
        if self.fanout is not None and self.fanout < 1:
            raise ValueError("fanout must be at least 1")
        if self.per_host is not None and self.per_host < 1:
            raise ValueError("per_host must be at least 1")
        if self.retries < 0 or self.delay < 0:
            raise ValueError("retries and delay must be >= 0")

    @property
    def running_limit(self) -> int:
        if self.max_running is not None:
            return self.max_running
        return self.fanout if self.onall and self.fanout is not None else DEFAULT_JOBS


@dataclasses.dataclass(slots=True, eq=False)
class _Item:
    job: Job
    order: int
    pinned: Server | None
    attempt: int = 0
    tried: list[Server] = dataclasses.field(default_factory=list)
    process: RemoteProcess | None = None
    task: asyncio.Task[None] | None = None
    connecting: bool = False


class _Busy(Exception):
    """The server refused the attempt as busy: run it again, uncounted."""


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
        self._on_output = on_output
        self._skip = skip
        self._lookahead = options.lookahead or max(
            1024, 4 * options.running_limit, 2 * len(pool.targets)
        )
        self._spread: collections.deque[_Item] = collections.deque()
        self._pinned: dict[Server, collections.deque[_Item]] = {}
        self._ready: dict[Server, None] = {}  # servers with pinned items and room (or down)
        self._blocked: dict[Server, None] = {}  # the same, waiting for a connection slot
        self._pending = 0
        self._order = 0
        self._running: set[_Item] = set()
        self._results: asyncio.Queue[JobResult | None] = asyncio.Queue(
            max(64, 2 * options.running_limit)
        )
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        pool.on_slot_free = self._wake.set
        self._input_done = False
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

    async def results(self) -> AsyncIterator[JobResult]:
        """Each job's final result, as jobs finish.

        Raises:
            JobInputError: a bad input record (after the results of every job
                read before it; no job after it is started).
        """
        feeder = asyncio.create_task(self._feed(), name="batch-feed")
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
                if self._pending >= self._lookahead:
                    self._room.clear()
                    await self._room.wait()
                    continue
                jobs = await self._source.take(min(256, self._lookahead - self._pending))
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
            self._enqueue(_Item(job, self._order, server))

    def _enqueue(self, item: _Item, *, first: bool = False) -> None:
        self._pending += 1
        if item.pinned is None:
            queue = self._spread
        else:
            queue = self._pinned.setdefault(item.pinned, collections.deque())
        if first:
            queue.appendleft(item)
        else:
            queue.append(item)
        if item.pinned is not None:
            item.pinned.pending += 1
            self._mark_ready(item.pinned)

    def _mark_ready(self, server: Server) -> None:
        if self._pinned.get(server) and (server.has_room or server.down is not None):
            self._ready[server] = None

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
            if not self._running and self._input_done and (self._pending == 0 or self.stopped):
                break
            self._wake.clear()
            await self._wake.wait()
        if self.stopped is not None:
            await self._skip_pending()
            if self.options.report_unstarted and self.stopped != "input":
                await self._skip_rest_of_input()

    async def _start_ready(self) -> None:
        """Start items while there is room."""
        while len(self._running) < self.options.running_limit and self.stopped is None:
            choice = self._next_startable()
            if choice is None:
                return
            item, server = choice
            if server is None:  # nowhere to run it: it fails now
                self._take(item)
                item.attempt += 1
                why = (item.pinned.down if item.pinned else None) or "no server is reachable"
                await self._final(item, self._failure(item, item.pinned, Status.CONNECT_ERROR, why))
                continue
            if self.options.delay:
                now = time.monotonic()
                if now < self._next_start:
                    asyncio.get_running_loop().call_at(self._next_start, self._wake.set)
                    return
                self._next_start = now + self.options.delay
            self._take(item)
            self._launch(item, server)

    def _next_startable(self) -> tuple[_Item, Server | None] | None:
        """The next item to start and where (None as server: it can't run)."""
        while True:
            found = self._next_pinned()
            if found is not None:
                return found
            if not self._blocked or not self._pool.can_reserve(next(iter(self._blocked))):
                break
            # A slot is free: the longest-waiting server gets the next try.
            server = next(iter(self._blocked))
            del self._blocked[server]
            if self._pinned.get(server):
                self._ready[server] = None
        if self._spread:
            item = self._spread[0]
            chosen = self._pool.least_loaded(item.tried)
            if chosen is None and self._pool.all_down:
                for candidate in self._pool.targets:
                    if candidate.revive():
                        return (item, candidate) if self._pool.can_reserve(candidate) else None
                return item, None
            if chosen is not None:
                return item, chosen
        return None

    def _next_pinned(self) -> tuple[_Item, Server | None] | None:
        """The next pinned item whose server has room and a connection slot
        (round robin over the servers), or one that must fail."""
        while self._ready:
            server = next(iter(self._ready))
            del self._ready[server]
            queue = self._pinned.get(server)
            if not queue:
                continue
            if server.down is not None and not server.revive():
                self._ready[server] = None  # its other items fail next
                return queue[0], None
            if not server.has_room:
                continue  # back in _ready when an attempt there ends
            if not self._pool.can_reserve(server):
                self._blocked[server] = None
                continue
            self._ready[server] = None  # move to the end: round robin
            return queue[0], server
        return None

    def _take(self, item: _Item) -> None:
        """Remove ``item`` (the head of its queue) from the pending items."""
        if item.pinned is None:
            self._spread.popleft()
        else:
            queue = self._pinned[item.pinned]
            queue.popleft()
            item.pinned.pending -= 1
            if not queue:  # a server's queue lives only while it holds items
                del self._pinned[item.pinned]
                self._ready.pop(item.pinned, None)
                self._blocked.pop(item.pinned, None)
        self._pending -= 1
        self._room.set()

    def _launch(self, item: _Item, server: Server) -> None:
        item.attempt += 1
        item.tried.append(server)
        self._pool.reserve(server)
        server.running += 1
        self._pool.changed(server)
        if not server.has_room:
            self._ready.pop(server, None)
        self._running.add(item)
        item.task = asyncio.create_task(self._attempt(item, server))

    async def _attempt(self, item: _Item, server: Server) -> None:
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
                self._pool.changed(server)
                self._mark_ready(server)
                self._wake.set()

        try:
            try:
                result: JobResult | None = await self._execute(item, server)
            except _Busy:
                result = None
            except asyncio.CancelledError:
                if self._closed:
                    raise
                status = Status.CANCELLED if item.process is not None else Status.SKIPPED
                result = self._failure(item, server, status, "the batch was aborted")
            release_server()
            if result is None:  # busy: again, later, not counted as an attempt
                item.attempt -= 1
                item.tried.pop()
                self._enqueue(item, first=True)
            elif self._should_retry(result):
                self._enqueue(item, first=True)
            else:
                await self._final(item, result)
        finally:
            release_server()
            self._running.discard(item)
            self._wake.set()

    def _should_retry(self, result: JobResult) -> bool:
        if self.stopped is not None or result.attempt > self.options.retries:
            return False
        return result.status.is_transport or (
            self.options.retry_failed and result.status.is_command_failure
        )

    async def _final(self, item: _Item, result: JobResult) -> None:
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
        self._room.set()
        self._wake.set()

    def _cancel_item(self, item: _Item) -> None:
        if item.process is not None:
            try:
                item.process.cancel()
            except RexecConnectionError:
                pass  # its connection is gone: the command ends as lost
        elif item.connecting and item.task is not None:
            item.task.cancel()
        asyncio.get_running_loop().call_later(self.options.cancel_grace, self._give_up, item)

    def _give_up(self, item: _Item) -> None:
        """The server did not confirm a cancel in time: drop its connection."""
        if item in self._running and item.tried:
            item.tried[-1].mark_down("it did not confirm a cancel in time")

    async def _skip_pending(self) -> None:
        queues = [self._spread, *self._pinned.values()]
        self._pinned.clear()
        self._ready.clear()
        self._blocked.clear()
        for queue in queues:
            while queue:
                item = queue.popleft()
                self._pending -= 1
                if item.pinned is not None:
                    item.pinned.pending -= 1
                await self._final(item, self._failure(item, None, Status.SKIPPED, None))

    async def _skip_rest_of_input(self) -> None:
        try:
            while jobs := await self._source.take(256):
                for job in jobs:
                    self._enqueue_job(job)
                await self._skip_pending()
        except JobInputError as exc:
            self.input_error = exc

    # --- one attempt --------------------------------------------------------------

    def _failure(
        self,
        item: _Item,
        server: Server | None,
        status: Status,
        why: str | None,
        code: str | None = None,
        start: float = 0.0,
    ) -> JobResult:
        return JobResult(
            job=item.job,
            target=server.address if server else (item.pinned.address if item.pinned else None),
            status=status,
            attempt=item.attempt,
            order=item.order,
            start=start,
            duration=0.0,
            error_code=code,
            error=why,
        )

    async def _execute(self, item: _Item, server: Server) -> JobResult:
        job = item.job
        item.connecting = True
        try:
            connection = await server.connection()
        except OutOfDescriptors:
            raise _Busy from None  # it waits for a slot; the fanout was lowered
        except RexecConnectionError as exc:
            return self._failure(item, server, status_of_connection_error(exc), str(exc), exc.code)
        finally:
            item.connecting = False
        if self._cancelling:
            return self._failure(item, server, Status.SKIPPED, "cancelled before it started")
        start, t0 = time.time(), time.monotonic()
        try:
            process = await connection.start(
                job.args,
                shell=job.is_shell,
                cwd=job.cwd,
                env=job.env,
                timeout=job.timeout or self.options.timeout,
            )
        except RemoteCommandError as exc:
            if exc.code == "busy":
                server.busy()
                raise _Busy from None
            result = self._failure(item, server, Status.FAILED, exc.message, exc.code, start)
            return dataclasses.replace(result, exit_code=RETURNCODE_BY_REFUSAL.get(exc.code))
        except RexecConnectionError as exc:
            server.mark_down(str(exc))
            return self._failure(
                item, server, status_of_connection_error(exc), str(exc), exc.code, start
            )
        except ValueError as exc:
            return self._failure(item, server, Status.FAILED, str(exc), "invalid", start)
        item.process = process
        if self._cancelling:
            self._cancel_item(item)
        stdout, stderr = await asyncio.gather(
            self._read(process.stdout, job, server.address, "stdout"),
            self._read(process.stderr, job, server.address, "stderr"),
        )
        status = await process.wait()
        duration = time.monotonic() - t0
        result_status = status_of(status)
        error = None
        if status.connection_lost:
            server.mark_down(status.connection_error or "connection lost")
            error = status.connection_error
            if self._cancelling:  # we dropped it after cancelling: the server kills it
                result_status = Status.CANCELLED
        return JobResult(
            job=job,
            target=server.address,
            status=result_status,
            attempt=item.attempt,
            order=item.order,
            exit_code=status.exit_code,
            signal=status.signal,
            signal_name=status.signal_name,
            start=start,
            duration=duration,
            server_duration=status.duration,
            stdin_bytes=status.stdin_bytes,
            stdout_bytes=status.stdout_bytes,
            stderr_bytes=status.stderr_bytes,
            stdout=stdout,
            stderr=stderr,
            error=error,
        )

    async def _read(
        self, reader: OutputReader, job: Job, target: Address, stream: str
    ) -> bytes | None:
        chunks: list[bytes] = []
        while chunk := await reader.read(_READ_SIZE):
            if self._on_output is not None:
                self._on_output(job, target, stream, chunk)
            if self.options.capture:
                chunks.append(chunk)
        if self._on_output is not None:
            self._on_output(job, target, stream, b"")
        return b"".join(chunks) if self.options.capture else None
