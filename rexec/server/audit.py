"""The audit trail: one JSON object per line, per event.

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
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds"),
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
