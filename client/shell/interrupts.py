"""What Ctrl-C and the per-line time limit do to a running line.

The line runs inside the session's shell, in the shell's process group, so a
signal to the group reaches the line's programs and the shell, as a
terminal's Ctrl-C does: an interactive shell, on SIGINT, ends the line and
goes back to its top level, keeping the session; it ignores SIGTERM.

So: Ctrl-C sends SIGINT. A second one within a second (for a program that
ignores SIGINT) sends SIGTERM, which ends the line's programs and leaves the
shell. A third one kills the shell itself; the session continues in a new
shell made from the last state snapshot (the programs and jobs it ran are
gone). A time limit (the ``timeout`` built-in) does the same in steps of
``TIMEOUT_GRACE`` seconds from its expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from ..errors import RexecConnectionError
from ..process import RemoteProcess

#: Seconds between the steps after a line's time limit has expired.
TIMEOUT_GRACE = 2.0


class LineControl:
    """Interrupts for one line (an ``InterruptForwarder`` target).

    Args:
        shell: the remote shell's command.
        timeout: the line's time limit in seconds, or None.
    """

    def __init__(self, shell: RemoteProcess, timeout: float | None) -> None:
        self._shell = shell
        self._terminated = False
        self._timer: asyncio.TimerHandle | None = None
        #: The shell was killed: the session goes on in a new one.
        self.killed = False
        #: The time limit expired.
        self.timed_out = False
        if timeout is not None:
            self._later(timeout, self._time_up)

    def send_signal(self, sig: int | str) -> None:
        """Ctrl-C: the signal to the shell's process group."""
        self._signal(sig)

    def cancel(self) -> None:
        """Ctrl-C again, soon after: SIGTERM to the group, then the shell's end."""
        if not self._terminated:
            self._terminated = True
            self._signal("SIGTERM")
            self._signal("SIGCONT")  # a stopped program can't act on SIGTERM
        else:
            self.killed = True
            with contextlib.suppress(RexecConnectionError):
                self._shell.cancel()

    def close(self) -> None:
        """The line has ended: no more steps."""
        if self._timer is not None:
            self._timer.cancel()

    def _time_up(self) -> None:
        self.timed_out = True
        self._signal("SIGINT")
        self._later(TIMEOUT_GRACE, self._time_up_again)

    def _time_up_again(self) -> None:
        self.cancel()
        if not self.killed:
            self._later(TIMEOUT_GRACE, self._time_up_again)

    def _later(self, delay: float, step: Callable[[], None]) -> None:
        self._timer = asyncio.get_running_loop().call_later(delay, step)

    def _signal(self, sig: int | str) -> None:
        with contextlib.suppress(RexecConnectionError):
            self._shell.send_signal(sig)
