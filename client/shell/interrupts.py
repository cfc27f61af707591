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

Each step after the first waits ``STEP_DELAY`` and is not taken if the line
has ended by then: Ctrl-C pressed three times in a burst (or held down) on
``sleep 100`` ends the sleep with the first, and the others must not go on to
end the shell, as in bash over ssh, where they only clear the next prompt.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from ..errors import RexecConnectionError
from ..process import RemoteProcess

#: Seconds between the steps after a line's time limit has expired.
TIMEOUT_GRACE = 2.0
#: Seconds a step asked for by Ctrl-C waits for the one before it to act:
#: the line's end, seen here, cancels it.
STEP_DELAY = 0.5


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
        #: Steps asked for by Ctrl-C and not taken yet, and the next one's timer.
        self._steps_due = 0
        self._step_timer: asyncio.TimerHandle | None = None
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
        """Ctrl-C again, soon after: the next step, ``STEP_DELAY`` later
        unless the line ends before (see the module docstring)."""
        self._steps_due += 1
        if self._step_timer is None:
            self._step_timer = asyncio.get_running_loop().call_later(STEP_DELAY, self._due_step)

    def _due_step(self) -> None:
        self._steps_due -= 1
        self._step()
        self._step_timer = None
        if self._steps_due > 0 and not self.killed:
            self._step_timer = asyncio.get_running_loop().call_later(STEP_DELAY, self._due_step)

    def _step(self) -> None:
        """SIGTERM to the group; the next time, the shell's end."""
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
        for timer in (self._timer, self._step_timer):
            if timer is not None:
                timer.cancel()

    def _time_up(self) -> None:
        self.timed_out = True
        self._signal("SIGINT")
        self._later(TIMEOUT_GRACE, self._time_up_again)

    def _time_up_again(self) -> None:
        self._step()
        if not self.killed:
            self._later(TIMEOUT_GRACE, self._time_up_again)

    def _later(self, delay: float, step: Callable[[], None]) -> None:
        self._timer = asyncio.get_running_loop().call_later(delay, step)

    def _signal(self, sig: int | str) -> None:
        with contextlib.suppress(RexecConnectionError):
            self._shell.send_signal(sig)
