"""A job's captured output, in bounded memory: ``Captured`` (one stream of
one job) and ``Spool`` (where the output of a whole batch goes past its
memory budget).

Without a spool a ``Captured`` keeps every byte in memory (the library's
default: results stay readable after the batch). With one, the output the
batch holds — running jobs, and finished ones not yet printed (``-k`` holds
them for their turn, ``-b`` keeps one of each group) — stays in memory only
up to the spool's ``memory_budget`` in all and ``per_stream`` bytes a stream;
the rest is appended to the spool's temporary file in ``$TMPDIR`` (as GNU
parallel buffers output there) and read back when printed. The client's
memory is then bounded whatever the fleet prints.

The file is created with ``tempfile.TemporaryFile``: it has no name (it is
unlinked at once), so it disappears on every exit path, Ctrl-C and SIGKILL
included. It is one descriptor for the whole batch, whatever the number of
jobs, and is truncated whenever no spooled output is held, which gives its
space back. Writes block the loop as writes to stdout do: the file is ours,
on local disk.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import IO

#: The spool's memory budget for the CLI: output held in memory in all.
DEFAULT_MEMORY_BUDGET = 32 << 20
#: Bytes of one stream kept in memory before it goes to the file.
DEFAULT_PER_STREAM = 256 << 10
_READ_BACK = 1 << 20


class Spool:
    """The spill file of one batch and its memory account. Close it when
    the batch's results are printed; ``Captured`` objects are unreadable
    after."""

    def __init__(
        self,
        *,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        per_stream: int = DEFAULT_PER_STREAM,
        directory: str | None = None,
    ) -> None:
        self.memory_budget = memory_budget
        self.per_stream = per_stream
        self._directory = directory
        #: Bytes held in memory by live captures.
        self.memory = 0
        self._file: IO[bytes] | None = None
        self._end = 0
        self._holders = 0  # live captures with bytes in the file

    @property
    def file_size(self) -> int:
        """Bytes in the file now (0 once no capture holds any)."""
        return self._end

    def admits(self, held: int, more: int) -> bool:
        """Whether a stream holding ``held`` bytes may keep ``more`` in memory."""
        return held + more <= self.per_stream and self.memory + more <= self.memory_budget

    def append(self, data: bytes, *, first: bool) -> int:
        """Write ``data`` at the end of the file; its offset. ``first``: the
        caller's first bytes there (it then holds part of the file)."""
        if self._file is None:
            self._file = tempfile.TemporaryFile(dir=self._directory, prefix="rexec-batch-")
        offset = self._end
        written = 0
        while written < len(data):  # a short write: the next one says why
            written += os.pwrite(self._file.fileno(), data[written:], offset + written)
        self._end += len(data)
        self._holders += first
        return offset

    def read(self, offset: int, length: int) -> Iterator[bytes]:
        assert self._file is not None
        while length > 0:
            data = os.pread(self._file.fileno(), min(length, _READ_BACK), offset)
            if not data:
                raise OSError(f"the output spool file ended early at {offset}")
            offset += len(data)
            length -= len(data)
            yield data

    def let_go(self, memory: int, *, held_file: bool) -> None:
        """A capture was released: give back its memory, and the file's
        space once no capture holds any of it."""
        self.memory -= memory
        if held_file:
            self._holders -= 1
            if self._holders == 0 and self._file is not None:
                self._file.truncate(0)
                self._end = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class Captured:
    """One stream's output: bytes in memory, then extents of the spool file."""

    __slots__ = ("_extents", "_memory", "_released", "_spool", "size")

    def __init__(self, spool: Spool | None = None) -> None:
        self._spool = spool
        self._memory: list[bytes] = []
        self._extents: list[list[int]] = []  # [offset, length]
        self._released = False
        self.size = 0

    @classmethod
    def of(cls, data: bytes) -> Captured:
        """A capture holding ``data`` (in memory)."""
        captured = cls()
        captured.write(data)
        return captured

    def write(self, data: bytes) -> None:
        spool = self._spool
        if spool is None or (not self._extents and spool.admits(self.size, len(data))):
            self._memory.append(data)
            if spool is not None:
                spool.memory += len(data)
        else:
            offset = spool.append(data, first=not self._extents)
            last = self._extents[-1] if self._extents else None
            if last is not None and last[0] + last[1] == offset:
                last[1] += len(data)
            else:
                self._extents.append([offset, len(data)])
        self.size += len(data)

    def chunks(self) -> Iterator[bytes]:
        """The output, in pieces of at most about 1 MiB."""
        if self._released:
            raise ValueError("this output was released")
        yield from self._memory
        for offset, length in self._extents:
            assert self._spool is not None
            yield from self._spool.read(offset, length)

    def read(self) -> bytes:
        """The whole output (in memory: for the library and small outputs)."""
        return b"".join(self.chunks())

    @property
    def last_byte(self) -> bytes:
        """The output's last byte (b"" when empty)."""
        if self._extents:
            assert self._spool is not None
            offset, length = self._extents[-1]
            return b"".join(self._spool.read(offset + length - 1, 1))
        return self._memory[-1][-1:] if self._memory else b""

    def release(self) -> None:
        """Free the memory and spool space (the output can't be read after)."""
        if self._released:
            return
        self._released = True
        if self._spool is not None:
            memory = sum(map(len, self._memory))
            self._spool.let_go(memory, held_file=bool(self._extents))
        self._memory.clear()
        self._extents.clear()
