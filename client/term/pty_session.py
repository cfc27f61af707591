"""One remote command on a pseudo-terminal, joined to the local terminal.

Used by ``rexec run -t`` and ``rexec shell --pty``. The server gives the
command a pty of the local window size (``run`` with ``pty``); the local
terminal goes into raw mode, so every key, Ctrl-C and Ctrl-D included, reaches
the remote pty and its line discipline does the rest, as with ``ssh -t``. All
output arrives as stdout (a pty has one output). Every SIGWINCH sends the new
size (``resize``). Without a local terminal (stdin a pipe or a file) the same
works without raw mode: the input is sent, and its end becomes ^D on the pty.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence

from rexec.eventloop import pin_allocator
from rexec.protocol import Pty

from ..connection import ClientConnection
from ..errors import RexecConnectionError
from ..process import RemoteProcess
from ..result import ExitStatus
from .relay import copy_output, forward_input, interrupts_forwarded, stop_task
from .terminal import raw_mode, terminal_type, window_size

#: The login shell of ``rexec shell --pty``: the remote user's shell as the
#: server's environment names it, as a login shell (it reads the profile).
LOGIN_SHELL = 'exec "${SHELL:-/bin/sh}" -l'


async def run_on_pty(
    connection: ClientConnection,
    command: str | Sequence[str],
    *,
    shell: bool = False,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    forward_stdin: bool = True,
) -> ExitStatus:
    """Run ``command`` on a remote pty with the local terminal attached; return
    how it ended (``connection_lost`` when the connection died first). The
    local terminal is back in its own mode when this returns or raises.

    Raises:
        RemoteCommandError: the server refused the command (nothing ran).
        RexecConnectionError: the connection was lost before it started.
    """
    # Each receive asks for 256 KiB; unpinned, glibc maps and unmaps that
    # block per keystroke's echo (mmap, mremap, munmap). ~2 ms once, for a
    # session that lives as long as someone types.
    pin_allocator()
    rows, cols = window_size()
    process = await connection.start(
        command,
        shell=shell,
        cwd=cwd,
        env=env,
        stdin=forward_stdin,
        timeout=timeout,
        pty=Pty(rows=rows, cols=cols, term=terminal_type()),
    )
    with raw_mode(0), _resizes_forwarded(process), interrupts_forwarded(process):
        feeder = asyncio.create_task(forward_input(process.stdin)) if process.stdin else None
        try:
            await copy_output(
                process.stdout, sys.stdout.buffer, on_broken=process.cancel, write_through=True
            )
            return await process.wait()
        finally:
            await stop_task(feeder)


@contextlib.contextmanager
def _resizes_forwarded(process: RemoteProcess) -> Iterator[None]:
    """While active, each SIGWINCH sends the local window size to the pty."""
    loop = asyncio.get_running_loop()

    def on_resize() -> None:
        with contextlib.suppress(RexecConnectionError):
            process.resize(*window_size())

    loop.add_signal_handler(signal.SIGWINCH, on_resize)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGWINCH)
