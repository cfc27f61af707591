"""Where the jobs of ``rexec batch`` come from, as the command line says:

* a commands file, or stdin (``-``): one command a line, ``-0`` records or
  ``--jsonl`` jobs (``jobs.read_jobs``);
* a template after ``--`` with its arguments (``template``): ``-- echo {}
  ::: a b``, or the arguments on stdin;
* with ``--onall``, a command after ``--`` with no replacement string and no
  ``:::``: that argv, once on every target (no shell, no input read; refused
  when stdin is not a terminal and holds input, which it would ignore); one
  word that is a command line (``'exit 3'``, ``'a | b'``) runs in the remote
  shell, as ``rexec run HOST 'exit 3'``, pdsh and clush run it.

The commands file is opened when the batch starts, so a missing or
unreadable file is a usage error naming it, never an empty batch.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shlex
import stat
import sys
import termios
from collections.abc import Iterator
from typing import IO

from ..cli.common import CliError, is_command_line
from .jobs import InputFormat, Job, read_jobs
from .template import Template, TemplateError

#: The name of the commands file when it is standard input (``-``).
_STDIN_NAME = "<stdin>"


class BatchInput:
    """The jobs of one ``rexec batch`` run (see the module docstring).

    Raises (from the constructor):
        CliError: contradictory options, a bad template, or a commands file
            that can't be opened.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.format = (
            InputFormat.JSONL if args.jsonl else InputFormat.NUL if args.null else InputFormat.LINES
        )
        self._separator = b"\0" if args.null else b"\n"
        self.template: Template | None = None
        #: The one job of ``--onall -- CMD ARG...``.
        self.one: Job | None = None
        self._file: IO[bytes] | None = None
        self.name = args.commands_file
        if args.remote_command is not None:
            self._command(args)
        elif args.quote:
            raise CliError("-q quotes the words of a command template: give one after '--'")
        elif args.commands_file == "-":
            self._file = _stdin()
            self.name = _STDIN_NAME
            if sys.stdin.isatty():
                print(
                    "rexec batch: reading commands from the terminal, one a line (end with "
                    "Ctrl-D); to run one command on every target: --onall -w SPEC -- COMMAND",
                    file=sys.stderr,
                )
        else:
            try:
                self._file = open(args.commands_file, "rb")  # noqa: SIM115 (closed by close())
            except OSError as exc:
                hint = ""
                if isinstance(exc, FileNotFoundError) and is_command_line(args.commands_file):
                    # pdsh and clush take the command there: say where it goes.
                    hint = (
                        "; to run it on every target: rexec batch --onall -w SPEC -- "
                        + shlex.quote(args.commands_file)
                    )
                raise CliError(
                    f"cannot read commands file {args.commands_file!r}: {exc.strerror}{hint}"
                ) from None

    def _command(self, args: argparse.Namespace) -> None:
        if not args.remote_command:
            raise CliError("the command after '--' is empty")
        if args.commands_file != "-":
            raise CliError("give either COMMANDS_FILE or a command after '--', not both")
        try:
            template = Template.parse(args.remote_command, quote=args.quote)
        except TemplateError as exc:
            raise CliError(str(exc)) from None
        if args.onall and not template.sources and not template.has_replacement:
            if _stdin_holds_input():
                # Either reading is common (GNU parallel appends the lines;
                # pdsh and clush users mean one command): a guess would run
                # the wrong commands on every target, a refusal costs a retry.
                raise CliError(
                    "--onall -- COMMAND with no {} and no ':::' runs COMMAND once on every "
                    "target and reads no input, but stdin holds some: add {} to give each line "
                    "to COMMAND, or run it with </dev/null"
                )
            # The argv runs as it is, no shell: -q changes nothing.
            words = args.remote_command
            if len(words) == 1 and is_command_line(words[0]):
                self.one = Job(id="1", shell=words[0])
            else:
                self.one = Job(id="1", argv=tuple(words))
            return
        if args.jsonl:
            raise CliError("--jsonl reads jobs, not a template's arguments: drop one")
        self.template = template
        if template.reads_stdin and sys.stdin.isatty():
            print(
                "rexec batch: reading arguments from the terminal, one a line (end with Ctrl-D)",
                file=sys.stderr,
            )

    @property
    def one_command(self) -> bool:
        """True for ``--onall -- CMD ARG...`` (one argv, run everywhere)."""
        return self.one is not None

    def jobs(self) -> Iterator[Job]:
        """The jobs, read lazily (a generator)."""
        if self.one is not None:
            yield self.one
        elif self.template is not None:
            with _stdin() as stdin:
                yield from self.template.jobs(stdin, separator=self._separator)
        else:
            assert self._file is not None
            yield from read_jobs(self._file, self.format, self.name)

    @property
    def finite(self) -> bool:
        """True when the input ends by itself (a regular file, a list of
        arguments, one command): after a stop, the rest can be read to
        report it skipped."""
        if self.one is not None:
            return True
        if self.template is not None:
            return self.template.count is not None or _is_regular(sys.stdin)
        assert self._file is not None
        return _is_regular(self._file)

    def count(self) -> int | None:
        """The number of jobs when it can be known without running them
        (a regular commands file is read once more, quickly); else None."""
        if self.one is not None:
            return 1
        if self.template is not None:
            return self.template.count
        assert self._file is not None
        if self.name == _STDIN_NAME or not _is_regular(self._file):
            return None  # stdin is read once, as it comes
        count, tail = 0, b""
        with open(self._file.name, "rb") as file:
            while chunk := file.read(1 << 20):
                records = (tail + chunk).split(self._separator)
                tail = records.pop()
                count += sum(1 for r in records if r.strip())
        return count + (1 if tail.strip() else 0)

    def close(self) -> None:
        """Close a commands file that is a regular file. A pipe, a FIFO or a
        terminal may still be read by the input thread, blocked until its
        writer writes: closing it would wait as long (its lock), so the
        process's exit closes it."""
        if self._file is not None and _is_regular(self._file):
            self._file.close()


def _stdin() -> IO[bytes]:
    """Standard input, to be read in a thread: a reader of its own over a
    copy of descriptor 0. A thread still blocked in ``sys.stdin.buffer``
    when the batch ends (Ctrl-C, a log that can't be written) makes the
    interpreter abort at exit ("could not acquire lock"); its own reader is
    simply left behind."""
    return open(os.dup(0), "rb")  # noqa: SIM115 (see BatchInput.close)


def _stdin_holds_input() -> bool:
    """Whether standard input, not a terminal, holds bytes to read now: a
    regular file with bytes past its offset, or a pipe, FIFO or socket with
    bytes waiting (its end alone is no input). Reads nothing; input that a
    slow writer has not written yet is not seen."""
    try:
        info = os.fstat(0)
        if stat.S_ISREG(info.st_mode):
            return info.st_size > os.lseek(0, 0, os.SEEK_CUR)
        if stat.S_ISFIFO(info.st_mode) or stat.S_ISSOCK(info.st_mode):
            waiting = fcntl.ioctl(0, termios.FIONREAD, b"\0\0\0\0")
            return int.from_bytes(waiting, sys.byteorder, signed=True) > 0
    except OSError:
        pass  # closed, or a file that can't tell: nothing to say about it
    return False


def _is_regular(file: IO[bytes] | IO[str]) -> bool:
    try:
        return stat.S_ISREG(os.fstat(file.fileno()).st_mode)
    except (OSError, ValueError):
        return False
