"""The exit status of ``rexec batch``: one number for a whole batch.

======  ==================================================================
status  meaning
======  ==================================================================
0       every job succeeded (or a ``--halt ...,success=`` goal was reached)
1       some command failed: exited non-zero, or could not be started
2       some command timed out or was killed by a signal
3       a job has no result: its server was unreachable, shutting down
        (it refused the job) or broke the protocol, or the connection was
        lost (connect_error, protocol_error). A server dropped from a
        spread batch whose jobs all ran on the others is named in the
        summary but fails no job: 0. A command the server ended as it
        shut down was killed by a signal: 2.
4       the batch was stopped by ``--halt`` (fail= or done=)
130     interrupted (Ctrl-C); running commands were cancelled
143     terminated (SIGTERM), as Ctrl-C otherwise
255     usage error (bad option, host spec, input record or key file)
======  ==================================================================

When several apply, the first of this list wins: 255, 130/143, 4, 3, 2, 1, 0 —
the more the batch itself went wrong, the higher the status; a plain failure
(1) is reported only when nothing worse happened. The summary on stderr and
``--results`` always give every job's own status.
"""

from __future__ import annotations

from collections.abc import Mapping

from .halt import HaltPolicy
from .outcome import Status

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_TIMEOUT_OR_SIGNAL = 2
EXIT_UNREACHABLE = 3
EXIT_HALTED = 4
EXIT_INTERRUPTED = 130
EXIT_USAGE = 255

#: For ``--help``: the table above, short.
HELP_TABLE = """\
exit status (the first that applies wins):
  255  usage error: bad option, host spec, input record or key file
  130  interrupted by Ctrl-C (running commands were cancelled remotely); 143: SIGTERM
  4    stopped by --halt (fail= or done=; a reached success= goal exits 0)
  3    a job has no result: its server was unreachable, lost or shutting down, or broke
       the protocol
  2    a command timed out or was killed by a signal
  1    a command exited non-zero or could not be started
  0    every job succeeded
"""


def batch_exit_status(
    counts: Mapping[Status, int],
    *,
    halted_by: HaltPolicy | None = None,
    interrupted: bool = False,
    input_error: bool = False,
) -> int:
    """The batch's exit status from its jobs' statuses and how it ended."""
    if input_error:
        return EXIT_USAGE
    if interrupted:
        return EXIT_INTERRUPTED
    if halted_by is not None:
        if halted_by.why != "success":
            return EXIT_HALTED
        return EXIT_OK  # the goal was reached; the rest was skipped on purpose
    if any(
        counts.get(s)
        for s in (Status.CONNECT_ERROR, Status.PROTOCOL_ERROR, Status.CANCELLED, Status.SKIPPED)
    ):
        return EXIT_UNREACHABLE
    if counts.get(Status.TIMEOUT) or counts.get(Status.SIGNAL):
        return EXIT_TIMEOUT_OR_SIGNAL
    if counts.get(Status.FAILED):
        return EXIT_FAILED
    return EXIT_OK
