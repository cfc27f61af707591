"""One attempt of one job on one server: connect (the server's shared
connection), start the command, read its output, wait for its status, and
say how it ended as a ``JobResult``.

How an attempt can end, for the scheduler (``engine``):

* a ``JobResult`` — the command ran (whatever its status), was refused, or
  its connection was lost once the command had been sent: it *may have run*
  (``JobResult.started``), so it is never run again without ``--retries``;
* ``NotStarted`` — the server could not be reached (connect, handshake or
  authentication failed), or it refused the command for a reason of its
  own that proves the command never started and will refuse every other
  (``NOT_RUN_HERE``: it is shutting down, its audit log fails): the server
  is dropped, and the job may go to another server without being counted
  as an attempt;
* ``Busy`` — the server refused the command as ``busy`` (its own limit):
  run it again later, uncounted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import NoReturn

from ..address import Address
from ..errors import RemoteCommandError, RexecConnectionError
from ..process import RemoteProcess
from ..result import RETURNCODE_BY_REFUSAL
from ..streams import OutputReader
from .capture import Captured
from .descriptors import OutOfDescriptors
from .jobs import Job
from .options import BatchOptions
from .outcome import JobResult, Status, status_of, status_of_connection_error
from .servers import Server

#: ``on_output(job, target, stream, data)``: live output of an attempt
#: (``stream`` is "stdout" or "stderr"); ``data`` b"" marks the stream's end.
OutputCallback = Callable[[Job, Address, str, bytes], None]

_READ_SIZE = 1 << 16

#: Refusals that say the command never started and that the server will run
#: none (``busy`` says only "not now": it waits): the server is dropped and
#: the job runs elsewhere, uncounted. A refusal for the command's own sake
#: (``command.denied``, ``spawn.*``, ``cwd.invalid`` …) is the job's result.
NOT_RUN_HERE = frozenset({"server.shutting_down", "audit.unavailable"})


@dataclasses.dataclass(slots=True, eq=False)
class WorkItem:
    """A job on its way through the scheduler (one per (job, target) pinned)."""

    job: Job
    order: int
    pinned: Server | None
    attempt: int = 0
    tried: list[Server] = dataclasses.field(default_factory=list)
    process: RemoteProcess | None = None
    task: asyncio.Task[None] | None = None
    connecting: bool = False
    #: When this attempt's command was sent (epoch seconds; 0: not yet).
    sent: float = 0.0


class Busy(Exception):
    """The server refused the attempt as busy: run it again, uncounted."""


class NotStarted(Exception):
    """The server could not be reached: the command was never sent.
    ``result`` is how the job ends if it can't go anywhere else."""

    def __init__(self, result: JobResult) -> None:
        super().__init__(result.error)
        self.result = result


def failure(
    item: WorkItem,
    server: Server | None,
    status: Status,
    why: str | None,
    code: str | None = None,
    start: float = 0.0,
) -> JobResult:
    """The result of an attempt that produced no exit status."""
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


def aborted(item: WorkItem, server: Server) -> JobResult:
    """The result of an attempt ended by the batch being aborted (a second
    Ctrl-C): one whose command was sent may have run, its cancel never
    confirmed; one not sent was skipped."""
    if not item.sent:
        return failure(item, server, Status.SKIPPED, "the batch was aborted")
    why = "cancel not confirmed: the batch was aborted; the command may still run"
    return failure(item, server, Status.CANCELLED, why, start=item.sent)


#: The fields of a result copied from the command's ``ExitStatus``.
_FROM_EXIT_STATUS = (
    "exit_code",
    "signal",
    "signal_name",
    "stdin_bytes",
    "stdout_bytes",
    "stderr_bytes",
)


