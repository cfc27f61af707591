"""Reading what the user types into ``rexec shell``.

On a terminal: prompt_toolkit, with line editing, Ctrl-R search of a
persistent history and Tab completion. Ctrl-C discards what was typed
(``LineDiscarded``), never a traceback; Ctrl-D on an empty line is the end
(``EOFError``). A line and the continuation lines that finish it (``> ``)
are one unit of history, as bash keeps them (``UnitHistory``). The prompt
gives way when something else needs the user first (``watch``: a lost
connection, an ended shell).

From a pipe or a file: lines as they come, no prompt.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterable
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.completion import Completer
from prompt_toolkit.enums import EditingMode
from prompt_toolkit.filters import is_searching
from prompt_toolkit.formatted_text import AnyFormattedText, StyleAndTextTuples, to_formatted_text
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.layout.screen import Char
from prompt_toolkit.renderer import print_formatted_text
from prompt_toolkit.search import accept_search, stop_search
from prompt_toolkit.styles import DummyStyle, Style

from .display import say
from .history_file import history_path
from .prompt_tuning import (
    keep_resize_handler,
    lighten,
    look_up_bindings_once,
    schedule_renders_in_loop,
    terminal_output,
)

#: The prompt of a continuation line, as bash's PS2.
CONTINUATION = "> "
#: How a typed control character shows, as prompt_toolkit draws it (``^[``).
_INERT = str.maketrans(Char.display_mappings)


class LineDiscarded(Exception):
    """Ctrl-C at the prompt: what was typed is dropped."""


class Watched(Exception):
    """What the prompt watched happened first; ``result`` is its result."""

    def __init__(self, result: Any) -> None:
        super().__init__("watched event")
        self.result = result


class UnitHistory(History):
    """A history that keeps whole units (``add``), not each line as the prompt
    accepts it: a ``for`` loop typed over three lines comes back as one."""

    def __init__(self, store: History) -> None:
        super().__init__()
        self._store = store

    def load_history_strings(self) -> Iterable[str]:
        return self._store.load_history_strings()

    def store_string(self, string: str) -> None:
        self._store.store_string(string)

    def append_string(self, string: str) -> None:
        """What the prompt calls on each accepted line: nothing (see ``add``)."""

    def add(self, unit: str) -> None:
        """Keep ``unit`` (unless it repeats the last one)."""
        if unit.strip() and unit != next(iter(self.get_strings()[-1:]), None):
            super().append_string(unit)


def _open_history() -> History:
    path = history_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.touch(mode=0o600, exist_ok=True)
    except OSError as exc:
        say(f"history not kept: {path}: {exc.strerror or exc}")
        return InMemoryHistory()
    return FileHistory(str(path))


def _continuation(width: int, line_number: int, wrap_count: int) -> str:
    """What starts each line of a unit after the first (a unit recalled from
    the history): the continuation prompt it was typed at; nothing where a
    long line wraps."""
    return CONTINUATION if wrap_count == 0 else ""


def _key_bindings() -> KeyBindings:
    bindings = KeyBindings()

    # Eager: before prompt_toolkit's own, in a history search too (bash drops
    # the line there as well).
    @bindings.add("c-c", eager=True)
    def _discard(event: KeyPressEvent) -> None:
        if event.app.layout.is_searching:
            # Or the next prompt would open in the search field.
            stop_search()
        event.app.exit(exception=LineDiscarded())

    # Enter in a Ctrl-R search runs the line found, as in bash (prompt_toolkit
    # would only put it at the prompt).
    @bindings.add("enter", filter=is_searching, eager=True)
    def _run_found(event: KeyPressEvent) -> None:
        accept_search()
        event.app.current_buffer.validate_and_handle()

    # Ctrl-Z at the prompt does nothing, as in bash (which ignores the
    # SIGTSTP it makes there); prompt_toolkit would put a literal ^Z in the line.
    @bindings.add("c-z", eager=True)
    def _ignore_suspend(event: KeyPressEvent) -> None:
        pass

    return bindings


class PromptReader:
    """Lines from the terminal (see the module docstring).

    Args:
        completer: Tab completion.
        message: the prompt of a first line, computed at each prompt.
        style: its colours, or None.
        vi_mode: whether lines are edited as vi does (``set -o vi``), asked
            at each prompt.
    """

    def __init__(
        self,
        completer: Completer,
        message: Callable[[], AnyFormattedText],
        style: Style | None,
        vi_mode: Callable[[], bool],
    ) -> None:
        self.history = UnitHistory(_open_history())
        self._message = message
        self._session: PromptSession[str] = PromptSession(
            history=self.history,
            completer=completer,
            complete_while_typing=False,
            key_bindings=_key_bindings(),
            style=style,
            output=terminal_output(),
            # The accepted line is written by ``_echo``, not drawn again.
            erase_when_done=True,
            prompt_continuation=_continuation,
        )
        self._style = style or DummyStyle()
        self._vi_mode = vi_mode
        self._resize_handled = False
        lighten(self._session)
        look_up_bindings_once(self._session.app)
        schedule_renders_in_loop()
        #: What ``read`` waits for: set with the line as the prompt accepts it.
        self._outcome: asyncio.Future[str | None] | None = None
        #: An accepted prompt that has not yet given the terminal back.
        self._ending: asyncio.Task[str] | None = None
        buffer = self._session.default_buffer
        accept = buffer.accept_handler
        assert accept is not None

        def accepted(buffer: Buffer) -> bool:
            if self._outcome is not None and not self._outcome.done():
                self._outcome.set_result(buffer.document.text)
            return accept(buffer)

        buffer.accept_handler = accepted

    async def read(self, *, continuation: bool, watch: asyncio.Future[Any]) -> str:
        """The next line typed, as soon as the prompt accepts it: the prompt
        then still erases itself, writes the line as the terminal keeps it and
        gives the terminal back (``settled``), while the caller sends the line
        on its way, so that the remote shell runs it meanwhile.

        Raises:
            LineDiscarded: Ctrl-C.
            EOFError: Ctrl-D on an empty line.
            Watched: ``watch`` finished first (the prompt is gone).
        """
        await self.settled()
        outcome: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._outcome = outcome

        def decided(_: asyncio.Future[Any]) -> None:
            if not outcome.done():
                outcome.set_result(None)

        prompt = asyncio.ensure_future(self._prompt(continuation))
        prompt.add_done_callback(decided)
        watch.add_done_callback(decided)
        # Awaited directly: the line comes back before the prompt's own end
        # runs (the accept handler sets ``outcome`` before the prompt exits).
        line = await outcome
        if line is not None:
            self._ending = prompt
            return line
        if watch.done() and not prompt.done():
            app = self._session.app
            if app.is_running:
                app.exit(exception=Watched(watch.result()))
            else:
                prompt.cancel()
                raise Watched(watch.result())
        return await prompt

    async def settled(self) -> None:
        """Wait until the last accepted prompt has given the terminal back:
        what is written to the terminal, or read from it, waits for this."""
        ending = self._ending
        if ending is None:
            return
        await asyncio.wait({ending})  # not cancelled with a waiter
        if self._ending is ending:
            self._ending = None
            ending.result()  # a fault in the prompt's end, once

    async def _prompt(self, continuation: bool) -> str:
        # Fixed as the prompt starts: the state may change before it is echoed.
        message = to_formatted_text(CONTINUATION if continuation else self._message())
        if not self._resize_handled:
            keep_resize_handler(self._session.app)
            self._resize_handled = True
        self._session.editing_mode = EditingMode.VI if self._vi_mode() else EditingMode.EMACS
        app = self._session.app
        drawn = app.render_counter
        try:
            # Ctrl-C at the prompt is a key (the terminal is raw there); the
            # SIGINT handler stays the shell's.
            return await self._session.prompt_async(message, handle_sigint=False)
        except KeyboardInterrupt:
            # prompt_toolkit's own Ctrl-C, where a key binding of ours does not
            # reach (a KeyboardInterrupt must not leave this task: asyncio
            # would end the program with it).
            raise LineDiscarded() from None
        finally:
            if app.render_counter != drawn:
                self._echo(message)

    def _echo(self, prompt: StyleAndTextTuples) -> None:
        """Write the prompt that was erased and the line as it was left
        (accepted, discarded by Ctrl-C, or given up), as the terminal keeps
        it: what prompt_toolkit's last render of the line would draw, without
        laying out the prompt once more (half of its CPU for a line).

        Each line of a unit after the first gets the continuation prompt,
        as when it was typed; control characters show as ``^X``, inert.
        """
        app = self._session.app
        lines = [line.translate(_INERT) for line in self._session.default_buffer.text.split("\n")]
        fragments = [*prompt, ("", lines[0])]
        for line in lines[1:]:
            fragments += [("", "\n"), *to_formatted_text(_continuation(0, 1, 0)), ("", line)]
        fragments.append(("", "\n"))
        print_formatted_text(app.output, fragments, self._style, color_depth=app.color_depth)
        app.output.flush()


class PipeReader:
    """Lines from a stdin that is not a terminal."""

    history = None

    async def read(self, *, continuation: bool, watch: asyncio.Future[Any]) -> str:
        """The next line, without its newline.

        Raises:
            EOFError: the input has ended.
        """
        data: bytes = await asyncio.to_thread(sys.stdin.buffer.readline)
        if not data:
            raise EOFError
        return data.decode("utf-8", "replace").removesuffix("\n")

    async def settled(self) -> None:
        """Nothing to wait for: no prompt is drawn."""
