"""Ctrl-C read as a key while a line runs, so that each one counts.

A terminal turns Ctrl-C into SIGINT, and signals of one kind that arrive
before the first is handled merge into one: three Ctrl-C in one write (a
burst, a paste, a key held down) would reach rexec as a single SIGINT. While
a line of ``rexec shell`` runs, the terminal is told instead to end the input
line at Ctrl-C (VEOL) and to send no SIGINT for it (VINTR off): each Ctrl-C
then arrives as its own read, ending in that byte, and the text typed before
it on that line is dropped, as the terminal's own Ctrl-C drops it. The other
keys (Ctrl-\\, Ctrl-Z, Ctrl-D, erase) keep what the terminal does with them
(Ctrl-\\'s SIGQUIT is forwarded to the line by ``rexec shell``).
"""

from __future__ import annotations

import contextlib
import os
import termios
from collections.abc import Iterator

from .terminal import restored_modes

_VDISABLE = b"\0"


@contextlib.contextmanager
def interrupt_as_input(fd: int) -> Iterator[bytes | None]:
    """While active, Ctrl-C on the terminal ``fd`` ends a line of input
    instead of sending SIGINT; yields the byte it arrives as (None when
    ``fd`` is not a terminal, or has no interrupt key or no free VEOL: then
    nothing changes)."""
    try:
        saved = termios.tcgetattr(fd) if os.isatty(fd) else None
    except termios.error:
        saved = None
    if saved is None:
        yield None
        return
    chars = saved[6]
    key = chars[termios.VINTR]
    if key in (_VDISABLE, 0) or chars[termios.VEOL] not in (_VDISABLE, 0):
        yield None
        return
    changed = [*saved[:6], list(chars)]
    changed[6][termios.VEOL] = key
    changed[6][termios.VINTR] = _VDISABLE
    with restored_modes(fd, saved):
        # TCSANOW: neither output nor the keys typed ahead are waited for.
        termios.tcsetattr(fd, termios.TCSANOW, changed)
        yield key if isinstance(key, bytes) else bytes([key])
