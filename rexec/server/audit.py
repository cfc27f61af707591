"""The audit trail: one JSON object per line, per event.

``AuditLog`` writes records; ``AuditTrail`` is the server's observer that
turns its events (rexec/server/events.py) into records. The records that gate
a request (``exec``, ``put``, ``get``) are written by the request's lifecycle
itself, with ``AuditLog.write``, because a failure there must stop it.

Lines are built with ``json.dumps`` (ASCII only), so control characters and
anything else a client put in a command are escaped and can't forge a line.
Writes are synchronous and unbuffered: a record is on disk (in the kernel) before
the action it describes goes on, and a command whose record can't be written
does not run.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from typing import Any

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
    TransferFinished,
)


class AuditError(Exception):
    """The audit record could not be written."""


class AuditLog:
    """Appends records to a file (created 0600) or, without a path, to stderr."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        if path is None:
            self._fd = sys.stderr.fileno()
        else:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def write(self, event: str, **fields: Any) -> None:
        """Append one record ``{"time": …, "event": event, **fields}``.

        Raises:
            AuditError: the record could not be written whole.
        """
        record = {
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds"),
            "event": event,
            **fields,
        }
        line = (json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n").encode()
        try:
            written = os.write(self._fd, line)
        except OSError as exc:
            raise AuditError(str(exc)) from exc
        if written != len(line):
            raise AuditError("short write")

    def try_write(self, event: str, **fields: Any) -> None:
        """As ``write``, for records nothing waits on: a failure is reported on
        stderr instead of raised."""
        try:
            self.write(event, **fields)
        except AuditError as exc:
            print(f"rexecd: audit log write failed: {exc}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.path is not None:
            os.close(self._fd)


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