@dataclasses.dataclass(frozen=True, slots=True)
class AttemptRunner:
    """Runs attempts as ``options`` say.

    ``cancelling``: whether the batch is being cancelled (an attempt that
    gets its connection then does not start; one that started is handed to
    ``cancel`` at once). ``cancel``: cancel a started item's command remotely.
    """

    options: BatchOptions
    on_output: OutputCallback | None
    _: dataclasses.KW_ONLY
    cancelling: Callable[[], bool]
    cancel: Callable[[WorkItem], None]

    async def run(self, item: WorkItem, server: Server) -> JobResult:
        """One attempt of ``item`` on ``server``. An exception nobody foresaw
        (a bug, a bad port given through the library) is a failed job, its
        server dropped: never a job lost without a result.

        Raises:
            NotStarted: the server could not be reached.
            Busy: the server refused the command as busy.
        """
        item.sent = 0.0
        try:
            return await self._run(item, server)
        except (Busy, NotStarted):
            raise
        except Exception as exc:
            why = f"rexec could not run it: {type(exc).__name__}: {exc}"
            server.mark_down(why)
            return failure(item, server, Status.FAILED, why, "client.error", item.sent)

    async def _run(self, item: WorkItem, server: Server) -> JobResult:
        job = item.job
        item.connecting = True
        try:
            connection = await server.connection()
        except OutOfDescriptors:
            raise Busy from None  # it waits for a slot; the fanout was lowered
        except RexecConnectionError as exc:
            status = status_of_connection_error(exc)
            raise NotStarted(failure(item, server, status, str(exc), exc.code)) from None
        finally:
            item.connecting = False
        if self.cancelling():
            return failure(item, server, Status.SKIPPED, "cancelled before it started")
        start, t0 = time.time(), time.monotonic()
        item.sent = start
        try:
            process = await connection.start(
                job.args,
                shell=job.is_shell,
                cwd=job.cwd if job.cwd is not None else self.options.cwd,
                env=job.env,
                timeout=job.timeout or self.options.timeout,
            )
        except RemoteCommandError as exc:
            if exc.code == "busy":
                server.busy()
                raise Busy from None
            if exc.code in NOT_RUN_HERE:
                self._not_run_here(item, server, f"{exc.message} ({exc.code})", exc.code)
            result = failure(item, server, Status.FAILED, exc.message, exc.code, start)
            return dataclasses.replace(result, exit_code=RETURNCODE_BY_REFUSAL.get(exc.code))
        except RexecConnectionError as exc:
            if exc.code in NOT_RUN_HERE:
                # Ended by the server shutting down (its last command done)
                # before an answer: a server shutting down starts nothing.
                self._not_run_here(item, server, str(exc), exc.code)
            # The start frame may have reached the server: the command may run.
            server.mark_down(str(exc))
            status = status_of_connection_error(exc)
            return failure(item, server, status, str(exc), exc.code, start)
        except ValueError as exc:
            return failure(item, server, Status.FAILED, str(exc), "invalid", start)
        item.process = process
        if self.cancelling():
            self.cancel(item)
        lost: list[str] = []  # why output could not be kept
        stdout, stderr = await asyncio.gather(
            self._read(process.stdout, job, server.address, "stdout", lost),
            self._read(process.stderr, job, server.address, "stderr", lost),
        )
        status = await process.wait()
        result_status = status_of(status)
        error = code = None
        if status.output_capped:
            code, error = "output_capped", status.capped_note
        if lost:  # the output could not be kept here
            code, error = "output.lost", lost[0]
        if code is not None and result_status is Status.OK:
            result_status = Status.FAILED  # never an ok without all its output
        if result_status is Status.CANCELLED and not process.cancel_requested:
            # Nobody here cancelled it: the server ended it on its own, shutting
            # down (as ``rexec run`` says): how it died, and why.
            result_status = Status.SIGNAL if status.signal is not None else Status.FAILED
            how = f" ({status.signal_name})" if status.signal_name else ""
            code, error = (
                "server.shutting_down",
                f"the server is shutting down: it ended the command{how}",
            )
        if status.connection_lost:
            server.mark_down(status.connection_error or "connection lost")
            error = status.connection_error
            if self.cancelling():
                # We dropped it after cancelling (or it was lost meanwhile):
                # the server kills it when it sees the drop, if it still can.
                result_status = Status.CANCELLED
                error = f"cancel not confirmed: {server.down}; the command may still run"
        return JobResult(
            job=job,
            target=server.address,
            status=result_status,
            attempt=item.attempt,
            order=item.order,
            start=start,
            duration=time.monotonic() - t0,
            server_duration=status.duration,
            stdout_capture=stdout,
            stderr_capture=stderr,
            error_code=code,
            error=error,
            **{name: getattr(status, name) for name in _FROM_EXIT_STATUS},
        )

    @staticmethod
    def _not_run_here(item: WorkItem, server: Server, why: str, code: str) -> NoReturn:
        """The server said it runs no more commands: it is dropped (the
        commands running there go on) and ``item`` never ran there."""
        server.mark_down(why, drain=True)
        raise NotStarted(failure(item, server, Status.CONNECT_ERROR, why, code))

    async def _read(
        self, reader: OutputReader, job: Job, target: Address, stream: str, lost: list[str]
    ) -> Captured | None:
        """Read a stream to its end; its capture, or None. A capture that
        can't be kept (the spool file can't be written: disk full …) is
        dropped, the stream read to its end all the same, and ``lost`` says
        why."""
        captured = Captured(self.options.spool) if self.options.capture else None
        try:
            while chunk := await reader.read(_READ_SIZE):
                if self.on_output is not None:
                    self.on_output(job, target, stream, chunk)
                if captured is None:
                    continue
                try:
                    captured.write(chunk)
                except OSError as exc:
                    captured.release()
                    captured = None
                    lost.append(f"its {stream} was lost: cannot write the spool file: {exc}")
        except BaseException:
            if captured is not None:
                captured.release()
            raise
        if self.on_output is not None:
            self.on_output(job, target, stream, b"")
        return captured
