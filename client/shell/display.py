"""Where ``rexec shell`` shows things: the remote output, and its own lines.

The remote shell's stdout and stderr are open for the whole session, so
output can come at any time: while a line runs (written at once, as it
arrives), or while the prompt waits for typing (a background job's): then
the prompt steps aside, the output is written above it, and it is drawn
again, as prompt_toolkit's ``run_in_terminal`` does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from typing import BinaryIO

from prompt_toolkit.application import run_in_terminal
from prompt_toolkit.application.current import get_app_or_none

from ..term.terminal import colour_enabled

_RED, _RESET = b"\x1b[31m", b"\x1b[0m"


def say(message: str) -> None:
    """One ``rexec: …`` line on stderr: the shell speaking, not the command."""
    print(f"rexec: {message}", file=sys.stderr, flush=True)


def stderr_painter() -> Callable[[bytes], bytes] | None:
    """What to do to each chunk of remote stderr before it is shown: red on a
    terminal (each chunk reset after, so stdout stays plain), else nothing."""
    if not colour_enabled(sys.stderr):
        return None
    return lambda chunk: _RED + chunk + _RESET


class TerminalOutput:
    """Shows the remote shell's output here (see the module docstring).

    A local stdout that was closed (``rexec shell < script | head``) takes
    nothing more; the session goes on, as a shell's does when one of its
    commands meets a closed pipe.

    Args:
        terminal_free: what each write waits for first (a prompt that
            still has the terminal).
    """

    def __init__(self, terminal_free: Callable[[], Awaitable[None]]) -> None:
        self._terminal_free = terminal_free
        self._paint = stderr_painter()
        self._broken: set[int] = set()

    async def stdout(self, data: bytes) -> None:
        await self._show(sys.stdout.buffer, data)

    async def stderr(self, data: bytes) -> None:
        await self._show(sys.stderr.buffer, self._paint(data) if self._paint else data)

    async def _show(self, file: BinaryIO, data: bytes) -> None:
        await self._terminal_free()
        app = get_app_or_none()
        if app is not None and app.is_running and not app.is_done:
            await run_in_terminal(lambda: self._write(file, data), in_executor=False)
        else:
            self._write(file, data)

    def _write(self, file: BinaryIO, data: bytes) -> None:
        fd = file.fileno()
        if fd in self._broken:
            return
        try:
            file.write(data)
            file.flush()
        except BrokenPipeError:
            self._broken.add(fd)
            # Point the descriptor at /dev/null so that the flush at exit does
            # not report the same broken pipe again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
