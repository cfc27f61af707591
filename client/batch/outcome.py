"""How one job of a batch ended: ``Status`` and ``JobResult``.

Statuses (exactly one per job, in the results file and the summary):

==============  ===========================================================
ok              the command exited 0
failed          it exited non-zero, or the server refused to start it
                (``spawn.not_found`` …: ``error`` says which), or its
                output could not be kept (``output.lost``: the spool file
                could not be written) or was withheld by the server's output
                limit (``output_capped``)
signal          it was killed by a signal (not by our timeout or cancel;
                ``server.shutting_down``: by the server shutting down)
timeout         the server ended it because its timeout expired
cancelled       it was ended by our cancel (Ctrl-C, ``--halt now``); the
                ``error`` says when the server never confirmed it
connect_error   no result: the connection was lost while the job ran (it
                had started: it may have run), or no server could run it
                (a pinned job's server was unreachable or shutting down)
protocol_error  no result: the server broke the protocol
skipped         never started (``--halt``, Ctrl-C)
==============  ===========================================================
"""

from __future__ import annotations

import dataclasses
import enum

from ..address import Address
from ..errors import ProtocolViolation, RexecConnectionError
from ..result import ExitStatus
from .capture import Captured
from .jobs import Job


class Status(str, enum.Enum):
    OK = "ok"
    FAILED = "failed"
    SIGNAL = "signal"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    CONNECT_ERROR = "connect_error"
    PROTOCOL_ERROR = "protocol_error"
    SKIPPED = "skipped"

    @property
    def is_transport(self) -> bool:
        """No result exists because of the connection or the server."""
        return self in (Status.CONNECT_ERROR, Status.PROTOCOL_ERROR)

    @property
    def is_command_failure(self) -> bool:
        """The command ran (or was refused) and did not succeed."""
        return self in (Status.FAILED, Status.SIGNAL, Status.TIMEOUT)


def status_of(exit_status: ExitStatus) -> Status:
    """The status of a command the server reported (or lost)."""
    if exit_status.connection_lost:
        return Status.CONNECT_ERROR
    if exit_status.timed_out:
        return Status.TIMEOUT
    if exit_status.cancelled:
        return Status.CANCELLED
    if exit_status.signal is not None:
        return Status.SIGNAL
    return Status.OK if exit_status.exit_code == 0 else Status.FAILED


def status_of_connection_error(exc: RexecConnectionError) -> Status:
    return Status.PROTOCOL_ERROR if isinstance(exc, ProtocolViolation) else Status.CONNECT_ERROR


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobResult:
    """The final outcome of one job (after its last attempt).

    ``target`` is the server of the last attempt (None when it never got
    one). ``start`` is the wall-clock time (epoch seconds) the last attempt
    was sent, 0 when it never started (``started``: then no server may have
    run it), ``duration`` its length as seen here (0 when it never started).
    ``stdout``/``stderr`` are the captured bytes, or None when not captured
    (``stdout_capture``/``stderr_capture`` hold them, possibly spooled to a
    file: printers stream them and ``release()`` them).
    ``order`` is the job's place in the input (for ``--keep-order``).
    """

    job: Job
    target: Address | None
    status: Status
    attempt: int
    order: int
    exit_code: int | None = None
    signal: int | None = None
    signal_name: str | None = None
    start: float = 0.0
    duration: float = 0.0
    server_duration: float | None = None
    stdin_bytes: int = 0
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    stdout_capture: Captured | None = None
    stderr_capture: Captured | None = None
    error_code: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    @property
    def started(self) -> bool:
        """Whether the command was sent to a server (it may have run)."""
        return self.start > 0

    @property
    def stdout(self) -> bytes | None:
        return self.stdout_capture.read() if self.stdout_capture is not None else None

    @property
    def stderr(self) -> bytes | None:
        return self.stderr_capture.read() if self.stderr_capture is not None else None

    def release(self) -> None:
        """Free the captured output (it can't be read after)."""
        for captured in (self.stdout_capture, self.stderr_capture):
            if captured is not None:
                captured.release()

    @property
    def reason(self) -> str:
        """A short phrase for the summary: ``exit 3``, ``SIGKILL``, ``spawn.not_found`` …"""
        if self.error_code:
            return self.error_code
        if self.status is Status.FAILED and self.exit_code is not None:
            return f"exit {self.exit_code}"
        if self.status is Status.SIGNAL:
            return self.signal_name or f"signal {self.signal}"
        return str(self.status.value)
