"""The read-eval-print loop of ``rexec shell`` (line mode).

It reads a unit of input (a line, and the continuation lines an unfinished
one needs), runs it as a built-in (``builtins``) or in the remote shell
(``session``), and shows its status in the next prompt. The remote shell
lasts for the session, so whatever a line changes lasts for the next one.

A lost connection, noticed while a line runs or while idle at the prompt
(the connection's keepalive catches a silent one), is reported in one line,
and the user is offered a reconnect: a new shell there is made from the last
state snapshot. A shell that was killed is replaced the same way; one that
exited (``exit`` in a line) ends the session with its status.

When stdin is not a terminal, lines are read from it without a prompt and
lines get no stdin, as ``sh < script`` would do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Awaitable
from typing import Any, TypeVar

from prompt_toolkit import PromptSession

from ..cli.common import EXIT_FAILURE, EXIT_INTERRUPTED, open_connection
from ..connection import ClientConnection
from ..errors import RemoteCommandError, RexecConnectionError, RexecError
from ..term.relay import InterruptForwarder
from ..term.terminal import colour_enabled
from .builtins import ExitShell, find_builtin
from .completer import RemoteCompleter
from .display import TerminalOutput, say
from .leaving import ServerLeaving
from .line_reader import LineDiscarded, PipeReader, PromptReader, Watched
from .opening import open_shell
from .prompt_text import STYLE, prompt_text
from .prompt_tuning import terminal_output
from .session import LineEnd, RemoteShell, ShellEnded
from .state import EXIT_TIMEOUT, SessionState, Snapshot
from .syntax import ends_in_continuation, surely_complete

T = TypeVar("T")


class Interrupted(Exception):
    """Ctrl-C while the shell was starting or reconnecting."""


class _CancelOnInterrupt:
    """An ``InterruptForwarder`` target that cancels a task (start-up, reconnect)."""

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self._task = task

    def send_signal(self, sig: int | str) -> None:
        self._task.cancel()

    def cancel(self) -> None:
        self._task.cancel()


class Repl:
    """One ``rexec shell`` session (see the module docstring).

    Attributes:
        connection: the current connection (replaced on reconnect).
        shell: the current remote shell (replaced with the connection, or
            when it was killed).
        state: what the session knows of itself.
    """

    def __init__(self, args: argparse.Namespace, connection: ClientConnection) -> None:
        self._args = args
        self.connection = connection
        self.shell: RemoteShell | None = None
        self.state = SessionState()
        self._forwarder = InterruptForwarder()
        self._leaving = ServerLeaving()
        self._interactive = sys.stdin.isatty()
        self._reader: PromptReader | PipeReader = PipeReader()
        if self._interactive:
            self._reader = PromptReader(
                RemoteCompleter(lambda: self.shell),
                lambda: prompt_text(self.state),
                STYLE if colour_enabled(sys.stdout) else None,
                lambda: self.state.editing_mode == "vi",
            )
        # The remote output waits for an accepted prompt to give the terminal back.
        self._output = TerminalOutput(self._reader.settled)

    async def run(self) -> int:
        """Start the remote shell, then read and run units until ``exit``,
        Ctrl-D or the end of input, or a lost connection the user does not
        reconnect; return the exit status."""
        with self._forwarder.installed(quit_too=True):
            try:
                await self._interruptible(self._start_shell())
            except Interrupted:
                say(
                    "interrupted while the remote shell started (do its start-up files wait for"
                    " something? try --sh or --pty)"
                )
                return EXIT_INTERRUPTED
            while True:
                try:
                    await self._step()
                except ExitShell as exc:
                    if self.shell is not None:
                        await self.shell.leave(exc.status)
                    return exc.status
                except ShellEnded as ended:
                    status = await self._shell_ended(ended)
                    if status is not None:
                        return status
                except RexecConnectionError as exc:
                    if not await self._recover(exc):
                        return EXIT_FAILURE

    async def close(self) -> None:
        if self.shell is not None:
            await self.shell.close()
        await self.connection.close()

    # --- one unit ----------------------------------------------------------------

    async def _step(self) -> None:
        """Read one unit and run it.

        Raises:
            ExitShell: leave (``exit``, Ctrl-D, the end of input).
            ShellEnded, RexecConnectionError: as ``RemoteShell.run_line``.
        """
        try:
            text = await self._read(continuation=False)
        except LineDiscarded:
            return
        except EOFError:
            raise ExitShell(self.state.last_status) from None
        found = find_builtin(text) if text.strip() else None
        if self._leaving.error is None and text.strip() and found is None:
            await self._run_unit(text)  # sent while the prompt gives the terminal back
            return
        await self._reader.settled()
        if self._leaving.error is not None:  # said at the prompt: the line is not run
            self._remember(text)
            raise self._leaving.error
        if found is not None:
            self._remember(text)
            builtin, rest = found
            self.state.record(await builtin.run(self, rest))

    async def _run_unit(self, text: str) -> None:
        """Run ``text`` in the remote shell, reading continuation lines while
        it is unfinished; Ctrl-C on one drops the unit, Ctrl-D runs it as it
        is (the shell then says what is missing)."""
        forced = False
        while True:
            if forced or not ends_in_continuation(text):
                mode = "force" if forced else "run" if surely_complete(text) else "check"
                end = await self._run_line(text, mode)
                if not end.more:
                    self._remember(text)
                    self._record(end)
                    return
            try:
                text += "\n" + await self._read(continuation=True)
            except LineDiscarded:
                self._remember(text)
                return
            except EOFError:
                forced = True

    async def _run_line(self, text: str, mode: str) -> LineEnd:
        """Send ``text`` at once, the prompt perhaps still giving the terminal
        back; return, or raise, once it has."""
        assert self.shell is not None
        try:
            return await self.shell.run_line(
                text,
                mode,
                typed_input=self._reader.settled if self._interactive else None,
                interrupts=self._forwarder,
                timeout=self.state.timeout,
            )
        finally:
            await self._reader.settled()

    def _record(self, end: LineEnd) -> None:
        if end.timed_out:
            self.state.record(EXIT_TIMEOUT, "timeout")
        else:
            self.state.record(end.status)
        self.state.shell_status = end.status
        self.state.cwd = end.cwd or self.state.cwd

    def _remember(self, text: str) -> None:
        if self._reader.history is not None:
            self._reader.history.add(text)

    # --- reading -------------------------------------------------------------------

    async def _read(self, *, continuation: bool) -> str:
        """The next line; raises EOFError, LineDiscarded, or what ended
        while the prompt waited (``ShellEnded``, ``RexecConnectionError``)."""
        assert self.shell is not None
        watch = asyncio.ensure_future(self._idle_end(self.shell))
        try:
            return await self._reader.read(continuation=continuation, watch=watch)
        except Watched as watched:
            raise watched.result from None
        finally:
            watch.cancel()

    async def _idle_end(self, shell: RemoteShell) -> Exception:
        """What ends the session's wait at the prompt: the connection's end, or
        the shell's (as the exception to raise)."""
        lost = asyncio.ensure_future(self.connection.wait_ended())
        ended = asyncio.ensure_future(shell.wait_ended())
        notice = asyncio.ensure_future(self._leaving.watch(self.connection))
        try:
            await asyncio.wait({lost, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waited in (lost, ended, notice):
                waited.cancel()
        if lost.done() and not lost.cancelled():
            return lost.result()
        status = ended.result()
        if status.connection_lost:
            return RexecConnectionError(status.connection_error or "connection lost")
        return shell.ended(status)

    # --- the remote shell ----------------------------------------------------------

    async def _start_shell(self) -> None:
        """Start a shell on the current connection: the one the last snapshot
        describes, if there is one.

        Raises:
            ShellEnded: it ended before it was ready.
            RexecError: the server refused it, or the connection was lost.
        """
        if self.shell is not None:
            await self.shell.close()
            self.shell = None
        self.shell = await open_shell(
            self.connection,
            self._output.stdout,
            self._output.stderr,
            snapshot=self.state.snapshot,
            status=self.state.shell_status,
            posix_sh=self._args.sh,
            cwd=self._args.cwd,
            on_snapshot=self._keep_snapshot,
            on_warning=say,
        )
        ready = self.shell.ready
        assert ready is not None
        identity, cwd, shell = ready.identity, ready.cwd, ready.shell
        self.state.identity, self.state.cwd, self.state.shell = identity, cwd, shell

    def _keep_snapshot(self, snapshot: Snapshot) -> None:
        self.state.snapshot = kept = snapshot.with_options_of(self.state.snapshot)
        self.state.editing_mode = kept.editing_mode or self.state.editing_mode

    async def _shell_ended(self, ended: ShellEnded) -> int | None:
        """The remote shell ended: return None if the session goes on (in a
        new shell), else its exit status. One that exited by itself ends the
        session, as ``exit`` in bash over ssh does; one that was killed is
        replaced."""
        status = ended.status
        if status.exit_code is not None and not ended.killed_by_rexec:
            return status.returncode
        if self._interactive:
            print(flush=True)  # after the terminal's ^C
        shutting_down = RexecConnectionError(
            f"connection to {self.connection.peer} lost: the server is shutting down"
            " (server.shutting_down)"
        )
        if status.cancelled and not ended.killed_by_rexec:
            # Only a server shutting down ends a shell nobody cancelled: the
            # connection goes with it; as for any lost connection, offer a new one.
            return None if await self._recover(shutting_down) else EXIT_FAILURE
        why = status.describe()
        if status.timed_out:  # the shell is one command: the server's limit counts its age
            age = f"{status.duration or 0:.0f} s"  # its age, kill grace included
            why = f"was ended by the server's time limit for one command after {age}"
        say(f"the remote shell {why}; a new one goes on from the session's state")
        self.state.record(status)
        try:
            await self._interruptible(self._start_shell())
        except RemoteCommandError as exc:
            if exc.code != "server.shutting_down":
                say(f"no new shell: {exc}")
                return status.returncode
            return None if await self._recover(shutting_down) else EXIT_FAILURE
        except RexecConnectionError as exc:
            return None if await self._recover(exc) else EXIT_FAILURE
        except (Interrupted, ShellEnded, RexecError) as exc:
            say(f"no new shell: {exc}")
            return status.returncode
        return None

    async def _interruptible(self, work: Awaitable[T]) -> T:
        """``work``, which Ctrl-C cancels (``Interrupted``)."""
        task = asyncio.ensure_future(work)
        with self._forwarder.attached(_CancelOnInterrupt(task)):
            await asyncio.wait({task})
        if task.cancelled():
            raise Interrupted()
        return task.result()

    # --- losing and regaining the connection ---------------------------------------

    async def _recover(self, error: RexecConnectionError) -> bool:
        """Report a lost connection in one line and offer to reconnect;
        return whether the session goes on (on a new connection, in a shell
        made from the session's state)."""
        if not self._leaving.said():
            say(str(error))
        self.state.record(EXIT_FAILURE)
        await self.close()
        if not self._interactive:
            return False
        asker: PromptSession[str] = PromptSession(output=terminal_output())
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
                say("answer y (reconnect) or n (leave)")
                continue
            try:
                await self._interruptible(self._reconnect())
            except Interrupted:
                say("reconnecting interrupted")
                continue
            except (RexecError, ShellEnded) as exc:
                say(str(exc))
                await self.close()
                continue
            # The prompt shows what ``$?`` is in the new shell: the last
            # finished line's status, not the lost connection's.
            self.state.record(self.state.shell_status)
            snapshot = self.state.snapshot
            restored = "restored" if snapshot is not None else "not known: a new one"
            if snapshot is not None and snapshot.lacks_options:
                restored += ", but not its shell options (shopt, set -o): not known here"
            say(f"reconnected to {self.connection.peer}; the shell's state {restored}")
            return True

    async def _reconnect(self) -> None:
        self.connection = await open_connection(self._args, self._args.address, worked_before=True)
        self._leaving = ServerLeaving()
        await self._start_shell()


async def start_repl(args: argparse.Namespace) -> int:
    """Connect, start the remote shell and run the loop.

    Raises:
        CliError, RexecConnectionError: the first connection failed (the
            caller turns them into one line and status 255).
    """
    connection = await open_connection(args, args.address)
    repl = Repl(args, connection)
    try:
        return await repl.run()
    except RemoteCommandError as exc:
        say(f"{connection.peer}: the remote shell was refused: {exc}")
        return EXIT_FAILURE
    except ShellEnded as exc:
        say(f"the remote shell did not start: it {exc}")
        return EXIT_FAILURE
    finally:
        with contextlib.suppress(RexecError):
            await repl.close()
