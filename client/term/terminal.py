"""The local terminal: its size, its type, and raw mode that is always undone.

``raw_mode`` puts a terminal in raw mode (every byte, Ctrl-C included, goes to
the remote pty, whose own line discipline then acts on it) and restores the
saved settings on every way out: leaving the ``with`` block (normally or by an
exception), interpreter exit (``atexit``), and the signals that end a process
from outside (SIGHUP when the terminal goes away, SIGTERM, SIGQUIT), after
which the signal is re-delivered so the process still dies of it. A signal the
program already handles (``rexec shell`` forwards Ctrl-\\'s SIGQUIT to the
running line) is left to its handler: the process does not die of it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import termios
import tty
from collections.abc import Iterator
from types import FrameType
from typing import Any

from rexec.protocol import Pty

#: Used when no terminal tells us its size (pipes, files), as ``ssh -tt`` does.
DEFAULT_SIZE = (24, 80)
#: Used when ``$TERM`` is unset or unusable: what modern terminals emulate.
DEFAULT_TERM = "xterm-256color"
#: Signals after which the terminal must be restored before the process dies.
_FATAL_SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGQUIT)


def terminal_fd() -> int | None:
    """The first of stdin, stdout, stderr that is a terminal, or None."""
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            if os.isatty(fd):
                return fd
    return None


def window_size() -> tuple[int, int]:
    """(rows, cols) of the local terminal; ``DEFAULT_SIZE`` without one."""
    fd = terminal_fd()
    if fd is None:
        return DEFAULT_SIZE
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return DEFAULT_SIZE
    # A terminal that reports 0 (some serial lines, fresh ptys) has no size.
    return (size.lines or DEFAULT_SIZE[0], size.columns or DEFAULT_SIZE[1])


def terminal_type() -> str:
    """``$TERM`` when it can be sent (a terminal type as the protocol allows
    one: 1–64 of ``A-Z a-z 0-9 . _ + -``), else ``DEFAULT_TERM``."""
    term = os.environ.get("TERM", "")
    if term == "dumb":
        return DEFAULT_TERM
    try:
        return Pty(term=term).term
    except ValueError:  # pydantic's ValidationError: not a terminal type
        return DEFAULT_TERM


@contextlib.contextmanager
def raw_mode(fd: int = 0) -> Iterator[bool]:
    """Put ``fd`` in raw mode while active, if it is a terminal; yields
    whether it did. See the module docstring for how it is restored."""
    try:
        saved = termios.tcgetattr(fd)
    except (termios.error, OSError):
        yield False  # not a terminal: nothing to change or restore
        return
    with restored_modes(fd, saved):
        # TCSADRAIN, not setraw's default TCSAFLUSH: keys typed ahead are kept.
        tty.setraw(fd, termios.TCSADRAIN)
        yield True


@contextlib.contextmanager
def restored_modes(fd: int, saved: list[Any]) -> Iterator[None]:
    """Give the terminal ``fd`` back its modes ``saved`` at the end, however
    the program ends (see the module docstring); change them inside."""
    restored = False

    def restore() -> None:
        nonlocal restored
        if not restored:
            restored = True
            with contextlib.suppress(termios.error, OSError):
                termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    def restore_and_die(signum: int, frame: FrameType | None) -> None:
        restore()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    previous = {
        sig: signal.signal(sig, restore_and_die)
        for sig in _FATAL_SIGNALS
        if signal.getsignal(sig) == signal.SIG_DFL
    }
    atexit.register(restore)
    try:
        yield
    finally:
        restore()
        atexit.unregister(restore)
        for sig, handler in previous.items():
            # None: a handler installed from C, which Python can't reinstate.
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


def colour_enabled(stream: object) -> bool:
    """Whether to colour what goes to ``stream``: it is a terminal and
    ``NO_COLOR`` is unset or empty (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return False
