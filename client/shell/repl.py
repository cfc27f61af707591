"""The read-eval-print loop of ``rexec shell`` (line mode).

It reads a line (prompt_toolkit: editing, a persistent history, Ctrl-R
search, Tab completion of remote paths), runs it as a built-in
(``shell_builtins``) or on the server (``remote_line``), and remembers its
status for the prompt. A lost connection, noticed while a command runs or
while idle at the prompt (the connection's keepalive catches a silent one),
is reported in one line, and the user is offered a reconnect that keeps the
session's directory and variables.

When stdin is not a terminal, lines are read from it without a prompt and
commands get no stdin, as ``sh < script`` would do.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.styles import Style

from ..cli.common import EXIT_FAILURE, open_connection
from ..connection import ClientConnection
from ..errors import RexecConnectionError, RexecError
from ..term.relay import InterruptForwarder
from ..term.terminal import colour_enabled
from .builtins import ExitShell, find_builtin
from .completer import RemotePathCompleter
from .remote_line import probe_identity, run_line, say
from .state import SessionState

_STYLE = Style.from_dict(
    {"status": "ansired bold", "user": "ansigreen bold", "cwd": "ansiblue bold"}
)


def history_path() -> Path:
    """Where the history is kept: ``$REXEC_HISTORY_FILE``, else
    ``$XDG_STATE_HOME/rexec/history``, else ``~/.local/state/rexec/history``."""
    if explicit := os.environ.get("REXEC_HISTORY_FILE"):
        return Path(explicit)
    state_home = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state_home) / "rexec" / "history"


def _open_history() -> History:
    path = history_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.touch(mode=0o600, exist_ok=True)
    except OSError as exc:
        say(f"history not kept: {path}: {exc.strerror or exc}")
        return InMemoryHistory()
    return FileHistory(str(path))


class _LostAtPrompt(Exception):
    """The connection ended while the prompt was waiting for a line."""

    def __init__(self, error: RexecConnectionError) -> None:
        super().__init__(str(error))
        self.error = error


class Repl:
    """One ``rexec shell`` session on a connection (replaced on reconnect).

    Attributes:
        connection: the current connection.
        state: the session's directory, variables and last status.
    """

    def __init__(
        self, args: argparse.Namespace, connection: ClientConnection, state: SessionState
    ) -> None:
        self._args = args
        self.connection = connection
        self.state = state
        self._forwarder = InterruptForwarder()
        self._interactive = sys.stdin.isatty()
        self._prompt: PromptSession[str] | None = None
        if self._interactive:
            self._prompt = PromptSession(
                history=_open_history(),
                completer=RemotePathCompleter(lambda: self),
                complete_while_typing=False,
                style=_STYLE if colour_enabled(sys.stdout) else None,
            )

    async def run(self) -> int:
        """Read and run lines until ``exit``, Ctrl-D or end of input, or a lost
        connection the user does not reconnect; return the exit status."""
        with self._forwarder.installed():
            while True:
                try:
                    line = await self._read_line()
                except EOFError:
                    return self.state.last_status
                except KeyboardInterrupt:
                    continue  # Ctrl-C at the prompt drops the line, as shells do
                except _LostAtPrompt as lost:
                    if not await self._recover(lost.error):
                        return EXIT_FAILURE
                    continue
                try:
                    await self._execute(line)
                except ExitShell as exc:
                    return exc.status
                except RexecConnectionError as exc:
                    if not await self._recover(exc):
                        return EXIT_FAILURE

    # --- reading ----------------------------------------------------------------

    def _message(self) -> FormattedText:
        state = self.state
        who = state.identity
        parts: list[tuple[str, str]] = []
        if state.last_label:
            parts.append(("class:status", f"[{state.last_label}] "))
        user = f"{who.user}@" if who.user else ""
        parts += [
            ("class:user", f"{user}{who.host}"),
            ("", ":"),
            ("class:cwd", state.display_cwd()),
            ("", "# " if who.user == "root" else "$ "),
        ]
        return FormattedText(parts)

    async def _read_line(self) -> str:
        """The next line; raises EOFError at the end, KeyboardInterrupt for a
        Ctrl-C at the prompt, ``_LostAtPrompt`` when the connection ends."""
        if self._prompt is None:
            data: bytes = await asyncio.to_thread(sys.stdin.buffer.readline)
            if not data:
                raise EOFError
            return data.decode("utf-8", "replace").rstrip("\n")
        prompt = asyncio.ensure_future(
            # Ctrl-C at the prompt is a key (the terminal is raw there); the
            # SIGINT handler stays the shell's forwarder.
            self._prompt.prompt_async(self._message, handle_sigint=False)
        )
        ended = asyncio.ensure_future(self.connection.wait_ended())
        try:
            await asyncio.wait({prompt, ended}, return_when=asyncio.FIRST_COMPLETED)
            if ended.done() and not prompt.done():
                if self._prompt.app.is_running:
                    self._prompt.app.exit(exception=_LostAtPrompt(ended.result()))
                else:
                    prompt.cancel()
                    raise _LostAtPrompt(ended.result())
            return await prompt
        finally:
            ended.cancel()

    # --- running ------------------------------------------------------------------

    async def _execute(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        found = find_builtin(line)
        if found is not None:
            builtin, rest = found
            self.state.record(await builtin.run(self, rest))
            return
        status = await run_line(
            self.connection, self.state, line, self._forwarder, interactive=self._interactive
        )
        if not isinstance(status, int):
            if status.connection_lost:
                raise RexecConnectionError(status.connection_error or "connection lost")
            if status.signal is not None and self._interactive:
                print(flush=True)  # after the terminal's "^C", as shells do
        self.state.record(status)

    # --- losing and regaining the connection -------------------------------------------

    async def _recover(self, error: RexecConnectionError) -> bool:
        """Report a lost connection in one line and offer to reconnect;
        return whether the session goes on (on a new connection)."""
        say(str(error))
        self.state.record(EXIT_FAILURE)
        await self.connection.close()
        if self._prompt is None:
            return False
        asker: PromptSession[str] = PromptSession()
        while True:
            try:
                answer = await asker.prompt_async(
                    f"reconnect to {self.connection.peer}? [y/n] ", handle_sigint=False
                )
            except (EOFError, KeyboardInterrupt):
                return False
            answer = answer.strip().lower()
            if answer in ("n", "no"):
                return False
            if answer not in ("y", "yes"):
                continue
            try:
                self.connection = await open_connection(self._args, self._args.address)
            except RexecError as exc:
                say(str(exc))
                continue
            say(f"reconnected to {self.connection.peer}; directory and variables kept")
            return True


async def start_repl(args: argparse.Namespace) -> int:
    """Connect, learn the remote identity and directory, and run the loop.

    Raises:
        CliError, RexecConnectionError: the first connection failed (the
            caller turns them into one line and status 255).
    """
    connection = await open_connection(args, args.address)
    repl: Repl | None = None
    try:
        identity, cwd = await probe_identity(connection)
        repl = Repl(args, connection, SessionState(cwd=cwd, identity=identity))
        return await repl.run()
    finally:
        # A reconnect replaces the connection: close the latest one.
        await (repl.connection if repl is not None else connection).close()
