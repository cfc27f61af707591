"""Starting the process for a ``run`` request: in a session of its own, on
pipes or a pty, within its resource limits, with the signal dispositions and
open-file limit of a fresh process.

What it runs as and with (account, environment, directory, program) comes
from ``process_setup``; a failure here is a ``SpawnError`` as there.
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
from rexec.server.process_setup import (
    ProcessPolicy,
    SpawnError,
    command_cwd,
    command_env,
    find_executable,
    forget_executable,
    spawn_error,
)

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


#: Python ignores these itself at startup, so that a write to a closed pipe or
#: socket raises instead of killing the daemon; subprocess restores them to
#: the default in every child (``restore_signals``).
_IGNORED_BY_PYTHON = frozenset({signal.SIGPIPE, signal.SIGXFSZ})


def reset_inherited_signals() -> None:
    """Unblock every signal and set every ignored one back to its default
    action, so that every command starts as sshd starts one: default
    dispositions and an empty mask, whatever the daemon inherited (protocol.md
    [command.signals.default]). A daemon started as a background job of a
    non-interactive shell has SIGINT and SIGQUIT ignored, and ignored signals
    and the mask survive fork and exec; caught ones are reset by exec anyway.

    Call it first thing, before any thread exists: a thread takes the mask of
    the thread that creates it.
    """
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    for signum in signal.valid_signals():
        if signum in _IGNORED_BY_PYTHON:
            continue
        try:
            if signal.getsignal(signum) == signal.SIG_IGN:
                signal.signal(signum, signal.SIG_DFL)
        except (OSError, ValueError):
            continue  # SIGKILL, SIGSTOP and those the C library keeps to itself


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
    if _command_nofile is not None and all(
        limit != resource.RLIMIT_NOFILE for limit, _ in policy.rlimits
    ):
        _give_back_open_file_limit(spawned.process.pid, _command_nofile)
    return spawned


#: The open-file limits rexecd was started with, once it has raised its own
#: (``raise_open_file_limit``): what commands get back.
_command_nofile: tuple[int, int] | None = None


def raise_open_file_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit, so
    that hundreds of connections fit; returns the soft limit now in force.

    Commands get the limits rexecd was started with back (unless
    ``rlimit_nofile`` sets theirs): some programs still use ``select`` or
    close every descriptor up to the limit, and a service manager's hard limit
    is in the hundreds of thousands (systemd's advice for services).
    """
    global _command_nofile
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if target <= soft:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft  # a container's limit on what the kernel allows: keep ours
    _command_nofile = (soft, hard)
    return target


def _give_back_open_file_limit(pid: int, limits: tuple[int, int]) -> None:
    # Best effort, like every prlimit right after the spawn (see ProcessPolicy):
    # without CAP_SYS_RESOURCE another user's process (run_as) can't be
    # changed, and a higher soft limit costs nothing in safety.
    try:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, limits)
    except (OSError, ValueError):
        pass


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
        executable = find_executable(argv[0], env.get("PATH"))
        process = _popen(argv, env, cwd, identity, streams, executable=executable)
    except OSError as exc:
        for fd in parent_fds:
            os.close(fd)
        forget_executable(argv[0], env.get("PATH"))
        raise spawn_error(exc) from None
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
        raise spawn_error(exc) from None
    finally:
        os.close(slave)
    os.set_blocking(master, False)
    # One master, two roles: reading is output, writing is input. A separate
    # descriptor for input lets each side be closed on its own schedule.
    stdin_fd = os.dup(master) if run.stdin else None
    return Spawned(process, master, None, stdin_fd, master)


def enlarge_pipe(fd: int) -> None:
    """Grow a pipe to ``PIPE_SIZE``; done once a command has filled the
    default size, so short commands don't pay for it."""
    try:
        fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass  # over this system's pipe-max-size: the default size still works
