"""Turning a ``run`` request into a process: environment, directory, pipes or pty.

Everything that can refuse a command before it exists happens here, and each
refusal is a ``SpawnError`` carrying the command-scoped error code that goes on
the wire. As whom a command runs is identity.py's ``ProcessPolicy``; what it
inherits from rexecd's own process (signal dispositions, the open-file
limit), inherited.py's.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import termios
from typing import Any

from rexec.protocol import ErrorCode, Run
from rexec.server.identity import Account, ProcessPolicy
from rexec.server.inherited import give_back_open_file_limit

#: What a command inherits from the daemon's own environment, when set there.
#: Nothing else leaks: a daemon's secrets stay out of the commands it runs.
BASE_ENV_NAMES = ("PATH", "LANG", "LC_ALL", "TZ", "TERM")

#: Room for bursts of output without a context switch per 64 KiB; Linux allows
#: up to 1 MiB to unprivileged processes (/proc/sys/fs/pipe-max-size).
PIPE_SIZE = 1024 * 1024
_F_SETPIPE_SZ = 1031

# A pty's slave only becomes the controlling terminal when the new session's
# leader asks for it (TIOCSCTTY). subprocess can't do that without preexec_fn,
# which is unsafe in a threaded process, so a tiny exec wrapper does it. Being
# a Python, the wrapper ignores SIGPIPE and SIGXFSZ from its own start: it sets
# them back before the exec, or the command would inherit them ignored.
_PTY_EXEC_WRAPPER = (
    "import fcntl,os,signal,sys,termios;"
    "fcntl.ioctl(0,termios.TIOCSCTTY,0);"
    "[signal.signal(s,signal.SIG_DFL) for s in (signal.SIGPIPE,signal.SIGXFSZ)];"
    "os.execvp(sys.argv[1],sys.argv[1:])"
)


class SpawnError(Exception):
    """A command could not be started; ``code`` is the error code for the wire."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclasses.dataclass
class Spawned:
    """A started process and the parent's ends of its standard streams.

    ``stdout_fd`` and ``stderr_fd`` are non-blocking read ends (``stderr_fd``
    is None with a pty, whose one master carries all output); ``stdin_fd`` is a
    non-blocking write end, or None when stdin is /dev/null. ``pty_fd`` is the
    master of the command's pty, for window-size changes.
    """

    process: subprocess.Popen[bytes]
    stdout_fd: int
    stderr_fd: int | None
    stdin_fd: int | None
    pty_fd: int | None


def command_env(run: Run, account: Account) -> dict[str, str]:
    """The environment for ``run``: the documented base plus the client's
    names, which its key's rules have allowed (rexec/server/policy.py).

    HOME, USER, LOGNAME and SHELL come from the account's passwd entry: the
    daemon's own environment may not describe it (a service manager sets
    little), and a login shell on a pty must be the user's own.
    """
    env = {name: os.environ[name] for name in BASE_ENV_NAMES if name in os.environ}
    env.update(HOME=account.home, USER=account.name, LOGNAME=account.name, SHELL=account.shell)
    env.setdefault("PATH", os.defpath)
    if run.pty is not None:
        env["TERM"] = run.pty.term
    env.update(run.env)
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
        if _executable(program, _search_path(run)) is None:
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


def spawn(run: Run, policy: ProcessPolicy) -> Spawned:
    """Start the process for ``run`` in a new session (so a new process group).

    Raises:
        SpawnError: with the code that names why nothing was started.
    """
    env = command_env(run, policy.account)
    cwd = command_cwd(run, policy.account)
    argv = list(run.argv) if run.argv is not None else ["/bin/sh", "-c", run.shell or ""]
    identity: dict[str, Any] = {}
    if policy.switch_user:
        identity = {"user": policy.account.uid, "group": policy.account.gid, "extra_groups": []}
    if run.pty is not None:
        spawned = _spawn_on_pty(run, argv, env, cwd, identity)
    else:
        spawned = _spawn_on_pipes(run, argv, env, cwd, identity)
    try:
        _apply_rlimits(spawned.process.pid, policy.rlimits)
    except OSError as exc:
        # Fail closed: a command that should be limited and is not must not run.
        _abandon(spawned)
        name = errno.errorcode.get(exc.errno or 0, "EUNKNOWN")
        raise SpawnError(
            ErrorCode.SPAWN_FAILED, f"could not apply resource limits ({name})"
        ) from None
    if all(limit != resource.RLIMIT_NOFILE for limit, _ in policy.rlimits):
        give_back_open_file_limit(spawned.process.pid)
    return spawned


