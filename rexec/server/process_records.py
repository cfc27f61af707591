"""A record, on disk, of the process groups running now, so that a daemon
restarted after a crash (``kill -9``, OOM) can end what its predecessor left.

One file per running command, named after its process group id, holding the
leader's start time (field 22 of /proc/PID/stat, in clock ticks since boot) and
the pid and start time of the daemon that started it. A pid can be reused; a
pid with the same start time is the same process. Files are removed when the
command is reaped; a file whose daemon is no longer running belongs to one that
did not get to clean up (a zombie, one killed a moment ago and not yet reaped,
included). Several daemons may share the directory: a sweep leaves the records
of live ones alone, and says so.
"""

from __future__ import annotations

import collections
import os
import signal
import stat
from pathlib import Path

from rexec.log import log


def _stat(pid: int) -> tuple[str, str] | None:
    """The state (field 3 of /proc/PID/stat: ``R``, ``S``, ``Z``…) and start
    time of a process, or None if there is none."""
    # Plain descriptors rather than open(): this runs for every command.
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        stat_line = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    # The command name (field 2) is in parentheses and may contain anything.
    fields = stat_line[stat_line.rindex(b")") + 2 :].split()
    return fields[0].decode(), fields[19].decode()  # fields 3 and 22 overall


def _start_time(pid: int) -> str | None:
    found = _stat(pid)
    return None if found is None else found[1]


def _running(pid: int, start: str) -> bool:
    """Whether ``pid`` is still the process that started at ``start`` and
    has not died: a daemon killed a moment ago is a zombie (``Z``) until its
    parent reaps it, and will clean up nothing."""
    found = _stat(pid)
    return found is not None and found[1] == start and found[0] not in ("Z", "X")


class UnsafeDirectory(Exception):
    """The state directory could be written by others; the message is one line."""


class ProcessRecords:
    """The directory of records (created 0700 if missing)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # A sweep signals whatever the records name, with the daemon's
        # privileges: records that someone else could write are refused.
        info = os.stat(directory, follow_symlinks=False)
        if not stat.S_ISDIR(info.st_mode):
            raise UnsafeDirectory(f"state directory {directory} is not a directory")
        if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise UnsafeDirectory(
                f"state directory {directory} must be owned by this user and writable by no one "
                f"else; run: chmod 700 {directory}"
            )
        self._owner = f"{os.getpid()} {_start_time(os.getpid())}"

    def add(self, pgid: int) -> None:
        start = _start_time(pgid)
        if start is not None:
            fd = os.open(
                f"{self.directory}/{pgid}",
                os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                0o600,
            )
            try:
                os.write(fd, f"{start} {self._owner}\n".encode())
            finally:
                os.close(fd)

    def remove(self, pgid: int) -> None:
        try:
            os.unlink(f"{self.directory}/{pgid}")
        except FileNotFoundError:
            pass

    def sweep(self) -> list[int]:
        """SIGKILL every recorded group of a daemon no longer running whose
        leader is still the same process; forget those records. The records
        of a daemon still running are left to it, and stderr says so. Returns
        the groups killed."""
        killed = []
        left: collections.Counter[int] = collections.Counter()
        for record in self.directory.iterdir():
            if not record.name.isdigit():
                continue
            pgid = int(record.name)
            try:
                leader_start, owner_pid, owner_start = record.read_text().split()
            except (OSError, ValueError):
                record.unlink(missing_ok=True)
                continue
            if _running(int(owner_pid), owner_start):
                left[int(owner_pid)] += 1  # its daemon will clean up itself
                continue
            # The leader still the process we started, or gone with members of
            # its group left behind (a group id is not reused while the group
            # has members): either way the group is ours to end.
            if _start_time(pgid) in (None, leader_start):
                try:
                    os.killpg(pgid, signal.SIGKILL)
                    killed.append(pgid)
                except ProcessLookupError:
                    pass
            record.unlink(missing_ok=True)
        for owner, count in sorted(left.items()):
            log(
                f"left {count} recorded process group(s) of a running rexecd (pid {owner}) "
                f"in {self.directory}"
            )
        return killed
