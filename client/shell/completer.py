"""Tab completion of remote paths for ``rexec shell``.

On Tab, the word before the cursor is taken as a path: the server's shell
lists the names in its directory that start with the rest (a glob, in the
session's directory and variables), marking directories with ``/``. One short
query per Tab, never per keystroke; a slow or failed query completes nothing.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import AsyncGenerator, Callable, Iterable

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from ..errors import RexecError
from .builtins import Shell
from .remote_line import capture

#: Characters a completion escapes with a backslash, as shells do.
_SPECIAL = re.compile(r"([\s\\'\"$`!&|;<>()*?\[\]{}#~])")
#: Most names offered for one Tab.
MAX_COMPLETIONS = 500


def _listing_script(directory: str, prefix: str) -> str:
    """Shell code printing, NUL-terminated, the names in ``directory`` that
    start with ``prefix`` (directories with a trailing ``/``)."""
    if directory in ("~", "~/") or directory.startswith("~/"):
        where = '"$HOME"/' + shlex.quote(directory[2:] or ".")
    else:
        where = shlex.quote(directory or ".")
    return (
        f"cd {where} 2>/dev/null || exit 1\n"
        f"for f in {shlex.quote(prefix)}*; do\n"
        '  if [ -d "$f" ]; then printf \'%s/\\0\' "$f"; '
        'elif [ -e "$f" ] || [ -L "$f" ]; then printf \'%s\\0\' "$f"; fi\n'
        "done"
    )


class RemotePathCompleter(Completer):
    """Completes the path before the cursor with names on the server.

    Args:
        shell: gives the current connection and session state at each Tab
            (the connection changes on a reconnect).
    """

    def __init__(self, shell: Callable[[], Shell]) -> None:
        self._shell = shell

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        return []  # only the asynchronous path asks the server

    async def get_completions_async(
        self, document: Document, complete_event: CompleteEvent
    ) -> AsyncGenerator[Completion, None]:
        word = document.get_word_before_cursor(WORD=True)
        directory, slash, prefix = word.rpartition("/")
        directory += slash
        shell = self._shell()
        if shell.connection.is_closed:
            return
        try:
            result = await capture(
                shell.connection, shell.state, _listing_script(directory, prefix)
            )
        except (RexecError, ValueError):
            return
        if result.returncode != 0 or not result.stdout:
            return
        names = result.stdout.split(b"\0")[:-1][:MAX_COMPLETIONS]
        for raw in sorted(names):
            name = raw.decode("utf-8", "replace")
            yield Completion(
                _SPECIAL.sub(r"\\\1", name),
                start_position=-len(prefix),
                display=name,
            )
