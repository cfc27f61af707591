"""What a batch runs: ``Job``, and the readers of the three input formats.

Input formats (``InputFormat``):

* ``lines``: one shell command a line (run with ``/bin/sh -c``); blank lines
  are skipped;
* ``nul``: the same, NUL-separated (``-0``), so commands may hold newlines;
* ``jsonl``: one JSON object a line: exactly one of ``argv`` (list of
  strings) or ``shell`` (string), and optional ``id`` (string or integer),
  ``cwd``, ``env`` (object of strings), ``timeout`` (seconds > 0) and
  ``target`` (``host:port``: the job runs only there).

Job ids are stable: the ``id`` given, else the 1-based record number in the
input (blank records count), so the same input gives the same ids and
``--resume`` can match them. Readers are generators: they hold one record at
a time, whatever the input size.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import shlex
from collections.abc import Iterator, Mapping
from typing import IO, Any

from ..address import Address
from .targets import TargetError, label, parse_target

_JSONL_FIELDS = {"id", "argv", "shell", "cwd", "env", "timeout", "target"}


class InputFormat(enum.Enum):
    LINES = "lines"
    NUL = "nul"
    JSONL = "jsonl"


class JobInputError(ValueError):
    """A record of the input that is not a valid job (message names it)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Job:
    """One unit of work: a command with its options, and a stable id.

    Exactly one of ``argv`` and ``shell`` is set. ``target``, when set, pins
    the job to that server (it is not spread, and retries stay there).
    """

    id: str
    argv: tuple[str, ...] | None = None
    shell: str | None = None
    cwd: str | None = None
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    timeout: float | None = None
    target: Address | None = None

    def __post_init__(self) -> None:
        if (self.argv is None) == (self.shell is None):
            raise ValueError("a job needs exactly one of argv and shell")

    @classmethod
    def of(cls, command: str | list[str] | tuple[str, ...] | Job, job_id: str) -> Job:
        """A job from a shell string, an argv list, or a job (kept as it is)."""
        if isinstance(command, Job):
            return command
        if isinstance(command, str):
            return cls(id=job_id, shell=command)
        return cls(id=job_id, argv=tuple(command))

    @property
    def args(self) -> str | list[str]:
        """What ``ClientConnection.start`` takes (with ``shell=self.is_shell``)."""
        return self.shell if self.shell is not None else list(self.argv or ())

    @property
    def is_shell(self) -> bool:
        return self.shell is not None

    @property
    def command_text(self) -> str:
        """The command as one line for people and the joblog."""
        return self.shell if self.shell is not None else shlex.join(self.argv or ())

    def to_json(self) -> dict[str, Any]:
        """The job as a ``jsonl`` input record (``from_json`` reads it back)."""
        record: dict[str, Any] = {"id": self.id}
        if self.shell is not None:
            record["shell"] = self.shell
        else:
            record["argv"] = list(self.argv or ())
        if self.cwd is not None:
            record["cwd"] = self.cwd
        if self.env:
            record["env"] = dict(self.env)
        if self.timeout is not None:
            record["timeout"] = self.timeout
        if self.target is not None:
            record["target"] = label(self.target)
        return record

    @classmethod
    def from_json(cls, record: object, default_id: str) -> Job:
        """Validate one ``jsonl`` record. Raises ``JobInputError``."""
        if not isinstance(record, dict):
            raise JobInputError("expected a JSON object")
        unknown = set(record) - _JSONL_FIELDS
        if unknown:
            raise JobInputError(f"unknown field(s): {', '.join(sorted(unknown))}")
        job_id = record.get("id", default_id)
        if isinstance(job_id, bool) or not isinstance(job_id, (str, int)) or job_id == "":
            raise JobInputError("'id' must be a non-empty string or an integer")
        argv, shell = record.get("argv"), record.get("shell")
        if (argv is None) == (shell is None):
            raise JobInputError("give exactly one of 'argv' and 'shell'")
        if argv is not None and (
            not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv)
        ):
            raise JobInputError("'argv' must be a non-empty list of strings")
        if shell is not None and not isinstance(shell, str):
            raise JobInputError("'shell' must be a string")
        cwd = record.get("cwd")
        if cwd is not None and not isinstance(cwd, str):
            raise JobInputError("'cwd' must be a string")
        env = record.get("env") or {}
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise JobInputError("'env' must be an object of strings")
        timeout = record.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not 0 < timeout < math.inf
        ):
            raise JobInputError("'timeout' must be a number of seconds > 0")
        target = record.get("target")
        if target is not None:
            if not isinstance(target, str):
                raise JobInputError("'target' must be a 'host:port' string")
            try:
                target = parse_target(target)
            except TargetError as exc:
                raise JobInputError(str(exc)) from None
        return cls(
            id=str(job_id),
            argv=tuple(argv) if argv is not None else None,
            shell=shell,
            cwd=cwd,
            env=env,
            timeout=timeout,
            target=target,
        )


