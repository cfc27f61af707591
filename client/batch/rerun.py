"""``--rerun-file F``: every job that did not succeed, in the input's format,
ready to be given back to ``rexec batch``.

The format is the input's (one command a line, ``-0`` records, JSON Lines),
except that a job pinned to a target — every job of ``--onall`` — is written
as JSON Lines with its ``target``, since a line can't name its server: that
file re-runs each failed (job, target) pair exactly (``--jsonl``, without
``--onall``). Ids are kept, so ``--resume`` keeps matching.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import IO

from .jobs import InputFormat, format_job
from .outcome import JobResult
from .record_file import open_record_file


def rerun_format(input_format: InputFormat, onall: bool) -> InputFormat:
    """The format the re-run file is written in."""
    return InputFormat.JSONL if onall else input_format


class RerunWriter:
    """Writes the jobs of non-ok results to ``path`` (truncated)."""

    def __init__(self, path: str | Path, fmt: InputFormat, *, pin_targets: bool) -> None:
        self._file: IO[bytes] = open_record_file(path, append=False, binary=True)
        self._format = fmt
        self._pin = pin_targets
        self.count = 0

    def write(self, result: JobResult) -> None:
        if result.ok:
            return
        job = result.job
        if self._pin and job.target is None and result.target is not None:
            job = dataclasses.replace(job, target=result.target)
        self._file.write(format_job(job, self._format))
        self._file.flush()
        self.count += 1

    def close(self) -> None:
        self._file.close()
