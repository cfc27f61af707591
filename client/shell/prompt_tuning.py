"""How rexec's prompt uses prompt_toolkit: what it turns off or does once
instead of at every key or prompt (each measured: see
bench/SHELL_LINE_RESULTS.md)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Hashable, Iterator

from prompt_toolkit import PromptSession
from prompt_toolkit.application import Application
from prompt_toolkit.application import application as _application
from prompt_toolkit.cache import SimpleCache
from prompt_toolkit.eventloop.utils import call_soon_threadsafe as _call_soon_threadsafe
from prompt_toolkit.key_binding import KeyBindingsBase
from prompt_toolkit.key_binding.key_bindings import Binding, KeysTuple
from prompt_toolkit.layout import ConditionalContainer, FloatContainer, Layout
from prompt_toolkit.output import Output, create_output
from prompt_toolkit.output.vt100 import Vt100_Output


def terminal_output() -> Output:
    """Where the prompts are drawn: the terminal, asked no cursor position.

    prompt_toolkit asks the terminal where the cursor is (a CPR request) at
    each prompt, only to size a completion menu, and waits up to a second for
    the answer when a prompt ends before the answer came (a line typed ahead
    or pasted, a terminal or harness that never answers): every such line
    would start that much late. bash asks nothing; neither does rexec.
    """
    output = create_output()
    if isinstance(output, Vt100_Output):
        output.enable_cpr = False
    return output


def lighten(session: PromptSession[str]) -> None:
    """Give ``session`` a layout of only what rexec's prompt shows: the
    prompt and its line (or the Ctrl-R search in its place) and the completion
    menu.

    ``PromptSession`` lays out every feature a prompt may have (a frame, the
    validation, system, argument, multi-line search and bottom toolbars, a
    multi-column completion menu, a right prompt), each hidden by a filter
    when unused, and walks them all on each key and each render (twice a
    line): about two thirds of the CLI's CPU for a line. rexec sets none of
    them. Where the layout is not the one this expects (another
    prompt_toolkit), it is kept as it is.
    """
    framed = session.layout.container.get_children()[0]
    main = framed.alternative_content if isinstance(framed, ConditionalContainer) else None
    if not isinstance(main, FloatContainer) or not main.floats:
        return
    main.floats = main.floats[:1]  # the single-column completion menu
    session.layout = session.app.layout = Layout(
        main, focused_element=session.layout.current_window
    )


class BindingsByWindow(KeyBindingsBase):
    """An application's key bindings, each key's looked up once per focused
    window.

    prompt_toolkit finds the bindings of every key press (twice: those it
    matches and those it starts) by walking the layout for its controls and
    computing the version of every merged set of bindings: ~40 µs a key
    (measured), five keys for ``true`` and Enter. rexec's prompt adds or
    removes no binding while it runs (vi or emacs mode, a search, are the
    bindings' filters, evaluated at each key as before), so what the lookup
    finds depends only on the keys and the focused window (the line, or the
    Ctrl-R search field).
    """

    def __init__(self, app: Application[str], bindings: KeyBindingsBase) -> None:
        self._app = app
        self._bindings = bindings
        self._for_keys: SimpleCache[Hashable, list[Binding]] = SimpleCache(maxsize=256)
        self._starting: SimpleCache[Hashable, list[Binding]] = SimpleCache(maxsize=256)

    def get_bindings_for_keys(self, keys: KeysTuple) -> list[Binding]:
        return self._for_keys.get(
            (self._app.layout.current_window, keys),
            lambda: self._bindings.get_bindings_for_keys(keys),
        )

    def get_bindings_starting_with_keys(self, keys: KeysTuple) -> list[Binding]:
        return self._starting.get(
            (self._app.layout.current_window, keys),
            lambda: self._bindings.get_bindings_starting_with_keys(keys),
        )

    @property
    def _version(self) -> Hashable:
        raise NotImplementedError  # never merged into other bindings

    @property
    def bindings(self) -> list[Binding]:
        raise NotImplementedError  # as prompt_toolkit's own application bindings


def _call_soon(
    func: Callable[[], None],
    max_postpone_time: float | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
) -> None:
    """prompt_toolkit's ``call_soon_threadsafe`` (how a render is scheduled,
    postponed while other callbacks are ready, up to ``max_postpone_time``),
    queued with ``call_soon`` when called in the loop's own thread:
    ``call_soon_threadsafe`` writes to the loop's self-pipe at every
    postponement, nine times a line (measured), to wake a loop that is awake.
    """
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:  # another thread: prompt_toolkit's own way
        running = None
    if running is None or (loop is not None and loop is not running):
        _call_soon_threadsafe(func, max_postpone_time, loop)
        return
    until = None if max_postpone_time is None else time.monotonic() + max_postpone_time

    def schedule() -> None:
        if until is None or not getattr(running, "_ready", ()) or time.monotonic() > until:
            func()
        else:
            running.call_soon(schedule)

    running.call_soon(schedule)


def schedule_renders_in_loop() -> None:
    """Have prompt_toolkit schedule its renders with ``_call_soon`` (for this
    process: the prompt is its only prompt_toolkit application)."""
    _application.call_soon_threadsafe = _call_soon  # type: ignore[attr-defined]


def look_up_bindings_once(app: Application[str]) -> None:
    """Have ``app`` look each key's bindings up once per focused window
    (``BindingsByWindow``)."""
    processor = app.key_processor
    processor._bindings = BindingsByWindow(app, processor._bindings)


@contextlib.contextmanager
def _no_resize_handler(handler: Callable[[], None]) -> Iterator[None]:
    """In place of prompt_toolkit's own (see ``keep_resize_handler``)."""
    yield


def keep_resize_handler(app: Application[str]) -> None:
    """Redraw ``app``'s prompt on SIGWINCH through one handler installed for
    the session, instead of the one prompt_toolkit installs as each prompt
    starts and removes as it ends: asyncio checks the signal against
    ``signal.valid_signals()`` both times, 140 µs a line (measured). The
    prompt is this process's only prompt_toolkit application, so its
    per-prompt handler is turned off for the process; a resize while a line
    runs (no prompt) draws nothing, as before."""

    def resized() -> None:
        if app.is_running:
            app._on_resize()  # what prompt_toolkit's handler calls

    asyncio.get_running_loop().add_signal_handler(signal.SIGWINCH, resized)
    _application.attach_winch_signal_handler = _no_resize_handler
