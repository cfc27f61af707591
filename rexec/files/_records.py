"""A record, on disk, of the temporary files being written now, so that a
process restarted after a crash (``kill -9``, OOM) removes what its
predecessor left half-written, and nothing else.

One small file per temporary file, ``transfer-DEV-INO`` after its device and
inode (so the directory can be shared with other records), holding
the directory's path and identity (device, inode), the temporary name, and
the file's identity. A sweep removes a recorded file only if the directory at
that path is still the recorded one and the name still holds the recorded
file, a plain file: a name someone else has since reused is never touched.
Temporary files (``.tmp``) are removed at the next start; resumable partial
files (``.part``) are kept for a later resume until they are older than the
sweep's ``partial_max_age``.

A record is written right after its file is created, so a crash in the few
microseconds between the two can leave one unrecorded file: the price of
never naming a file that does not exist yet.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

from ._writer import PARTIAL_SUFFIX, TEMP_MARK

_PREFIX = "transfer-"


class UnsafeRecords(Exception):
    """The records directory could be written by others; one line."""


def _identity(info: os.stat_result) -> list[int]:
    return [info.st_dev, info.st_ino]


class TempRecords:
    """The directory of records, created 0700 if missing.

    Raises:
        UnsafeRecords: it is not a directory of this user's that only this
            user can write (a sweep deletes what the records name).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.stat(directory, follow_symlinks=False)
        if (
            not stat.S_ISDIR(info.st_mode)
            or info.st_uid != os.geteuid()
            or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        ):
            raise UnsafeRecords(
                f"{directory} must be a directory owned by this user and writable by no one else"
            )

    def _path(self, info: os.stat_result) -> str:
        return f"{self.directory}/{_PREFIX}{info.st_dev}-{info.st_ino}"

    def add(self, dir_fd: int, name: bytes, fd: int) -> None:
        """Record the file ``fd``, named ``name`` in the directory ``dir_fd``."""
        info = os.fstat(fd)
        record = {
            "dir": os.fsdecode(os.readlink(f"/proc/self/fd/{dir_fd}")),
            "dir_id": _identity(os.fstat(dir_fd)),
            "name": name.hex(),
            "id": _identity(info),
        }
        out = os.open(self._path(info), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(out, json.dumps(record).encode())
        finally:
            os.close(out)

    def remove(self, fd: int) -> None:
        """Forget the file ``fd`` (it is renamed into place, or removed)."""
        try:
            os.unlink(self._path(os.fstat(fd)))
        except FileNotFoundError:
            pass

    def sweep(self, *, partial_max_age: float) -> list[str]:
        """Remove every recorded temporary file, and every recorded partial
        file older than ``partial_max_age`` seconds; forget their records.
        Returns the paths removed."""
        removed: list[str] = []
        for entry in self.directory.iterdir():
            if not entry.name.startswith(_PREFIX):
                continue  # another kind of record
            try:
                record = json.loads(entry.read_bytes())
                directory, name = record["dir"], bytes.fromhex(record["name"])
                dir_id, file_id = list(record["dir_id"]), list(record["id"])
            except (OSError, ValueError, KeyError, TypeError):
                entry.unlink(missing_ok=True)  # torn by the crash: nothing to go on
                continue
            outcome = _settle(directory, dir_id, name, file_id, partial_max_age)
            if outcome == "removed":
                removed.append(os.path.join(directory, os.fsdecode(name)))
            if outcome != "kept":
                entry.unlink(missing_ok=True)
        return removed


def _settle(
    directory: str, dir_id: list[int], name: bytes, file_id: list[int], partial_max_age: float
) -> str:
    """``removed`` (the recorded file was due, and is gone now), ``kept`` (a
    partial file young enough for a resume) or ``gone`` (nothing of ours is
    there any more)."""
    if TEMP_MARK not in name:
        return "gone"  # not a name a writer gives: not a record we wrote
    try:
        dir_fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return "gone"
    try:
        if _identity(os.fstat(dir_fd)) != dir_id:
            return "gone"
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISREG(info.st_mode) or _identity(info) != file_id:
            return "gone"
        if name.endswith(PARTIAL_SUFFIX) and time.time() - info.st_mtime <= partial_max_age:
            return "kept"
        os.unlink(name, dir_fd=dir_fd)
        return "removed"
    except OSError:
        return "gone"
    finally:
        os.close(dir_fd)
