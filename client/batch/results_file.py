"""``--results F.jsonl``: one JSON object a line per job, written (and
flushed) as each job finishes, so a crash loses at most the jobs running.

Schema version 1 (``"schema": 1``; fields are only ever added):

=================  =============================================================
schema             1
id                 the job's stable id (string)
target             ``host:port`` of the last attempt, or null if none
command            the command as one line (shell string, or the argv quoted)
argv / shell       the command as given (exactly one is non-null)
status             ok, failed, signal, timeout, cancelled, connect_error,
                   protocol_error or skipped (see ``outcome.Status``)
exit_code          0–255, or null (killed, lost, never started)
signal             the signal number that killed it, or null
signal_name        e.g. "SIGKILL", or null
attempt            attempts made (1 + retries used; 0 when never tried)
start              epoch seconds when the last attempt was sent (null if never)
duration           seconds, last attempt, as measured by the client
server_duration    seconds from spawn to exit as measured by the server, or null
stdin_bytes, stdout_bytes, stderr_bytes   byte counts (the server's)
stdout, stderr     the captured output: text when it is UTF-8, else base64
stdout_encoding,   "utf-8" or "base64"
stderr_encoding
error_code         a protocol error code (``spawn.not_found``, ``busy`` …) or null
error              one line for people, or null
=================  =============================================================
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import IO, Any

from .outcome import JobResult
from .record_file import open_record_file
from .targets import label

SCHEMA_VERSION = 1


def encode_output(data: bytes | None) -> tuple[str | None, str | None]:
    """``(text, encoding)``: UTF-8 text as it is, anything else as base64."""
    if data is None:
        return None, None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def result_record(result: JobResult) -> dict[str, Any]:
    """The schema-1 record of one result."""
    stdout, stdout_encoding = encode_output(result.stdout)
    stderr, stderr_encoding = encode_output(result.stderr)
    job = result.job
    return {
        "schema": SCHEMA_VERSION,
        "id": job.id,
        "target": label(result.target) if result.target else None,
        "command": job.command_text,
        "argv": list(job.argv) if job.argv is not None else None,
        "shell": job.shell,
        "status": result.status.value,
        "exit_code": result.exit_code,
        "signal": result.signal,
        "signal_name": result.signal_name,
        "attempt": result.attempt,
        "start": round(result.start, 6) if result.start else None,
        "duration": round(result.duration, 6),
        "server_duration": result.server_duration,
        "stdin_bytes": result.stdin_bytes,
        "stdout_bytes": result.stdout_bytes,
        "stderr_bytes": result.stderr_bytes,
        "stdout": stdout,
        "stdout_encoding": stdout_encoding,
        "stderr": stderr,
        "stderr_encoding": stderr_encoding,
        "error_code": result.error_code,
        "error": result.error,
    }


class ResultsWriter:
    """Writes schema-1 records to ``path`` (truncated, or appended to with
    ``append`` — as ``--resume`` does)."""

    def __init__(self, path: str | Path, *, append: bool = False) -> None:
        self._file: IO[str] = open_record_file(path, append=append)

    def write(self, result: JobResult) -> None:
        self._file.write(json.dumps(result_record(result), ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
