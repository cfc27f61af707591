"""The control channel of a remote shell: records from the shell to rexec.

The remote shell (``remote.bash``, ``remote.sh``) writes records between
NULs into the stdin pipe of a ``cat`` that runs beside it; that ``cat``'s
stdout arrives here. A record is ``KEY KIND SEQ`` on its first line, then a
payload: ``shell`` and ``ready`` at start-up, ``status`` and ``state`` after
each line, ``more`` for an unfinished line, ``complete`` for Tab, ``warning``
for something to tell the user. The shell's own strings can't hold NUL, so no
payload contains one; the NUL before each record ends whatever a record cut
short by Ctrl-C left behind.

KEY is the session's secret (``RemoteShell``), which the remote shell got on
its stdin, never in its environment or arguments, and keeps out of what its
commands can list (``remote.bash``, ``remote.sh``): a record without it came
from something else that opened the pipe through /proc, and is dropped, as
is a second ``status`` for a line. That keeps a stray or hostile program that
writes into the channel from changing the prompt; it is no boundary against a
process of the same account that writes into the shell's own input, which
can run anything there (as one can write to an ssh session's terminal).

Records say nothing about the shell's output, which arrives on other
streams: ``output.MarkedStream`` tells when a line's output is complete.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hmac
import re
from collections.abc import Callable

from ..cli.base import one_line
from ..streams import OutputReader

#: Records nobody waited for that are kept for a later ``expect``.
UNCLAIMED_KEPT = 8
#: Most bytes of one record kept while it arrives (a state snapshot of a
#: session with very large variables); a longer one is dropped.
MAX_RECORD = 64 * 2**20


class ChannelClosed(Exception):
    """The control channel ended: the shell's helper is gone."""


@dataclasses.dataclass(frozen=True)
class Record:
    """One record: its kind, sequence number and payload."""

    kind: str
    seq: int
    payload: bytes

    def fields(self) -> list[str]:
        """The payload's lines, decoded (undecodable bytes replaced)."""
        return self.payload.decode("utf-8", "replace").split("\n")

    def line_end(self) -> tuple[int, str, list[str]]:
        """A ``status`` record's status, the shell's directory (the rest of
        the payload: a directory's name may hold a newline) and the streams
        that get no end-of-output marker (sh names them after the status)."""
        head, _, cwd = self.payload.decode("utf-8", "replace").partition("\n")
        words = head.split()
        status = int(words[0]) if words and words[0].isdigit() else 1
        return status, cwd, words[1:]

    def candidates(self) -> list[str]:
        """A ``complete`` record's candidates: one a line, written with
        ``\\`` and ``\n`` for a backslash and a newline (a name may hold one)."""
        return [_ESCAPE.sub(_unescape, name) for name in self.fields() if name]


_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _unescape(match: re.Match[str]) -> str:
    return "\n" if match[1] == "n" else match[1]


def parse_record(data: bytes, key: str) -> Record | None:
    """The record in ``data`` (one record without its NULs), or None when it
    is not one of the session ``key``'s (nothing, or something else wrote to
    the channel: it is ignored)."""
    header, _, payload = data.partition(b"\n")
    given, _, rest = header.decode("ascii", "replace").partition(" ")
    kind, _, seq = rest.partition(" ")
    if not hmac.compare_digest(given, key) or not kind.isalpha() or not seq.isdigit():
        return None
    return Record(kind, int(seq), payload)


@dataclasses.dataclass
class _Waiter:
    kinds: frozenset[str]
    seq: int
    future: asyncio.Future[Record]


class ControlChannel:
    """Reads records from ``reader`` (``run``) and hands each to whoever
    waits for its kind and sequence number (``expect``); ``state`` and
    ``warning`` records go to ``on_state`` and ``on_warning``. A record
    nobody waits for yet is kept (the last few) for the next ``expect``.

    Args:
        reader: the helper ``cat``'s stdout.
        key: the session's secret, which every record must start with.
        on_state: called with each ``state`` record.
        on_warning: called with the text of each ``warning`` record.
    """

    def __init__(
        self,
        reader: OutputReader,
        key: str,
        on_state: Callable[[Record], None],
        on_warning: Callable[[str], None],
    ) -> None:
        self._reader = reader
        self._key = key
        #: The last line that got its ``status``: another for it is forged.
        self._last_status = 0
        self._on_state = on_state
        self._on_warning = on_warning
        self._waiters: list[_Waiter] = []
        self._unclaimed: collections.deque[Record] = collections.deque(maxlen=UNCLAIMED_KEPT)
        self._closed = False

    async def run(self) -> None:
        """Read records until the channel ends; then every waiter gets
        ``ChannelClosed``."""
        pending = bytearray()
        skipping = False  # the record being read is too long: drop it
        try:
            while chunk := await self._reader.read(2**20):
                for index, part in enumerate(chunk.split(b"\0")):
                    if index:
                        # A NUL: the record before it is complete.
                        if not skipping and (record := parse_record(bytes(pending), self._key)):
                            self._deliver(record)
                        pending.clear()
                        skipping = False
                    if not skipping:
                        pending += part
                        if len(pending) > MAX_RECORD:
                            pending.clear()
                            skipping = True
        finally:
            self._closed = True
            for waiter in self._waiters:
                if not waiter.future.done():
                    waiter.future.set_exception(ChannelClosed())
            self._waiters.clear()

    def expect(self, kinds: set[str], seq: int) -> asyncio.Future[Record]:
        """A future for the next record of one of ``kinds`` with ``seq``. Ask
        before sending what it answers, so the answer can't be missed."""
        future: asyncio.Future[Record] = asyncio.get_running_loop().create_future()
        # Waiters given up on (a line that needed more: no state comes).
        self._waiters = [waiter for waiter in self._waiters if not waiter.future.done()]
        for record in self._unclaimed:
            if record.kind in kinds and record.seq == seq:
                self._unclaimed.remove(record)
                future.set_result(record)
                return future
        if self._closed:
            future.set_exception(ChannelClosed())
        else:
            self._waiters.append(_Waiter(frozenset(kinds), seq, future))
        return future

    def _deliver(self, record: Record) -> None:
        if record.kind == "status":
            if record.seq <= self._last_status:
                return
            self._last_status = record.seq
        if record.kind == "state":
            self._on_state(record)
        elif record.kind == "warning":
            # Remote text (a directory's name): inert, on one line.
            self._on_warning(one_line("\n".join(record.fields())))
        for waiter in self._waiters:
            if record.kind in waiter.kinds and record.seq == waiter.seq:
                self._waiters.remove(waiter)
                if not waiter.future.done():
                    waiter.future.set_result(record)
                return
        if record.kind not in ("state", "warning"):
            self._unclaimed.append(record)
