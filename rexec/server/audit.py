"""The audit trail: one JSON object per line, per event.

``AuditLog`` writes records; ``AuditTrail`` is the server's observer that
turns its events (rexec/server/events.py) into records. The records that gate
a request (``exec``, ``put``, ``get``) are written by the request's lifecycle
itself, with ``AuditLog.write``, because a failure there must stop it.

Lines are built with ``json.dumps`` (ASCII only), so control characters and
anything else a client put in a command are escaped and can't forge a line.

The log may be a file on a slow disk, a FIFO read by a log shipper or stderr
under a supervisor: whoever reads it can stop. So the event loop never writes
it. Records go, in order, into a bounded queue that a thread of the log's own
writes out. A gate record is refused (``AuditError``, which the request turns
into ``audit.unavailable``: nothing runs) while the log is failing, while the
oldest record still unwritten has waited longer than ``timeout``, or when the
queue is full; what already runs goes on, and so do connections and health
checks. Other records are then kept while there is room and otherwise counted,
and the count is written (an ``audit_lost`` record) once there is room again.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import errno
import json
import os
import queue
import sys
import threading
import time
from typing import Any

from rexec.log import log
from rexec.server.audit_file import NO_READER, open_log, reopened
from rexec.server.events import (
    AuthFailed,
    AuthSucceeded,
    BadFrame,
    ClientStalled,
    CommandFinished,
    ConnectionAdmitted,
    ConnectionRefused,
    DeadlineExpired,
    Disconnected,
    Event,
    Origin,
    RequestRefused,
    TlsHelloOnPlainListener,
    TransferFinished,
)

#: How long a record may wait to be written before new requests are refused.
#: Longer than a disk's or a log shipper's usual hiccup; short enough that an
#: operator learns of a stuck log from refused commands, not from a lost trail.
DEFAULT_TIMEOUT = 5.0
#: Bytes of records held while the log is slow: thousands of records (a
#: command makes about four of 200–400 bytes), a bounded cost in memory.
DEFAULT_BUFFER = 4 * 1024 * 1024
#: What a ``tls_hello_on_plain_listener`` record says: who sends them, so that
#: an operator does not take a burst of rexec clients for a scanner.
_TLS_HELLO_NOTE = (
    "a TLS client on this plaintext listener: a rexec client whose greeting was late checks so "
    "whether the server speaks TLS"
)
#: Records the writer takes from the queue for one write.
_BATCH = 256
#: Pause between attempts after a failed write (ENOSPC, EIO, EPIPE).
_RETRY = 0.5
#: Records queued on the event loop are handed to the writer thread together,
#: this long after the first of them: each hand-over wakes the thread, which
#: then trades the GIL with the loop, and a command makes two records a
#: millisecond or so apart (waking it per record cost the daemon about 10% of
#: its CPU per short command; bench/SPEED4_LATENCY.md). 10 ms, not 2: short
#: commands then share a wake-up five or so at a time, 60 µs of CPU less per
#: command (bench/SPEED9_RESULTS.md). Far below ``timeout``.
#: The timer waits for the loop's next turn, which a burst of work (a thousand
#: commands started in one turn) can put seconds away: a record queued once
#: the first pending one is this old hands them all over at once, so that the
#: log never looks stuck (``timeout``) to a loop that is only busy.
HAND_OVER_DELAY = 0.010


class AuditError(Exception):
    """The record can't be written now; the request it gates must not run."""


