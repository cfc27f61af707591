"""Command templates, as GNU parallel writes them: ``rexec batch -w HOSTS --
gzip -9 {} ::: a b c``, or the arguments one a line on stdin
(``seq 3 | rexec batch -w HOSTS -- echo {}``).

After ``--`` come the template's words, then any number of input sources:
``::: ARG...`` (the arguments themselves) and ``:::: FILE...`` (one argument
a line; ``-`` is stdin). With several sources every combination is a job,
the first source varying slowest (as GNU parallel). Without a source the
arguments are read from stdin, one a line (NUL-separated with ``-0``).

The job's command is the template's words joined by spaces and run by
``/bin/sh -c`` on the server, with the replacement strings below replaced by
the argument, quoted for the shell (so ``a b`` or ``$HOME`` arrive as they
were typed); a template with no replacement string gets the arguments
appended. With ``quote`` (GNU parallel's ``-q``) each word of the template is
quoted too, after its replacements, so that it reaches the program as one
word, as typed: ``-q perl -e 'print "{}\n"'`` runs perl with that script.
Replacement strings (``{N…}``: the same for input source N):

=========  =====================================================
``{}``     the argument (several sources: all, space-separated)
``{.}``    without its extension (``dir/a.tar.gz`` → ``dir/a.tar``)
``{/}``    its base name (``a.tar.gz``)
``{//}``   its directory (``dir``; ``.`` for a bare name)
``{/.}``   its base name without the extension (``a.tar``)
``{#}``    the job's sequence number, which is also its id
=========  =====================================================
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import shlex
from collections.abc import Iterable, Iterator
from typing import IO

from .jobs import Job, JobInputError, split_records

ARGS_SEPARATOR = ":::"
FILES_SEPARATOR = "::::"
_REPLACEMENT = re.compile(r"\{(#|(\d*)(\.|/|//|/\.)?)\}")


class TemplateError(ValueError):
    """A template or input source that can't be used (one line)."""


@dataclasses.dataclass(frozen=True)
class Template:
    """A command template and its input sources (see the module docstring)."""

    words: tuple[str, ...]
    #: ``(":::", args)`` or ``("::::", files)``, in order.
    sources: tuple[tuple[str, tuple[str, ...]], ...]
    #: Each word reaches the program as one word (GNU parallel's ``-q``).
    quote: bool = False

    @classmethod
    def parse(cls, words: list[str], *, quote: bool = False) -> Template:
        """Split the words after ``--`` into the template and its sources;
        ``quote`` as GNU parallel's ``-q`` (see the module docstring).

        Raises:
            TemplateError: no command before the first source, or a bad
                replacement string.
        """
        command: list[str] = []
        sources: list[tuple[str, list[str]]] = []
        for word in words:
            if word in (ARGS_SEPARATOR, FILES_SEPARATOR):
                sources.append((word, []))
            elif sources:
                sources[-1][1].append(word)
            else:
                command.append(word)
        if not command:
            raise TemplateError(
                "no command before ':::' (rexec batch -w HOSTS -- CMD {} ::: ARG...)"
            )
        template = cls(tuple(command), tuple((kind, tuple(args)) for kind, args in sources), quote)
        if not quote:
            _refuse_quoted_replacements(" ".join(command))
        for number in template._source_numbers():
            if number > max(1, len(template.sources)):
                raise TemplateError(
                    f"{{{number}}} names input source {number}, "
                    f"and there are {max(1, len(template.sources))}"
                )
        return template

    def _source_numbers(self) -> Iterator[int]:
        for word in self.words:
            for match in _REPLACEMENT.finditer(word):
                if match.group(2):
                    yield int(match.group(2))

    @property
    def has_replacement(self) -> bool:
        return any(_REPLACEMENT.search(word) for word in self.words)

    @property
    def reads_stdin(self) -> bool:
        """True when the arguments come from stdin (no source, or ``:::: -``)."""
        return not self.sources or any(
            kind == FILES_SEPARATOR and "-" in args for kind, args in self.sources
        )

    @property
    def count(self) -> int | None:
        """The number of jobs, when every source is ``:::`` (else None)."""
        if not self.sources or any(kind == FILES_SEPARATOR for kind, _ in self.sources):
            return None
        total = 1
        for _, args in self.sources:
            total *= len(args)
        return total

    def command(self, args: tuple[str, ...], seq: int) -> str:
        """The shell command for one combination of arguments."""
        # Quoting each word whole (quote) means its replacements go in bare,
        # or the argument would be quoted twice.
        inner = (lambda value: value) if self.quote else shlex.quote
        outer = shlex.quote if self.quote else (lambda word: word)
        if not self.has_replacement:
            return " ".join((*map(outer, self.words), *map(shlex.quote, args)))

        def replace(match: re.Match[str]) -> str:
            if match.group(1) == "#":
                return str(seq)
            number, form = match.group(2), match.group(3) or ""
            values = (args[int(number) - 1],) if number else args
            return " ".join(inner(_transform(value, form)) for value in values)

        return " ".join(outer(_REPLACEMENT.sub(replace, word)) for word in self.words)

    def jobs(self, stdin: IO[bytes], *, separator: bytes = b"\n") -> Iterator[Job]:
        """The jobs, in order, ids 1, 2, … (lazily for a single source).

        Raises:
            JobInputError: an argument that is not UTF-8, or a file that
                can't be read (when it is reached).
        """
        lists: list[Iterable[str]] = []
        sources = self.sources or ((FILES_SEPARATOR, ("-",)),)
        for kind, args in sources:
            if kind == ARGS_SEPARATOR:
                lists.append(args)
            else:
                lists.append(_file_args(args, stdin, separator))
        combos: Iterable[tuple[str, ...]]
        if len(lists) == 1:
            combos = ((arg,) for arg in lists[0])
        else:
            combos = itertools.product(*lists)
        for seq, combo in enumerate(combos, 1):
            yield Job(id=str(seq), shell=self.command(combo, seq))


