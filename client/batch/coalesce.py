"""``-b``: identical results printed once, as ``clush -b`` and
``dshbak -c`` do.

Results are grouped by (command, stdout, status) as they finish (only a
digest of each output is kept per result); each group is printed at the end
(in input order) under a header naming its targets as a folded node set and
their count::

    ---------------- web[01-03] (3)
    <the output>

As with clush, ``-b`` gathers stdout only: a command's stderr goes to
stderr as its job ends, each line after ``host: ``, so ``2>/dev/null``
drops it and a report on stdout holds none; ``-B`` gathers stderr too
(after stdout, in the group, on stdout).

A group whose status is not ok says so in its header (``exit 2``,
``timeout``, ``connect_error`` …). When the batch ran more than one command,
a line ``$ COMMAND`` follows the header. Memory: one copy of each distinct
output, plus the target names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import BinaryIO

from ..address import Address
from .capture import Captured
from .jobs import Job
from .nodeset import fold
from .outcome import JobResult, Status
from .output import write_captured
from .targets import label

SEPARATOR = "-" * 16


class CoalescingPrinter:
    """Args: ``display``, how a target is written (``targets.DisplayNames``);
    ``stderr``: where the commands' stderr goes, line by line after
    ``host: `` (``-b``); None: gathered with stdout (``-B``)."""

    def __init__(
        self,
        stdout: BinaryIO,
        display: Callable[[Address], str] = label,
        *,
        stderr: BinaryIO | None = None,
    ) -> None:
        self._out = stdout
        self._err = stderr
        self._display = display
        self._groups: dict[bytes, tuple[JobResult, list[str], list[int]]] = {}
        self._commands: set[str] = set()

    def feed(self, job: Job, target: Address, stream: str, data: bytes) -> None:
        pass

    def finished(self, result: JobResult) -> None:
        command = result.job.command_text
        self._commands.add(command)
        name = self._display(result.target) if result.target else f"job {result.job.id}"
        if self._err is not None and result.stderr_capture is not None:
            write_captured(self._err, result.stderr_capture, f"{name}: ".encode())
            self._err.flush()
            result.stderr_capture.release()
        key = _fingerprint(command, self._gathered(result), result)
        group = self._groups.get(key)
        if group is None:
            # Keep one copy of the output, not one per target.
            self._groups[key] = (result, [name], [result.order])
        else:
            result.release()
            group[1].append(name)
            group[2][0] = min(group[2][0], result.order)

    def close(self) -> None:
        """Print the groups, in the input order of their first job."""
        for result, names, _ in sorted(self._groups.values(), key=lambda g: g[2][0]):
            state = _state(result)
            header = f"{SEPARATOR} {fold(names)} ({len(names)})"
            if state != "ok":
                header += f" {state}"
            lines = (
                [header] if len(self._commands) == 1 else [header, f"$ {result.job.command_text}"]
            )
            self._out.write(("\n".join(lines) + "\n").encode())
            for captured in self._gathered(result):
                if captured is not None and captured.size:
                    write_captured(self._out, captured, None)
                    if captured.last_byte != b"\n":
                        self._out.write(b"\n")
            result.release()
        self._out.flush()

    def _gathered(self, result: JobResult) -> tuple[Captured | None, ...]:
        """The outputs printed in the group: stdout, and stderr with ``-B``."""
        if self._err is not None:
            return (result.stdout_capture,)
        return (result.stdout_capture, result.stderr_capture)


def _fingerprint(command: str, outputs: tuple[Captured | None, ...], result: JobResult) -> bytes:
    """What makes two results print the same: command, output, state."""
    digest = hashlib.sha256(command.encode() + b"\0" + _state(result).encode())
    for captured in outputs:
        digest.update(b"\0%d\0" % (captured.size if captured else -1))
        for chunk in captured.chunks() if captured else ():
            digest.update(chunk)
    return digest.digest()


def _state(result: JobResult) -> str:
    if result.status is Status.FAILED and result.exit_code is not None and not result.error_code:
        return f"exit {result.exit_code}"
    return result.reason if result.status is not Status.OK else "ok"
