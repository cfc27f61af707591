"""How job output reaches the terminal: the ``--group``, ``--keep-order``
and ``--line`` modes, each optionally ``--tag``ged.

* group (default): each job's stdout and stderr, whole, when it ends (stdout
  to stdout, stderr to stderr), so jobs never interleave;
* keep-order: the same, in input order (a job's output waits for the jobs
  before it; held output is the price);
* line: live, a line at a time, as jobs write them (lines of different jobs
  interleave, never mix); a partial line is held until its newline or the
  end of its stream.

A ``Tagger`` puts a tag before every line: ``--tag`` writes ``host:port
jobid`` and a tab (``job_tag``), ``--onall`` writes ``host: `` as pdsh and
clush do (``host_prefix``). A last line without a newline gets one when
tagged (so the next tag starts a line). Printers are fed by the batch
(``feed`` for live output, ``finished`` for results) and write bytes to two
binary files.

A printer owns each result handed to ``finished``: it releases the result's
captured output (``JobResult.release``) once printed, and streams it from
its spool rather than reading it whole, so printing holds no more than a
chunk at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO, Protocol

from ..address import Address
from .capture import Captured
from .jobs import Job
from .outcome import JobResult
from .targets import label


class Printer(Protocol):
    def feed(self, job: Job, target: Address, stream: str, data: bytes) -> None: ...

    def finished(self, result: JobResult) -> None: ...

    def close(self) -> None: ...


#: The tag of a job's lines: ``tagger(job, target)``.
Tagger = Callable[[Job, "Address | None"], bytes]


def job_tag(job: Job, target: Address | None) -> bytes:
    """``--tag``: ``host:port jobid`` and a tab."""
    return f"{label(target) if target else '-'} {job.id}\t".encode()


def host_prefix(display: Callable[[Address], str]) -> Tagger:
    """``--onall``'s default: ``host: `` (the name as ``display`` writes it)."""

    def tag(job: Job, target: Address | None) -> bytes:
        return f"{display(target) if target else '-'}: ".encode()

    return tag


def tagged(data: bytes, tag: bytes | None) -> bytes:
    """``data`` with ``tag`` at the start of each line (``tag`` None: as is)."""
    if tag is None or not data:
        return data
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return b"".join(tag + line + b"\n" for line in lines)


def write_captured(file: BinaryIO, captured: Captured | None, tag: bytes | None) -> None:
    """``captured`` to ``file``, chunk by chunk, ``tag`` before each line
    (a last line without a newline gets one when tagged)."""
    if captured is None:
        return
    partial = b""
    for chunk in captured.chunks():
        if tag is None:
            file.write(chunk)
            continue
        data = partial + chunk
        end = data.rfind(b"\n") + 1
        file.write(tagged(data[:end], tag))
        partial = data[end:]
    if partial:
        file.write(tagged(partial, tag))


class GroupPrinter:
    """``--group``: whole outputs when jobs end."""

    def __init__(self, stdout: BinaryIO, stderr: BinaryIO, *, tag: Tagger | None) -> None:
        self._out, self._err, self._tag = stdout, stderr, tag

    def feed(self, job: Job, target: Address, stream: str, data: bytes) -> None:
        pass

    def finished(self, result: JobResult) -> None:
        tag = self._tag(result.job, result.target) if self._tag else None
        try:
            for captured, file in (
                (result.stdout_capture, self._out),
                (result.stderr_capture, self._err),
            ):
                if captured is not None and captured.size:
                    write_captured(file, captured, tag)
                    file.flush()
        finally:
            result.release()

    def close(self) -> None:
        pass


class OrderedPrinter(GroupPrinter):
    """``--keep-order``: whole outputs, in input order."""

    def __init__(self, stdout: BinaryIO, stderr: BinaryIO, *, tag: Tagger | None) -> None:
        super().__init__(stdout, stderr, tag=tag)
        self._held: dict[int, JobResult] = {}
        self._next = 1

    def finished(self, result: JobResult) -> None:
        self._held[result.order] = result
        while self._next in self._held:
            super().finished(self._held.pop(self._next))
            self._next += 1

    def close(self) -> None:
        for order in sorted(self._held):  # after a stop, what is left, in order
            super().finished(self._held.pop(order))


class LinePrinter:
    """``--line``: live, whole lines."""

    def __init__(self, stdout: BinaryIO, stderr: BinaryIO, *, tag: Tagger | None) -> None:
        self._files = {"stdout": stdout, "stderr": stderr}
        self._tag = tag
        self._partial: dict[tuple[str, Address, str], bytes] = {}

    def feed(self, job: Job, target: Address, stream: str, data: bytes) -> None:
        key = (job.id, target, stream)
        pending = self._partial.pop(key, b"") + data
        if data:
            end = pending.rfind(b"\n") + 1
            pending, rest = pending[:end], pending[end:]
            if rest:
                self._partial[key] = rest
        if pending:
            file = self._files[stream]
            file.write(tagged(pending, self._tag(job, target) if self._tag else None))
            file.flush()

    def finished(self, result: JobResult) -> None:
        result.release()  # printed live already

    def close(self) -> None:
        pass
