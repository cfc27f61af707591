"""Running lines of ``rexec shell`` on the server.

``run_line`` runs what the user typed, live: output is written here as it
arrives (raw bytes; stderr in red on a terminal, unless ``NO_COLOR``), what
the user types goes to the command's stdin, Ctrl-D ends it, and Ctrl-C goes
to the command through the shell's ``InterruptForwarder``.

The local terminal stays in canonical ("cooked") mode while a command runs:
the kernel echoes what is typed, handles backspace, hands over whole lines,
and turns Ctrl-D at the start of a line into the end of input and Ctrl-C into
SIGINT. That is exactly the behaviour of a command whose stdin is a pipe, so
nothing here re-implements line editing; programs that want every key (``vi``,
``top``) belong in ``rexec shell --pty``.

``capture`` runs the shell's own short queries (``cd`` and ``export``
checks, the identity probe) in the session, output captured.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping

from ..cli.common import EXIT_BY_REFUSAL
from ..connection import ClientConnection
from ..errors import RemoteCommandError, RexecConnectionError
from ..result import CompletedProcess, ExitStatus
from ..term.relay import InterruptForwarder, copy_output, forward_input, stop_task
from ..term.terminal import colour_enabled
from .state import RemoteIdentity, SessionState

#: Status of a line the server refused for a reason other than EXIT_BY_REFUSAL's.
EXIT_REFUSED = 1
#: Seconds the shell's own queries may take before the server ends them.
QUERY_TIMEOUT = 30.0

_RED, _RESET = b"\x1b[31m", b"\x1b[0m"

#: Prints, NUL-separated: user name, host name, home, working directory.
_IDENTITY_SCRIPT = (
    'printf \'%s\\0\' "$(id -un 2>/dev/null || printf %s "${USER-}")" '
    '"$(uname -n 2>/dev/null)" "${HOME-}" "$(pwd -P)"'
)


def stderr_painter() -> Callable[[bytes], bytes] | None:
    """What to do to each chunk of remote stderr before it is shown: red on a
    terminal (each chunk reset after, so stdout stays plain), else nothing."""
    if not colour_enabled(sys.stderr):
        return None
    return lambda chunk: _RED + chunk + _RESET


def say(message: str) -> None:
    """One ``rexec: …`` line on stderr: the shell speaking, not the command."""
    print(f"rexec: {message}", file=sys.stderr, flush=True)


async def run_line(
    connection: ClientConnection,
    state: SessionState,
    line: str,
    forwarder: InterruptForwarder,
    *,
    interactive: bool,
) -> ExitStatus | int:
    """Run ``line`` with ``/bin/sh -c`` in the session, output live; return
    how it ended (a number when the server refused it: a line on stderr says
    why). With ``interactive``, local stdin (a terminal) feeds its stdin.

    Raises:
        RexecConnectionError: the connection was lost before it started.
    """
    try:
        process = await connection.start(
            state.command_line(line), shell=True, stdin=interactive, **state.run_options()
        )
    except RemoteCommandError as exc:
        say(_refusal(exc, state))
        return EXIT_BY_REFUSAL.get(exc.code, EXIT_REFUSED)
    except ValueError as exc:
        say(str(exc))
        return EXIT_REFUSED
    feeder = asyncio.create_task(forward_input(process.stdin)) if process.stdin else None
    try:
        with forwarder.attached(process):
            await asyncio.gather(
                copy_output(process.stdout, sys.stdout.buffer, on_broken=process.cancel),
                copy_output(
                    process.stderr,
                    sys.stderr.buffer,
                    on_broken=lambda: None,
                    transform=stderr_painter(),
                ),
            )
            return await process.wait()
    finally:
        await stop_task(feeder)


def _refusal(exc: RemoteCommandError, state: SessionState) -> str:
    if exc.code == "cwd.invalid":
        return f"the directory {state.cwd} is gone from the server; 'cd' elsewhere ({exc.code})"
    if exc.code == "env.forbidden":
        return f"the server refuses a session variable: {exc}; 'unset' it"
    return str(exc)


async def capture(
    connection: ClientConnection,
    state: SessionState,
    script: str,
    *,
    env: Mapping[str, str] | None = None,
) -> CompletedProcess:
    """Run one of the shell's own queries in the session (its directory and
    variables; ``env`` instead of its variables when given) and capture it.

    Raises:
        RemoteCommandError: the server refused it.
        RexecConnectionError: the connection was or got lost.
    """
    result = await connection.run(
        state.command_line(script),
        shell=True,
        cwd=state.cwd,
        env=state.env if env is None else env,
        timeout=QUERY_TIMEOUT,
    )
    if result.connection_lost:
        raise RexecConnectionError(result.connection_error or "connection lost")
    return result


async def probe_identity(connection: ClientConnection) -> tuple[RemoteIdentity, str | None]:
    """Ask the server who and where a command runs by default: the identity
    for the prompt, and the default working directory (None if unknown).

    Raises:
        RexecConnectionError: the connection was lost.
    """
    try:
        result = await capture(connection, SessionState(), _IDENTITY_SCRIPT)
    except RemoteCommandError:
        result = None
    fields = (result.stdout or b"").split(b"\0") if result is not None else []
    if result is None or result.returncode != 0 or len(fields) < 4:
        # A server without a POSIX shell still runs commands; show what we know.
        return RemoteIdentity(host=connection.peer), None
    user, host, home = (field.decode("utf-8", "replace") for field in fields[:3])
    try:
        cwd: str | None = fields[3].decode() or None
    except UnicodeDecodeError:
        cwd = None  # not a name the protocol can carry: stay in the default
    return RemoteIdentity(user=user, host=host.split(".")[0], home=home), cwd