class AuditLog:
    """Appends records to a file (created 0600) or, without a path, to stderr,
    through a bounded queue and a writer thread (see the module doc).

    Args:
        path: the log file; None for stderr.
        timeout: seconds the oldest unwritten record may wait before gate
            records are refused.
        max_buffer: bytes of unwritten records held at most.
    """

    def __init__(
        self,
        path: str | None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_buffer: int = DEFAULT_BUFFER,
    ) -> None:
        self.path = path
        self._fd: int | None = sys.stderr.fileno() if path is None else open_log(path)
        #: The descriptor last given to the writer (the loop's side: the
        #: writer closes a descriptor only once it has a newer one).
        self._newest_fd = self._fd
        self._timeout = timeout
        self._max_buffer = max_buffer
        # The event loop's side: what it has queued (times of records not yet
        # known to be written, bytes queued in all, records dropped).
        self._queued_at: collections.deque[float] = collections.deque()
        self._queued = 0
        self._queued_bytes = 0
        self._lost = 0
        # The writer's side, read by the loop: records and bytes written, and
        # the error of the last attempt (None once a write succeeds again).
        self._written = 0
        self._written_bytes = 0
        self._error: str | None = None
        if self._fd is None:
            self._error = NO_READER
            log(
                f"audit log {path} is a FIFO with no reader yet: commands are refused "
                "(audit.unavailable) until one opens it",
                level="warning",
            )
        # Records in order; None closes the log, a descriptor (``reopen``)
        # replaces the log's between two records.
        self._lines: queue.SimpleQueue[bytes | int | None] = queue.SimpleQueue()
        # Records queued on the loop and not yet handed to the writer, and the
        # timer that hands them over (see HAND_OVER_DELAY).
        self._pending: list[bytes] = []
        self._hand_over_timer: asyncio.TimerHandle | None = None
        self._hand_over_loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._write_out, name="rexecd-audit", daemon=True)
        self._writer.start()

    # --- the event loop's side ---------------------------------------------------

    def write(self, event: str, **fields: Any) -> None:
        """Queue a record that gates a request.

        Raises:
            AuditError: the log is failing or behind (see the module doc);
                the record is not queued.
        """
        line = _line(event, fields)
        reason = self.unavailable(len(line))
        if reason is not None:
            raise AuditError(reason)
        self._queue(line)

    def try_write(self, event: str, **fields: Any) -> None:
        """Queue a record nothing waits on; when the queue is full it is
        counted as lost instead."""
        line = _line(event, fields)
        if self._backlog_bytes() + len(line) > self._max_buffer:
            self._lost += 1
            return
        self._queue(line)

    def unavailable(self, room: int = 0) -> str | None:
        """Why a gate record (of ``room`` bytes) can't be queued now, or None."""
        if self._error is not None:
            return f"the audit log can't be written ({self._error})"
        self._forget_written()
        if self._queued_at and time.monotonic() - self._queued_at[0] > self._timeout:
            return f"the audit log has not been written for {self._timeout:g} s"
        if self._backlog_bytes() + room > self._max_buffer:
            return "the audit buffer is full"
        return None

    def flush(self, timeout: float) -> bool:
        """Wait (blocking the caller: not for the event loop) until every
        record queued so far is written; False if a write failed, or if it
        takes longer than ``timeout``."""
        target = self._queued
        deadline = time.monotonic() + timeout
        while self._written < target:
            if self._error is not None or not self._writer.is_alive():
                return False
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout: float | None = None) -> None:
        """Write what is queued (for ``timeout``, default the log's own), then
        stop the writer. A writer still stuck then is left to the process's exit.
        Call it from the thread that queued records, once its loop has stopped."""
        self._hand_over()
        self._lines.put(None)
        self._writer.join(self._timeout if timeout is None else timeout)
        self._stop.set()
        if not self._writer.is_alive() and self.path is not None and self._fd is not None:
            os.close(self._fd)

    def reopen(self) -> None:
        """Open the log's path again (SIGHUP, after logrotate moved the file):
        records queued before go to the old file, later ones to the new one
        (``reopened`` says when the old one is kept, and why)."""
        if self.path is None or self._newest_fd is None:
            return
        fd = reopened(self.path, self._newest_fd)
        if fd is not None:
            self._hand_over()  # what is queued so far belongs to the old file
            self._lines.put(fd)
            self._newest_fd = fd

    def _queue(self, line: bytes) -> None:
        if self._lost:
            lost = _line("audit_lost", {"records": self._lost})
            self._lost = 0
            self._put(lost)
        self._put(line)

    def _put(self, line: bytes) -> None:
        self._queued_at.append(time.monotonic())
        self._queued += 1
        self._queued_bytes += len(line)
        self._pending.append(line)
        if (
            len(self._pending) > 1
            and self._queued_at[-1] - self._queued_at[-len(self._pending)] >= HAND_OVER_DELAY
        ):
            self._hand_over()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (start-up, shutdown): at once
            self._hand_over()
            return
        if self._hand_over_timer is None or self._hand_over_loop is not loop:
            # (A timer left on a loop that has stopped would never fire.)
            self._hand_over_loop = loop
            self._hand_over_timer = loop.call_later(HAND_OVER_DELAY, self._hand_over)

    def _hand_over(self) -> None:
        """Give the writer thread every pending record, in order, in one wake-up."""
        if self._hand_over_timer is not None:
            self._hand_over_timer.cancel()
            self._hand_over_timer = None
        for line in self._pending:  # the thread wakes at the first, takes the rest with it
            self._lines.put(line)
        self._pending.clear()

    def _forget_written(self) -> None:
        for _ in range(len(self._queued_at) - (self._queued - self._written)):
            self._queued_at.popleft()

    def _backlog_bytes(self) -> int:
        return self._queued_bytes - self._written_bytes

    # --- the writer thread ---------------------------------------------------------

    def _write_out(self) -> None:
        """Take records in order and write them, in batches; retry a failed
        write until it succeeds or the log is closed. A descriptor in the
        queue (``reopen``) replaces the log's once the records before it
        are written."""
        item = self._lines.get()
        while item is not None:
            if isinstance(item, int):
                self._swap(item)
                item = self._lines.get()
                continue
            batch = [item]
            after: bytes | int | None = None  # what ended the batch early
            early = False
            while len(batch) < _BATCH:
                try:
                    more = self._lines.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(more, bytes):  # closing, or a new descriptor
                    after, early = more, True
                    break
                batch.append(more)
            if not self._write_batch(b"".join(batch)):
                return
            self._written_bytes += sum(len(line) for line in batch)
            self._written += len(batch)
            item = after if early else self._lines.get()

    def _swap(self, fd: int) -> None:
        old, self._fd = self._fd, fd
        if old is not None:
            os.close(old)

    def _descriptor(self) -> int:
        """The log's descriptor; a FIFO is opened once it has a reader.

        Raises:
            OSError: ENXIO while the FIFO has none.
        """
        if self._fd is None:
            assert self.path is not None
            self._fd = open_log(self.path)
            if self._fd is None:
                raise OSError(errno.ENXIO, NO_READER)
        return self._fd

    def _write_batch(self, data: bytes) -> bool:
        """Write all of ``data``; False if the log was closed before it could be."""
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._descriptor(), view) :]
            except OSError as exc:
                if self._error is None:
                    self._error = errno.errorcode.get(exc.errno or 0, "error")
                    self._notice(
                        f"audit log write failed ({self._error}); new commands are refused"
                    )
                if self._stop.wait(_RETRY):
                    return False
        if self._error is not None:
            self._error = None
            self._notice("audit log written again; commands are accepted")
        return True

    def _notice(self, message: str) -> None:
        """Tell the operator on stderr, unless the log is stderr (rexec.log
        queues the line: this thread does not wait on stderr)."""
        if self.path is not None:
            log(message, level="error")


