"""What a ``run`` request becomes before a process exists: the account it
runs as, its environment and working directory, the program found on PATH.

Everything that can refuse a command for a reason known in advance happens
here (``preflight``, ``command_cwd``), and each refusal is a ``SpawnError``
carrying the command-scoped error code that goes on the wire; ``spawn.py``
then starts the process.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import os
import pwd
import shutil

from rexec.protocol import ErrorCode, Run
from rexec.server.refusal import Refusal

#: What a command inherits from the daemon's own environment, when set there.
#: Nothing else leaks: a daemon's secrets stay out of the commands it runs.
BASE_ENV_NAMES = ("PATH", "LANG", "LC_ALL", "TZ", "TERM")


class SpawnError(Refusal):
    """A command could not be started; ``code`` is the error code for the wire."""


@dataclasses.dataclass(frozen=True)
class Account:
    """The account commands run as, from its passwd entry."""

    uid: int
    gid: int
    name: str
    home: str
    shell: str

    @classmethod
    def of_uid(cls, uid: int) -> Account:
        try:
            entry = pwd.getpwuid(uid)
        except KeyError:  # no passwd entry (some containers): what we can tell
            return cls(
                uid,
                os.getgid(),
                os.environ.get("USER", str(uid)),
                os.path.expanduser("~"),
                os.environ.get("SHELL", "/bin/sh"),
            )
        return cls.from_entry(entry)

    @classmethod
    def named(cls, name: str) -> Account:
        """Raises KeyError when there is no such user."""
        return cls.from_entry(pwd.getpwnam(name))

    @classmethod
    def from_entry(cls, entry: pwd.struct_passwd) -> Account:
        return cls(
            entry.pw_uid, entry.pw_gid, entry.pw_name, entry.pw_dir, entry.pw_shell or "/bin/sh"
        )


@dataclasses.dataclass(frozen=True)
class ProcessPolicy:
    """How every command is started: as whom, and within which resource limits.

    ``rlimits`` pairs a ``resource.RLIMIT_*`` with the value set as both soft
    and hard limit. They are applied with prlimit right after the spawn, since
    the alternative, preexec_fn, is unsafe in a threaded process; the command
    runs for a few microseconds before they bind.
    """

    account: Account
    switch_user: bool = False
    rlimits: tuple[tuple[int, int], ...] = ()

    @classmethod
    def current(cls) -> ProcessPolicy:
        return cls(Account.of_uid(os.getuid()))


def command_env(run: Run, account: Account) -> dict[str, str]:
    """The environment for ``run``: the documented base plus the client's
    names, which its key's rules have allowed (rexec/server/policy.py).

    HOME, USER, LOGNAME and SHELL come from the account's passwd entry: the
    daemon's own environment may not describe it (a service manager sets
    little), and a login shell on a pty must be the user's own.
    """
    env = dict(_base_env(account))
    if run.pty is not None:
        env["TERM"] = run.pty.term
    env.update(run.env)
    return env


@functools.cache
def _base_env(account: Account) -> dict[str, str]:
    """What every command of ``account`` starts from: the daemon's environment
    does not change once it runs, so this is built once, not per command.
    Callers copy it."""
    env = {name: os.environ[name] for name in BASE_ENV_NAMES if name in os.environ}
    env.update(HOME=account.home, USER=account.name, LOGNAME=account.name, SHELL=account.shell)
    env.setdefault("PATH", os.defpath)
    return env


def command_cwd(run: Run, account: Account) -> str:
    """The working directory for ``run``; the account's home by default.

    Raises:
        SpawnError: ``cwd.invalid`` when it is not an existing directory.
    """
    cwd = run.cwd if run.cwd is not None else account.home
    if not os.path.isdir(cwd):
        raise SpawnError(ErrorCode.CWD_INVALID, "cwd is not an existing directory")
    return cwd


def preflight(run: Run) -> None:
    """Refuse what ``spawn`` would fail on for a reason known in advance (a
    program that isn't there, a file that isn't executable), so that such a
    command is refused before its audit record says it is run. A program
    named relative to the working directory is left to ``spawn``, as is
    whatever changes in between.

    Raises:
        SpawnError: ``spawn.not_found``, ``spawn.permission_denied``.
    """
    if run.argv is None:
        return  # /bin/sh
    program = run.argv[0]
    if "/" not in program:
        if find_executable(program, _search_path(run)) is None:
            raise SpawnError(ErrorCode.SPAWN_NOT_FOUND, "no such program (ENOENT)")
    elif not os.path.isabs(program):
        return
    elif not os.path.exists(program):
        raise SpawnError(ErrorCode.SPAWN_NOT_FOUND, "no such program (ENOENT)")
    elif os.path.isdir(program) or not os.access(program, os.X_OK):
        raise SpawnError(ErrorCode.SPAWN_PERMISSION_DENIED, "program not executable (EACCES)")


def _search_path(run: Run) -> str:
    """The PATH ``run``'s program is looked up in (what ``command_env`` gives it)."""
    return run.env.get("PATH", os.environ.get("PATH", os.defpath))


#: Programs found on a PATH, by (name, PATH): Popen otherwise builds and tries
#: every candidate path for every command, a cost on each command's critical
#: path. Only hits are kept, so a program installed later is still found; one
#: that moved is looked up again after its exec fails (see spawn_error).
_EXECUTABLES: dict[tuple[str, str | None], str] = {}
_EXECUTABLES_MAX = 256


def find_executable(name: str, path: str | None) -> str | None:
    """``name`` found on ``path`` (None for a path, or when not found)."""
    if "/" in name:
        return None  # a path: exec'd as it is
    found = _EXECUTABLES.get((name, path))
    if found is None:
        found = shutil.which(name, path=path)
        if found is not None and len(_EXECUTABLES) < _EXECUTABLES_MAX:
            _EXECUTABLES[(name, path)] = found
    return found


def forget_executable(name: str, path: str | None) -> None:
    """Look ``name`` up again next time: its exec just failed."""
    _EXECUTABLES.pop((name, path), None)


def spawn_error(exc: OSError) -> SpawnError:
    """The ``SpawnError`` for a failed exec, by its errno."""
    name = errno.errorcode.get(exc.errno or 0, "EUNKNOWN")
    if exc.errno == errno.ENOENT:
        return SpawnError(ErrorCode.SPAWN_NOT_FOUND, f"no such program ({name})")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return SpawnError(ErrorCode.SPAWN_PERMISSION_DENIED, f"program not executable ({name})")
    return SpawnError(ErrorCode.SPAWN_FAILED, f"could not start the program ({name})")