def _refuse_quoted_replacements(text: str) -> None:
    """Refuse a replacement string that stands inside the template's own
    quotes (``'echo "{}"'``): the argument goes in already quoted for the
    shell, and quotes inside quotes are literal, so ``$(...)`` in a file name
    would run (GNU parallel has the same trap; rexec refuses it).

    Raises:
        TemplateError: naming the replacement string and the safe form.
    """
    quoted_at = _quote_states(text)
    for match in _REPLACEMENT.finditer(text):
        if match.group(1) != "#" and quoted_at[match.start()]:
            raise TemplateError(
                f"{match.group(0)} stands inside quotes in the template; the argument is "
                f"quoted for the shell already: write it outside quotes "
                f'(echo "processing "{match.group(0)}), or use -q'
            )


def _quote_states(text: str) -> list[bool]:
    """For each character of ``text``, whether ``/bin/sh`` reads it inside
    single or double quotes."""
    states: list[bool] = []
    quote: str | None = None
    escaped = False
    for char in text:
        states.append(quote is not None)
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote is None and char in "'\"":
            quote = char
        elif char == quote:
            quote = None
    return states


def _transform(value: str, form: str) -> str:
    if form == ".":
        return _strip_extension(value)
    if form == "/":
        return os.path.basename(value)
    if form == "//":
        return os.path.dirname(value) or "."
    if form == "/.":
        return _strip_extension(os.path.basename(value))
    return value


def _strip_extension(value: str) -> str:
    head, dot, extension = value.rpartition(".")
    return head if dot and head and "/" not in extension else value


def _file_args(files: Iterable[str], stdin: IO[bytes], separator: bytes) -> Iterator[str]:
    """The arguments in ``files`` (``-``: stdin), one a record."""
    for name in files:
        if name == "-":
            yield from _records(stdin, separator, "<stdin>")
            continue
        try:
            with open(name, "rb") as file:
                yield from _records(file, separator, name)
        except OSError as exc:
            raise JobInputError(f"cannot read argument file {name!r}: {exc.strerror}") from None


def _records(file: IO[bytes], separator: bytes, name: str) -> Iterator[str]:
    for number, record in enumerate(split_records(file, separator), 1):
        if separator == b"\n":
            record = record.removesuffix(b"\r")
        try:
            yield record.decode("utf-8")
        except UnicodeDecodeError:
            raise JobInputError(f"{name}:{number}: not UTF-8") from None
