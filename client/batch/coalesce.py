"""``-b``: identical results printed once, as ``clush -b`` and
``dshbak -c`` do.

Results are grouped by (command, stdout, stderr, status) as they finish
(only a digest of each output is kept per result); each group is printed at
the end (in input order) under a header naming its targets as a folded node
set and their count::

    ---------------- web[01-03] (3)
    <the output: stdout, then stderr>

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
from .jobs import Job
from .nodeset import fold
from .outcome import JobResult, Status
from .targets import label

SEPARATOR = "-" * 16


class CoalescingPrinter:
    """Args: ``display``, how a target is written (``targets.DisplayNames``)."""

    def __init__(self, stdout: BinaryIO, display: Callable[[Address], str] = label) -> None:
        self._out = stdout
        self._display = display
        self._groups: dict[bytes, tuple[JobResult, list[str], list[int]]] = {}
        self._commands: set[str] = set()

    def feed(self, job: Job, target: Address, stream: str, data: bytes) -> None:
        pass

    def finished(self, result: JobResult) -> None:
        command = result.job.command_text
        self._commands.add(command)
        key = hashlib.sha256(
            b"\0".join(
                (
                    command.encode(),
                    result.stdout or b"",
                    result.stderr or b"",
                    _state(result).encode(),
                )
            )
        ).digest()
        name = self._display(result.target) if result.target else f"job {result.job.id}"
        group = self._groups.get(key)
        if group is None:
            # Keep one copy of the output, not one per target.
            self._groups[key] = (result, [name], [result.order])
        else:
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
            for data in (result.stdout, result.stderr):
                if data:
                    self._out.write(data if data.endswith(b"\n") else data + b"\n")
        self._out.flush()


def _state(result: JobResult) -> str:
    if result.status is Status.FAILED and result.exit_code is not None and not result.error_code:
        return f"exit {result.exit_code}"
    return result.reason if result.status is not Status.OK else "ok"
