"""What Ctrl-C and the per-line time limit do to a running line.

The line runs inside the session's shell, in the shell's process group, so
SIGINT to the group reaches the line's programs and the shell, as a
terminal's Ctrl-C does: an interactive shell, on SIGINT, ends the line and
goes back to its top level, keeping the session; the background jobs of
earlier lines ignore it (bash starts them so, without job control).

So: Ctrl-C sends SIGINT. A second one within a second (for a program that
ignores SIGINT) sends SIGTERM to the line's own programs only, found on the
server by ``TERMINATE_LINE``: not to the shell nor to its background jobs,
which over ssh are in process groups of their own. A third one, once the
second has been carried out, kills the shell itself; the session continues
in a new shell made from the last state snapshot (the programs and jobs it
ran are gone). It does so only while the line is still running: the shell
is killed only if the line's end has not come ``TERM_GRACE`` seconds after
the third Ctrl-C (a program the SIGTERM reached may still be ending, or what
it found was no longer the line's: a burst of Ctrl-C that came as the line
ended met the shell's own prompt hook), or ``SETTLE`` seconds when the second
found none of the line's programs. The steps belong to the line: once it has
ended, nothing more is done. A time
limit (the ``timeout`` built-in) takes the same steps, ``TIMEOUT_GRACE``
seconds apart from its expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from ..connection import ClientConnection
from ..errors import RexecConnectionError, RexecError
from ..process import RemoteProcess

#: Seconds between the steps after a line's time limit has expired.
TIMEOUT_GRACE = 2.0
#: Seconds the line's end may take to come, after a SIGTERM step that found
#: no program of the line's, before a third Ctrl-C kills the shell (a loop of
#: builtins in a shell that ignores SIGINT has no program to end).
SETTLE = 2.0
#: Seconds the line's end may take to come, after a SIGTERM step that found
#: programs, before a third Ctrl-C kills the shell.
TERM_GRACE = 0.5

#: Run by /bin/sh on the server with the shell's pid as $1: SIGTERM (and
#: SIGCONT, for a stopped one) to each live process of the shell's process
#: group that descends from a child of the shell's that is not a background
#: job (bash starts those, without job control, with SIGINT and SIGQUIT
#: ignored: the last hex digit of SigIgn is 6, 7, e or f); not to orphans,
#: nor to one already dying (SIGKILL pending, as a fatal SIGINT leaves it).
#: Exits 0 if it found any, else 1.
TERMINATE_LINE = r"""
exec 2>/dev/null
shell=$1 found=
field() { sed -n "s/^$2:[[:space:]]*//p" "/proc/$1/status"; }
parent() {
    read -r stat <"/proc/$1/stat" || return 1
    set -- ${stat##*) }
    state=$1 ppid=$2 pgrp=$3
}
for dir in /proc/[0-9]*; do
    pid=${dir#/proc/}
    [ "$pid" != "$shell" ] && parent "$pid" && [ "$pgrp" = "$shell" ] || continue
    case $state in Z | X) continue ;; esac
    case $(field "$pid" SigPnd) in *[13579bdf]??) continue ;; esac
    child=$pid depth=0
    while [ "$ppid" != "$shell" ] && [ "$ppid" -gt 1 ] && [ "$depth" -lt 100 ]; do
        child=$ppid depth=$((depth + 1))
        parent "$child" || break
    done
    [ "$ppid" = "$shell" ] || continue
    case $(field "$child" SigIgn) in *[67ef]) continue ;; esac
    found="$found $pid"
done
[ -n "$found" ] || exit 1
kill -TERM $found 2>/dev/null
kill -CONT $found 2>/dev/null
exit 0
"""


class LineControl:
    """Interrupts for one line (an ``InterruptForwarder`` target).

    Args:
        shell: the remote shell's command.
        connection: where it runs (the SIGTERM step runs a helper there).
        cwd: where commands start on the server (None: its default).
        timeout: the line's time limit in seconds, or None.
    """

    def __init__(
        self,
        shell: RemoteProcess,
        connection: ClientConnection,
        cwd: str | None,
        timeout: float | None,
    ) -> None:
        self._shell = shell
        self._connection = connection
        self._cwd = cwd
        self._timer: asyncio.TimerHandle | None = None
        #: The SIGTERM step and what follows it, once asked for.
        self._escalation: asyncio.Task[None] | None = None
        self._third = asyncio.Event()
        #: The SIGTERM step has begun (set before its SIGTERM is sent: the
        #: line's end can be read before the step's own answer is).
        self.terminated = False
        #: The shell was killed: the session goes on in a new one.
        self.killed = False
        #: The time limit expired.
        self.timed_out = False
        #: When Ctrl-C was last pressed (``time.monotonic``), or None.
        self.pressed_at: float | None = None
        if timeout is not None:
            self._later(timeout, self._time_up)

    def send_signal(self, sig: int | str) -> None:
        """Ctrl-C: the signal to the shell's process group."""
        self.pressed_at = time.monotonic()
        self._signal(sig)

    def cancel(self) -> None:
        """Ctrl-C again, soon after: SIGTERM to the line's programs, then
        (a third time) the shell's end."""
        self.pressed_at = time.monotonic()
        self._next_step()

    def _next_step(self) -> None:
        if self._escalation is None:
            self._escalation = asyncio.create_task(self._escalate(), name="rexec-line-escalation")
        else:
            self._third.set()

    def left_mid_line(self, shown_at: float) -> bool:
        """Whether the terminal's last ``^C`` still ends what it shows, the
        line ended by the SIGTERM step (``shown_at``: when output last came):
        bash writes a newline after a program that SIGINT ended, none after
        one that SIGTERM did."""
        pressed = self.pressed_at
        return self.terminated and pressed is not None and shown_at < pressed

    def close(self) -> None:
        """The line has ended: no more steps."""
        if self._timer is not None:
            self._timer.cancel()
        if self._escalation is not None:
            self._escalation.cancel()

    async def _escalate(self) -> None:
        self.terminated = True
        found = await self._terminate_line()
        await self._third.wait()
        # (Cancelled by ``close`` when the line ends meanwhile.)
        await asyncio.sleep(TERM_GRACE if found else SETTLE)
        self.killed = True
        with contextlib.suppress(RexecConnectionError):
            self._shell.cancel()

    async def _terminate_line(self) -> bool:
        """SIGTERM to the line's programs; whether there were any. Where the
        helper can't run, SIGTERM to the shell's group (its jobs too)."""
        try:
            helper = await self._connection.start(
                ["/bin/sh", "-c", TERMINATE_LINE, "sh", str(self._shell.pid)], cwd=self._cwd
            )
            status = await helper.wait()
        except RexecError:
            status = None
        if status is not None and status.exit_code in (0, 1):
            return status.exit_code == 0
        self._signal("SIGTERM")
        self._signal("SIGCONT")  # a stopped program can't act on SIGTERM
        return True

    def _time_up(self) -> None:
        self.timed_out = True
        self._signal("SIGINT")
        self._later(TIMEOUT_GRACE, self._time_up_again)

    def _time_up_again(self) -> None:
        last = self._escalation is not None
        self._next_step()
        if not last:
            self._later(TIMEOUT_GRACE, self._time_up_again)

    def _later(self, delay: float, step: Callable[[], None]) -> None:
        self._timer = asyncio.get_running_loop().call_later(delay, step)

    def _signal(self, sig: int | str) -> None:
        with contextlib.suppress(RexecConnectionError):
            self._shell.send_signal(sig)