#: One encoder for every record: ``json.dumps`` with arguments builds a new
#: one per call, a third of a record's cost, twice per command.
_encode = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


def _line(event: str, fields: dict[str, Any]) -> bytes:
    record = {
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds"),
        "event": event,
        **fields,
    }
    return (_encode(record) + "\n").encode()


class AuditTrail:
    """The observer that records what happened to each connection and request.

    Records that nothing waits on: a failure to write one is reported on
    stderr, and the server goes on.
    """

    def __init__(self, log: AuditLog) -> None:
        self._log = log

    def notify(self, event: Event) -> None:
        match event:
            case ConnectionAdmitted(origin):
                self._record(origin, "connect")
            case ConnectionRefused(origin, reason):
                self._record(origin, "refused_connection", reason=reason)
            case Disconnected(origin, running):
                self._record(origin, "disconnect", running=running)
            case BadFrame(origin, code, note):
                self._record(origin, "bad_frame", code=code, note=note)
            case TlsHelloOnPlainListener(origin):
                self._record(origin, "tls_hello_on_plain_listener", note=_TLS_HELLO_NOTE)
            case AuthSucceeded(origin, key):
                self._record(origin, "auth", ok=True, key=key)
            case AuthFailed(origin, "timeout"):
                self._record(origin, "auth", ok=False, reason="timeout")
            case AuthFailed(origin):
                self._record(origin, "auth", ok=False)
            case DeadlineExpired(origin, deadline):
                self._record(origin, deadline)
            case ClientStalled(origin, running):
                self._record(origin, "client_stalled", running=running)
            case RequestRefused(origin, command_id, code, reason, details):
                self._record(origin, "refused", id=command_id, code=code, reason=reason, **details)
            case CommandFinished(origin, exit):
                self._record(
                    origin, "exit", id=exit.id, exit_code=exit.exit_code, signal=exit.signal,
                    timed_out=exit.timed_out, cancelled=exit.cancelled,
                    output_capped=exit.output_capped, pipes_held=exit.pipes_held,
                    duration=round(exit.duration, 6), stdout_bytes=exit.stdout_bytes,
                    stderr_bytes=exit.stderr_bytes, stdin_bytes=exit.stdin_bytes,
                )  # fmt: skip
            case TransferFinished(origin, command_id, op, code, size, sha256):
                self._record(
                    origin, "transfer_end", id=command_id, op=op, ok=code is None, code=code,
                    bytes=size, sha256=sha256,
                )  # fmt: skip

    def _record(self, origin: Origin, event: str, **fields: Any) -> None:
        self._log.try_write(event, session=origin.session, peer=origin.peer, **fields)
