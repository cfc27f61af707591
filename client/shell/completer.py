"""Tab completion for ``rexec shell``, answered by the remote shell itself.

On Tab, the word before the cursor is completed in the session: as a command
when it is the first word of a command (the session's aliases, functions,
builtins and programs, and paths), as a variable after ``$``, else as a path
(relative to the session's directory; directories end in ``/``). One query
per Tab, never per keystroke; a slow or failed query completes nothing.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Callable, Iterable

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from ..errors import RexecError
from .session import RemoteShell

#: Characters a completion escapes with a backslash, as shells do.
_SPECIAL = re.compile(r"([\s\\'\"$`!&|;<>()*?\[\]{}#])")
#: What may come just before the first word of a command.
_COMMAND_START = re.compile(r"(?:^|[;&|(`]|\$\(|\b(?:then|else|do|if|while|until|time)\s)\s*\Z")
#: Most names offered for one Tab.
MAX_COMPLETIONS = 500


def _kind(before_word: str, word: str) -> tuple[str, str]:
    """What to complete (``command``, ``variable``, ``path``) and the part
    of ``word`` the remote shell completes."""
    if word.startswith("${"):
        return "variable", word[2:]
    if word.startswith("$"):
        return "variable", word[1:]
    if "/" not in word and _COMMAND_START.search(before_word):
        return "command", word
    return "path", word


def _escaped(name: str) -> str:
    # A leading ~ stays one: the shell expands it.
    head = "~" if name.startswith("~") else ""
    return head + _SPECIAL.sub(r"\\\1", name[len(head) :])


class RemoteCompleter(Completer):
    """Completes the word before the cursor in the remote shell.

    Args:
        shell: gives the current remote shell at each Tab (it changes on a
            reconnect); None while there is none.
    """

    def __init__(self, shell: Callable[[], RemoteShell | None]) -> None:
        self._shell = shell

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        return []  # only the asynchronous path asks the server

    async def get_completions_async(
        self, document: Document, complete_event: CompleteEvent
    ) -> AsyncGenerator[Completion, None]:
        word = document.get_word_before_cursor(WORD=True)
        before = document.text_before_cursor[: len(document.text_before_cursor) - len(word)]
        kind, stem = _kind(before, word)
        shell = self._shell()
        if shell is None or shell.has_ended():
            return
        try:
            names = await shell.complete(kind, stem)
        except RexecError:
            return
        prefix = word[: len(word) - len(stem)]
        for name in sorted(set(names))[:MAX_COMPLETIONS]:
            text = prefix + (name if kind == "variable" else _escaped(name))
            if kind == "variable" and prefix == "${":
                text += "}"
            yield Completion(
                text,
                start_position=-len(word),
                display=name.rstrip("/").rpartition("/")[2] + ("/" if name.endswith("/") else ""),
            )
