"""Joining a remote command to the local terminal or pipes.

What ``rexec run``, ``rexec run -t`` and ``rexec shell`` share: copying a
remote output stream to a local file as it arrives, forwarding local stdin
with its end, and forwarding Ctrl-C to the remote command (a second Ctrl-C
within ``DOUBLE_INTERRUPT`` seconds cancels it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO, Protocol

from ..errors import RexecConnectionError
from ..process import RemoteProcess
from ..stdin import StdinWriter
from ..streams import OutputReader
from .local_io import read_chunks, read_terminal_now

#: Seconds within which a second Ctrl-C cancels the command.
DOUBLE_INTERRUPT = 1.0


async def copy_output(
    reader: OutputReader,
    file: BinaryIO,
    on_broken: Callable[[], None],
    transform: Callable[[bytes], bytes] | None = None,
    *,
    write_through: bool = False,
) -> bool:
    """Copy ``reader`` to ``file`` as chunks arrive (each one flushed); when
    the local reader of ``file`` goes away, call ``on_broken`` and discard the
    rest. ``transform``, when given, rewrites each chunk before it is written.
    ``write_through``: write each chunk as the connection receives it, with no
    task woken for it (``OutputReader.write_through``; a terminal's echo).
    Returns whether ``file`` broke."""

    def write(chunk: bytes) -> None:
        file.write(transform(chunk) if transform else chunk)
        file.flush()

    try:
        if write_through:
            reader.write_through(write)
        while chunk := await reader.read(2**20):
            write(chunk)
        return False
    except BrokenPipeError:
        # Point the descriptor at /dev/null so that the flush at exit does not
        # report the same broken pipe again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, file.fileno())
        os.close(devnull)
        on_broken()
        while await reader.read(2**20):
            pass  # keep the connection flowing until the command ends
        return True


async def forward_input(
    stdin: StdinWriter, fd: int = 0, on_input: Callable[[], None] | None = None
) -> None:
    """Send what can be read from ``fd`` to ``stdin``, then end it.
    ``on_input``, when given, is called before anything (data or the end) is
    sent.

    On a terminal in canonical mode, Ctrl-D at the start of a line reads as
    the end, so it ends the remote command's input.
    """
    try:
        if os.isatty(fd):
            await _forward_terminal(stdin, fd, on_input)
        else:
            async for chunk in read_chunks(fd):
                if on_input is not None:
                    on_input()
                stdin.write(chunk)
                await stdin.drain()
        if on_input is not None:
            on_input()
        stdin.close()
    except (BrokenPipeError, RexecConnectionError):
        pass  # the command or the connection ended; its status says how


async def _forward_terminal(
    stdin: StdinWriter, fd: int, on_input: Callable[[], None] | None
) -> None:
    """Forward a terminal's input until its end: each read is made and
    written to ``stdin`` in the event loop's reader callback, so a keystroke
    leaves in the loop turn that saw it, with no task woken for it (the
    echo's latency). While ``stdin`` holds unsent bytes (its credit spent,
    a paste) the terminal is not read until they have gone."""
    loop = asyncio.get_running_loop()
    # The callback's error, raised in this task. Not set on the future: a
    # task cancelled before it wakes would leave it "never retrieved".
    failure: Exception | None = None

    def on_readable(paused: asyncio.Future[bool]) -> None:
        nonlocal failure
        if paused.done():
            return  # the reader is being removed
        try:
            chunk = read_terminal_now(fd)
            if chunk is None:
                return
            if chunk:
                if on_input is not None:
                    on_input()
                stdin.write(chunk)
        except Exception as exc:
            failure = exc
        if failure is not None or not chunk:
            paused.set_result(True)  # the end of input, or a failure
        elif stdin.unsent:
            paused.set_result(False)  # wait until stdin has sent it

    while True:
        paused: asyncio.Future[bool] = loop.create_future()
        loop.add_reader(fd, on_readable, paused)
        try:
            ended = await paused
        finally:
            loop.remove_reader(fd)
        if failure is not None:
            raise failure
        if ended:
            return
        await stdin.drain()


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` (if any) and wait until it has finished."""
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class Interruptible(Protocol):
    """What Ctrl-C acts on: a remote command, or a line of the remote shell."""

    def send_signal(self, sig: int | str) -> None: ...

    def cancel(self) -> None: ...


class InterruptForwarder:
    """Routes Ctrl-C (SIGINT here) to the remote command attached to it.

    The first SIGINT sends SIGINT to the command; another within
    ``DOUBLE_INTERRUPT`` seconds cancels it. With no command attached, SIGINT
    is ignored: a program that stays (``rexec shell``) keeps one forwarder
    installed for its whole life and attaches each command in turn.
    """

    def __init__(self) -> None:
        self._process: Interruptible | None = None
        self._last = float("-inf")

    def __call__(self) -> None:
        """Handle one SIGINT."""
        process = self._process
        if process is None:
            return
        now = time.monotonic()
        with contextlib.suppress(RexecConnectionError):
            if now - self._last <= DOUBLE_INTERRUPT:
                process.cancel()
            else:
                process.send_signal("SIGINT")
        self._last = now

    def quit(self) -> None:
        """Handle one SIGQUIT (Ctrl-\\): SIGQUIT to the attached command."""
        if self._process is not None:
            with contextlib.suppress(RexecConnectionError):
                self._process.send_signal("SIGQUIT")

    @contextlib.contextmanager
    def installed(self, *, quit_too: bool = False) -> Iterator[None]:
        """While active, this forwarder is the event loop's SIGINT handler,
        and with ``quit_too`` its SIGQUIT handler: Ctrl-\\ then reaches the
        remote command instead of ending this program (as over a terminal
        of ssh's, where it is the remote foreground's)."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, self)
        if quit_too:
            loop.add_signal_handler(signal.SIGQUIT, self.quit)
        try:
            yield
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            if quit_too:
                loop.remove_signal_handler(signal.SIGQUIT)

    @contextlib.contextmanager
    def attached(self, process: Interruptible) -> Iterator[None]:
        """While active, SIGINT goes to ``process``."""
        self._process, self._last = process, float("-inf")
        try:
            yield
        finally:
            self._process = None


@contextlib.contextmanager
def interrupts_forwarded(process: RemoteProcess) -> Iterator[None]:
    """While active, Ctrl-C (SIGINT here) sends SIGINT to the remote command,
    and a second one within ``DOUBLE_INTERRUPT`` seconds cancels it."""
    forwarder = InterruptForwarder()
    with forwarder.installed(), forwarder.attached(process):
        yield
