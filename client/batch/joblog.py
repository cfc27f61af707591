"""``--joblog``: GNU parallel's TSV job log, and reading it back for
``--resume``.

Columns, exactly GNU parallel's: ``Seq Host Starttime JobRuntime Send
Receive Exitval Signal Command``. ``Seq`` is the job's stable id (the input
record number unless the input names ids), ``Host`` the ``host:port`` of the
last attempt, ``Starttime`` epoch seconds, ``JobRuntime`` seconds (as GNU
parallel: ``%.3f`` and ``%10.3f``), ``Send``/``Receive`` stdin and
stdout+stderr bytes. ``Exitval`` is the exit code, or -1 when there is none
(signal, timeout, cancel, connection error); ``Signal`` the signal number or
0. Tabs and newlines in a command are written ``\\t`` and ``\\n``.

One line per job that was tried, written (and flushed) when it finishes;
skipped jobs are not logged, so ``--resume`` runs them. As GNU parallel, a
new run starts the log afresh and only resuming appends to it.

Three cases a resume must tell apart, told by ``Starttime`` and
``Exitval``:

==========================  ===========  =======  =========================
case                        Starttime    Exitval  ``--resume`` /
                                                  ``--resume-failed``
==========================  ===========  =======  =========================
never started (no server    0.000        -1       runs it again / again
could be reached)
ran, or may have run (its   the start    its      done / again unless it
connection was lost once                 code or  succeeded (Exitval 0,
the command was sent)                    -1       Signal 0)
==========================  ===========  =======  =========================

A job that never started is not done (unlike GNU parallel, whose joblog
counts an unreachable ``--sshlogin``'s job, exit 255, as done): no server
ran it. One that may have run is done for ``--resume``, since a command
need not be safe to run twice; ``--resume-failed`` reruns it.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from pathlib import Path
from typing import IO

from ..address import Address
from .jobs import Job
from .outcome import JobResult, Status
from .record_file import open_record_file, read_record_file
from .targets import label

COLUMNS = (
    "Seq",
    "Host",
    "Starttime",
    "JobRuntime",
    "Send",
    "Receive",
    "Exitval",
    "Signal",
    "Command",
)


_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n"}
_UNESCAPES = {"t": "\t", "n": "\n"}


def _escape(text: str) -> str:
    return re.sub(r"[\\\t\n]", lambda m: _ESCAPES[m.group()], text)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _UNESCAPES.get(m.group(1), m.group(1)), text)


class JoblogWriter:
    """Writes one line per finished job to ``path``: a new log (header
    first), or, with ``append`` (resuming), after the lines already there."""

    def __init__(self, path: str | Path, *, append: bool = False) -> None:
        self._file: IO[str] = open_record_file(path, append=append)
        if self._file.tell() == 0:
            self._file.write("\t".join(COLUMNS) + "\n")
            self._file.flush()

    def write(self, result: JobResult) -> None:
        if result.status is Status.SKIPPED:
            return
        fields = (
            _escape(result.job.id),
            label(result.target) if result.target else "",
            f"{result.start:.3f}",
            f"{result.duration:10.3f}",
            str(result.stdin_bytes),
            str(result.stdout_bytes + result.stderr_bytes),
            str(result.exit_code if result.exit_code is not None else -1),
            str(result.signal or 0),
            _escape(result.job.command_text),
        )
        self._file.write("\t".join(fields) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


@dataclasses.dataclass
class DoneJobs:
    """The jobs a joblog records as done, for ``--resume``.

    A spread job is done when its id is; a pinned one (``--onall``, or a
    ``target``) when its (id, host) pair is. A line of a job that never
    started (Starttime 0) does not count. With ``failed_too=False``
    (``--resume-failed``) only lines with Exitval 0 and Signal 0 count. The
    last line of a key wins (a re-run appends a newer line).
    """

    #: Whether each id (pair) is done, and succeeded (True) or not (False);
    #: None: it never started.
    ids: dict[str, bool | None] = dataclasses.field(default_factory=dict)
    pairs: dict[tuple[str, str], bool | None] = dataclasses.field(default_factory=dict)
    failed_too: bool = True

    @classmethod
    def read(cls, path: str | Path, *, failed_too: bool = True) -> DoneJobs:
        """Read a joblog; a missing file means nothing is done.

        Raises:
            ValueError: the file is not a joblog (its header differs).
        """
        done = cls(failed_too=failed_too)
        try:
            file = read_record_file(path)
        except FileNotFoundError:
            return done
        with file:
            rows = csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = next(rows, None)
            if header is not None and tuple(header) != COLUMNS:
                raise ValueError(f"{path} is not a joblog: its header is not {' '.join(COLUMNS)}")
            for row in rows:
                if len(row) < len(COLUMNS):
                    continue  # a line cut short by a crash: not done
                seq, host, starttime, exitval, signal = row[0], row[1], row[2], row[6], row[7]
                succeeded: bool | None = exitval.strip() == "0" and signal.strip() == "0"
                if _never_started(starttime):
                    succeeded = None
                seq = _unescape(seq)
                done.ids[seq] = succeeded
                done.pairs[(seq, host)] = succeeded
        return done

    def __call__(self, job: Job, target: Address | None) -> bool:
        """True when (``job``, ``target``) is done and must not run again."""
        key_done = (
            self.ids.get(job.id) if target is None else self.pairs.get((job.id, label(target)))
        )
        if key_done is None:
            return False
        return key_done or self.failed_too


def _never_started(starttime: str) -> bool:
    try:
        return float(starttime) == 0
    except ValueError:
        return False  # not ours to judge: as GNU parallel, the line counts