def _decode(record: bytes, where: str) -> str:
    try:
        return record.decode("utf-8")
    except UnicodeDecodeError:
        raise JobInputError(f"{where}: not UTF-8") from None


def split_records(file: IO[bytes], separator: bytes) -> Iterator[bytes]:
    """The records of ``file`` (binary, read lazily), without their separator."""
    if separator == b"\n":
        for line in file:
            yield line[:-1] if line.endswith(b"\n") else line
        return
    pending = b""
    while chunk := file.read(1 << 16):
        pending += chunk
        *complete, pending = pending.split(separator)
        yield from complete
    if pending:
        yield pending


def read_jobs(file: IO[bytes], fmt: InputFormat, name: str = "<stdin>") -> Iterator[Job]:
    """The jobs in ``file`` (binary, read lazily), in order.

    Raises:
        JobInputError: a record that is not a valid job, when it is reached.
    """
    separator = b"\0" if fmt is InputFormat.NUL else b"\n"
    for number, raw in enumerate(split_records(file, separator), 1):
        where = f"{name}:{number}"
        if fmt is InputFormat.JSONL:
            text = _decode(raw, where).strip()
            if not text:
                continue
            try:
                yield Job.from_json(json.loads(text), str(number))
            except json.JSONDecodeError as exc:
                raise JobInputError(f"{where}: bad JSON: {exc.msg}") from None
            except JobInputError as exc:
                raise JobInputError(f"{where}: {exc}") from None
        else:
            text = _decode(raw, where)
            if fmt is InputFormat.LINES:
                text = text.removesuffix("\r")
            if text.strip():
                yield Job(id=str(number), shell=text)


def format_job(job: Job, fmt: InputFormat) -> bytes:
    """``job`` as one record of ``fmt`` (the re-run file), separator included.
    ``lines`` and ``nul`` carry only the command: jobs read from them have
    nothing else, and pinned jobs are written as ``jsonl`` (see
    ``rerun.rerun_format``)."""
    if fmt is InputFormat.JSONL:
        return json.dumps(job.to_json(), ensure_ascii=False).encode() + b"\n"
    if fmt is InputFormat.NUL:
        return job.command_text.encode() + b"\0"
    return one_line_for_sh(job.command_text).encode() + b"\n"


def one_line_for_sh(command: str) -> str:
    """A line that ``/bin/sh -c`` runs exactly as it runs ``command``.

    A ``lines`` record ends at a line break, so a command holding one (a
    template filled with an argument that has a newline) would be read back
    as two commands, its argument's second line run as a command of its own.
    Such a command is written as ``eval`` of its text rebuilt by ``printf
    %b`` from escapes, on one line; any other command is written as it is.
    """
    if "\n" not in command and "\r" not in command:
        return command
    escaped = (
        command.replace("\\", "\\\\")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("'", "'\\''")
    )
    return f"eval \"$(printf '%b' '{escaped}')\""
