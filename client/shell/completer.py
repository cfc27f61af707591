r"""Tab completion for ``rexec shell``, answered by the remote shell itself.

On Tab, the word before the cursor is completed in the session: as a command
when it is the first word of a command (the session's aliases, functions,
builtins and programs, and paths), as a variable after ``$``, else as a path
(relative to the session's directory; directories end in ``/``). One query
per Tab, never per keystroke; a slow or failed query completes nothing.

The word is read as the shell reads it: ``dir\ with\ space/fi`` and
``"dir with/fi`` are one word each, completed in the same quoting. A unique
match ends the word as bash does: a space after it (and the open quote
closed first), none after a directory's ``/``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncGenerator, Callable, Iterable

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from ..cli.base import one_line
from ..errors import RexecError
from .session import RemoteShell

#: Characters a completion escapes with a backslash, as shells do.
_SPECIAL = re.compile(r"([\s\\'\"$`!&|;<>()*?\[\]{}#])")
#: Characters no backslash can carry (a backslash-newline is no newline): a
#: name with one is quoted whole, in the remote shell's own way.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: What may come just before the first word of a command.
_COMMAND_START = re.compile(r"(?:^|[;&|(`]|\$\(|\b(?:then|else|do|if|while|until|time)\s)\s*\Z")
#: Most names offered for one Tab.
MAX_COMPLETIONS = 500
#: Characters that end a word outside quotes.
_WORD_BREAKS = frozenset(" \t\n;&|()<>")


@dataclasses.dataclass(frozen=True)
class Word:
    """The shell word before the cursor.

    Attributes:
        start: where it starts in the text before the cursor.
        value: what it means, quotes and backslashes taken out.
        quote: the quote still open at the cursor (``'`` or ``"``), or "".
    """

    start: int
    value: str
    quote: str


def word_before_cursor(text: str) -> Word:
    """The last word of ``text`` as the shell splits it: backslashes and
    quotes join what they protect; unquoted blanks and operators split."""
    start, value, quote = 0, [], ""
    index = 0
    while index < len(text):
        char = text[index]
        if quote == "'":
            if char == "'":
                quote = ""
            else:
                value.append(char)
        elif char == "\\" and index + 1 < len(text):
            index += 1
            escaped = text[index]
            # In double quotes a backslash protects only these.
            if quote == '"' and escaped not in '$`"\\\n':
                value.append(char)
            value.append(escaped)
        elif quote == '"':
            if char == '"':
                quote = ""
            else:
                value.append(char)
        elif char in "'\"":
            quote = char
        elif char in _WORD_BREAKS:
            start, value = index + 1, []
        else:
            value.append(char)
        index += 1
    return Word(start, "".join(value), quote)


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


def _escaped(name: str, quote_word: Callable[[str], str]) -> str:
    # A leading ~ stays one: the shell expands it.
    head = "~" if name.startswith("~") else ""
    if _CONTROL.search(name):
        return head + quote_word(name[len(head) :])
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
        typed = document.text_before_cursor
        word = word_before_cursor(typed)
        kind, stem = _kind(typed[: word.start], word.value)
        shell = self._shell()
        if shell is None or shell.has_ended():
            return
        try:
            names = sorted(set(await shell.complete(kind, stem)))[:MAX_COMPLETIONS]
        except RexecError:
            return
        prefix = word.value[: len(word.value) - len(stem)]
        for name in names:
            yield Completion(
                _replacement(
                    kind, prefix, name, word.quote, shell.dialect.quote, unique=len(names) == 1
                ),
                start_position=word.start - len(typed),
                display=one_line(
                    name.rstrip("/").rpartition("/")[2] + ("/" if name.endswith("/") else "")
                ),
            )


def _replacement(
    kind: str,
    prefix: str,
    name: str,
    quote: str,
    quote_word: Callable[[str], str],
    *,
    unique: bool,
) -> str:
    """What the word becomes: ``name`` quoted as the word was (``quote``
    open, or escaped; with a control character, quoted whole by
    ``quote_word``), after ``prefix`` (``$``, ``${``); a unique match that is
    not a directory is closed (quote, brace) and followed by a space."""
    ends = unique and not name.endswith("/")
    if kind == "variable":
        # In double quotes the variable stays in them, the quote left open.
        text = quote + prefix + name + ("}" if prefix == "${" else "")
        ends = ends and not quote
    elif quote == "'":
        text = "'" + name.replace("'", "'\\''") + ("'" if ends else "")
    elif quote == '"':
        text = '"' + re.sub(r'([$`"\\])', r"\\\1", name) + ('"' if ends else "")
    else:
        text = _escaped(name, quote_word)
    return text + (" " if ends else "")