def _abandon(spawned: Spawned) -> None:
    """Kill and reap a process that was started but must not run, and close
    the parent's ends of its streams."""
    try:
        os.killpg(spawned.process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    spawned.process.wait()
    for fd in {spawned.stdout_fd, spawned.stderr_fd, spawned.stdin_fd, spawned.pty_fd} - {None}:
        assert fd is not None
        os.close(fd)


def _spawn_on_pipes(
    run: Run, argv: list[str], env: dict[str, str], cwd: str, identity: dict[str, Any]
) -> Spawned:
    # The pipes are made here rather than by Popen so that this module owns
    # the parent's ends as plain descriptors, closed exactly once by the runner.
    child_fds: list[int] = []
    parent_fds: list[int] = []
    try:
        stdout_fd, child_stdout = _pipe(parent_fds, child_fds)
        stderr_fd, child_stderr = _pipe(parent_fds, child_fds)
        stdin_fd: int | None = None
        child_stdin: int = subprocess.DEVNULL
        if run.stdin:
            child_stdin, stdin_fd = _pipe(child_fds, parent_fds)
        streams = (child_stdin, child_stdout, child_stderr)
        executable = _executable(argv[0], env.get("PATH"))
        process = _popen(argv, env, cwd, identity, streams, executable=executable)
    except OSError as exc:
        for fd in parent_fds:
            os.close(fd)
        _EXECUTABLES.pop((argv[0], env.get("PATH")), None)
        raise _spawn_error(exc) from None
    finally:
        for fd in child_fds:
            os.close(fd)
    for fd in parent_fds:
        os.set_blocking(fd, False)
    return Spawned(process, stdout_fd, stderr_fd, stdin_fd, None)


def _popen(
    argv: list[str],
    env: dict[str, str],
    cwd: str,
    identity: dict[str, Any],
    streams: tuple[int, int, int],
    *,
    executable: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as every command starts: in a new session (so a new
    process group), with ``streams`` as its stdin, stdout and stderr and no
    other descriptor of ours, as the user ``identity`` names (Popen's
    ``user``, ``group``, ``extra_groups``; empty: as we are).

    Raises:
        OSError: from the fork or the exec.
    """
    stdin, stdout, stderr = streams
    return subprocess.Popen(
        argv,
        executable=executable,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        cwd=cwd,
        env=env,
        start_new_session=True,
        close_fds=True,
        **identity,
    )


def _apply_rlimits(pid: int, rlimits: tuple[tuple[int, int], ...]) -> None:
    """Raises OSError (EPERM: another user's process without CAP_SYS_RESOURCE,
    or a hard limit above our own) when a limit could not be set."""
    for limit, value in rlimits:
        try:
            resource.prlimit(pid, limit, (value, value))
        except ProcessLookupError:
            pass  # already gone (and reaped by no one yet): nothing to bind
        except ValueError as exc:
            raise OSError(errno.EINVAL, str(exc)) from None


def _pipe(readers: list[int], writers: list[int]) -> tuple[int, int]:
    """A new pipe (read end, write end); each end is appended to the list of
    the side that will hold it, so the caller can close them on any path."""
    read_end, write_end = os.pipe()
    readers.append(read_end)
    writers.append(write_end)
    return read_end, write_end


def set_window_size(pty_fd: int, rows: int, cols: int) -> None:
    """Set a pty's window size; the kernel signals SIGWINCH to its foreground group."""
    fcntl.ioctl(pty_fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _spawn_on_pty(
    run: Run, argv: list[str], env: dict[str, str], cwd: str, identity: dict[str, Any]
) -> Spawned:
    assert run.pty is not None
    # Behind the exec wrapper a missing program would only show as the
    # wrapper's failure on the terminal; look it up first to report it cleanly.
    if shutil.which(argv[0], path=env.get("PATH")) is None:
        raise SpawnError(ErrorCode.SPAWN_NOT_FOUND, "no such program (ENOENT)")
    try:
        master, slave = os.openpty()
    except OSError as exc:
        raise SpawnError(
            ErrorCode.PTY_FAILED,
            f"no pseudo-terminal: {errno.errorcode.get(exc.errno or 0, 'error')}",
        ) from None
    try:
        set_window_size(master, run.pty.rows, run.pty.cols)
        wrapper = [sys.executable, "-I", "-S", "-c", _PTY_EXEC_WRAPPER]
        process = _popen([*wrapper, *argv], env, cwd, identity, (slave, slave, slave))
    except OSError as exc:
        os.close(master)
        raise _spawn_error(exc) from None
    finally:
        os.close(slave)
    os.set_blocking(master, False)
    # One master, two roles: reading is output, writing is input. A separate
    # descriptor for input lets each side be closed on its own schedule.
    stdin_fd = os.dup(master) if run.stdin else None
    return Spawned(process, master, None, stdin_fd, master)


#: Programs found on a PATH, by (name, PATH): Popen otherwise builds and tries
#: every candidate path for every command, a cost on each command's critical
#: path. Only hits are kept, so a program installed later is still found; one
#: that moved is looked up again after its exec fails (see spawn_error).
_EXECUTABLES: dict[tuple[str, str | None], str] = {}
_EXECUTABLES_MAX = 256


def _executable(name: str, path: str | None) -> str | None:
    if "/" in name:
        return None  # a path: exec'd as it is
    found = _EXECUTABLES.get((name, path))
    if found is None:
        found = shutil.which(name, path=path)
        if found is not None and len(_EXECUTABLES) < _EXECUTABLES_MAX:
            _EXECUTABLES[(name, path)] = found
    return found


def enlarge_pipe(fd: int) -> None:
    """Grow a pipe to ``PIPE_SIZE``; done once a command has filled the
    default size, so short commands don't pay for it."""
    try:
        fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass  # over this system's pipe-max-size: the default size still works


def _spawn_error(exc: OSError) -> SpawnError:
    name = errno.errorcode.get(exc.errno or 0, "EUNKNOWN")
    if exc.errno == errno.ENOENT:
        return SpawnError(ErrorCode.SPAWN_NOT_FOUND, f"no such program ({name})")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return SpawnError(ErrorCode.SPAWN_PERMISSION_DENIED, f"program not executable ({name})")
    return SpawnError(ErrorCode.SPAWN_FAILED, f"could not start the program ({name})")
